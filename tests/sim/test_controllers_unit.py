"""Controllers on a bare Store (no API server, no data plane): ranking, spread, MetalLB rules."""

from __future__ import annotations

import asyncio
import collections
import copy
from typing import Any

import pytest

from k3dtui.sim import gvrs
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.metallb import parse_addresses
from k3dtui.sim.controllers.workloads import ReplicaSetController, template_hash
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import ApiError, Store


def deployment(replicas: int, image: str = "fastapi-random:latest") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}],
                "terminationGracePeriodSeconds": 1,
            }},
        },
    }


async def settle(store: Store, pred: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


def pods(store: Store) -> list[dict[str, Any]]:
    return [p for p in store.iter(gvrs.PODS) if p["metadata"].get("labels", {}).get("app") == "web"]


async def test_spread_over_ten_nodes_and_ready_without_runtime() -> None:
    store = Store()
    cluster = SimCluster(store, "ten", servers=1, agents=9, settings=SimSettings.fast())
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    store.create(gvrs.DEPLOYMENTS, deployment(25))
    await settle(store, lambda: sum(1 for p in pods(store) if util.is_ready(p)) == 25)
    counts = collections.Counter(p["spec"]["nodeName"] for p in pods(store))
    assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1
    rs = next(iter(store.iter(gvrs.REPLICASETS, "default")))  # kube-system has k3s's add-ons
    assert rs["metadata"]["name"] == f"web-{rs['metadata']['labels']['pod-template-hash']}"
    await settle(store, lambda: (store.peek(gvrs.REPLICASETS, "default", rs["metadata"]["name"]) or {})
                 .get("status", {}).get("readyReplicas") == 25)
    await settle(store, lambda: (store.peek(gvrs.DEPLOYMENTS, "default", "web") or {})
                 .get("status", {}).get("availableReplicas") == 25)
    ips = [p["status"]["podIP"] for p in pods(store)]
    assert len(set(ips)) == 25
    cluster.stop()


def test_template_hash_is_stable_and_uses_the_safe_alphabet() -> None:
    t = deployment(1)["spec"]["template"]
    h = template_hash(t)
    assert h == template_hash(copy.deepcopy(t))
    assert set(h) <= set(util.ALPHABET) and 6 <= len(h) <= 10
    t2 = copy.deepcopy(t)
    t2["spec"]["containers"][0]["image"] = "other"
    assert template_hash(t2) != h


def _pod(name: str, node: str | None, phase: str, ready: bool, created: str = "2026-01-01T00:00:00Z",
         cost: int = 0) -> dict[str, Any]:
    p: dict[str, Any] = {
        "metadata": {"name": name, "uid": name, "creationTimestamp": created,
                     "annotations": {"controller.kubernetes.io/pod-deletion-cost": str(cost)}},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created}]},
    }
    return p


async def test_deletion_ranking() -> None:
    store = Store()
    cluster = SimCluster(store, "rank", settings=SimSettings.fast())
    rsc = ReplicaSetController(cluster.ctx)
    candidates = [
        _pod("running-a1", "a", "Running", True),
        _pod("running-a2", "a", "Running", True),
        _pod("running-b1", "b", "Running", True),
        _pod("notready-c", "c", "Running", False),
        _pod("pending-c", "c", "Pending", False),
        _pod("unscheduled", None, "Pending", False),
        _pod("costly-b2", "b", "Running", True, cost=-5),
        _pod("newer-b3", "b", "Running", True, created="2026-06-01T00:00:00Z"),
    ]
    order = [p["metadata"]["name"] for p in rsc.rank_for_deletion(candidates, {"metadata": {}})]
    assert order[:3] == ["unscheduled", "pending-c", "notready-c"]
    assert order[3] == "costly-b2"  # lower deletion cost
    # node b has 3 ready pods left, node a 2: b's go first, the newer before the older
    assert order[4:6] == ["newer-b3", "running-b1"]
    assert set(order[6:]) == {"running-a1", "running-a2"}


