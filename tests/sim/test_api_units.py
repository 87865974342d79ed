"""Unit tests of the API server's parts: patches, selectors, tables, defaults, kinds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from k3dtui.sim import gvrs
from k3dtui.sim.kinds import Registry
from k3dtui.sim.patch import PatchError, json_patch, merge_patch, strategic_merge
from k3dtui.sim.registry import NAME_ALPHABET, apply_defaults, generate_name
from k3dtui.sim.selectors import format_label_selector, parse_field_selector, parse_label_selector
from k3dtui.sim.store import ApiError, Store
from k3dtui.sim.tables import human_duration, node_roles, pod_status, to_table


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": 1}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}}
    assert target["c"] == {"d": "e", "f": "g"}  # inputs untouched
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_json_patch_rfc6902() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "x~y": 1, "p/q": 2}
    out = json_patch(doc, [
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 4},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "replace", "path": "/x~0y", "value": 5},
        {"op": "move", "from": "/p~1q", "path": "/moved"},
        {"op": "copy", "from": "/moved", "path": "/copied"},
        {"op": "test", "path": "/copied", "value": 2},
    ])
    assert out == {"a": {"b": [9, 2, 3, 4]}, "x~y": 5, "moved": 2, "copied": 2}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/x~0y", "value": 2}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "replace", "path": "/missing", "value": 1}])
    with pytest.raises(PatchError):
        json_patch(doc, {"op": "add"})


def test_strategic_merge_named_lists_and_directives() -> None:
    live: dict[str, Any] = {"spec": {"containers": [
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "b", "image": "b:1"},
    ], "tolerations": [{"key": "t1"}]}, "metadata": {"finalizers": ["f1"]}}
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "spec": {
            "containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}], "ports": [{"containerPort": 81}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"},
            ],
            "tolerations": [{"key": "t2"}],
        },
        "metadata": {"finalizers": ["f2"]},
    }
    out = strategic_merge(live, patch)
    cs = out["spec"]["containers"]
    assert [c["name"] for c in cs] == ["a", "c"]
    assert cs[0]["image"] == "a:2"
    assert [e["name"] for e in cs[0]["env"]] == ["X", "Y"]
    assert [p["containerPort"] for p in cs[0]["ports"]] == [80, 81]
    assert out["spec"]["tolerations"] == [{"key": "t2"}]  # no merge key: replaced
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert "$setElementOrder/containers" not in out
    # service ports merge by port; $patch: replace on a map
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"a": "1", "b": "2"}}}
    out = strategic_merge(svc, {"spec": {"ports": [{"port": 80, "targetPort": 3000}], "selector": {"$patch": "replace", "c": "3"}}})
    assert out["spec"]["ports"] == [{"port": 80, "name": "http", "targetPort": 3000}]
    assert out["spec"]["selector"] == {"c": "3"}
    assert strategic_merge({"a": [1, 2]}, {"$deleteFromPrimitiveList/a": [1]}) == {"a": [2]}
    assert strategic_merge({"a": 1, "b": 2}, {"b": None}) == {"a": 1}


def test_label_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    cases = {
        "app=web": True, "app==web": True, "app!=web": False, "app in (web,db)": True,
        "app notin (web)": False, "tier": True, "!tier": False, "!missing": True,
        "app=web,tier=back": False, "app in (db), tier": False, "": True,
    }
    for text, expected in cases.items():
        assert parse_label_selector(text).matches(labels) is expected, text
    with pytest.raises(ApiError) as exc:
        parse_label_selector("app=(bad")
    assert exc.value.code == 400
    assert format_label_selector({"matchLabels": {"b": "2", "a": "1"},
                                  "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}]}) == "a=1,b=2,c in (x,y)"


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    m = parse_field_selector("metadata.name=p,spec.nodeName==n1,status.phase!=Pending", "pods")
    assert m is not None and m(pod)
    m2 = parse_field_selector("spec.nodeName=n2", "pods")
    assert m2 is not None and not m2(pod)
    ev = {"metadata": {"name": "e"}, "involvedObject": {"uid": "u1", "name": "p"}}
    m3 = parse_field_selector("involvedObject.uid=u1,involvedObject.name=p", "events")
    assert m3 is not None and m3(ev)
    with pytest.raises(ApiError) as exc:
        parse_field_selector("spec.nodeName=n1", "services")
    assert exc.value.code == 400 and exc.value.message == "field label not supported: spec.nodeName"


def test_human_duration_matches_kubectl() -> None:
    cases = {0: "0s", 45: "45s", 119: "119s", 190: "3m10s", 600: "10m", 1500: "25m", 3 * 3600 + 180: "3h3m",
             5 * 3600 + 180: "5h3m", 10 * 3600: "10h", 3 * 86400: "3d", 3 * 86400 + 7200: "3d2h", 30 * 86400: "30d",
             800 * 86400: "2y70d"}
    for seconds, text in cases.items():
        assert human_duration(seconds) == text, seconds


def _cs(state: dict[str, Any], ready: bool = False, restarts: int = 0) -> dict[str, Any]:
    return {"name": "c", "image": "i", "imageID": "", "ready": ready, "restartCount": restarts, "state": state}


def test_pod_status_as_kubectl_prints_it() -> None:
    def pod(status: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": "p"}
        if deleting:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return {"metadata": meta, "spec": {"containers": [{"name": "c"}]}, "status": status}

    assert pod_status(pod({"phase": "Pending"}))[0] == "Pending"
    creating = pod({"phase": "Pending", "containerStatuses": [_cs({"waiting": {"reason": "ContainerCreating"}})]})
    assert pod_status(creating)[:3] == ("ContainerCreating", 0, 1)
    running = pod({"phase": "Running", "containerStatuses": [_cs({"running": {}}, ready=True, restarts=2)]})
    assert pod_status(running) == ("Running", 1, 1, "2")
    assert pod_status(pod({"phase": "Running", "containerStatuses": [_cs({"running": {}}, ready=True)]}, deleting=True))[0] == "Terminating"
    done = pod({"phase": "Succeeded", "containerStatuses": [_cs({"terminated": {"exitCode": 0, "reason": "Completed"}})]}, deleting=True)
    assert pod_status(done)[0] == "Completed"  # terminal: not Terminating
    killed = pod({"phase": "Failed", "containerStatuses": [_cs({"terminated": {"exitCode": 137}})]})
    assert pod_status(killed)[0] == "ExitCode:137"
    pull = pod({"phase": "Pending", "containerStatuses": [_cs({"waiting": {"reason": "ErrImageNeverPull"}})]})
    assert pod_status(pull)[0] == "ErrImageNeverPull"


def test_tables_columns_and_cells() -> None:
    reg = Registry.builtin()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    svc = {"metadata": {"name": "s", "creationTimestamp": now},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.10", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}]},
           "status": {"loadBalancer": {}}}
    kind = reg.get(gvrs.SERVICES)
    assert kind is not None
    t = to_table(kind, [svc])
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    assert t["rows"][0]["cells"][:5] == ["s", "LoadBalancer", "10.43.0.10", "<pending>", "80:31234/TCP"]
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "172.18.255.200"}]}}
    assert to_table(kind, [svc])["rows"][0]["cells"][3] == "172.18.255.200"
    assert node_roles({"metadata": {"labels": {"node-role.kubernetes.io/master": "true",
                                               "node-role.kubernetes.io/control-plane": "true"}}}) == "control-plane,master"
    dkind = reg.get(gvrs.DEPLOYMENTS)
    assert dkind is not None
    dep = {"metadata": {"name": "web", "creationTimestamp": now},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
           "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    row = to_table(dkind, [dep], include_object="None")["rows"][0]
    assert row["cells"] == ["web", "2/3", 3, 2, "0s", "web", "nginx", "app=web"] and "object" not in row


def test_generate_name_alphabet_and_length() -> None:
    names = {generate_name("web-") for _ in range(200)}
    assert len(names) > 190
    for n in names:
        assert n.startswith("web-") and len(n) == 9 and set(n[4:]) <= set(NAME_ALPHABET)
    long = generate_name("x" * 80)
    assert len(long) == 63 and long.startswith("x" * 58)


def test_defaults_and_validation() -> None:
    reg, store = Registry.builtin(), Store()
    kind = reg.get(gvrs.DEPLOYMENTS)
    assert kind is not None
    dep: dict[str, Any] = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                              "template": {"metadata": {"labels": {"app": "other"}},
                                                                           "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    with pytest.raises(ApiError) as exc:
        apply_defaults(kind, dep, store)
    assert exc.value.code == 422 and "`selector` does not match template `labels`" in exc.value.message
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "web"}
    apply_defaults(kind, dep, store)
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["progressDeadlineSeconds"] == 600
    assert dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    skind = reg.get(gvrs.SERVICES)
    assert skind is not None
    svc: dict[str, Any] = {"metadata": {"name": "s", "namespace": "default"},
                           "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}}
    with pytest.raises(ApiError) as exc:
        apply_defaults(skind, svc, store)
    assert exc.value.code == 422 and "30000-32767" in exc.value.message


def test_registry_crds() -> None:
    reg = Registry.builtin()
    assert reg.by_kind("apps/v1", "Deployment") is not None
    assert reg.get(gvrs.IPADDRESSPOOLS) is None
    assert Registry.builtin(metallb=True).get(gvrs.IPADDRESSPOOLS) is not None
    crd = {"metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Cluster",
                    "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}, "scale": {}}},
                                 {"name": "v0", "served": False, "storage": False}]}}
    added = reg.register_crd(crd)
    assert [k.gvr.version for k in added] == ["v1"]
    k = added[0]
    assert not k.namespaced and k.custom and k.subresources == ("status", "scale") and k.short_names == ("wd",)
    assert reg.resolve("wd") is k
    reg.unregister_crd(crd)
    assert reg.by_kind("example.com/v1", "Widget") is None


def test_store_removing_the_last_finalizer_deletes() -> None:
    store = Store()
    events: list[tuple[str, Any]] = []
    store.subscribe(lambda e: events.append((e.type, e.obj["metadata"].get("finalizers"))))
    store.create(gvrs.CONFIGMAPS, {"metadata": {"name": "c", "namespace": "d", "finalizers": ["x"]}})
    store.mutate(gvrs.CONFIGMAPS, "d", "c", lambda o: o["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"))
    store.mutate(gvrs.CONFIGMAPS, "d", "c", lambda o: o["metadata"].pop("finalizers"))
    assert store.get(gvrs.CONFIGMAPS, "d", "c") is None
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[-1][1] is None  # the final state, without the finalizer
    # a pod keeps its deletionTimestamp without finalizers (the kubelet finishes it)
    store.create(gvrs.PODS, {"metadata": {"name": "p", "namespace": "d", "finalizers": ["x"]}})
    store.mutate(gvrs.PODS, "d", "p", lambda o: o["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"))
    store.mutate(gvrs.PODS, "d", "p", lambda o: o["metadata"].pop("finalizers"))
    assert store.get(gvrs.PODS, "d", "p") is not None


def test_store_expire_forgets_the_window() -> None:
    store = Store()
    store.create(gvrs.CONFIGMAPS, {"metadata": {"name": "a", "namespace": "d"}})
    rv = store.resource_version
    store.create(gvrs.CONFIGMAPS, {"metadata": {"name": "b", "namespace": "d"}})
    events = store.events_since(rv)
    assert events is not None and [e.name for e in events] == ["b"]
    store.expire()
    assert store.events_since(rv) is None
    assert store.events_since(store.resource_version) == []
