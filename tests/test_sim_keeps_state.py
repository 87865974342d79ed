"""The simulated cluster keeps its state: after a crash (SIGKILL) `sim start` brings back
the same cluster (the same Deployment, Service, pool, external IP and counts of objects; pods
restarted; a watch from before gets 410); `sim stop` then `sim start` is a restart; `down`
forgets it."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from k3dtui.core.errors import EXIT_FAILED, EXIT_STOPPED

ROOT = Path(__file__).resolve().parents[1]
NAME = "keep"
KINDS = {
    "deployments": "/apis/apps/v1/deployments", "replicasets": "/apis/apps/v1/replicasets",
    "pods": "/api/v1/pods", "services": "/api/v1/services", "configmaps": "/api/v1/configmaps",
    "namespaces": "/api/v1/namespaces", "nodes": "/api/v1/nodes",
    "crds": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "pools": "/apis/metallb.io/v1beta1/ipaddresspools",
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = {**os.environ, "K3DTUI_STATE_DIR": str(tmp_path / "state"), "K3DTUI_CACHE_DIR": str(tmp_path / "cache"),
         "PYTHONPATH": str(ROOT)}
    yield e
    subprocess.run([sys.executable, "-m", "k3dtui", "--sim", "down", "--yes", "--name", NAME], env=e,
                   capture_output=True, timeout=60, check=False)


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k3dtui", "--sim", *argv, "--name", NAME], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def folder(env: dict[str, str]) -> Path:
    return Path(env["K3DTUI_STATE_DIR"]) / "sim" / NAME


def api(env: dict[str, str]) -> httpx.Client:
    cfg = yaml.safe_load((folder(env) / "kubeconfig.yaml").read_text())
    ctx = ssl.create_default_context(cafile=str(folder(env) / "ca.crt"))
    return httpx.Client(base_url=cfg["clusters"][0]["cluster"]["server"], verify=ctx, timeout=10,
                        headers={"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"})


def picture(env: dict[str, str]) -> dict[str, Any]:
    with api(env) as http:
        lists = {k: http.get(path).json() for k, path in KINDS.items()}
        dep = http.get("/apis/apps/v1/namespaces/default/deployments/fastapi-app").json()
        svc = http.get("/api/v1/namespaces/default/services/fastapi-service").json()
        pool = http.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/first-pool").json()
    return {
        "counts": {k: len(v["items"]) for k, v in lists.items()},
        "rv": int(lists["pods"]["metadata"]["resourceVersion"]),
        "deployment": (dep["metadata"]["uid"], dep["spec"]["replicas"]),
        "service": (svc["metadata"]["uid"], svc["status"]["loadBalancer"]["ingress"][0]["ip"]),
        "pool": (pool["metadata"]["uid"], pool["spec"]["addresses"]),
        "pods": sorted((p["metadata"]["name"], p["metadata"]["uid"], p["status"].get("podIP"))
                       for p in lists["pods"]["items"] if p["metadata"]["namespace"] == "default"),
    }


def wait_gone(pid: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not exit")


def settled(env: dict[str, str], timeout: float = 20) -> None:
    """Every app pod Running and ready again."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with api(env) as http:
            pods = http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=fastapi"}).json()["items"]
        if pods and all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                        for p in pods):
            return
        time.sleep(0.2)
    raise AssertionError("the app's pods did not become ready again")


def test_crash_then_sim_start_brings_back_the_same_cluster(env: dict[str, str]) -> None:
    assert cli(env, "up", "--replicas", "4").returncode == 0
    time.sleep(1.0)  # a save after the last change (the keeper saves every 0.5 s)
    before = picture(env)
    pid = int((folder(env) / "pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    # status: the cluster exists, stopped with its state kept (not "absent"), and the fix
    status = cli(env, "status")
    assert status.returncode == EXIT_STOPPED, status.stdout + status.stderr
    assert f"cluster {NAME} (sim, " in status.stdout and "): stopped" in status.stdout
    assert "the cluster exists but is stopped" in status.stdout
    assert f"`k3dtui --sim sim start --name {NAME}`" in status.stdout
    assert f"`k3dtui --sim up --name {NAME}`" in status.stdout
    as_json = cli(env, "status", "--json")
    assert as_json.returncode == EXIT_STOPPED
    data = json.loads(as_json.stdout)
    assert data["stage"] == "stopped" and str(folder(env) / "cluster.json") in data["fix"]
    start = cli(env, "sim", "start")
    assert start.returncode == 0, start.stderr
    assert "again from its kept state" in start.stderr
    settled(env)
    after = picture(env)
    for key in ("deployment", "service", "pool", "pods"):
        assert after[key] == before[key], key
    assert after["counts"] == before["counts"]
    assert after["rv"] > before["rv"]  # the counter goes on (the pods' restarts are changes)
    with api(env) as http:
        pods = http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=fastapi"}).json()["items"]
        assert all(p["status"]["containerStatuses"][0]["restartCount"] == 1 for p in pods)
        # a watch from before the crash is beyond the kept window: 410, list again
        gone = http.get("/api/v1/namespaces/default/pods",
                        params={"watch": "true", "resourceVersion": str(before["rv"] - 5), "timeoutSeconds": "1"})
        assert gone.status_code == 200 and '"code":410' in gone.text.replace(" ", "")
    # the app answers behind the same external IP (a new loopback listener for it)
    lb = json.loads((folder(env) / "lb.json").read_text())
    target = lb[f"{after['service'][1]}:80"]
    assert httpx.get(f"http://{target}/", timeout=5).json()["pod"] in {p[0] for p in after["pods"]}


def test_sim_stop_then_start_is_a_restart_and_down_forgets(env: dict[str, str]) -> None:
    assert cli(env, "up").returncode == 0
    time.sleep(1.0)
    before = picture(env)
    stop = cli(env, "sim", "stop")
    assert stop.returncode == 0 and "its state is kept" in stop.stdout
    status = cli(env, "status")
    assert status.returncode == EXIT_STOPPED and "): stopped" in status.stdout
    assert cli(env, "sim", "start").returncode == 0
    settled(env)
    after = picture(env)
    assert (after["deployment"], after["service"], after["pool"], after["counts"]) == (
        before["deployment"], before["service"], before["pool"], before["counts"])
    assert cli(env, "down", "--yes").returncode == 0
    assert not (folder(env) / "cluster.json").exists()
    gone = cli(env, "status")
    assert gone.returncode == EXIT_FAILED and "): absent" in gone.stdout  # nothing kept: absent
    assert cli(env, "sim", "start").returncode == 0
    with api(env) as http:
        assert http.get("/apis/apps/v1/namespaces/default/deployments/fastapi-app").status_code == 404
