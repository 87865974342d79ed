"""The request flow on the simulated cluster (issue 11): the announcing node from MetalLB's
election, kube-proxy's choice per externalTrafficPolicy, and the source address each pod sees."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from kubernetes import client

from k3dtui.cli import main
from k3dtui.commands.load import discover_url


def app_pods(handle: Any) -> dict[str, str]:
    with handle.api_client() as api:
        pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=fastapi").items
    return {p.metadata.name: p.spec.node_name for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}


def node_cidrs(handle: Any) -> dict[str, str]:
    with handle.api_client() as api:
        return {n.metadata.name: n.spec.pod_cidr for n in client.CoreV1Api(api).list_node().items}


def announcer(handle: Any) -> str:
    with handle.http() as c:
        res = c.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses")
        res.raise_for_status()
    for item in res.json()["items"]:
        if item["status"]["serviceName"] == "fastapi-service":
            return str(item["status"]["node"])
    return ""


def test_cluster_policy_pods_see_the_forwarding_nodes_address(sim_app: Any) -> None:
    url = asyncio.run(discover_url(sim_app.name, True))
    entry = announcer(sim_app)
    assert entry
    net = node_cidrs(sim_app)[entry].rsplit(".", 1)[0]  # 10.42.N
    seen: dict[str, set[str]] = {}
    for _ in range(60):
        with httpx.Client(timeout=5) as c:  # a new connection each time
            res = c.get(url)
        body = json.loads(res.text)
        assert res.headers["X-Client"] == body["client"]
        seen.setdefault(body["node"], set()).add(body["client"])
    assert len(seen) == 3
    for node, clients in seen.items():
        # cni0 (.1) on the announcing node itself, flannel.1 (.0) across nodes
        assert clients == ({f"{net}.1"} if node == entry else {f"{net}.0"}), (node, clients)


def _load(handle: Any, capsys: Any, requests: int = 300) -> dict[str, Any]:
    code = main(["load", "--sim", "--name", handle.name, "--new-connections",
                 "--requests", str(requests), "--concurrency", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data: dict[str, Any] = json.loads(captured.out)
    assert data["status"] == {"200": requests}
    return data


def _policy(handle: Any, capsys: Any, policy: str) -> dict[str, Any]:
    code = main(["policy", policy, "--sim", "--name", handle.name, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out: dict[str, Any] = json.loads(captured.out)
    assert out["ok"] is True
    return out


def _until(cond: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _status(handle: Any, capsys: Any) -> dict[str, Any]:
    assert main(["status", "--sim", "--name", handle.name, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_the_flow_under_cluster_then_local_then_one_replica_then_cluster_again(
    sim_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pods = app_pods(sim_app)
    assert len(set(pods.values())) == 3  # 3 replicas on 3 nodes
    cidrs = node_cidrs(sim_app)
    entry = announcer(sim_app)
    status = _status(sim_app, capsys)
    assert status["service"]["announcing_node"] == entry
    assert status["service"]["traffic_policy"] == "Cluster"

    # Cluster: uniform over the 3 pods, so about 2/3 crosses; pods see the entry node's address
    data = _load(sim_app, capsys)
    assert data["announcing_node"] == entry
    assert 0.5 <= data["cross_node_share"] <= 0.8
    assert set(data["paths"]) == {entry} and set(data["paths"][entry]) == set(pods.values())
    net = cidrs[entry].rsplit(".", 1)[0]
    assert set(data["client_addrs"]) == {f"{net}.0", f"{net}.1"}
    assert data["client_addrs"][f"{net}.1"] == data["paths"][entry][entry]  # same node: cni0

    # Local: only the announcing node's pod serves; pods see the generator's own address
    out = _policy(sim_app, capsys, "local")
    assert out["traffic_policy"] == "Local"
    _until(lambda: _status(sim_app, capsys)["service"]["traffic_policy"] == "Local")
    time.sleep(0.5)  # the data plane follows the Service
    local_entry = announcer(sim_app)
    data = _load(sim_app, capsys)
    assert data["cross_node_share"] == 0
    assert data["paths"] == {local_entry: {local_entry: 300}}
    served = {p for p, count in data["per_pod"].items() if count > 0}  # every pod is listed, 0 too
    assert served == {p for p, n in pods.items() if n == local_entry}
    assert data["client_addrs"] == {"127.0.0.1": 300}

    # one replica under Local: the announcement moves to its node, and the load is served there
    assert main(["scale", "1", "--sim", "--name", sim_app.name]) == 0
    capsys.readouterr()
    left = _until(lambda: app_pods(sim_app) if len(app_pods(sim_app)) == 1 else None, 20.0)
    (pod, node), = left.items()
    _until(lambda: announcer(sim_app) == node, 5.0)
    time.sleep(0.5)
    data = _load(sim_app, capsys, 100)
    assert data["announcing_node"] == node
    assert {p: n for p, n in data["per_pod"].items() if n} == {pod: 100} and data["cross_node_share"] == 0

    # back to Cluster with 3 replicas: the spread returns
    _policy(sim_app, capsys, "cluster")
    assert main(["scale", "3", "--sim", "--name", sim_app.name]) == 0
    capsys.readouterr()
    _until(lambda: len(set(app_pods(sim_app).values())) == 3, 30.0)
    _until(lambda: _status(sim_app, capsys)["deployment"]["ready"] == 3, 30.0)
    time.sleep(0.5)
    data = _load(sim_app, capsys)
    assert len([n for n in data["per_pod"].values() if n]) == 3 and 0.5 <= data["cross_node_share"] <= 0.8


def test_policy_refuses_bad_input_and_read_only(sim_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "sideways", "--sim", "--name", sim_app.name]) == 2
    err = capsys.readouterr().err
    assert "'sideways' is not a traffic policy: use cluster or local" in err and "Traceback" not in err
    assert main(["--read-only", "policy", "local", "--sim", "--name", sim_app.name]) == 1
    assert "--read-only" in capsys.readouterr().err
    assert _status(sim_app, capsys)["service"]["traffic_policy"] == "Cluster"


def _label_node(handle: Any, node: str, value: str | None) -> None:
    with handle.api_client() as api:
        client.CoreV1Api(api).patch_node(
            node, {"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": value}}})


def test_the_election_is_metallbs_and_moves_when_the_node_stops_qualifying(sim_app: Any) -> None:
    import hashlib

    with sim_app.api_client() as api:
        svc = client.CoreV1Api(api).read_namespaced_service("fastapi-service", "default")
        nodes = [n.metadata.name for n in client.CoreV1Api(api).list_node().items]
    ip = svc.status.load_balancer.ingress[0].ip
    order = sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())
    assert announcer(sim_app) == order[0]  # every speaker's same choice: the first by sha256(node#ip)
    _label_node(sim_app, order[0], "true")  # that node no longer qualifies
    _until(lambda: announcer(sim_app) == order[1], 5.0)
    _label_node(sim_app, order[0], None)
    _until(lambda: announcer(sim_app) == order[0], 5.0)


def test_local_with_no_ready_pod_nobody_announces_and_uneven_pods_mean_uneven_traffic(
    sim_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _policy(sim_app, capsys, "local")
    assert main(["scale", "0", "--sim", "--name", sim_app.name]) == 0
    capsys.readouterr()
    _until(lambda: not app_pods(sim_app) and not announcer(sim_app), 20.0)
    svc = _status(sim_app, capsys)["service"]
    assert svc["announcing_node"] is None and svc["traffic_policy"] == "Local"
    assert main(["status", "--sim", "--name", sim_app.name]) == 0
    assert "no node announces it: under Local only a node with a ready pod may" in capsys.readouterr().out
    assert main(["scale", "1", "--sim", "--name", sim_app.name]) == 0
    capsys.readouterr()
    pods = _until(lambda: app_pods(sim_app) if len(app_pods(sim_app)) == 1 else None, 20.0)
    _until(lambda: announcer(sim_app) == next(iter(pods.values())), 10.0)

    # Cluster with 4 pods on 3 nodes: kube-proxy spreads per pod, so the node with two pods
    # serves about twice what each other node serves
    _policy(sim_app, capsys, "cluster")
    assert main(["scale", "4", "--sim", "--name", sim_app.name]) == 0
    capsys.readouterr()
    _until(lambda: _status(sim_app, capsys)["deployment"]["ready"] == 4, 30.0)
    time.sleep(0.5)
    placed = app_pods(sim_app)
    per_node_pods = {n: list(placed.values()).count(n) for n in set(placed.values())}
    assert sorted(per_node_pods.values()) == [1, 1, 2]
    data = _load(sim_app, capsys, 600)
    double = next(n for n, k in per_node_pods.items() if k == 2)
    singles = [n for n, k in per_node_pods.items() if k == 1]
    assert all(data["per_node"][double] > 1.4 * data["per_node"][s] for s in singles), data["per_node"]


def test_a_run_across_the_announcer_move_keeps_being_served_and_follows_it(
    sim_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from k3dtui.core.flow import AnnouncerWatch, read_announcer
    from k3dtui.core.kubeapply import Kube
    from k3dtui.core.load import LoadGenerator
    from k3dtui.core.models import LoadSettings

    _policy(sim_app, capsys, "local")
    _until(lambda: announcer(sim_app), 10.0)
    first = announcer(sim_app)
    url = asyncio.run(discover_url(sim_app.name, True))
    kube = Kube(sim_app.kubeconfig)
    settings = LoadSettings(url=url, mode="new-connection", concurrency=2, duration=20.0, rate=200.0)
    with LoadGenerator(settings) as gen:
        watch = AnnouncerWatch(lambda: read_announcer(kube), gen.set_announcer, interval=0.1)
        watch.start()
        gen.start()
        try:
            _until(lambda: gen.latest().responses > 100, 10.0)
            # keep only a pod that is not on the announcing node: the announcement must move
            pods = app_pods(sim_app)
            keep = next(p for p, n in pods.items() if n != first)
            with sim_app.api_client() as api:
                # the ReplicaSet removes the cheapest pods first (pod-deletion-cost): keep ours
                client.CoreV1Api(api).patch_namespaced_pod(keep, "default", {"metadata": {"annotations": {
                    "controller.kubernetes.io/pod-deletion-cost": "1000"}}})
                client.AppsV1Api(api).patch_namespaced_deployment_scale(
                    "fastapi-app", "default", {"spec": {"replicas": 1}})
            _until(lambda: set(app_pods(sim_app)) == {keep}, 20.0)
            target = pods[keep]
            _until(lambda: gen.latest().announcing_node == target, 10.0)
            served = gen.latest().paths.get(target, {}).get(target, 0)
            _until(lambda: gen.latest().paths.get(target, {}).get(target, 0) > served + 100, 10.0)
            snap = gen.latest()
        finally:
            gen.stop()
            watch.stop()
            kube.close()
    assert snap.paths[first].get(first, 0) > 0  # served at the first announcer before the move
    assert snap.per_pod.get(keep, 0) > 100
    assert snap.announcing_node == target and snap.client_addrs.get("127.0.0.1", 0) > 200
