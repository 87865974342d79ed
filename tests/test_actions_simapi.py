"""Kill and scale against the simulated API server (no controllers: the objects stay as the
actions leave them, so each effect is visible), and the watcher on the real watch protocol."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k3dtui.core.identity import APP
from k3dtui.core.kube import make_api_client
from k3dtui.core.live import LiveCluster
from k3dtui.core.models import ClusterSnapshot
from k3dtui.core.watch import WatchSettings, wait_until
from k3dtui.sim.testing import ApiThread, run_api_in_thread

SETTINGS = WatchSettings(timeout_seconds=30, inactivity_timeout=5, connect_timeout=1, backoff_initial=0.05,
                         backoff_max=0.3, absent_poll=0.2)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ApiThread]:
    api = run_api_in_thread(tmp_path)
    yield api
    api.stop()


@pytest.fixture
def core(sim: ApiThread) -> Iterator[client.CoreV1Api]:
    api = make_api_client(sim.kubeconfig)
    yield client.CoreV1Api(api)
    api.close()


def app_replicaset(core: client.CoreV1Api, *, deployment: str = APP.deployment, rs: str = "fastapi-app-abc",
                   replicas: int = 3) -> dict[str, Any]:
    """A Deployment (made when missing) and a ReplicaSet it controls, as the controllers would
    leave them; returns the ownerReference a pod of that ReplicaSet carries."""
    apps = client.AppsV1Api(core.api_client)
    try:
        dep = json.loads(apps.read_namespaced_deployment(deployment, "default", _preload_content=False).data)
    except ApiException:
        body = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": deployment, "namespace": "default", "labels": {"app": "fastapi"}},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "fastapi"}},
                         "template": {"metadata": {"labels": {"app": "fastapi"}},
                                      "spec": {"containers": [{"name": "fastapi", "image": "fastapi-random:latest"}]}}}}
        dep = json.loads(apps.create_namespaced_deployment("default", body, _preload_content=False).data)
    try:
        made = json.loads(apps.read_namespaced_replica_set(rs, "default", _preload_content=False).data)
    except ApiException:
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": "default", "labels": {"app": "fastapi"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                                  "uid": dep["metadata"]["uid"], "controller": True}]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "fastapi"}},
                         "template": {"metadata": {"labels": {"app": "fastapi"}},
                                      "spec": {"containers": [{"name": "fastapi", "image": "fastapi-random:latest"}]}}}}
        made = json.loads(apps.create_namespaced_replica_set("default", body, _preload_content=False).data)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": made["metadata"]["uid"],
            "controller": True}


def make_pod(core: client.CoreV1Api, name: str, *, app: str | None = "fastapi", namespace: str = "default",
             node: str = "k3d-sim-agent-0", phase: str = "Running", owner: dict[str, Any] | bool | None = True) -> None:
    """A pod; one labelled app=fastapi in default is owned by the app's ReplicaSet unless
    ``owner`` is False (a foreign pod) or another ownerReference."""
    labels = {"app": app} if app else {}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner is True and app == "fastapi" and namespace == "default":
        meta["ownerReferences"] = [app_replicaset(core)]
    elif isinstance(owner, dict):
        meta["ownerReferences"] = [owner]
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta,
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "fastapi", "image": "fastapi-random:latest"}]}}
    core.create_namespaced_pod(namespace, body, _preload_content=False)
    core.patch_namespaced_pod_status(name, namespace, {"status": {"phase": phase}}, _preload_content=False)


def read_pod(core: client.CoreV1Api, name: str, namespace: str = "default") -> dict[str, Any] | None:
    try:
        resp = core.read_namespaced_pod(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    data: dict[str, Any] = json.loads(resp.data)
    return data


def make_deployment(sim: ApiThread, replicas: int = 3) -> None:
    api = make_api_client(sim.kubeconfig)
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": APP.deployment, "namespace": "default", "labels": {"app": "fastapi"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "fastapi"}},
                     "template": {"metadata": {"labels": {"app": "fastapi"}},
                                  "spec": {"containers": [{"name": "fastapi", "image": "fastapi-random:latest"}]}}}}
    client.AppsV1Api(api).create_namespaced_deployment("default", body, _preload_content=False)
    api.close()


def replicas(sim: ApiThread) -> int:
    api = make_api_client(sim.kubeconfig)
    resp = client.AppsV1Api(api).read_namespaced_deployment_scale(APP.deployment, "default", _preload_content=False)
    api.close()
    return int(json.loads(resp.data)["spec"]["replicas"])


def test_kill_is_graceful_then_forced(sim: ApiThread, core: client.CoreV1Api) -> None:
    make_pod(core, "fastapi-abc-aaaaa")
    live = LiveCluster(sim.kubeconfig)
    r = live.kill("fastapi-abc-aaaaa")
    assert r.ok, r.message
    assert r.message == (
        "pod fastapi-abc-aaaaa on k3d-sim-agent-0 is terminating (grace period 5s); "
        "the Deployment starts a replacement (its ReplicaSet wants 3)"
    )
    pod = read_pod(core, "fastapi-abc-aaaaa")
    assert pod is not None and pod["metadata"]["deletionTimestamp"]
    again = live.kill("fastapi-abc-aaaaa")
    assert not again.ok and "already terminating" in again.message
    forced = live.kill("fastapi-abc-aaaaa", force=True)
    assert forced.ok and "grace period 0" in forced.message
    assert read_pod(core, "fastapi-abc-aaaaa") is None
    gone = live.kill("fastapi-abc-aaaaa")
    assert gone == type(gone)(False, "pod fastapi-abc-aaaaa not found in namespace default (already gone?)")


def test_force_kill_removes_at_once(sim: ApiThread, core: client.CoreV1Api) -> None:
    make_pod(core, "fastapi-abc-bbbbb")
    r = LiveCluster(sim.kubeconfig).kill("fastapi-abc-bbbbb", force=True)
    assert r.ok
    assert read_pod(core, "fastapi-abc-bbbbb") is None


def test_kill_refuses_pods_that_are_not_the_apps(sim: ApiThread, core: client.CoreV1Api) -> None:
    make_pod(core, "web-1", app="web")
    make_pod(core, "plain", app=None)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}, _preload_content=False)
    make_pod(core, "fastapi-elsewhere", namespace="other")
    live = LiveCluster(sim.kubeconfig)
    r = live.kill("web-1", force=True)
    assert not r.ok and r.message.startswith("refused: pod web-1 is not part of the app (it has app=web")
    r = live.kill("plain")
    assert not r.ok and "no app label" in r.message
    r = live.kill("fastapi-elsewhere", force=True)
    assert not r.ok and "not found in namespace default" in r.message
    for name, ns in (("web-1", "default"), ("plain", "default"), ("fastapi-elsewhere", "other")):
        pod = read_pod(core, name, ns)
        assert pod is not None and not pod["metadata"].get("deletionTimestamp"), name


def test_kill_refuses_a_pod_with_the_apps_label_that_the_app_does_not_own(
        sim: ApiThread, core: client.CoreV1Api) -> None:
    make_pod(core, "fastapi-impostor", owner=False)
    other_rs = app_replicaset(core, deployment="other-app", rs="other-app-abc")
    make_pod(core, "fastapi-other-rs", owner=other_rs)
    live = LiveCluster(sim.kubeconfig)
    r = live.kill("fastapi-impostor", force=True)
    assert not r.ok and r.message.startswith("refused: pod fastapi-impostor has app=fastapi but no controller owns it")
    r = live.kill("fastapi-other-rs")
    assert not r.ok and r.message == ("refused: pod fastapi-other-rs is owned by ReplicaSet other-app-abc, not by a "
                                      "ReplicaSet of deployment fastapi-app; nothing changed")
    r = live.kill_random(force=True)
    assert not r.ok and "no Running pod of the app" in r.message
    for name in ("fastapi-impostor", "fastapi-other-rs"):
        pod = read_pod(core, name)
        assert pod is not None and not pod["metadata"].get("deletionTimestamp"), name


def test_the_replacement_is_promised_only_when_one_comes(sim: ApiThread, core: client.CoreV1Api) -> None:
    owner = app_replicaset(core, rs="fastapi-app-zero", replicas=0)
    make_pod(core, "fastapi-last", owner=owner)
    r = LiveCluster(sim.kubeconfig).kill("fastapi-last")
    assert r.ok and r.message.endswith("; no replacement comes (its ReplicaSet wants 0 pods)"), r.message


def test_kill_random_picks_a_running_pod_of_the_app(sim: ApiThread, core: client.CoreV1Api) -> None:
    live = LiveCluster(sim.kubeconfig)
    assert not live.kill_random().ok
    make_pod(core, "fastapi-abc-pending", phase="Pending")
    make_pod(core, "web-running", app="web")
    r = live.kill_random()
    assert not r.ok and "no Running pod of the app" in r.message
    make_pod(core, "fastapi-abc-running")
    r = live.kill_random(force=True)
    assert r.ok and "fastapi-abc-running" in r.message
    assert read_pod(core, "fastapi-abc-running") is None
    assert read_pod(core, "fastapi-abc-pending") is not None
    assert read_pod(core, "web-running") is not None


def test_scale_to_and_by_within_bounds(sim: ApiThread) -> None:
    live = LiveCluster(sim.kubeconfig, max_replicas=6)
    r = live.scale_to(2)
    assert not r.ok and "deployment fastapi-app not found" in r.message
    make_deployment(sim, 3)
    assert live.scale_to(5) == type(r)(True, "scaled deployment fastapi-app from 3 to 5 replicas")
    assert replicas(sim) == 5
    assert live.scale_by(1).ok and replicas(sim) == 6
    r = live.scale_by(1)
    assert r == type(r)(False, "refused: 6+1 = 7 replicas is outside 0..6; nothing changed")
    assert replicas(sim) == 6
    assert live.scale_by(-1).ok and replicas(sim) == 5
    assert live.scale_to(0).ok and replicas(sim) == 0
    r = live.scale_by(-1)
    assert not r.ok and "0-1 = -1" in r.message and replicas(sim) == 0
    same = live.scale_to(0)
    assert same.ok and "already has 0 replicas" in same.message


def test_live_watch_on_the_sim_api_follows_pods_and_survives_a_restart(sim: ApiThread, core: client.CoreV1Api) -> None:
    make_pod(core, "fastapi-abc-aaaaa")
    seen: list[ClusterSnapshot] = []
    lock = threading.Lock()

    def on_change(s: ClusterSnapshot) -> None:
        with lock:
            seen.append(s)

    live = LiveCluster(sim.kubeconfig, watch_settings=SETTINGS)
    live.start(on_change)
    try:
        assert wait_until(lambda: [p.name for p in live.snapshot().pods] == ["fastapi-abc-aaaaa"], 5)
        assert wait_until(lambda: live.snapshot().connected, 5)
        make_pod(core, "fastapi-abc-bbbbb")
        make_pod(core, "web-x", app="web")
        assert wait_until(lambda: len(live.snapshot().pods) == 2, 5)
        assert live.kill("fastapi-abc-aaaaa").ok
        assert wait_until(lambda: {p.name: p.status for p in live.snapshot().pods}.get("fastapi-abc-aaaaa") == "Terminating", 5)
        # The API server restarts (every watch drops); meanwhile a pod goes away.
        sim.run(sim.server.stop())
        assert wait_until(lambda: not live.snapshot().connected, 5)
        core.api_client.close()
        sim.call(lambda: sim.store.delete(_pods_gvr(), "default", "fastapi-abc-aaaaa"))
        sim.run(sim.server.start("127.0.0.1", sim.port))
        assert wait_until(lambda: live.snapshot().connected, 10)
        assert wait_until(lambda: [p.name for p in live.snapshot().pods] == ["fastapi-abc-bbbbb"], 5)

        def last_seen_is_current() -> bool:
            with lock:
                return bool(seen) and seen[-1].pods == live.snapshot().pods and seen[-1].connected

        assert wait_until(last_seen_is_current, 2)  # the coalesced callback caught up
    finally:
        live.stop()


def _pods_gvr() -> Any:
    from k3dtui.sim import gvrs

    return gvrs.PODS


def test_watch_relists_when_its_resource_version_expired(tmp_path: Path) -> None:
    """Only other apps' pods change while the app's watch is open; when it ends (server-side
    timeout) its last RV has left the server's small event window: 410, re-list, correct state."""
    from k3dtui.core.state import PODS
    from k3dtui.sim.store import Store

    sim = run_api_in_thread(tmp_path, store=Store(window=5))
    api = make_api_client(sim.kubeconfig)
    core = client.CoreV1Api(api)
    live = LiveCluster(
        sim.kubeconfig,
        watch_settings=WatchSettings(timeout_seconds=1, inactivity_timeout=5, connect_timeout=1,
                                     backoff_initial=0.05, backoff_max=0.3),
    )
    try:
        make_pod(core, "fastapi-abc-aaaaa")
        live.start(lambda s: None)
        pods_watcher = next(w for w in live.watchers if w.kind == PODS)
        assert wait_until(lambda: pods_watcher.lists == 1 and pods_watcher.watches == 1, 5)
        for i in range(10):
            make_pod(core, f"web-{i}", app="web")
        assert wait_until(lambda: pods_watcher.lists >= 2, 5)
        assert pods_watcher.connected
        assert [p.name for p in live.snapshot().pods] == ["fastapi-abc-aaaaa"]
        make_pod(core, "fastapi-abc-bbbbb")
        assert wait_until(lambda: len(live.snapshot().pods) == 2, 5)
    finally:
        live.stop()
        api.close()
        sim.stop()
