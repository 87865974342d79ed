"""Bounds on the controllers' work: a large scale proceeds in turns of at most
``SimSettings.tick_bound`` pods, and the API answers between two turns; a node holds at
most ``status.allocatable.pods`` pods. Order of events, not times: the tests never measure
how long anything took."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from k3dtui.sim import gvrs
from k3dtui.sim.apiserver import ApiServer
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import delete_pod
from k3dtui.sim.kinds import Registry
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import Event, Store

TOKEN = "bounds-test-token"
IMAGE = "fastapi-random:latest"


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
                "terminationGracePeriodSeconds": 1,
            }},
        },
    }


@dataclass
class Sim:
    store: Store
    cluster: SimCluster
    http: httpx.AsyncClient
    turn: int = 0  # how many turns of the event loop have run (a task that yields each turn)
    created_in_turn: list[int] = field(default_factory=list)  # the turn of each web pod's ADDED

    def pods(self) -> list[dict[str, Any]]:
        return [p for p in self.store.iter(gvrs.PODS, "default") if util.labels_of(p).get("app") == "web"]

    def ready(self) -> int:
        return sum(1 for p in self.pods() if util.is_ready(p) and not util.is_terminating(p))

    async def until(self, pred: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while not (value := pred()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError
            await asyncio.sleep(0.01)
        return value


async def _count_turns(sim: Sim) -> None:
    while True:
        await asyncio.sleep(0)
        sim.turn += 1


async def _sim(settings: SimSettings, agents: int = 2, count_turns: bool = False) -> AsyncIterator[Sim]:
    store = Store()
    cluster = SimCluster(store, "bounds", agents=agents, settings=settings)
    server = ApiServer(store, Registry.builtin(), token=TOKEN, tls=False)
    cluster.start()
    cluster.import_image(IMAGE)
    port = await server.start("127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        sim = Sim(store, cluster, http)

        def on_event(ev: Event) -> None:
            if ev.gvr == gvrs.PODS and ev.type == "ADDED" and util.labels_of(ev.obj).get("app") == "web":
                sim.created_in_turn.append(sim.turn)

        unsubscribe = store.subscribe(on_event)
        counter = asyncio.get_running_loop().create_task(_count_turns(sim)) if count_turns else None
        try:
            yield sim
        finally:
            if counter is not None:
                counter.cancel()
            unsubscribe()
            await server.stop()
            server.close()
            cluster.stop()


@pytest.fixture
async def bounded() -> AsyncIterator[Sim]:
    """The API server and the controllers on the test's loop; at most 2 pods per turn."""
    async for sim in _sim(SimSettings.fast().replace(tick_bound=2), count_turns=True):
        yield sim