@pytest.mark.parametrize(("entry", "error"), [
    ("172.18.255.250-172.18.255.200", "is after the end IP"),
    ("172.18.255.x-172.18.255.9", "invalid start IP"),
    ("172.18.0.0/33", "invalid CIDR"),
    ("banana", "invalid CIDR"),
])
def test_pool_entries_rejected_as_metallb_words_it(entry: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_addresses(entry)


async def test_metallb_pool_admission_overlap_and_race() -> None:
    store = Store()
    settings = SimSettings.fast().replace(webhook_race=0.3)
    cluster = SimCluster(store, "mlb", settings=settings)
    cluster.start()
    admit = cluster.metallb.admit_pool
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "a", "namespace": "metallb-system"},
            "spec": {"addresses": ["172.18.255.200-172.18.255.210"]}}
    admit("CREATE", pool, None)  # no webhook configured: nothing to refuse
    store.create(gvrs.IPADDRESSPOOLS, copy.deepcopy(pool))
    other = copy.deepcopy(pool)
    other["metadata"]["name"] = "b"
    other["spec"]["addresses"] = ["172.18.255.208/29"]
    with pytest.raises(ApiError) as exc:
        admit("CREATE", other, None)
    assert exc.value.code == 403
    assert 'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request' in exc.value.message
    assert "overlaps with already defined CIDR" in exc.value.message
    admit("UPDATE", pool, pool)  # a pool does not overlap itself
    # the webhook exists but the controller is not running: refused
    store.create(gvrs.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}})
    from k3dtui.sim.controllers.metallb import WEBHOOK_CONFIGS

    store.create(WEBHOOK_CONFIGS, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                                   "metadata": {"name": "metallb-webhook-configuration"},
                                   "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io"}]})
    fresh = copy.deepcopy(pool)
    fresh["metadata"]["name"] = "c"
    fresh["spec"]["addresses"] = ["172.18.254.0/28"]
    with pytest.raises(ApiError) as exc:
        admit("CREATE", fresh, None)
    assert exc.value.code == 500 and "no endpoints available" in exc.value.message
    store.create(gvrs.DEPLOYMENTS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller", "namespace": "metallb-system"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"component": "controller"}},
                 "template": {"metadata": {"labels": {"component": "controller"}},
                              "spec": {"containers": [{"name": "c", "image": "quay.io/metallb/controller:v0.15.2"}]}}},
    })
    await settle(store, cluster.metallb.controller_ready)
    with pytest.raises(ApiError) as exc:
        admit("CREATE", fresh, None)
    assert exc.value.code == 500
    assert 'failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io"' in exc.value.message
    assert exc.value.message.endswith("connect: connection refused")
    await asyncio.sleep(0.35)
    admit("CREATE", fresh, None)
    cluster.stop()


async def test_rolling_update_keeps_availability_and_surge_bounds() -> None:
    store = Store()
    cluster = SimCluster(store, "roll", settings=SimSettings.fast().replace(terminate_delay=0.05))
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    cluster.import_image("fastapi-random:v2")
    store.create(gvrs.DEPLOYMENTS, deployment(4))
    await settle(store, lambda: sum(1 for p in pods(store) if util.is_ready(p) and util.is_active(p)) == 4)
    # the rollout is complete once the ReplicaSet's status says so too (as `rollout status`
    # waits for): the deployment controller reads availability from it
    await settle(store, lambda: all((rs.get("status") or {}).get("availableReplicas") == 4
                                    for rs in store.iter(gvrs.REPLICASETS, "default")))
    worst = {"ready": 4, "active": 4}

    def observe(_ev: Any) -> None:
        active = [p for p in pods(store) if util.is_active(p)]
        worst["ready"] = min(worst["ready"], sum(1 for p in active if util.is_ready(p)))
        worst["active"] = max(worst["active"], sum(rs["spec"]["replicas"] for rs in store.iter(gvrs.REPLICASETS, "default")))

    unsubscribe = store.subscribe(observe)

    def bump(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "fastapi-random:v2"

    store.mutate(gvrs.DEPLOYMENTS, "default", "web", bump)

    def rolled() -> bool:
        live = [p for p in pods(store) if util.is_active(p)]
        return len(live) == 4 and all(
            util.is_ready(p) and p["spec"]["containers"][0]["image"] == "fastapi-random:v2" for p in live
        )

    await settle(store, rolled, 10)
    unsubscribe()
    assert worst["ready"] >= 3  # maxUnavailable 25% of 4
    assert worst["active"] <= 5  # replicas wanted by both ReplicaSets: maxSurge 25% of 4
    rss = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in store.iter(gvrs.REPLICASETS, "default")}
    assert sorted(rss.values()) == [0, 4]
    d = store.peek(gvrs.DEPLOYMENTS, "default", "web")
    assert d is not None and d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    cluster.stop()


