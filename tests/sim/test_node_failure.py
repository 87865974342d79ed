"""A node stops and starts, is cordoned and drained, on the simulated cluster's controllers.

The node lifecycle controller reads the store's clock, which these tests move by hand: the
Kubernetes defaults (40 s grace period, the pods' tolerationSeconds) stay as they are and no
assertion depends on the wall clock."""

from __future__ import annotations

import asyncio
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers import util
from k3dtui.sim.registry import disruption
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import ApiError, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRuntime:
    def __init__(self) -> None:
        self.serving: dict[str, str] = {}  # uid → node
        self.next_port = 20000

    async def start_pod(self, uid: str, pod: str, node: str, app: str = "app") -> int:
        self.serving[uid] = node
        self.next_port += 1
        return self.next_port

    async def stop_pod(self, uid: str) -> None:
        self.serving.pop(uid, None)

    async def set_lb(self, key: str, backends: list[int]) -> int:
        return 1

    async def remove_lb(self, key: str) -> None:
        return None


def deployment(replicas: int, toleration: int | None) -> dict[str, Any]:
    tolerations = [] if toleration is None else [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": toleration}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": "fastapi-random:latest", "imagePullPolicy": "IfNotPresent"}],
                "terminationGracePeriodSeconds": 1, "tolerations": tolerations,
            }},
        },
    }


async def settle(pred: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


def pods(store: Store) -> list[dict[str, Any]]:
    return [p for p in store.iter(gvrs.PODS) if p["metadata"].get("labels", {}).get("app") == "web"]


def settings() -> SimSettings:
    # only the loops' periods are short; the grace period keeps its Kubernetes 1.31 default
    return SimSettings.fast().replace(lease_renew_interval=0.02, node_monitor_period=0.02)


def node(store: Store, name: str) -> dict[str, Any]:
    obj = store.peek(gvrs.NODES, "", name)
    assert obj is not None
    return obj


def ready_status(store: Store, name: str) -> str:
    return str((util.condition(node(store, name), "Ready") or {}).get("status"))


def taints(store: Store, name: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node(store, name).get("spec", {}).get("taints") or []}


def events(store: Store, reason: str) -> list[dict[str, Any]]:
    return [e for e in store.iter(gvrs.EVENTS) if e.get("reason") == reason]


def slice_addresses(store: Store, ready: bool) -> set[str]:
    """Addresses in the EndpointSlices whose ready condition is ``ready``."""
    out: set[str] = set()
    for s in store.iter(gvrs.ENDPOINTSLICES):
        for ep in s.get("endpoints") or []:
            if bool((ep.get("conditions") or {}).get("ready")) is ready:
                out.update(ep.get("addresses") or [])
    return out


async def running_cluster(replicas: int, toleration: int | None) -> tuple[Store, SimCluster, Clock, FakeRuntime]:
    clock = Clock()
    store = Store(clock=clock)
    runtime = FakeRuntime()
    cluster = SimCluster(store, "nf", servers=1, agents=2, settings=settings(), runtime=runtime)
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    store.create(gvrs.DEPLOYMENTS, deployment(replicas, toleration))
    await settle(lambda: sum(1 for p in pods(store) if util.is_ready(p)) == replicas)
    return store, cluster, clock, runtime


async def test_a_stopped_node_goes_unknown_after_the_grace_period_and_its_pods_move() -> None:
    store, cluster, clock, runtime = await running_cluster(4, 15)
    store.create(gvrs.SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]}})
    victim = "k3d-nf-agent-0"
    on_victim = [p for p in pods(store) if p["spec"]["nodeName"] == victim]
    assert on_victim, "the spread puts pods on every node"
    uids = {p["metadata"]["uid"] for p in on_victim}
    victim_ips = {p["status"]["podIP"] for p in on_victim}
    assert uids <= set(runtime.serving)
    lease = store.peek(gvrs.LEASES, "kube-node-lease", victim)
    assert lease is not None

    await cluster.stop_node(victim)
    # the pods' servers are gone at once: connections to them fail
    assert not uids & set(runtime.serving)
    # the Lease is no longer renewed; the others' are
    stale = store.peek(gvrs.LEASES, "kube-node-lease", victim)["spec"]["renewTime"]  # type: ignore[index]
    other = store.peek(gvrs.LEASES, "kube-node-lease", "k3d-nf-agent-1")["spec"]["renewTime"]  # type: ignore[index]
    await settle(lambda: store.peek(gvrs.LEASES, "kube-node-lease", "k3d-nf-agent-1")["spec"]["renewTime"] != other)  # type: ignore[index]
    assert store.peek(gvrs.LEASES, "kube-node-lease", victim)["spec"]["renewTime"] == stale  # type: ignore[index]

    # within the grace period (40 s, Kubernetes 1.31) the node is still Ready
    clock.now += 39
    await asyncio.sleep(0.1)
    assert ready_status(store, victim) == "True"
    assert all(util.is_ready(p) for p in pods(store))
    # past it: Unknown, the unreachable taints, the pods not ready, events
    clock.now += 2
    await settle(lambda: ready_status(store, victim) == "Unknown")
    await settle(lambda: taints(store, victim) == {("node.kubernetes.io/unreachable", "NoSchedule"),
                                                    ("node.kubernetes.io/unreachable", "NoExecute")})
    assert (util.condition(node(store, victim), "Ready") or {}).get("reason") == "NodeStatusUnknown"
    await settle(lambda: not any(util.is_ready(p) for p in pods(store) if p["metadata"]["uid"] in uids))
    assert any(e["involvedObject"]["name"] == victim for e in events(store, "NodeNotReady"))
    await settle(lambda: bool(slice_addresses(store, True) - victim_ips))
    await settle(lambda: not victim_ips & slice_addresses(store, True))
    assert victim_ips <= slice_addresses(store, False)
    # the pods stay until their toleration (15 s) ends
    clock.now += 14
    await asyncio.sleep(0.1)
    assert not any(util.is_terminating(p) for p in pods(store) if p["metadata"]["uid"] in uids)
    clock.now += 1.5
    await settle(lambda: all(util.is_terminating(p) for p in pods(store) if p["metadata"]["uid"] in uids))
    assert len(events(store, "TaintManagerEviction")) == len(uids)
    # replacements run on the other nodes; the evicted pods stay Terminating (their kubelet is gone)
    await settle(lambda: sum(1 for p in pods(store) if util.is_ready(p) and not util.is_terminating(p)) == 4)
    assert all(p["spec"]["nodeName"] != victim for p in pods(store) if not util.is_terminating(p))

    # start: Ready again, taints gone, the Terminating pods finish
    cluster.start_node(victim)
    await settle(lambda: ready_status(store, victim) == "True")
    await settle(lambda: not taints(store, victim))
    await settle(lambda: not any(p["metadata"]["uid"] in uids for p in pods(store)), timeout=10)
    cluster.stop()


