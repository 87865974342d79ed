"""`k3dtui load --in-cluster` end to end on the simulated cluster: a Job of worker pods that
run k3dtui's load worker for real, their figures merged per worker, and nothing left after
the run, also after a ctrl+c mid-run.

The simulated cluster runs such Jobs (python images as real processes, ConfigMap volumes,
pod logs) from the `simjob` work on; before it, these tests fail (the workers never start).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from k3dtui.core.incluster import LEFTOVER_SELECTOR


def _left(sim: Any) -> dict[str, list[str]]:
    """k3dtui's load objects still in the namespace: Jobs, pods, ConfigMaps."""
    out: dict[str, list[str]] = {}
    with sim.http() as client:
        for kind, path in (("jobs", "/apis/batch/v1/namespaces/default/jobs"),
                           ("pods", "/api/v1/namespaces/default/pods"),
                           ("configmaps", "/api/v1/namespaces/default/configmaps")):
            res = client.get(path, params={"labelSelector": LEFTOVER_SELECTOR})
            res.raise_for_status()
            out[kind] = [item["metadata"]["name"] for item in res.json()["items"]]
    return out


def _app_pods(sim: Any) -> dict[str, str]:
    with sim.http() as client:
        res = client.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=fastapi"})
        res.raise_for_status()
        return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in res.json()["items"]}


def _nodes(sim: Any) -> set[str]:
    with sim.http() as client:
        res = client.get("/api/v1/nodes")
        res.raise_for_status()
        return {n["metadata"]["name"] for n in res.json()["items"]}


def _cli(sim: Any, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "k3dtui", "load", "--sim", "--name", sim.name, "--in-cluster", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=dict(os.environ),
    )


def test_in_cluster_load_with_two_workers(sim_app: Any) -> None:
    proc = _cli(sim_app, "--workers", "2", "--duration", "3", "--concurrency", "4", "--new-connections", "--json")
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    data = json.loads(out)
    workers = data["per_worker"]
    assert len(workers) == 2, data
    nodes = _nodes(sim_app)
    for name, figures in workers.items():
        assert name.startswith("k3dtui-load-")
        assert figures["node"] in nodes
        assert figures["responses"] > 0 and figures["rps"] >= 0
    assert sum(w["responses"] for w in workers.values()) == sum(data["per_pod"].values())
    assert sum(w["requests"] for w in workers.values()) == data["requests"]
    pods = _app_pods(sim_app)
    assert set(data["per_pod"]) == set(pods)  # every app pod listed; new connections reach each
    assert sum(1 for n in data["per_pod"].values() if n > 0) >= 2
    expected_nodes: dict[str, int] = {}
    for pod, n in data["per_pod"].items():
        expected_nodes[pods[pod]] = expected_nodes.get(pods[pod], 0) + n
    assert {k: v for k, v in data["per_node"].items() if v} == {k: v for k, v in expected_nodes.items() if v}
    assert data["identity_missing"] is None
    assert data["latency_ms"]["p50"] is not None
    assert "Job k3dtui-load-" in err
    assert _left(sim_app) == {"jobs": [], "pods": [], "configmaps": []}


def test_ctrl_c_mid_run_leaves_nothing(sim_app: Any) -> None:
    proc = _cli(sim_app, "--workers", "2", "--duration", "60", "--concurrency", "2", "--json")
    err_lines: list[str] = []
    running = threading.Event()

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            if "load runs inside the cluster" in line:
                running.set()

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    try:
        assert running.wait(90), "".join(err_lines)
        # while it runs: the ConfigMap is owned by the Job, and the Job has its two pods
        with sim_app.http() as client:
            cms = client.get("/api/v1/namespaces/default/configmaps",
                             params={"labelSelector": LEFTOVER_SELECTOR}).json()["items"]
            jobs = client.get("/apis/batch/v1/namespaces/default/jobs",
                              params={"labelSelector": LEFTOVER_SELECTOR}).json()["items"]
        assert len(cms) == 1 and len(jobs) == 1
        [owner] = cms[0]["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", jobs[0]["metadata"]["name"],
                                                                jobs[0]["metadata"]["uid"])
        time.sleep(2.0)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait(timeout=60)
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(err_lines)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    data = json.loads(out)
    assert len(data["per_worker"]) == 2
    assert data["requests"] > 0 and data["duration_s"] < 50
    assert _left(sim_app) == {"jobs": [], "pods": [], "configmaps": []}


def test_a_killed_runs_job_is_deleted_by_the_next_start(sim_app: Any) -> None:
    """k3dtui killed (SIGKILL: no cleanup) mid-run: the next in-cluster start deletes its Job
    and ConfigMap (its pid is gone), and that run leaves nothing either."""
    proc = _cli(sim_app, "--workers", "1", "--duration", "60", "--concurrency", "1", "--json")
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "load runs inside the cluster" in line:
                break
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = _left(sim_app)
    assert len(left["jobs"]) == 1 and len(left["configmaps"]) == 1
    killed = left["jobs"][0]
    again = _cli(sim_app, "--workers", "1", "--duration", "1", "--json")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"deleted what an earlier run left: job/{killed}, configmap/{killed}" in err
    assert len(json.loads(out)["per_worker"]) == 1
    deadline = time.monotonic() + 20  # the killed run's pods go with its Job (garbage collector)
    while _left(sim_app)["pods"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _left(sim_app) == {"jobs": [], "pods": [], "configmaps": []}


async def test_live_view_runs_the_load_inside_the_cluster(sim_app: Any) -> None:
    """w then l on the live view (the real backend): the load runs as a Job, the panel shows
    its workers, and l stops it leaving nothing."""
    from k3dtui.ui.app import K3dtuiApp
    from k3dtui.ui.backend import CoreBackend
    from k3dtui.ui.widgets.load import LoadPanel
    from k3dtui.ui.widgets.text import TextLine
    from tests.ui.test_behaviour import _sim_live
    from tests.ui.test_sim import wait_until

    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    app = K3dtuiApp(backend, detect=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _sim_live(pilot, app)
            await pilot.press("w")
            await wait_until(pilot, lambda: screen.in_cluster, 5, "the in-cluster switch")
            await pilot.press("l")
            await wait_until(pilot, lambda: screen.load is not None and screen.load.running
                             and len(screen.load.per_worker) == 2 and screen.load.responses > 0,
                             60, "two workers' counts")
            assert len(_left(sim_app)["jobs"]) == 1
            panel = screen.query_one(LoadPanel)
            await wait_until(pilot, lambda: "workers (2)" in str(panel.query_one("#load-nodes", TextLine).render()),
                             5, "the worker rows")
            assert set(screen.load.per_pod) <= set(_app_pods(sim_app))
            await pilot.press("l")
            await wait_until(pilot, lambda: screen.load is not None and not screen.load.running, 30, "the load to stop")
            await wait_until(pilot, lambda: _left(sim_app) == {"jobs": [], "pods": [], "configmaps": []}, 30,
                             "no Job, pod or ConfigMap left")
            assert not app.failures
    finally:
        backend.close()
    assert _left(sim_app) == {"jobs": [], "pods": [], "configmaps": []}
