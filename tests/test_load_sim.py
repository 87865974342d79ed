"""The load generator against the simulated cluster: the Service found through the provider,
per-pod and per-node counts that match the cluster, and a pod killed while load runs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from kubernetes import client

from k3dtui.cli import main
from k3dtui.commands.load import discover_url
from k3dtui.core.load import LoadGenerator
from k3dtui.core.models import LoadSettings, LoadSnapshot


def app_pods(handle: Any) -> dict[str, str]:
    """Running, not deleting app pods → their node."""
    with handle.api_client() as api:
        pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=fastapi").items
    return {
        p.metadata.name: p.spec.node_name
        for p in pods
        if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    }


def test_cli_finds_the_service_and_counts_every_pod(capsys: pytest.CaptureFixture[str], sim_app: Any) -> None:
    pods = app_pods(sim_app)
    assert len(pods) == 3
    code = main(["load", "--sim", "--name", sim_app.name, "--new-connections",
                 "--requests", "300", "--concurrency", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["requests"] == 300 and data["status"] == {"200": 300}
    assert set(data["per_pod"]) == set(pods)
    expected_nodes: dict[str, int] = {}
    for pod, n in data["per_pod"].items():
        expected_nodes[pods[pod]] = expected_nodes.get(pods[pod], 0) + n
    assert data["per_node"] == expected_nodes


def test_keep_alive_single_connection_stays_on_one_pod(sim_app: Any) -> None:
    url = asyncio.run(discover_url(sim_app.name, True))
    with LoadGenerator(LoadSettings(url=url, mode="keep-alive", concurrency=1, duration=None, requests=200)) as gen:
        gen.start()
        snap = gen.wait(30)
    assert snap.responses == 200
    assert len(snap.per_pod) == 1 and set(snap.per_pod) <= set(app_pods(sim_app))


def _wait(gen: LoadGenerator, cond: Any, timeout: float = 20.0) -> LoadSnapshot:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = gen.latest()
        if cond(snap):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout} s: {gen.latest()}")


def test_killed_pod_stops_growing_and_its_replacement_gets_responses(sim_app: Any) -> None:
    before = app_pods(sim_app)
    url = asyncio.run(discover_url(sim_app.name, True))
    settings = LoadSettings(url=url, mode="new-connection", concurrency=4, rate=300.0, duration=30, timeout=1.0)
    with LoadGenerator(settings) as gen:
        gen.start()
        _wait(gen, lambda s: set(before) <= set(s.per_pod))
        victim = sorted(before)[0]
        with sim_app.api_client() as api:
            client.CoreV1Api(api).delete_namespaced_pod(victim, "default", grace_period_seconds=0)
        gen.mark_gone([victim])
        _wait(gen, lambda s: any(p not in before for p in s.per_pod), timeout=30)
        time.sleep(0.3)  # let requests in flight at the kill finish
        frozen = gen.latest().per_pod[victim]
        time.sleep(0.5)
        later = gen.latest()
        assert gen.running
        gen.stop()
    assert later.per_pod[victim] == frozen  # the killed pod's count stopped growing
    assert victim in later.gone_pods
    newcomers = [p for p in later.per_pod if p not in before]
    assert newcomers and all(later.per_pod[p] > 0 for p in newcomers)
    assert later.responses > 0
