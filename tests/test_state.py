"""The cluster picture from plain objects: kubectl's pod STATUS, views, event sequences, coalescing."""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any

import pytest

from k3dtui.core.clock import ManualClock
from k3dtui.core.state import (
    DEPLOYMENTS,
    EVENTS,
    L2STATUSES,
    NODES,
    PODS,
    SERVICES,
    ClusterState,
    Coalescer,
    cluster_event,
    deployment_view,
    node_view,
    parse_time,
    pod_status,
    pod_summary,
    pod_view,
    service_view,
)
from k3dtui.core.watch import wait_until

T0 = "2026-01-01T10:00:00Z"


def base_pod(name: str = "fastapi-7d4b9c8f5d-x2k9p", **labels: str) -> dict[str, Any]:
    """A Pod as the API server sends it right after the ReplicaSet created it (§7)."""
    return {
        "metadata": {
            "name": name,
            "generateName": "fastapi-7d4b9c8f5d-",
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "100",
            "creationTimestamp": T0,
            "labels": {"app": "fastapi", "pod-template-hash": "7d4b9c8f5d", **labels},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "fastapi-7d4b9c8f5d",
                                 "uid": "rs-uid", "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [{"name": "fastapi", "image": "fastapi-random:latest", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def cs(state: dict[str, Any], *, ready: bool = False, restarts: int = 0, started: bool = False) -> dict[str, Any]:
    return {"name": "fastapi", "image": "fastapi-random:latest", "imageID": "", "ready": ready,
            "started": started, "restartCount": restarts, "state": state}


def scheduled(p: dict[str, Any]) -> dict[str, Any]:
    p = copy.deepcopy(p)
    p["spec"]["nodeName"] = "k3d-demo-agent-0"
    p["status"]["conditions"] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}]
    return p


def creating(p: dict[str, Any]) -> dict[str, Any]:
    p = scheduled(p)
    p["status"].update(hostIP="172.18.0.3", startTime=T0,
                       containerStatuses=[cs({"waiting": {"reason": "ContainerCreating"}})])
    return p


