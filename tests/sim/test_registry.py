"""The registry of per-kind rules: one implementation that the API server's handlers and the
controllers both call. A pod POSTed by a client and one the ReplicaSet controller creates
get the same defaults and names; a pod deleted through the API and one a controller deletes
follow the same graceful rule; a refusal is the same 422 Status either way."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from k3dtui.sim import gvrs, registry
from k3dtui.sim.apiserver import ApiServer
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers.base import delete_pod
from k3dtui.sim.kinds import Registry, builtin_kind
from k3dtui.sim.registry import NAME_ALPHABET
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import ApiError, Event, Store

TOKEN = "registry-test-token"

# A template that exercises every pod default: image pull policy, ports, probes (httpGet
# path and scheme), resources (requests from limits, QoS), volumes (defaultMode), env fieldRef.
POD_SPEC: dict[str, Any] = {
    "containers": [{
        "name": "web",
        "image": "nginx:1.27",
        "ports": [{"containerPort": 80}],
        "readinessProbe": {"httpGet": {"port": 80}},
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
    }],
    "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
}


def replicaset(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": copy.deepcopy(POD_SPEC)},
        },
    }


def pod(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "api"}, **meta}, "spec": copy.deepcopy(spec)}


@dataclass
class Sim:
    store: Store
    http: httpx.AsyncClient
    events: list[Event]

    async def until(self, pred: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while not (value := pred()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError
            await asyncio.sleep(0.01)
        return value


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    """The API server and the controllers on one store, on the test's loop."""
    store = Store()
    events: list[Event] = []
    store.subscribe(events.append)
    cluster = SimCluster(store, "registry", settings=SimSettings.fast())
    server = ApiServer(store, Registry.builtin(), token=TOKEN, tls=False)
    cluster.start()
    port = await server.start("127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        yield Sim(store, http, events)
    await server.stop()
    server.close()
    cluster.stop()


def _added_pods(s: Sim, owned: bool) -> list[dict[str, Any]]:
    return [e.obj for e in s.events
            if e.gvr == gvrs.PODS and e.type == "ADDED" and e.namespace == "default"  # not k3s's add-ons
            and bool(e.obj["metadata"].get("ownerReferences")) == owned]


def _generated(name: str, base: str) -> bool:
    suffix = name[len(base):]
    return name.startswith(base) and len(suffix) == 5 and set(suffix) <= set(NAME_ALPHABET)


async def test_a_pod_from_the_api_and_one_from_the_replicaset_controller_get_the_same_defaults(sim: Sim) -> None:
    r = await sim.http.post("/api/v1/namespaces/default/pods", json=pod(POD_SPEC, generateName="web-"))
    assert r.status_code == 201, r.text
    from_api = r.json()
    r = await sim.http.post("/apis/apps/v1/namespaces/default/replicasets", json=replicaset(1))
    assert r.status_code == 201, r.text
    from_controller = (await sim.until(lambda: _added_pods(sim, owned=True)))[0]

    # the whole spec, as each was first stored (before the scheduler bound it); the
    # service account token volume has a random name in each
    def same(spec: dict[str, Any]) -> Any:
        return json.loads(json.dumps(spec).replace(_token_volume(spec), "kube-api-access-*"))

    assert same(from_controller["spec"]) == same(from_api["spec"])
    assert from_controller["status"] == from_api["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    spec = from_api["spec"]
    container = spec["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}  # from the limits
    assert container["readinessProbe"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 420
    assert spec["serviceAccountName"] == "default" and spec["terminationGracePeriodSeconds"] == 30
    assert {t["key"] for t in spec["tolerations"]} == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    # generateName: the same expansion for both
    for p in (from_api, from_controller):
        assert p["metadata"]["generateName"] == "web-"
        assert _generated(p["metadata"]["name"], "web-"), p["metadata"]["name"]


def _token_volume(spec: dict[str, Any]) -> str:
    return next(str(v["name"]) for v in spec["volumes"] if str(v["name"]).startswith("kube-api-access-"))


def _when(ts: str) -> float:
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def _first_marked(s: Sim, name: str) -> dict[str, Any]:
    for e in s.events:
        if e.gvr == gvrs.PODS and e.name == name and e.obj["metadata"].get("deletionTimestamp"):
            return e.obj
    return {}


async def test_a_pod_deleted_through_the_api_and_by_a_controller_both_get_the_grace_period(sim: Sim) -> None:
    spec = {**POD_SPEC, "terminationGracePeriodSeconds": 20}
    r = await sim.http.post("/api/v1/namespaces/default/pods", json=pod(spec, name="by-api"))
    assert r.status_code == 201, r.text
    rs = replicaset(1)
    rs["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 20
    r = await sim.http.post("/apis/apps/v1/namespaces/default/replicasets", json=rs)
    assert r.status_code == 201, r.text

    def bound() -> list[dict[str, Any]]:
        return [p for p in sim.store.iter(gvrs.PODS, "default") if (p.get("spec") or {}).get("nodeName")]

    await sim.until(lambda: len(bound()) == 2)  # graceful only once a node runs the pod
    by_controller = next(p for p in bound() if p["metadata"].get("ownerReferences"))["metadata"]["name"]
    generations = {p["metadata"]["name"]: p["metadata"]["generation"] for p in bound()}

    t0 = time.time()
    r = await sim.http.delete("/api/v1/namespaces/default/pods/by-api")
    assert r.status_code == 200, r.text
    r = await sim.http.patch("/apis/apps/v1/namespaces/default/replicasets/web", json={"spec": {"replicas": 0}},
                             headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    marked = {name: await sim.until(lambda name=name: _first_marked(sim, name)) for name in ("by-api", by_controller)}
    t1 = time.time()
    for name, p in marked.items():
        meta = p["metadata"]
        assert meta["deletionGracePeriodSeconds"] == 20, name
        assert int(t0) + 20 <= _when(meta["deletionTimestamp"]) <= t1 + 20 + 1, name
        assert meta["generation"] == generations[name] + 1, name


async def test_a_refused_pod_is_the_same_422_status_from_the_api_and_from_the_registry(sim: Sim) -> None:
    bad = pod({"containers": [{"name": "web"}], "terminationGracePeriodSeconds": -1}, name="bad")
    r = await sim.http.post("/api/v1/namespaces/default/pods", json=bad)
    assert r.status_code == 422
    body = copy.deepcopy(bad)
    body["metadata"]["namespace"] = "default"
    with pytest.raises(ApiError) as err:
        registry.create(sim.store, gvrs.PODS, body)  # what a controller calls
    assert err.value.status() == r.json()
    assert r.json()["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"},
        {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0",
         "field": "spec.terminationGracePeriodSeconds"},
    ]
    assert sim.store.peek(gvrs.PODS, "default", "bad") is None


# -- the pod delete rule on a bare store ------------------------------------------------------


def _stored_pod(store: Store, *, node: str | None = "n1", **meta: Any) -> dict[str, Any]:
    kind = builtin_kind(gvrs.PODS)
    assert kind is not None
    p = pod(POD_SPEC, name="p", namespace="default", **meta)
    if node:
        p["spec"]["nodeName"] = node
    return store.create(gvrs.PODS, registry.prepare_create(store, kind, p))


@pytest.mark.parametrize("node", [None, "n1"])
def test_an_unscheduled_pod_goes_at_once_a_bound_one_waits_its_grace_period(node: str | None) -> None:
    store = Store()
    _stored_pod(store, node=node)
    delete_pod(store, "default", "p")
    left = store.peek(gvrs.PODS, "default", "p")
    if node is None:
        assert left is None
    else:
        assert left is not None and left["metadata"]["deletionGracePeriodSeconds"] == 30


def test_a_second_delete_only_shortens_the_deadline_and_grace_zero_removes() -> None:
    store = Store()
    _stored_pod(store)
    delete_pod(store, "default", "p", grace=10)
    first = store.get(gvrs.PODS, "default", "p")
    assert first is not None
    delete_pod(store, "default", "p", grace=60)  # longer: ignored
    assert store.get(gvrs.PODS, "default", "p") == first
    delete_pod(store, "default", "p", grace=2)
    second = store.get(gvrs.PODS, "default", "p")
    assert second is not None and second["metadata"]["deletionGracePeriodSeconds"] == 2
    assert _when(second["metadata"]["deletionTimestamp"]) < _when(first["metadata"]["deletionTimestamp"])
    delete_pod(store, "default", "p", grace=0)
    assert store.peek(gvrs.PODS, "default", "p") is None


def test_a_finalizer_keeps_a_pod_a_controller_deletes() -> None:
    store = Store()
    _stored_pod(store, node=None, finalizers=["example.com/keep"])
    delete_pod(store, "default", "p")
    left = store.peek(gvrs.PODS, "default", "p")
    assert left is not None and left["metadata"]["deletionTimestamp"]