async def test_a_large_scale_proceeds_in_bounded_turns_and_the_api_answers_meanwhile(bounded: Sim) -> None:
    sim = bounded
    r = await sim.http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment(3))
    assert r.status_code == 201, r.text
    await sim.until(lambda: sim.ready() == 3)
    sim.created_in_turn.clear()

    target = 150
    r = await sim.http.patch("/apis/apps/v1/namespaces/default/deployments/web/scale",
                             json={"spec": {"replicas": target}},
                             headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    # issued while the ReplicaSet works through the change: answered before it is done
    health = await sim.http.get("/healthz")
    assert health.status_code == 200 and health.text == "ok"
    pods_at_health = len(sim.pods())
    listed = await sim.http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=web"})
    assert listed.status_code == 200
    listed_count = len(listed.json()["items"])
    assert pods_at_health < target
    assert 3 <= listed_count < target

    await sim.until(lambda: sim.ready() == target)
    assert len(sim.created_in_turn) == target - 3
    per_turn = collections.Counter(sim.created_in_turn)
    # never more than tick_bound (2) in one turn: 147 pods took at least 74 turns
    assert max(per_turn.values()) <= 2
    assert len(per_turn) >= (target - 3 + 1) // 2
    # the ReplicaSet's slow start: the first turn creates 1 pod, the next ones 2
    turns = sorted(per_turn)
    assert per_turn[turns[0]] == 1 and per_turn[turns[1]] == 2

    # back down: deletions are bounded the same way, and the API answers meanwhile
    deleting_turns: list[int] = []

    def on_delete(ev: Event) -> None:
        if (ev.gvr == gvrs.PODS and ev.type == "MODIFIED" and util.labels_of(ev.obj).get("app") == "web"
                and util.is_terminating(ev.obj) and not util.is_terminating(ev.old or {})):
            deleting_turns.append(sim.turn)

    unsubscribe = sim.store.subscribe(on_delete)
    try:
        r = await sim.http.patch("/apis/apps/v1/namespaces/default/deployments/web/scale",
                                 json={"spec": {"replicas": 3}},
                                 headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        health = await sim.http.get("/healthz")
        assert health.status_code == 200
        assert len(deleting_turns) < target - 3
        await sim.until(lambda: len(deleting_turns) == target - 3)
        assert max(collections.Counter(deleting_turns).values()) <= 2
    finally:
        unsubscribe()
    await sim.until(lambda: len(sim.pods()) == 3)


@pytest.fixture
async def one_node() -> AsyncIterator[Sim]:
    async for sim in _sim(SimSettings.fast(), agents=0):
        yield sim


async def test_a_full_node_leaves_pods_pending_until_a_place_is_freed(one_node: Sim) -> None:
    sim = one_node
    node = next(iter(sim.store.iter(gvrs.NODES)))["metadata"]["name"]
    # k3s's add-ons (coredns, traefik, ...) hold places too: once they are bound, room for 4 more
    def addons_ready() -> bool:
        ds = list(sim.store.iter(gvrs.DEPLOYMENTS, "kube-system"))
        return bool(ds) and all((d.get("status") or {}).get("readyReplicas") == d["spec"]["replicas"] for d in ds)

    await sim.until(addons_ready)
    held = sum(1 for p in sim.store.iter(gvrs.PODS) if (p.get("spec") or {}).get("nodeName") == node
               and util.phase(p) not in ("Succeeded", "Failed"))

    def room_for_four(n: dict[str, Any]) -> None:
        n["status"]["allocatable"]["pods"] = str(held + 4)

    sim.store.mutate(gvrs.NODES, "", node, room_for_four)
    r = await sim.http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment(6))
    assert r.status_code == 201, r.text
    await sim.until(lambda: sim.ready() == 4)

    def pending() -> list[dict[str, Any]]:
        return [p for p in sim.pods() if not (p.get("spec") or {}).get("nodeName")]

    waiting = await sim.until(lambda: [p for p in pending()
                                       if (util.condition(p, "PodScheduled") or {}).get("reason") == "Unschedulable"]
                              if len(pending()) == 2 else None)
    assert len(waiting) == 2
    assert util.condition(waiting[0], "PodScheduled")["message"] == "0/1 nodes are available: 1 Too many pods."
    waiting_names = {p["metadata"]["name"] for p in waiting}

    # a running pod goes: while it terminates it still holds its place; once its container
    # exited (phase Succeeded: kube-scheduler no longer counts it) or it is removed, a
    # waiting pod is bound (and the replacement of the deleted one waits in its turn)
    victim = next(p for p in sim.pods() if (p.get("spec") or {}).get("nodeName"))
    delete_pod(sim.store, "default", victim["metadata"]["name"])
    bound_waiting = await sim.until(lambda: [p for p in sim.pods() if p["metadata"]["name"] in waiting_names
                                             and (p.get("spec") or {}).get("nodeName")])
    assert len(bound_waiting) == 1
    gone = sim.store.peek(gvrs.PODS, "default", victim["metadata"]["name"])
    assert gone is None or util.phase(gone) in ("Succeeded", "Failed")  # its container had exited
    await sim.until(lambda: sim.ready() == 4 and len(pending()) == 2)
    on_node = [p for p in sim.store.iter(gvrs.PODS) if (p.get("spec") or {}).get("nodeName") == node
               and util.phase(p) not in ("Succeeded", "Failed")]
    assert len(on_node) == held + 4
