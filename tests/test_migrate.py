"""Carrying an earlier k3dtui's objects over to the current names (``core.migrate``).

On the in-process API server (no controllers: objects stay as left, so each effect is
visible) for the Deployment and for what is not k3dtui's; on a running simulated cluster,
through ``up``, for the whole carry-over (Deployment, pool, L2Advertisement)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from k3dtui.core.identity import APP
from k3dtui.core.kubeapply import Kube
from k3dtui.core.migrate import carry_over_legacy, made_by_k3dtui
from k3dtui.core.pipeline import Pipeline, PipelineEvent
from k3dtui.core.spec import ClusterSpec
from k3dtui.sim import gvrs
from k3dtui.sim.testing import ApiThread, run_api_in_thread
from tests.simfixtures import SimHandle, pool_range, wait_for

LEGACY = Path(__file__).parent / "legacy"


def legacy_documents(name: str) -> list[dict[str, Any]]:
    """The documents of tests/legacy/<name> (what an earlier k3dtui applied)."""
    return [d for d in yaml.safe_load_all((LEGACY / name).read_text(encoding="utf-8")) if d]


def legacy_app(replicas: int) -> list[dict[str, Any]]:
    docs = legacy_documents("app.yaml")
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = replicas
    return docs


def legacy_pool(addresses: str) -> list[dict[str, Any]]:
    docs = legacy_documents("metallb-pool.yaml")
    for doc in docs:
        if doc["kind"] == "IPAddressPool":
            doc["spec"]["addresses"] = [addresses]
    return docs


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, kind: str, message: str, data: Mapping[str, Any]) -> None:
        self.seen.append((kind, message, dict(data)))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    thread = run_api_in_thread(tmp_path)
    yield thread
    thread.stop()


@pytest.fixture
def kube(api: ApiThread) -> Iterator[Kube]:
    k = Kube(api.kubeconfig)
    yield k
    k.close()


def test_the_legacy_names_are_not_the_current_ones() -> None:
    legacy = APP.legacy
    assert (legacy.deployment, legacy.pool, legacy.l2advertisement) == ("fastapi", "k3dtui-pool", "k3dtui-l2")
    assert (APP.deployment, APP.pool, APP.l2advertisement, APP.service) == (
        "fastapi-app", "first-pool", "example", "fastapi-service"
    )


def test_a_legacy_deployment_is_replaced_keeping_its_replicas(kube: Kube) -> None:
    for doc in legacy_app(replicas=4):
        kube.apply(doc)  # as an earlier k3dtui did: server-side apply, field manager k3dtui
    progress = Recorder()
    done = carry_over_legacy(kube, APP, progress)
    assert kube.get("apps/v1", "Deployment", "fastapi", "default") is None
    new = kube.get("apps/v1", "Deployment", "fastapi-app", "default")
    assert new is not None and new["spec"]["replicas"] == 4
    assert new["spec"]["selector"]["matchLabels"] == {"app": "fastapi"}
    assert done == [
        "carried the Deployment fastapi over to fastapi-app (4 replicas kept)",
        "deleted the old Deployment fastapi (its pods end gracefully)",
    ]
    assert [k for k, _, _ in progress.seen] == ["progress", "progress"]
    assert all(d["carry_over"] for _, _, d in progress.seen)
    # the Service keeps its name: it is not touched
    assert kube.get("v1", "Service", "fastapi-service", "default") is not None
    # a second run has nothing to do
    assert carry_over_legacy(kube, APP, Recorder()) == []


def test_an_interrupted_carry_over_only_deletes_the_old_deployment(kube: Kube) -> None:
    for doc in legacy_app(replicas=2):
        kube.apply(doc)
    from k3dtui.core.deploy import app_documents

    for doc in app_documents(5):
        kube.apply(doc)
    done = carry_over_legacy(kube, APP, Recorder())
    assert done == ["deleted the old Deployment fastapi (its pods end gracefully)"]
    new = kube.get("apps/v1", "Deployment", "fastapi-app", "default")
    assert new is not None and new["spec"]["replicas"] == 5  # the current one is not changed


def test_a_deployment_k3dtui_did_not_make_is_left_alone(api: ApiThread, kube: Kube) -> None:
    foreign = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "fastapi", "namespace": "default", "labels": {"team": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "someone-else"}},
                 "template": {"metadata": {"labels": {"app": "someone-else"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}},
    }
    api.call(lambda: api.store.create(gvrs.DEPLOYMENTS, foreign))
    stored = kube.get("apps/v1", "Deployment", "fastapi", "default")
    assert stored is not None and not made_by_k3dtui(stored)
    progress = Recorder()
    assert carry_over_legacy(kube, APP, progress) == []
    assert kube.get("apps/v1", "Deployment", "fastapi", "default") is not None
    assert kube.get("apps/v1", "Deployment", "fastapi-app", "default") is None
    assert [(k, m) for k, m, _ in progress.seen] == [
        ("warning", "a Deployment fastapi that k3dtui did not create is in namespace default; left alone")
    ]


def test_the_exact_legacy_shape_counts_as_k3dtuis_without_its_label(kube: Kube) -> None:
    dep = next(d for d in legacy_app(replicas=3) if d["kind"] == "Deployment")
    del dep["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert not made_by_k3dtui(dep)
    kube.apply(dep)  # still written by k3dtui's field manager
    stored = kube.get("apps/v1", "Deployment", "fastapi", "default")
    assert stored is not None and made_by_k3dtui(stored)
    stored["metadata"].pop("managedFields", None)
    assert not made_by_k3dtui(stored)
    from k3dtui.core.migrate import _legacy_deployment_shape

    assert _legacy_deployment_shape(stored, APP)
    assert not _legacy_deployment_shape(stored, dataclasses.replace(APP, image="other:1"))


def test_nothing_to_do_when_the_identity_keeps_the_legacy_names(kube: Kube) -> None:
    for doc in legacy_app(replicas=2):
        kube.apply(doc)
    same = dataclasses.replace(APP, deployment="fastapi", pool="k3dtui-pool", l2advertisement="k3dtui-l2")
    assert carry_over_legacy(kube, same, Recorder()) == []
    assert kube.get("apps/v1", "Deployment", "fastapi", "default") is not None


# --- the whole carry-over through `up`, on a running simulated cluster ------------------------
def _deploy_legacy(handle: SimHandle, replicas: int) -> str:
    """The cluster as an earlier k3dtui left it: MetalLB, pool k3dtui-pool (+ k3dtui-l2),
    Deployment fastapi with ``replicas``; returns the pool's range."""
    import asyncio

    from k3dtui.core.kubeerrors import ApiRefused
    from k3dtui.core.metallb import minimal_manifest

    for obj in minimal_manifest().documents:
        handle.apply(obj)
    asyncio.run(handle.provider.import_image(APP.image, lambda _line: None))
    network = asyncio.run(handle.provider.network())
    addresses = pool_range(network.subnet)
    kube = Kube(handle.kubeconfig, handle.context)
    try:
        for doc in legacy_app(replicas):
            kube.apply(doc)
        for doc in legacy_pool(addresses):

            def applied(doc: dict[str, Any] = doc) -> bool:
                try:
                    kube.apply(doc)
                except ApiRefused as exc:
                    if "webhook" in exc.message:
                        return False  # MetalLB's webhook is not serving yet
                    raise
                return True

            wait_for(applied, 20.0, f"MetalLB's webhook to accept {doc['kind']}")

        def served() -> bool:
            dep = kube.get("apps/v1", "Deployment", "fastapi", "default") or {}
            svc = kube.get("v1", "Service", "fastapi-service", "default") or {}
            ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
            return ready == replicas and bool(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"))

        wait_for(served, 30.0, "the legacy app to be Ready behind its external IP")
    finally:
        kube.close()
    return addresses


async def test_up_carries_a_legacy_cluster_over_and_leaves_nothing_behind(sim_cluster: SimHandle) -> None:
    import asyncio

    addresses = await asyncio.to_thread(_deploy_legacy, sim_cluster, 4)
    events: list[PipelineEvent] = []
    pipe = Pipeline(sim_cluster.provider, ClusterSpec(name=sim_cluster.name), events.append)
    try:
        assert await pipe.detect_stage() == "metallb"  # nothing under the current names yet
        result = await pipe.up()
        status = await pipe.status()
    finally:
        pipe.close()
    said = [e.message for e in events if e.data.get("carry_over")]
    assert said == [
        "deleted the old L2Advertisement k3dtui-l2",
        "deleted the old IPAddressPool k3dtui-pool",
        f"carried the pool k3dtui-pool over to first-pool (range {addresses} kept), advertised by example",
        "carried the Deployment fastapi over to fastapi-app (4 replicas kept)",
        "deleted the old Deployment fastapi (its pods end gracefully)",
    ]
    assert result.pool == addresses
    assert status["pool"] == addresses
    assert status["deployment"] == {"name": "fastapi-app", "replicas": 4, "ready": 4}
    resp = httpx.get(result.dial_url, timeout=5)
    assert resp.status_code == 200 and resp.headers["x-pod"].startswith("fastapi-app-")

    kube = Kube(sim_cluster.kubeconfig, sim_cluster.context)
    try:
        assert kube.get("apps/v1", "Deployment", "fastapi", "default") is None
        assert kube.get("metallb.io/v1beta1", "IPAddressPool", "k3dtui-pool", "metallb-system") is None
        assert kube.get("metallb.io/v1beta1", "L2Advertisement", "k3dtui-l2", "metallb-system") is None
        pool = kube.get("metallb.io/v1beta1", "IPAddressPool", "first-pool", "metallb-system")
        assert pool is not None and pool["spec"]["addresses"] == [addresses]
        l2 = kube.get("metallb.io/v1beta1", "L2Advertisement", "example", "metallb-system")
        assert l2 is not None and l2["spec"]["ipAddressPools"] == ["first-pool"]

        def only_new_pods() -> bool:
            pods = kube.list("v1", "Pod", "default", "app=fastapi")
            sets = kube.list("apps/v1", "ReplicaSet", "default")
            return (
                len(pods) == 4
                and all(str(p["metadata"]["name"]).startswith("fastapi-app-") for p in pods)
                and all(str(r["metadata"]["name"]).startswith("fastapi-app-") for r in sets)
            )

        # the old ReplicaSet and its pods go with the old Deployment (garbage collection)
        await asyncio.to_thread(wait_for, only_new_pods, 20.0, "only fastapi-app's pods and ReplicaSets")
    finally:
        kube.close()
