"""Docker 29's containerd image store: when the store is containerd, or `k3d image import`
fails, the image goes in with `docker save` streamed into `ctr -n k8s.io images import -` in
each server and agent node, and k3dtui says so. The nodes carry a recording `ctr`."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest
from fakes.fixtures import BUSYBOX, FakeK3d, ensure_k3s_node, fake_k3d  # noqa: F401

from k3dtui.core import docker as dockerx
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.k3d_provider import K3dProvider

pytestmark = pytest.mark.docker


def _recorded(container: Any) -> list[tuple[str, bytes]]:
    """(argv, archive bytes) of every ctr call recorded in a node container."""
    bits, _ = container.get_archive("/var/lib/ctr-calls")
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as outer:
        files = {m.name.split("/")[-1]: outer.extractfile(m).read() for m in outer.getmembers() if m.isfile()}  # type: ignore[union-attr]
    calls = []
    for n in range(len([f for f in files if f.endswith(".argv")])):
        calls.append((files[f"{n}.argv"].decode().strip(), files.get(f"{n}.tar", b"")))
    return calls


def _repo_tags(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    return [t for entry in manifest for t in entry.get("RepoTags") or []]


def _cluster(fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch) -> tuple[str, K3dProvider]:  # noqa: F811
    import subprocess

    monkeypatch.setenv("FAKE_K3D_IMAGE", ensure_k3s_node(fake_k3d.client))
    name = f"t{fake_k3d.run_id}"
    subprocess.run(["k3d", "cluster", "create", name, "-a", "2"], check=True, capture_output=True, timeout=120)
    return name, K3dProvider(name)


def _nodes(fake_k3d: FakeK3d, name: str) -> dict[str, Any]:  # noqa: F811
    return {c.name: c for c in fake_k3d.containers(name)}


def _check_every_node_got_the_image(fake_k3d: FakeK3d, name: str) -> None:  # noqa: F811
    nodes = _nodes(fake_k3d, name)
    assert sorted(c.labels["k3d.role"] for c in nodes.values()) == ["agent", "agent", "loadbalancer", "server"]
    for cname, c in nodes.items():
        if c.labels["k3d.role"] == "loadbalancer":
            import docker.errors

            with pytest.raises(docker.errors.NotFound):  # the load balancer is left alone
                _recorded(c)
            continue
        calls = _recorded(c)
        assert [argv for argv, _ in calls] == ["-n k8s.io images import -"], cname
        assert _repo_tags(calls[0][1]) == [BUSYBOX], cname


async def test_import_failure_falls_back_to_ctr_in_each_node(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    name, provider = _cluster(fake_k3d, monkeypatch)
    monkeypatch.setenv("FAKE_K3D_FAIL", "import")
    log: list[str] = []
    await provider.import_image(BUSYBOX, log.append)
    assert ["image", "import", BUSYBOX, "-c", name] in fake_k3d.argvs()
    said = next(ln for ln in log if "instead" in ln)
    assert said.startswith("`k3d image import` failed") and "content digest" in said
    assert "ctr -n k8s.io images import -" in said
    assert log[-1].startswith("imported k3dtui-test/busybox:latest into 3 node(s) with ctr: k3d-")
    _check_every_node_got_the_image(fake_k3d, name)


async def test_containerd_store_goes_straight_to_ctr(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    name, provider = _cluster(fake_k3d, monkeypatch)
    real_info = dockerx.info

    def containerd_info(cli: Any = None) -> dict[str, Any]:
        data = real_info(cli)
        # what `docker info` reports with the containerd image store (Docker 29's default)
        data["DriverStatus"] = [["driver-type", "io.containerd.snapshotter.v1"]]
        return data

    monkeypatch.setattr(dockerx, "info", containerd_info)
    log: list[str] = []
    await provider.import_image(BUSYBOX, log.append)
    assert not any(a[:2] == ["image", "import"] for a in fake_k3d.argvs()), "k3d image import is skipped"
    assert any(ln.startswith("Docker uses the containerd image store") and "instead" in ln for ln in log), log
    _check_every_node_got_the_image(fake_k3d, name)


async def test_ctr_failure_in_a_node_is_one_clear_error(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from k3dtui.core import nodeimport

    name, _provider = _cluster(fake_k3d, monkeypatch)
    monkeypatch.setattr(nodeimport, "CTR_IMPORT", ["ctr", "images", "import", "-"])
    cli = dockerx.connect()
    with pytest.raises(K3dtuiError) as info:
        nodeimport.import_into_nodes(cli, name, BUSYBOX, lambda _: None, dockerx.info(cli))
    assert "failed in node k3d-" in info.value.message and "unexpected arguments" in info.value.message