@pytest.mark.parametrize(("ignore_sigterm", "exit_code", "phase", "min_seconds"), [
    (False, 0, "Succeeded", 0.0),
    (True, 137, "Failed", 1.0),
])
async def test_graceful_termination_honours_the_grace_period(
    ignore_sigterm: bool, exit_code: int, phase: str, min_seconds: float,
) -> None:
    from k3dtui.sim.controllers.base import delete_pod

    store = Store()
    cluster = SimCluster(store, "term", settings=SimSettings.fast().replace(ignore_sigterm=ignore_sigterm))
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    store.create(gvrs.DEPLOYMENTS, deployment(1))
    await settle(store, lambda: any(util.is_ready(p) for p in pods(store)))
    victim = pods(store)[0]["metadata"]["name"]
    seen: list[tuple[str, str, Any]] = []

    def observe(ev: Any) -> None:
        if ev.gvr == gvrs.PODS and ev.name == victim:
            cs = (ev.obj.get("status") or {}).get("containerStatuses") or [{}]
            seen.append((ev.type, util.phase(ev.obj), (cs[0].get("state") or {}).get("terminated")))

    store.subscribe(observe)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    delete_pod(store, "default", victim)  # grace 1 s from the template
    await settle(store, lambda: store.peek(gvrs.PODS, "default", victim) is None, 5)
    assert loop.time() - t0 >= min_seconds
    assert seen[0][:2] == ("MODIFIED", "Running")  # deletionTimestamp set, still running
    terminated = [s for s in seen if s[2]]
    assert terminated and terminated[0][1] == phase and terminated[0][2]["exitCode"] == exit_code
    assert seen[-1][0] == "DELETED"
    # the replacement was created while the old pod terminated
    assert len([p for p in pods(store) if util.is_active(p)]) == 1
    cluster.stop()


class _BrokenRuntime:
    """A data plane whose app fails to start the first two times."""

    def __init__(self) -> None:
        self.calls = 0

    async def start_pod(self, uid: str, pod: str, node: str) -> int:
        self.calls += 1
        if self.calls <= 2:
            raise RuntimeError("pod server never answered /healthz")
        return 40000 + self.calls

    async def stop_pod(self, uid: str) -> None:
        return None

    async def set_lb(self, key: str, backends: list[int], snat: dict[int, str] | None = None) -> int:
        return 1

    async def remove_lb(self, key: str) -> None:
        return None


async def test_an_app_that_fails_to_start_crash_loops_then_runs() -> None:
    store = Store()
    runtime = _BrokenRuntime()
    cluster = SimCluster(store, "crash", settings=SimSettings.fast(), runtime=runtime)
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    store.create(gvrs.DEPLOYMENTS, deployment(1))
    reasons: list[str] = []

    def observe(ev: Any) -> None:
        for cs in (ev.obj.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting")
            if ev.gvr == gvrs.PODS and waiting:
                reasons.append(waiting["reason"])

    store.subscribe(observe)
    await settle(store, lambda: any(util.is_ready(p) for p in pods(store)), 10)
    assert "CrashLoopBackOff" in reasons
    cs = pods(store)[0]["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 2 and cs["lastState"]["terminated"]["exitCode"] == 1
    assert runtime.calls == 3
    cluster.stop()
