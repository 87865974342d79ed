"""MetalLB manifest handling: pinned sha256, cache, download, user path, minimal fallback,
pool documents and the webhook-refusal classifier (no cluster needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from k3dtui.core import metallb
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.kubeapply import ApiRefused
from tests.upstream import FIXTURE, MINIMAL


@pytest.fixture
def upstream_bytes(upstream_manifest: Path) -> bytes:
    return upstream_manifest.read_bytes()


def test_fixture_is_the_pinned_manifest(upstream_bytes: bytes) -> None:
    assert hashlib.sha256(upstream_bytes).hexdigest() == metallb.METALLB_SHA256


@pytest.mark.upstream_manifest
def test_user_manifest_verified_and_parsed() -> None:
    m = metallb.read_user_manifest(FIXTURE)
    assert m.origin == "path" and m.verified
    assert len(m.documents) == 25
    assert m.documents[0]["kind"] == "Namespace"
    assert sorted(m.crd_names) == sorted(
        f"{p}.metallb.io"
        for p in (
            "bfdprofiles",
            "bgpadvertisements",
            "bgppeers",
            "communities",
            "ipaddresspools",
            "l2advertisements",
            "servicebgpstatuses",
            "servicel2statuses",
        )
    )
    assert m.documents[-1]["kind"] == "ValidatingWebhookConfiguration"


def test_user_manifest_mismatch_names_both_hashes(tmp_path: Path) -> None:
    bad = tmp_path / "metallb.yaml"
    bad.write_bytes(MINIMAL.read_bytes())  # a MetalLB manifest, not the pinned one
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(metallb.ChecksumMismatch) as info:
        metallb.read_user_manifest(bad)
    assert actual in info.value.message
    assert metallb.METALLB_SHA256 in info.value.message
    assert info.value.exit_code == 2
    assert "--insecure-skip-verify" in info.value.hint


def test_insecure_skip_verify_accepts_other_manifest(tmp_path: Path) -> None:
    other = tmp_path / "metallb.yaml"
    other.write_bytes(MINIMAL.read_bytes())
    notes: list[tuple[str, str]] = []
    m = metallb.resolve_manifest(other, insecure_skip_verify=True, progress=lambda k, msg, d: notes.append((k, msg)))
    assert not m.verified and m.origin == "path"
    assert any(k == "warning" and "--insecure-skip-verify" in msg for k, msg in notes)


def test_missing_user_manifest_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        metallb.read_user_manifest(tmp_path / "nope.yaml")
    assert "no such file" in info.value.message


def _transport(body: bytes, calls: list[str], status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(status, content=body)

    return httpx.MockTransport(handler)


def test_download_verifies_and_caches(upstream_bytes: bytes) -> None:
    calls: list[str] = []
    m = metallb.fetch_upstream(transport=_transport(upstream_bytes, calls))
    assert calls == [metallb.METALLB_URL]
    assert m.origin == "download" and m.verified
    cached = metallb.cached_manifest_path()
    assert cached.read_bytes() == upstream_bytes
    assert str(cached).startswith(str(metallb.paths.cache_dir()))
    # second time: from the cache, no request
    m2 = metallb.fetch_upstream(transport=_transport(b"", calls))
    assert m2.origin == "cache" and len(calls) == 1


def test_download_mismatch_refused_and_not_cached(upstream_bytes: bytes) -> None:
    body = upstream_bytes + b"\n# tampered\n"
    with pytest.raises(metallb.ChecksumMismatch) as info:
        metallb.fetch_upstream(transport=_transport(body, []))
    assert hashlib.sha256(body).hexdigest() in info.value.message
    assert metallb.METALLB_SHA256 in info.value.message
    assert not metallb.cached_manifest_path().exists()


def test_corrupt_cache_is_downloaded_again(upstream_bytes: bytes) -> None:
    cached = metallb.cached_manifest_path()
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"garbage")
    calls: list[str] = []
    m = metallb.fetch_upstream(transport=_transport(upstream_bytes, calls))
    assert m.origin == "download" and len(calls) == 1
    assert cached.read_bytes() == upstream_bytes


def test_offline_falls_back_to_minimal_only_when_allowed() -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host", request=request)

    with pytest.raises(K3dtuiError) as info:
        metallb.resolve_manifest(None, allow_minimal=False, transport=httpx.MockTransport(offline))
    assert "--metallb-manifest" in info.value.hint
    notes: list[tuple[str, str]] = []
    m = metallb.resolve_manifest(
        None,
        allow_minimal=True,
        transport=httpx.MockTransport(offline),
        progress=lambda k, msg, d: notes.append((k, msg)),
    )
    assert m.origin == "minimal"
    assert any(k == "warning" and "minimal" in msg for k, msg in notes)


def test_minimal_manifest_has_what_l2_needs() -> None:
    m = metallb.minimal_manifest()
    kinds = [(d["kind"], d["metadata"]["name"]) for d in m.documents]
    assert ("Namespace", "metallb-system") in kinds
    assert sorted(m.crd_names) == [
        "ipaddresspools.metallb.io",
        "l2advertisements.metallb.io",
        "servicel2statuses.metallb.io",
    ]
    assert ("Deployment", "controller") in kinds and ("DaemonSet", "speaker") in kinds
    assert ("Service", "metallb-webhook-service") in kinds
    vwc = m.documents[-1]
    assert vwc["kind"] == "ValidatingWebhookConfiguration"
    assert metallb.POOL_WEBHOOK in [w["name"] for w in vwc["webhooks"]]
    # CRDs before anything using them, namespace first
    assert kinds[0][0] == "Namespace"


def test_pool_documents_carry_the_range() -> None:
    pool, l2 = metallb.pool_documents("172.18.255.200-172.18.255.250")
    assert pool["kind"] == "IPAddressPool" and pool["metadata"]["namespace"] == "metallb-system"
    assert pool["spec"]["addresses"] == ["172.18.255.200-172.18.255.250"]
    assert pool["spec"]["avoidBuggyIPs"] is True
    assert l2["kind"] == "L2Advertisement" and l2["spec"]["ipAddressPools"] == [pool["metadata"]["name"]]
    # the workflow's names
    assert (pool["metadata"]["name"], l2["metadata"]["name"]) == ("first-pool", "example")


def test_pool_documents_are_named_by_the_identity() -> None:
    import dataclasses

    from k3dtui.core.identity import APP

    other = dataclasses.replace(APP, pool="p2", l2advertisement="l2b", metallb_namespace="lb")
    pool, l2 = metallb.pool_documents("10.0.0.1-10.0.0.9", other)
    assert (pool["metadata"]["name"], pool["metadata"]["namespace"]) == ("p2", "lb")
    assert (l2["metadata"]["name"], l2["metadata"]["namespace"], l2["spec"]["ipAddressPools"]) == ("l2b", "lb", ["p2"])


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, 'Internal error occurred: failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io": connect: connection refused', True),
        (500, "no endpoints available for service \"metallb-webhook-service\"", True),
        (422, 'IPAddressPool.metallb.io "x" is invalid: spec.addresses: Required value', False),
        (403, "forbidden", False),
    ],
)
def test_webhook_refusal_classifier(status: int, body: str, expected: bool) -> None:
    exc = ApiRefused(f"applying: {body}", status=status, reason="x", body=body)
    assert metallb.is_webhook_refusal(exc) is expected


def test_parse_documents_rejects_non_objects() -> None:
    with pytest.raises(K3dtuiError):
        metallb.parse_documents("- a\n- b\n", "x.yaml")
    with pytest.raises(K3dtuiError):
        metallb.parse_documents("---\n", "x.yaml")
