"""Controller and API semantics as kube-apiserver / kube-controller-manager 1.31 have them,
driven with kubectl 1.33 (issue 13, point 8)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3dtui.sim import gvrs
from tests.sim.kubectl133 import Cluster, needs_kubectl, start_cluster, wait_for

pytestmark = [pytest.mark.kubectl, needs_kubectl]


@pytest.fixture
def k(tmp_path: Path) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path)


def namespace(name: str) -> str:
    # kubectl's `create namespace` sends protobuf (another part of issue 13): JSON here
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def configmap(name: str, ns: str = "default") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
                       "data": {"k": name}})


def test_pagination_with_limit_and_continue(k: Cluster) -> None:
    for i in range(7):
        k("create", "-f", "-", stdin=configmap(f"cm-{i}"))
    first = k.raw("/api/v1/namespaces/default/configmaps?limit=3")
    names = [i["metadata"]["name"] for i in first["items"]]
    assert names == ["cm-0", "cm-1", "cm-2"]
    # kube-root-ca.crt is there too (k3s has it in every namespace): 8 in all
    total = len(k.json("get", "configmaps", "-n", "default")["items"])
    assert first["metadata"]["remainingItemCount"] == total - 3
    token = first["metadata"]["continue"]
    # a change between pages does not show: the pages are a consistent snapshot
    k("delete", "configmap", "cm-4")
    second = k.raw(f"/api/v1/namespaces/default/configmaps?limit=3&continue={token}")
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm-3", "cm-4", "cm-5"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    # a selector: remainingItemCount is not set
    sel = k.raw("/api/v1/namespaces/default/configmaps?limit=2&labelSelector=a!%3Db")
    assert "remainingItemCount" not in sel["metadata"] and sel["metadata"]["continue"]
    # kubectl follows the continue tokens itself (chunks of 2)
    out = k("get", "configmaps", "-n", "default", "--chunk-size=2", "-o", "name")
    assert out.split() == sorted(out.split()) and "configmap/cm-6" in out.split() and "configmap/cm-4" not in out
    proc = k.run("get", "configmaps", "-n", "default", "--chunk-size=2", "-v=6")  # Table pages
    table = proc.stdout.splitlines()
    assert len(table) == 1 + total - 1 and table[0].split()[0] == "NAME"
    assert sum(1 for line in proc.stderr.splitlines() if "continue=" in line and "limit=2" in line) == -(-(total - 1) // 2) - 1
    # a bad token is a 400
    bad = k.run("get", "--raw", "/api/v1/namespaces/default/configmaps?limit=1&continue=garbage", ok=False)
    assert bad.returncode != 0 and "continue key is not valid" in bad.stderr


def test_resource_version_match_and_a_bounded_event_window(k: Cluster) -> None:
    k("create", "-f", "-", stdin=configmap("a"))
    rv = int(k.json("get", "configmap", "a")["metadata"]["resourceVersion"])
    k("create", "-f", "-", stdin=configmap("b"))
    # Exact: the list as it was at rv (b did not exist yet)
    exact = k.raw(f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact")
    assert exact["metadata"]["resourceVersion"] == str(rv)
    assert "b" not in [i["metadata"]["name"] for i in exact["items"]]
    newer = k.raw(f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=NotOlderThan")
    assert {"a", "b"} <= {i["metadata"]["name"] for i in newer["items"]}
    assert int(newer["metadata"]["resourceVersion"]) > rv
    bad = k.run("get", "--raw", "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact", ok=False)
    assert "resourceVersionMatch is forbidden unless resourceVersion is provided" in bad.stderr
    too_new = k.run("get", "--raw", "/api/v1/configmaps?resourceVersion=999999999&resourceVersionMatch=NotOlderThan",
                    ok=False)
    assert "Too large resource version" in too_new.stderr
    # a watch from rv replays b; once the window has aged past rv (5 minutes, as the watch
    # cache keeps), the same watch gets 410 Expired, as after an etcd compaction
    w = k.raw(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert w["type"] == "ADDED" and w["object"]["metadata"]["name"] == "b"
    k.clock.advance(301)
    expired = json.loads(k("get", "--raw", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                           "&timeoutSeconds=1").splitlines()[0])
    assert expired["type"] == "ERROR" and expired["object"]["code"] == 410
    assert expired["object"]["reason"] == "Expired"
    gone = k.run("get", "--raw", f"/api/v1/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact", ok=False)
    assert "too old" in gone.stderr
    # the count bound: more events than the ring holds expire the oldest too
    small = k.store.__class__(window=3)
    for i in range(5):
        small.create(gvrs.CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "d"}})
    assert small.events_since(2) is None and small.events_since(small.resource_version - 3) is not None


def _pod(name: str, **meta: Any) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
    })


def _watch_lines(proc: Any) -> list[dict[str, Any]]:
    out, _ = proc.communicate(timeout=30)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_forced_delete_gives_modified_then_deleted(k: Cluster) -> None:
    k("create", "-f", "-", stdin=_pod("victim"))
    wait_for(lambda: k.json("get", "pod", "victim")["status"].get("phase") == "Running", what="the pod running")
    rv = k.json("get", "pod", "victim")["metadata"]["resourceVersion"]
    # what `kubectl get -w --output-watch-events` shows
    proc = k.popen("get", "pods", "--watch", "--output-watch-events", "--field-selector", "metadata.name=victim")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("ADDED") for line in lines), what="the watch started")
        k("delete", "pod", "victim", "--grace-period=0", "--force")
        wait_for(lambda: any(line.startswith("DELETED") for line in lines), what="DELETED watched")
    finally:
        proc.terminate()
        proc.wait(10)
    events = [line.split()[0] for line in lines[1:]]
    assert events == ["ADDED", "MODIFIED", "DELETED"]
    assert "Terminating" in lines[2]
    events = [json.loads(line) for line in k(
        "get", "--raw", f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        "&fieldSelector=metadata.name%3Dvictim").splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["MODIFIED", "DELETED"]
    assert events[-2]["object"]["metadata"]["deletionTimestamp"]
    assert events[-2]["object"]["metadata"]["deletionGracePeriodSeconds"] == 0


def test_pod_finalizers_hold_the_pod(k: Cluster) -> None:
    k("create", "-f", "-", stdin=_pod("held", finalizers=["example.com/hold"]))
    wait_for(lambda: k.json("get", "pod", "held")["status"].get("phase") == "Running", what="the pod running")
    k("delete", "pod", "held", "--wait=false")
    # the kubelet stops it, but the finalizer keeps the object
    wait_for(lambda: k.json("get", "pod", "held")["metadata"].get("deletionGracePeriodSeconds") == 0,
             what="the kubelet's final delete")
    pod = k.json("get", "pod", "held")
    assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["finalizers"] == ["example.com/hold"]
    k("patch", "pod", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    assert "NotFound" in k.run("get", "pod", "held", ok=False).stderr


def test_crd_structural_defaults_are_applied(k: Cluster) -> None:
    from k3dtui.resources import manifest_text

    crds = [d for d in manifest_text("metallb-minimal.yaml").split("\n---") if "CustomResourceDefinition" in d]
    k("apply", "-f", "-", stdin="\n---\n".join(crds))
    k("create", "-f", "-", stdin=namespace("metallb-system"))
    wait_for(lambda: k.run("get", "crd", "ipaddresspools.metallb.io", ok=False).returncode == 0, what="the CRD")
    k("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "metallb-system"},
        "spec": {"addresses": ["172.18.255.200-172.18.255.250"]},
    }))
    spec = k.json("get", "ipaddresspool", "p", "-n", "metallb-system")["spec"]
    assert spec["autoAssign"] is True and spec["avoidBuggyIPs"] is False
    # a value given is kept
    k("patch", "ipaddresspool", "p", "-n", "metallb-system", "--type=merge", "-p", '{"spec":{"autoAssign":false}}')
    assert k.json("get", "ipaddresspool", "p", "-n", "metallb-system")["spec"]["autoAssign"] is False


def test_namespace_deletion_goes_through_terminating(k: Cluster) -> None:
    k("create", "-f", "-", stdin=namespace("scratch"))
    k("create", "-f", "-", stdin=configmap("one", "scratch"))
    k("create", "-n", "scratch", "-f", "-", stdin=_pod("held", finalizers=["example.com/hold"]))
    k("delete", "namespace", "scratch", "--wait=false")
    ns = k.json("get", "namespace", "scratch")
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    # content goes first; the held pod keeps the namespace
    wait_for(lambda: k.run("get", "configmap", "one", "-n", "scratch", ok=False).returncode != 0,
             what="the content deleted")
    conds = {c["type"]: c for c in k.json("get", "namespace", "scratch")["status"]["conditions"]}
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    refused = k.run("create", "-f", "-", "-n", "scratch", stdin=configmap("late", "scratch"), ok=False)
    assert "because it is being terminated" in refused.stderr
    k("patch", "pod", "held", "-n", "scratch", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    wait_for(lambda: k.run("get", "namespace", "scratch", ok=False).returncode != 0, what="the namespace gone")


def _deployment(name: str, image: str, replicas: int = 2) -> str:
    labels = {"app": name}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": image}],
                                       "terminationGracePeriodSeconds": 0}}},
    })


def _rollout_done(k: Cluster, name: str, image: str, replicas: int = 2) -> bool:
    d = k.json("get", "deployment", name)
    st = d.get("status") or {}
    pods = k.json("get", "pods", "-l", f"app={name}")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return (st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
            and st.get("replicas") == replicas and len(live) == replicas
            and all(p["spec"]["containers"][0]["image"] == image for p in live))


def _replicasets(k: Cluster, name: str) -> dict[str, dict[str, Any]]:
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs
            for rs in k.json("get", "replicasets", "-l", f"app={name}")["items"]}


def test_rollout_undo_scales_the_old_replicaset_back(k: Cluster) -> None:
    k("create", "-f", "-", stdin=_deployment("web", "nginx:1.27"))
    wait_for(lambda: _rollout_done(k, "web", "nginx:1.27"), what="the first rollout")
    k("set", "image", "deployment/web", "web=nginx:1.28")
    wait_for(lambda: _rollout_done(k, "web", "nginx:1.28"), what="the second rollout")
    before = _replicasets(k, "web")
    assert set(before) == {"nginx:1.27", "nginx:1.28"}
    first = before["nginx:1.27"]
    assert first["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert first["spec"]["replicas"] == 0
    out = k("rollout", "undo", "deployment/web")
    assert "rolled back" in out
    wait_for(lambda: _rollout_done(k, "web", "nginx:1.27"), what="the rollback")
    after = _replicasets(k, "web")
    # no third ReplicaSet: the first one (same name, same pod-template-hash) is back, as revision 3
    assert set(after) == {"nginx:1.27", "nginx:1.28"}
    back = after["nginx:1.27"]
    assert back["metadata"]["name"] == first["metadata"]["name"] and back["spec"]["replicas"] == 2
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert after["nginx:1.28"]["spec"]["replicas"] == 0
    d = k.json("get", "deployment", "web")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    history = k("rollout", "history", "deployment/web")
    revisions = [line.split()[0] for line in history.splitlines() if line[:1].isdigit()]
    assert revisions == ["2", "3"]
    # to a given revision, with a change-cause the deployment passes to its ReplicaSet
    k("annotate", "deployment/web", "kubernetes.io/change-cause=back to 1.28", "--overwrite")
    k("rollout", "undo", "deployment/web", "--to-revision=2")
    wait_for(lambda: _rollout_done(k, "web", "nginx:1.28"), what="the rollback to revision 2")
    again = _replicasets(k, "web")["nginx:1.28"]
    assert again["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert again["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    wait_for(lambda: "back to 1.28" in k("rollout", "history", "deployment/web"), what="the change-cause")
    assert len(_replicasets(k, "web")) == 2


def test_a_relabelled_pod_is_released_and_replaced(k: Cluster) -> None:
    k("create", "-f", "-", stdin=_deployment("rel", "busybox", replicas=2))
    wait_for(lambda: _rollout_done(k, "rel", "busybox"), what="the rollout")
    pods = k.json("get", "pods", "-l", "app=rel")["items"]
    victim = pods[0]["metadata"]["name"]
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    k("label", "pod", victim, "app=out", "--overwrite")
    wait_for(lambda: not k.json("get", "pod", victim)["metadata"].get("ownerReferences"), what="the release")
    # a replacement starts: two pods match again, and the released one lives on on its own
    wait_for(lambda: _rollout_done(k, "rel", "busybox"), what="the replacement")
    names = {p["metadata"]["name"] for p in k.json("get", "pods", "-l", "app=rel")["items"]}
    assert victim not in names and len(names) == 2
    assert k.json("get", "pod", victim)["status"]["phase"] == "Running"
    # labelled back, the orphan is adopted again and the ReplicaSet, one pod over, deletes
    # one (without the adoption three pods would match, one of them an orphan)
    pod_hash = pods[0]["metadata"]["labels"]["pod-template-hash"]
    k("label", "pod", victim, "app=rel", "--overwrite")

    def settled() -> bool:
        live = [p for p in k.json("get", "pods", "-l", "app=rel")["items"] if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 2 and all(p["metadata"]["ownerReferences"][0]["name"] == f"rel-{pod_hash}" for p in live)

    wait_for(settled, what="two owned pods again")
    assert k.json("get", "replicaset", f"rel-{pod_hash}")["status"]["replicas"] == 2


def test_a_stuck_namespace_finalized_by_hand_goes(k: Cluster) -> None:
    k("create", "-f", "-", stdin=namespace("stuck"))
    k("create", "-n", "stuck", "-f", "-", stdin=_pod("held", finalizers=["example.com/hold"]))
    k("delete", "namespace", "stuck", "--wait=false")
    ns = k.json("get", "namespace", "stuck")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    # what people do with a namespace stuck in Terminating: empty spec.finalizers
    ns["spec"]["finalizers"] = []
    k("replace", "--raw", "/api/v1/namespaces/stuck/finalize", "-f", "-", stdin=json.dumps(ns))
    assert "NotFound" in k.run("get", "namespace", "stuck", ok=False).stderr
