"""core.nodes without a cluster: node names, the node's view from its object and Lease, the
one-line story of a failing node, and diff_nodes for `watch --json`."""

from __future__ import annotations

from k3dtui.core import nodes
from k3dtui.core.models import ClusterSnapshot, NodeView
from k3dtui.core.state import diff_nodes, node_view


def test_node_names_are_the_clusters() -> None:
    assert nodes.check_node_name("demo", "k3d-demo-agent-0") == ""
    assert nodes.check_node_name("demo", "k3d-demo-server-12") == ""
    for bad in ("k3d-other-agent-0", "agent-0", "k3d-demo-agent-x", "k3d-demo-serverlb", "k3d-demo-agent-0; rm"):
        assert "is not a node of cluster 'demo'" in nodes.check_node_name("demo", bad)
    assert nodes.is_server("k3d-demo-server-0") and not nodes.is_server("k3d-demo-agent-0")


def test_node_view_reads_the_lease_age_and_the_cordon() -> None:
    node = {"metadata": {"name": "k3d-demo-agent-0", "labels": {}},
            "spec": {"unschedulable": True, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    lease = {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}}
    view = nodes.node_view(node, lease, 2, now=1767225612.5)  # 12.5 s later
    assert view.heartbeat_age == 12.5 and view.ready == "Unknown" and view.role == "agent"
    assert view.state == "NotReady,SchedulingDisabled"
    assert view.to_json()["taints"] == ["node.kubernetes.io/unschedulable:NoSchedule"]
    assert nodes.node_view(node, None).heartbeat_age is None


def test_the_story_of_a_failing_node() -> None:
    ready = NodeView("k3d-demo-agent-0", "<none>", "172.18.0.3", True)
    assert nodes.node_story(ready, 1000.0, None) == ""
    assert nodes.node_story(ready, 1012.0, 1000.0) == "stopped 12s ago, no heartbeat · NotReady in ~28s"
    assert nodes.node_story(ready, 1045.0, 1000.0) == "stopped 45s ago, no heartbeat · NotReady any moment"
    down = NodeView("k3d-demo-agent-0", "<none>", "172.18.0.3", False, ready_since=1040.0, tainted_at=1040.0)
    assert nodes.node_story(down, 1044.0, 1000.0) == "NotReady 4s · pods unreachable, evicted in 11s"
    assert nodes.node_story(down, 1056.0, 1000.0) == "NotReady 16s · pods evicted, moving"
    cordoned = NodeView("k3d-demo-agent-1", "<none>", "172.18.0.4", True, unschedulable=True)
    assert nodes.node_story(cordoned, 0.0, None) == "cordoned"


def test_diff_nodes_reports_only_changes() -> None:
    a = NodeView("n1", "<none>", "", True)
    b = NodeView("n2", "<none>", "", True)
    first = ClusterSnapshot(nodes=(a, b))
    assert [d["node"] for d in diff_nodes(None, first)] == ["n1", "n2"]
    assert diff_nodes(first, first) == []
    later = ClusterSnapshot(nodes=(a, NodeView("n2", "<none>", "", False, taints=("node.kubernetes.io/unreachable:NoExecute",))))
    assert diff_nodes(first, later) == [{"change": "node", "node": "n2", "ready": False, "unschedulable": False,
                                         "taints": ["node.kubernetes.io/unreachable:NoExecute"]}]
    # the state module's view carries the taint's time for the countdown
    obj = {"metadata": {"name": "n2"}, "spec": {"taints": [
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    v = node_view(obj)
    assert v.tainted_at == v.ready_since == 1767225600.0 and not v.ready


def test_node_view_takes_the_heartbeat_from_the_nodes_lease() -> None:
    node = {"metadata": {"name": "k3d-demo-agent-0"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    lease = {"metadata": {"name": "k3d-demo-agent-0", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "k3d-demo-agent-0", "renewTime": "2026-01-01T00:00:10.500000Z"}}
    assert node_view(node).heartbeat == 0.0
    assert node_view(node, lease).heartbeat == 1767225610.5


def test_the_story_follows_the_heartbeat_wherever_the_node_was_stopped() -> None:
    ready = NodeView("k3d-demo-agent-0", "<none>", "172.20.0.3", True, heartbeat=1000.0)
    assert nodes.node_story(ready, 1009.0, None) == ""  # renewed 9 s ago: on time
    # no renewal for 25 s, stopped from another shell (no stopped_at): the countdown still runs
    assert nodes.node_story(ready, 1025.0, None) == "no heartbeat for 25s · NotReady in ~15s"
    assert nodes.node_story(ready, 1041.0, None) == "no heartbeat for 41s · NotReady any moment"
    down = NodeView("k3d-demo-agent-0", "<none>", "172.20.0.3", False, ready_since=1040.0, heartbeat=1000.0)
    assert nodes.node_story(down, 1050.0, None) == "NotReady 10s, last heartbeat 50s ago"