async def test_a_pod_without_its_own_toleration_gets_300_seconds() -> None:
    store, cluster, clock, _ = await running_cluster(3, None)
    victim = "k3d-nf-agent-1"
    uids = {p["metadata"]["uid"] for p in pods(store) if p["spec"]["nodeName"] == victim}
    assert uids
    await cluster.stop_node(victim)
    clock.now += 41
    await settle(lambda: ready_status(store, victim) == "Unknown")
    await settle(lambda: ("node.kubernetes.io/unreachable", "NoExecute") in taints(store, victim))
    clock.now += 299
    await asyncio.sleep(0.1)
    assert not any(util.is_terminating(p) for p in pods(store) if p["metadata"]["uid"] in uids)
    clock.now += 2
    await settle(lambda: all(util.is_terminating(p) for p in pods(store) if p["metadata"]["uid"] in uids))
    cluster.stop()


async def test_a_node_started_before_the_grace_period_ends_never_goes_not_ready() -> None:
    store, cluster, clock, runtime = await running_cluster(3, 15)
    victim = "k3d-nf-agent-0"
    uids = {p["metadata"]["uid"] for p in pods(store) if p["spec"]["nodeName"] == victim}
    await cluster.stop_node(victim)
    clock.now += 20
    cluster.start_node(victim)
    clock.now += 30
    await asyncio.sleep(0.1)
    assert ready_status(store, victim) == "True" and not taints(store, victim)
    # its pods' containers started again, and serve
    await settle(lambda: uids <= set(runtime.serving))
    await settle(lambda: all(util.is_ready(p) for p in pods(store)))
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 1
               for p in pods(store) if p["metadata"]["uid"] in uids)
    cluster.stop()