def running(p: dict[str, Any], restarts: int = 0) -> dict[str, Any]:
    p = scheduled(p)
    p["status"].update(
        phase="Running", hostIP="172.18.0.3", podIP="10.42.1.5", podIPs=[{"ip": "10.42.1.5"}],
        conditions=[{"type": t, "status": "True", "lastTransitionTime": T0}
                    for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
        containerStatuses=[cs({"running": {"startedAt": T0}}, ready=True, started=True, restarts=restarts)],
    )
    return p


def deleting(p: dict[str, Any]) -> dict[str, Any]:
    p = copy.deepcopy(p)
    p["metadata"]["deletionTimestamp"] = "2026-01-01T10:05:30Z"
    p["metadata"]["deletionGracePeriodSeconds"] = 30
    return p


def completed(p: dict[str, Any], code: int = 0, reason: str = "Completed") -> dict[str, Any]:
    p = copy.deepcopy(p)
    p["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
    for c in p["status"]["conditions"]:
        if c["type"] in ("Ready", "ContainersReady"):
            c["status"] = "False"
    p["status"]["containerStatuses"] = [cs({"terminated": {"exitCode": code, "reason": reason, "finishedAt": T0}})]
    return p


# -- kubectl's STATUS column ---------------------------------------------------------------

def test_pod_status_follows_the_lifecycle_of_a_replacement_pod() -> None:
    new = base_pod()
    assert pod_summary(new) == ("Pending", 0, 1, 0)
    assert pod_status(scheduled(new)) == "Pending"
    assert pod_status(creating(new)) == "ContainerCreating"
    assert pod_summary(running(new)) == ("Running", 1, 1, 0)


def test_pod_status_of_a_deleted_pod_terminating_then_completed() -> None:
    old = running(base_pod())
    assert pod_status(deleting(old)) == "Terminating"
    # Terminal phase: kubectl no longer says Terminating, even with deletionTimestamp set.
    assert pod_status(completed(deleting(old))) == "Completed"
    # SIGTERM ignored: killed at the end of the grace period.
    assert pod_status(completed(deleting(old), 137, "Error")) == "Error"


def test_pod_status_reasons_kubectl_prints() -> None:
    p = scheduled(base_pod())
    p["status"]["containerStatuses"] = [cs({"waiting": {"reason": "ErrImageNeverPull", "message": "..."}})]
    assert pod_status(p) == "ErrImageNeverPull"
    p["status"]["containerStatuses"] = [cs({"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4)]
    assert pod_summary(p) == ("CrashLoopBackOff", 0, 1, 4)
    p["status"]["containerStatuses"] = [cs({"terminated": {"exitCode": 3}})]
    assert pod_status(p) == "ExitCode:3"
    p["status"]["containerStatuses"] = [cs({"terminated": {"exitCode": 0, "signal": 9}})]
    assert pod_status(p) == "Signal:9"
    evicted = base_pod()
    evicted["status"] = {"phase": "Failed", "reason": "Evicted"}
    assert pod_status(evicted) == "Evicted"
    lost = deleting(running(base_pod()))
    lost["status"]["reason"] = "NodeLost"
    assert pod_status(lost) == "Unknown"


def test_pod_status_running_but_not_ready_and_completed_sidecar() -> None:
    p = running(base_pod())
    p["status"]["containerStatuses"][0]["ready"] = False
    assert pod_summary(p) == ("Running", 0, 1, 0)
    # Two containers: one finished (Completed), one still running → Running, not Completed.
    two = running(base_pod())
    two["spec"]["containers"].append({"name": "side", "image": "x"})
    two["status"]["containerStatuses"] = [
        cs({"running": {"startedAt": T0}}, ready=True),
        {**cs({"terminated": {"exitCode": 0, "reason": "Completed"}}), "name": "side"},
    ]
    assert pod_summary(two) == ("Running", 1, 2, 0)
    for c in two["status"]["conditions"]:
        if c["type"] == "Ready":
            c["status"] = "False"
    assert pod_status(two) == "NotReady"


def test_pod_status_init_containers() -> None:
    p = scheduled(base_pod())
    p["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    p["status"]["initContainerStatuses"] = [cs({"running": {}})]
    p["status"]["initContainerStatuses"][0]["name"] = "init"
    assert pod_status(p) == "Init:0/1"
    p["status"]["initContainerStatuses"][0]["state"] = {"waiting": {"reason": "ImagePullBackOff"}}
    assert pod_status(p) == "Init:ImagePullBackOff"
    p["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
    assert pod_status(p) == "Init:Error"


def test_pod_view_fields() -> None:
    v = pod_view(running(base_pod(), restarts=2))
    assert (v.name, v.uid, v.node, v.status, v.ready, v.ready_text, v.ip, v.restarts, v.deleting) == (
        "fastapi-7d4b9c8f5d-x2k9p", "uid-fastapi-7d4b9c8f5d-x2k9p", "k3d-demo-agent-0", "Running", True, "1/1",
        "10.42.1.5", 2, False,
    )
    assert v.created == parse_time(T0) == 1767261600.0
    gone = pod_view(deleting(running(base_pod())))
    assert gone.deleting and gone.status == "Terminating"
    pending = pod_view(base_pod())
    assert (pending.node, pending.ip, pending.ready, pending.ready_text) == ("", "", False, "0/1")


def test_parse_time_variants() -> None:
    assert parse_time("2026-01-01T10:00:00.250000Z") == pytest.approx(1767261600.25)
    assert parse_time(None) == 0.0
    assert parse_time("garbage") == 0.0


# -- other kinds ---------------------------------------------------------------------------

def node(name: str, *, server: bool = False, ready: bool = True, ip: str = "172.18.0.2") -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if server:
        labels |= {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels, "creationTimestamp": T0},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}]},
    }


def test_node_view_roles_ip_ready() -> None:
    assert node_view(node("k3d-demo-server-0", server=True)).roles == "control-plane,master"
    agent = node_view(node("k3d-demo-agent-0", ready=False, ip="172.18.0.4"))
    assert (agent.roles, agent.ip, agent.ready) == ("<none>", "172.18.0.4", False)


def test_deployment_view_treats_omitted_counts_as_zero() -> None:
    d = {"metadata": {"name": "fastapi", "namespace": "default"}, "spec": {"replicas": 0}, "status": {"observedGeneration": 3}}
    v = deployment_view(d)
    assert (v.desired, v.ready, v.updated, v.available) == (0, 0, 0, 0)
    d = {"metadata": {"name": "fastapi"}, "spec": {"replicas": 4},
         "status": {"replicas": 4, "readyReplicas": 3, "updatedReplicas": 4, "availableReplicas": 3}}
    v = deployment_view(d)
    assert (v.desired, v.ready, v.updated, v.available) == (4, 3, 4, 3)


def svc(ip: str | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"metadata": {"name": "fastapi-service", "namespace": "default", "uid": "svc-uid"},
                         "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 3000, "protocol": "TCP", "nodePort": 31234}]},
                         "status": {"loadBalancer": {}}}
    if ip:
        s["status"]["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
    return s


def l2status(node_name: str, service: str = "fastapi-service", uid: str = "l2-uid") -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
            "metadata": {"name": "l2-abcde", "namespace": "metallb-system", "uid": uid},
            "status": {"node": node_name, "serviceName": service, "serviceNamespace": "default"}}


def test_service_view_external_ip_and_announcing_node() -> None:
    assert service_view(svc()) == service_view(svc(), [])
    pending = service_view(svc())
    assert (pending.external_ip, pending.port, pending.announcing_node) == ("", 80, "")
    v = service_view(svc("172.18.255.200"), [l2status("k3d-demo-agent-1", service="other"), l2status("k3d-demo-agent-0")])
    assert (v.external_ip, v.announcing_node) == ("172.18.255.200", "k3d-demo-agent-0")


def kevent(uid: str, reason: str, name: str, at: str, kind: str = "Pod", message: str = "") -> dict[str, Any]:
    return {"metadata": {"name": f"{name}.{uid}", "namespace": "default", "uid": uid, "creationTimestamp": at},
            "involvedObject": {"kind": kind, "name": name, "namespace": "default"},
            "reason": reason, "message": message or reason, "type": "Normal",
            "firstTimestamp": at, "lastTimestamp": at}


def test_cluster_event_shape() -> None:
    e = cluster_event(kevent("e1", "Killing", "fastapi-x", "2026-01-01T10:00:05Z", message="Stopping container fastapi"))
    assert (e.reason, e.object, e.message, e.type) == ("Killing", "pod/fastapi-x", "Stopping container fastapi", "Normal")
    assert e.time == parse_time("2026-01-01T10:00:05Z")
    micro = {"metadata": {"uid": "e2"}, "eventTime": "2026-01-01T10:00:06.500000Z", "reason": "IPAllocated",
             "regarding": {"kind": "Service", "name": "fastapi-service"}, "note": 'Assigned IP ["172.18.255.200"]'}
    e2 = cluster_event(micro)
    assert (e2.object, e2.message) == ("service/fastapi-service", 'Assigned IP ["172.18.255.200"]')
    assert e2.time == pytest.approx(parse_time("2026-01-01T10:00:06Z") + 0.5)


# -- the state from event sequences ---------------------------------------------------------

def statuses(state: ClusterState) -> dict[str, str]:
    return {p.name: p.status for p in state.snapshot().pods}


def test_state_follows_the_sequence_of_a_deleted_replica() -> None:
    """§10: what a pod watcher sees when one of three replicas is deleted."""
    calls: list[int] = []
    state = ClusterState(on_update=lambda: calls.append(1))
    olds = [running(base_pod(f"fastapi-abc-{s}")) for s in ("aaaaa", "bbbbb", "ccccc")]
    state.resync(PODS, olds)
    assert statuses(state) == dict.fromkeys(("fastapi-abc-aaaaa", "fastapi-abc-bbbbb", "fastapi-abc-ccccc"), "Running")
    victim = olds[0]
    new = base_pod("fastapi-abc-ddddd")
    steps: list[tuple[str, dict[str, Any], str | None]] = [
        ("MODIFIED", deleting(victim), "Terminating"),
        ("ADDED", new, None),
        ("MODIFIED", scheduled(new), None),
        ("MODIFIED", creating(new), None),
        ("MODIFIED", completed(deleting(victim)), "Completed"),
        ("DELETED", completed(deleting(victim)), "gone"),
        ("MODIFIED", running(new), None),
    ]
    expect_new = ["Pending", "Pending", "Pending", "ContainerCreating", "ContainerCreating", "ContainerCreating", "Running"]
    for (type_, obj, old_status), new_status in zip(steps, expect_new, strict=True):
        state.event(PODS, type_, obj)
        now = statuses(state)
        if old_status == "gone":
            assert "fastapi-abc-aaaaa" not in now
        elif old_status is not None:
            assert now["fastapi-abc-aaaaa"] == old_status
        if type_ != "MODIFIED" or obj is not victim:
            assert now.get("fastapi-abc-ddddd", "Pending") == new_status
    snap = state.snapshot()
    assert sorted(p.name for p in snap.pods) == ["fastapi-abc-bbbbb", "fastapi-abc-ccccc", "fastapi-abc-ddddd"]
    assert [p.status for p in snap.pods] == ["Running"] * 3
    assert len(calls) == 1 + len(steps)
    assert snap.pods_on("k3d-demo-agent-0")[0].name == "fastapi-abc-bbbbb"


def test_resync_replaces_everything_of_a_kind_no_ghosts() -> None:
    state = ClusterState()
    state.resync(PODS, [running(base_pod("fastapi-abc-aaaaa")), running(base_pod("fastapi-abc-bbbbb"))])
    state.resync(PODS, [running(base_pod("fastapi-abc-ccccc"))])
    assert [p.name for p in state.snapshot().pods] == ["fastapi-abc-ccccc"]
    # A DELETED for something never seen changes nothing (and does not notify).
    calls: list[int] = []
    state.on_update = lambda: calls.append(1)
    state.event(PODS, "DELETED", running(base_pod("fastapi-abc-zzzzz")))
    assert calls == []


def test_state_ignores_objects_that_are_not_the_apps() -> None:
    state = ClusterState()
    other = running(base_pod("web-1"))
    other["metadata"]["labels"]["app"] = "web"
    state.resync(PODS, [other, running(base_pod("fastapi-abc-aaaaa"))])
    assert [p.name for p in state.snapshot().pods] == ["fastapi-abc-aaaaa"]
    state.event(PODS, "ADDED", other)
    # A pod whose label changes away from the app leaves the picture.
    relabelled = running(base_pod("fastapi-abc-aaaaa"))
    relabelled["metadata"]["labels"]["app"] = "web"
    state.event(PODS, "MODIFIED", relabelled)
    assert state.snapshot().pods == ()
    state.resync(DEPLOYMENTS, [{"metadata": {"name": "other", "namespace": "default"}, "spec": {"replicas": 2}}])
    assert state.snapshot().deployment is None


def test_snapshot_gathers_nodes_deployment_service_l2_and_events() -> None:
    state = ClusterState(max_events=3)
    state.resync(NODES, [node("k3d-demo-agent-0"), node("k3d-demo-server-0", server=True), node("k3d-demo-agent-1")])
    state.resync(DEPLOYMENTS, [{"metadata": {"name": "fastapi-app", "namespace": "default", "uid": "d"},
                                "spec": {"replicas": 3}, "status": {"readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3}}])
    state.resync(SERVICES, [svc("172.18.255.200")])
    state.resync(L2STATUSES, [])
    snap = state.snapshot()
    assert [n.name for n in snap.nodes] == ["k3d-demo-server-0", "k3d-demo-agent-0", "k3d-demo-agent-1"]
    assert snap.deployment is not None and snap.deployment.ready == 3
    assert snap.service is not None and snap.service.external_ip == "172.18.255.200"
    assert snap.service.announcing_node == ""
    state.event(L2STATUSES, "ADDED", l2status("k3d-demo-agent-1"))
    snap = state.snapshot()
    assert snap.service is not None and snap.service.announcing_node == "k3d-demo-agent-1"
    for i, reason in enumerate(["Scheduled", "Pulled", "Created", "Started", "Killing"]):
        state.event(EVENTS, "ADDED", kevent(f"e{i}", reason, "fastapi-x", f"2026-01-01T10:00:0{i}Z"))
    assert [e.reason for e in state.snapshot().events] == ["Created", "Started", "Killing"]


def test_connection_status_aggregates_the_watchers() -> None:
    state = ClusterState()
    first = state.snapshot()
    assert not first.connected and first.error
    state.status(PODS, True, "")
    state.status(NODES, True, "")
    assert state.snapshot().connected
    state.status(NODES, False, "cannot reach the API server (connection refused)")
    snap = state.snapshot()
    assert not snap.connected and snap.error == "cannot reach the API server (connection refused)"
    state.status(NODES, True, "")
    assert state.snapshot().connected and state.snapshot().error == ""


def test_not_connected_until_every_expected_kind_has_listed() -> None:
    state = ClusterState(expected=(NODES, PODS))
    state.status(PODS, True, "")
    snap = state.snapshot()
    assert not snap.connected and snap.error == "connecting to the API server"
    state.status(NODES, True, "")
    assert state.snapshot().connected


# -- coalescing ----------------------------------------------------------------------------

def test_coalescer_fires_a_burst_at_once_then_one_call_per_interval() -> None:
    clock = ManualClock()
    fired: list[tuple[float, int]] = []  # (clock reading, the state the call saw)
    state = {"n": 0}
    lock = threading.Lock()

    def fire() -> None:
        with lock:
            fired.append((clock.now(), state["n"]))

    def calls() -> int:
        with lock:
            return len(fired)

    def change(n: int) -> None:
        state["n"] = n
        c.notify()

    c = Coalescer(fire, interval=0.05, burst=2, clock=clock)
    t0 = clock.now()
    c.start()
    try:
        # The first changes after a quiet moment go out at once: the clock never moves.
        change(1)
        assert wait_until(lambda: calls() == 1, 5)
        change(2)
        assert wait_until(lambda: calls() == 2, 5)
        assert fired == [(t0, 1), (t0, 2)]
        # The bucket is empty: the next changes wait one interval and go out as one call
        # carrying the latest state.
        change(3)
        (left,) = clock.wait_for_sleepers(1)
        change(4)
        assert left == pytest.approx(0.05)
        clock.advance(0.049)
        assert clock.sleepers() == [pytest.approx(0.001)] and calls() == 2
        clock.advance(0.001)
        assert wait_until(lambda: calls() == 3, 5)
        assert fired[2] == (pytest.approx(t0 + 0.05), 4)
        # Sustained changes: one call per interval, each with the state of its moment.
        for i in range(5):
            change(10 + i)
            (left,) = clock.wait_for_sleepers(1)
            assert left == pytest.approx(0.05)
            clock.advance(left)
            assert wait_until(lambda i=i: calls() == 4 + i, 5)
        sustained = [t for t, _ in fired[2:]]
        assert [round(b - a, 6) for a, b in itertools.pairwise(sustained)] == [0.05] * 5
        assert [v for _, v in fired[3:]] == [10, 11, 12, 13, 14]
        # Quiet again long enough to refill the bucket: a change goes out at once.
        clock.advance(1.0)
        change(99)
        assert wait_until(lambda: calls() == 9, 5)
        assert fired[-1] == (clock.now(), 99)
    finally:
        c.stop()
    assert c._thread is not None and not c._thread.is_alive()


def test_coalescer_survives_a_failing_callback() -> None:
    calls: list[int] = []

    def fire() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    c = Coalescer(fire, interval=0.01, clock=ManualClock())
    c.start()
    try:
        c.notify()
        assert wait_until(lambda: len(calls) == 1, 5)
        c.notify()  # the second token of the burst: the thread lived through the failure
        assert wait_until(lambda: len(calls) == 2, 5)
    finally:
        c.stop()
    assert len(calls) == 2


def test_diff_pods_reports_added_changed_deleted() -> None:
    from k3dtui.core.models import ClusterSnapshot
    from k3dtui.core.state import diff_pods

    a, b = running(base_pod("fastapi-abc-aaaaa")), creating(base_pod("fastapi-abc-bbbbb"))
    first = ClusterSnapshot(pods=(pod_view(a), pod_view(b)))
    assert [(c.change, c.pod.name) for c in diff_pods(None, first)] == [
        ("added", "fastapi-abc-aaaaa"), ("added", "fastapi-abc-bbbbb")]
    second = ClusterSnapshot(pods=(pod_view(running(base_pod("fastapi-abc-bbbbb"))),))
    changes = diff_pods(first, second)
    assert [(c.change, c.pod.name, c.previous, c.pod.status) for c in changes] == [
        ("changed", "fastapi-abc-bbbbb", "ContainerCreating", "Running"),
        ("deleted", "fastapi-abc-aaaaa", "Running", "Running"),
    ]
    assert diff_pods(second, second) == []
    data = changes[0].to_json(1767261600.5)
    assert data["time"] == "2026-01-01T10:00:00.500Z" and data["ip"] == "10.42.1.5" and data["ready"] == "1/1"
