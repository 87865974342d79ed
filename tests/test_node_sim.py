"""`k3dtui node ...` against the simulated cluster: stop and start, cordon, drain (with the
app's PodDisruptionBudget), bad input.

The cluster runs with short node-monitor settings (grace period 1 s) and the app's
tolerationSeconds patched to 1 s, so a node failure plays out in seconds; every wait is
bounded and only 127.0.0.1 is contacted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from k3dtui.cli import main
from k3dtui.core.identity import APP
from k3dtui.sim.settings import SimSettings
from tests.simfixtures import SimHandle, install_app, start_sim, stop_sim, wait_for

SHORT = SimSettings.fast().replace(lease_renew_interval=0.1, node_monitor_period=0.1, node_monitor_grace_period=1.0)


def app_pods(handle: SimHandle) -> list[dict[str, Any]]:
    with handle.http() as http:
        items: list[dict[str, Any]] = http.get(
            f"/api/v1/namespaces/{APP.namespace}/pods", params={"labelSelector": APP.label_selector}).json()["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def node_list(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    assert main(["node", "list", "--sim", "--json"]) == 0
    return {n["name"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}


def short_tolerations(handle: SimHandle, seconds: int) -> None:
    tolerations = [{"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
                   for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    with handle.http() as http:
        res = http.patch(f"/apis/apps/v1/namespaces/{APP.namespace}/deployments/{APP.deployment}",
                         json={"spec": {"template": {"spec": {"tolerations": tolerations}}}},
                         headers={"Content-Type": "application/merge-patch+json"})
        res.raise_for_status()

    def rolled() -> bool:
        pods = app_pods(handle)
        return len(pods) == 3 and all(
            ready(p) and p["spec"]["tolerations"][0].get("tolerationSeconds") == seconds for p in pods)

    wait_for(rolled, 30.0, "the rollout with the short tolerations")


@pytest.fixture
def cluster(_isolated_dirs: None) -> Iterator[SimHandle]:
    handle = start_sim(settings=SHORT)
    try:
        install_app(handle)
        yield handle
    finally:
        stop_sim(handle)


def test_stop_an_agent_then_start_it(cluster: SimHandle, capsys: pytest.CaptureFixture[str]) -> None:
    short_tolerations(cluster, 1)
    agents = [p["spec"]["nodeName"] for p in app_pods(cluster) if "-agent-" in p["spec"]["nodeName"]]
    victim = agents[0]
    assert main(["node", "stop", victim, "--sim"]) == 0
    assert f"node {victim} stopped" in capsys.readouterr().out
    # NotReady with the unreachable taints (within the acceptance's 90 s; here the grace period is 1 s)
    wait_for(lambda: node_list(capsys)[victim]["ready"] is False, 90.0, "the node to be NotReady")
    view = node_list(capsys)[victim]
    assert view["status"] == "NotReady"
    assert {"node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"} <= set(view["taints"])
    # every replica Ready on the other nodes
    wait_for(lambda: sum(1 for p in app_pods(cluster) if ready(p) and p["spec"]["nodeName"] != victim) == 3,
             90.0, "every replica Ready elsewhere")
    assert node_list(capsys)[victim]["app_pods"] == 0
    # the heartbeat stopped: the Lease gets older
    first = node_list(capsys)[victim]["heartbeat_age"]
    wait_for(lambda: node_list(capsys)[victim]["heartbeat_age"] > first, 10.0, "the Lease to age")
    assert main(["node", "start", victim, "--sim"]) == 0
    capsys.readouterr()
    wait_for(lambda: node_list(capsys)[victim]["ready"] is True, 30.0, "the node to be Ready again")
    assert not any(t.startswith("node.kubernetes.io/unreachable") for t in node_list(capsys)[victim]["taints"])


def test_drain_moves_the_app_off_and_uncordon_undoes_it(
    cluster: SimHandle, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import client

    evictions: list[tuple[str, str, dict[str, Any]]] = []
    real = client.CoreV1Api.create_namespaced_pod_eviction

    def record(self: Any, name: str, namespace: str, body: Any, **kw: Any) -> Any:
        evictions.append((name, namespace, body))
        return real(self, name, namespace, body, **kw)

    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_pod_eviction", record)
    # the app's budget as kubectl prints it (the API's Table): 3 healthy, 1 needed, 2 allowed
    def pdb_table() -> dict[str, Any]:
        with cluster.http() as http:
            table: dict[str, Any] = http.get(
                f"/apis/policy/v1/namespaces/{APP.namespace}/poddisruptionbudgets/{APP.deployment}",
                headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
        return table

    wait_for(lambda: pdb_table()["rows"][0]["cells"][:4] == ["fastapi-app", "1", "N/A", 2], 10.0, "the budget's status")
    assert [c["name"] for c in pdb_table()["columnDefinitions"]] == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]
    victim = next(p["spec"]["nodeName"] for p in app_pods(cluster))
    on_victim = {p["metadata"]["name"] for p in app_pods(cluster) if p["spec"]["nodeName"] == victim}
    assert main(["node", "drain", victim, "--sim", "--timeout", "60"]) == 0
    # one policy/v1 Eviction per app pod on the node, none for the DaemonSet's (MetalLB's speaker)
    assert {e[0] for e in evictions} == on_victim and all(e[1] == APP.namespace for e in evictions)
    assert all(e[2]["apiVersion"] == "policy/v1" and e[2]["kind"] == "Eviction" for e in evictions)
    out = capsys.readouterr().out
    assert f"node {victim} cordoned" in out and "evicting pod default/" in out
    assert f"node {victim} drained" in out
    assert "Warning: ignoring DaemonSet-managed Pods: metallb-system/speaker-" in out
    view = node_list(capsys)[victim]
    assert view["unschedulable"] is True and view["status"] == "Ready,SchedulingDisabled"
    assert "node.kubernetes.io/unschedulable:NoSchedule" in view["taints"]
    wait_for(lambda: sum(1 for p in app_pods(cluster) if ready(p)) == 3, 30.0, "the replicas to be back")
    assert all(p["spec"]["nodeName"] != victim for p in app_pods(cluster) if not p["metadata"].get("deletionTimestamp"))
    assert main(["node", "uncordon", victim, "--sim", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    view = node_list(capsys)[victim]
    assert view["unschedulable"] is False
    wait_for(lambda: "node.kubernetes.io/unschedulable:NoSchedule" not in node_list(capsys)[victim]["taints"],
             10.0, "the taint to go")


def test_a_budget_that_forbids_the_eviction_makes_drain_wait_and_say_why(
    cluster: SimHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scale", "1", "--sim"]) == 0
    wait_for(lambda: len(app_pods(cluster)) == 1 and ready(app_pods(cluster)[0]), 30.0, "one replica")
    capsys.readouterr()
    victim = app_pods(cluster)[0]["spec"]["nodeName"]
    assert main(["node", "drain", victim, "--sim", "--timeout", "1"]) == 1
    captured = capsys.readouterr()
    assert "(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." in captured.out
    assert "The disruption budget fastapi-app needs 1 healthy pods and has 1 currently" in captured.out
    assert f"drain of node {victim} timed out after 1s" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    # nothing was evicted; the node stays cordoned
    assert len(app_pods(cluster)) == 1 and ready(app_pods(cluster)[0])
    assert node_list(capsys)[victim]["unschedulable"] is True


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, words in (
        (["node", "stop", "--sim"], "name the node"),
        (["node", "cordon", "k3d-other-agent-0", "--sim"], "is not a node of cluster 'simple-app-cluster'"),
        (["node", "list", "extra", "--sim"], "takes no NODE"),
        (["node", "drain", "k3d-simple-app-cluster-agent-0", "--sim", "--timeout", "0"], "--timeout"),
        (["node", "stop", "k3d-simple-app-cluster-server-0", "--sim"], "give --yes"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
        assert len(err.strip().splitlines()) <= 2  # the error line (and at most a hint)


def test_watch_json_reports_node_changes(cluster: SimHandle, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    victim = f"k3d-{cluster.name}-agent-1"
    watch = subprocess.Popen([sys.executable, "-m", "k3dtui", "watch", "--sim", "--json", "--duration", "8"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        first = ""
        for _ in range(10):  # bounded: a `connected` event, then the first picture's pods
            first += watch.stdout.readline()
            if '"change": "added"' in first:
                break
        assert '"change": "added"' in first, first
        assert main(["node", "cordon", victim, "--sim"]) == 0
        rest, err = watch.communicate(timeout=30)
        out = first + rest
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    changes = [json.loads(line) for line in out.splitlines() if '"change": "node"' in line]
    assert changes, (out, err)
    last = [c for c in changes if c["node"] == victim][-1]
    assert set(last) >= {"change", "node", "ready", "unschedulable", "taints"}
    assert last["ready"] is True and last["unschedulable"] is True
    assert "node.kubernetes.io/unschedulable:NoSchedule" in last["taints"]


def announcer(handle: SimHandle) -> str:
    with handle.http() as http:
        items = http.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses").json()["items"]
    nodes = [str(s["status"]["node"]) for s in items
             if (s.get("status") or {}).get("serviceName") == APP.service and (s.get("status") or {}).get("node")]
    return nodes[0] if nodes else ""


def test_stopping_the_announcing_node_moves_the_announcement_and_new_connections_recover(
    cluster: SimHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    short_tolerations(cluster, 1)
    with cluster.http() as http:
        svc = http.get(f"/api/v1/namespaces/{APP.namespace}/services/{APP.service}").json()
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    stop = wait_for(lambda: announcer(cluster), 20.0, "an announcing node")

    def one_request() -> bool:
        host, port = cluster.provider.dial(ip, 80)
        try:
            return httpx.get(f"http://{host}:{port}/", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    assert all(one_request() for _ in range(10))
    # (the simulated API does not live on the server node, so any node can be stopped here)
    assert main(["node", "stop", stop, "--sim", "--yes"]) == 0
    moved = wait_for(lambda: (lambda n: n if n and n != stop else None)(announcer(cluster)), 60.0,
                     "the announcement to move")
    assert moved != stop
    wait_for(lambda: sum(1 for p in app_pods(cluster) if ready(p) and p["spec"]["nodeName"] != stop) == 3,
             60.0, "every replica Ready elsewhere")
    # after the gap, every new connection is answered (bounded: 30 requests)
    results = [one_request() for _ in range(30)]
    assert all(results), results