async def test_cordon_taints_and_records_and_uncordon_undoes() -> None:
    store, cluster, _, _ = await running_cluster(1, 15)
    name = "k3d-nf-agent-0"

    def set_unschedulable(value: bool) -> None:
        def fn(n: dict[str, Any]) -> None:
            if value:
                n["spec"]["unschedulable"] = True
            else:
                n["spec"].pop("unschedulable", None)
        store.mutate(gvrs.NODES, "", name, fn)

    set_unschedulable(True)
    await settle(lambda: taints(store, name) == {("node.kubernetes.io/unschedulable", "NoSchedule")})
    assert [e["message"] for e in events(store, "NodeNotSchedulable")] == [f"Node {name} status is now: NodeNotSchedulable"]
    set_unschedulable(False)
    await settle(lambda: not taints(store, name))
    assert len(events(store, "NodeSchedulable")) == 1
    cluster.stop()


async def test_eviction_is_refused_while_a_budget_forbids_it() -> None:
    store, cluster, _, _ = await running_cluster(2, 15)
    store.create(disruption.PDBS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    # the disruption controller keeps the budget's status
    def allowed() -> Any:
        return ((store.peek(disruption.PDBS, "default", "web") or {}).get("status") or {}).get("disruptionsAllowed")

    await settle(lambda: allowed() == 1)
    status = store.peek(disruption.PDBS, "default", "web")["status"]  # type: ignore[index]
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (2, 1, 2)
    first, second = sorted(pods(store), key=lambda p: p["metadata"]["name"])
    disruption.check_eviction(store, "default", first["metadata"]["name"])  # 2 healthy, 1 needed
    util_delete = store.peek(gvrs.PODS, "default", first["metadata"]["name"])
    assert util_delete is not None

    def mark_deleting(p: dict[str, Any]) -> None:
        p["metadata"]["deletionTimestamp"] = util.now()
    store.mutate(gvrs.PODS, "default", first["metadata"]["name"], mark_deleting)
    try:
        disruption.check_eviction(store, "default", second["metadata"]["name"])
    except ApiError as exc:
        assert exc.code == 429 and exc.reason == "TooManyRequests"
        assert exc.details["causes"][0]["message"] == "The disruption budget web needs 1 healthy pods and has 1 currently"
    else:
        raise AssertionError("the eviction of the last healthy pod was allowed")
    await settle(lambda: allowed() == 0)
    cluster.stop()


async def test_a_stopped_nodes_pod_servers_refuse_connections_on_the_real_data_plane() -> None:
    import httpx

    from k3dtui.sim.runtime import DataPlane

    clock = Clock()
    store = Store(clock=clock)
    plane = DataPlane()
    cluster = SimCluster(store, "dp", servers=1, agents=1, settings=settings(), runtime=plane)
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    store.create(gvrs.DEPLOYMENTS, deployment(2, 15))
    await settle(lambda: sum(1 for p in pods(store) if util.is_ready(p)) == 2, timeout=20)
    victim = "k3d-dp-agent-0"
    ports = {p["metadata"]["uid"]: cluster.kubelet.ports[p["metadata"]["uid"]]
             for p in pods(store) if p["spec"]["nodeName"] == victim}
    others = [cluster.kubelet.ports[p["metadata"]["uid"]] for p in pods(store) if p["spec"]["nodeName"] != victim]
    assert ports and others
    async def get(port: int) -> int:
        async with httpx.AsyncClient(timeout=2.0) as http:  # a new connection each time
            return (await http.get(f"http://127.0.0.1:{port}/")).status_code

    for port in [*ports.values(), *others]:
        assert await get(port) == 200
    await cluster.stop_node(victim)
    for port in ports.values():
        try:
            await get(port)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"the stopped node's pod still answers on {port}")
    for port in others:  # the other node's pods serve on
        assert await get(port) == 200
    cluster.stop()
    for uid in list(plane.pods):
        await plane.stop_pod(uid)
