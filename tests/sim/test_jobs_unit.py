"""The Job controller and the kubelet's process containers on a bare Store, with a fake
data plane the test drives (no processes, no API server)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers.jobs import format_indexes, parse_indexes
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import Store


class FakeProcesses:
    """A data plane that refuses the first start (the bound) and whose processes end when
    the test says so."""

    def __init__(self, refuse: int = 1) -> None:
        self.refuse = refuse
        self.started: list[tuple[str, list[str], dict[str, str], str]] = []
        self.ends: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def start_pod(self, uid: str, pod: str, node: str, app: str = "app") -> int:
        return 1

    async def stop_pod(self, uid: str) -> None:
        return None

    async def set_lb(self, key: str, backends: list[int], snat: dict[int, str] | None = None) -> int:
        return 1

    async def remove_lb(self, key: str) -> None:
        return None

    async def start_process(self, uid: str, argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("the simulated cluster runs at most 64 process containers at once")
        self.started.append((uid, argv, env, cwd))
        self.ends[uid] = asyncio.get_running_loop().create_future()
        return {"pid": 4242, "startedAt": "2026-01-01T00:00:00Z"}

    async def wait_process(self, uid: str) -> dict[str, Any]:
        return await self.ends[uid]

    async def stop_process(self, uid: str, grace: float) -> dict[str, Any]:
        self.exit(uid, 143)
        return await self.ends[uid]

    async def forget_process(self, uid: str) -> None:
        return None

    def exit(self, uid: str, code: int) -> None:
        fut = self.ends[uid]
        if not fut.done():
            fut.set_result({"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"})


async def settle(pred: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := pred()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)
    return value


def job(completions: int, parallelism: int) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "seq", "namespace": "default"},
            "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 0, "template": {
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "w", "image": "python:3.13-slim", "command": ["python3", "-c", "pass"],
                     "workingDir": "/work", "volumeMounts": [{"name": "scratch", "mountPath": "/work"}],
                     "env": [{"name": "GREETING", "value": "hi $(HOSTNAME)"}]}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}]}}}}


def job_pods(store: Store) -> list[dict[str, Any]]:
    return list(store.iter(gvrs.PODS, "default"))


def test_completed_indexes_format() -> None:
    assert format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert format_indexes(set()) == ""


async def test_refused_start_waits_with_an_event_then_jobs_run_one_at_a_time(tmp_path: Path) -> None:
    store = Store()
    runtime = FakeProcesses(refuse=1)
    cluster = SimCluster(store, "jobs", settings=SimSettings.fast(), runtime=runtime)
    cluster.kubelet.procs.root = tmp_path / "pods"
    cluster.start()
    registry.create(store, gvrs.JOBS, job(completions=2, parallelism=1))
    reasons: list[str] = []
    store.subscribe(lambda ev: reasons.extend(
        str(cs["state"]["waiting"]["reason"]) for cs in (ev.obj.get("status") or {}).get("containerStatuses") or []
        if ev.gvr == gvrs.PODS and "waiting" in (cs.get("state") or {})))
    await settle(lambda: runtime.started)
    assert "CreateContainerError" in reasons
    warnings = [e for e in store.iter(gvrs.EVENTS) if e["reason"] == "Failed" and e["type"] == "Warning"]
    assert warnings and "at most 64 process containers" in warnings[0]["message"]

    uid, argv, env, cwd = runtime.started[0]
    assert argv == [sys.executable, "-c", "pass"]  # python3: the simulator's own interpreter
    pod = next(p for p in store.iter(gvrs.PODS) if p["metadata"]["uid"] == uid)
    assert env["GREETING"] == f"hi {pod['metadata']['name']}" and env["HOSTNAME"] == pod["metadata"]["name"]
    assert cwd == str(tmp_path / "pods" / uid / "volumes" / "scratch")  # workingDir under an emptyDir mount
    assert len(job_pods(store)) == 1  # parallelism 1: one at a time
    runtime.exit(uid, 0)
    await settle(lambda: len(runtime.started) == 2)
    runtime.exit(runtime.started[1][0], 0)
    done = await settle(lambda: (j := store.peek(gvrs.JOBS, "default", "seq")) and any(
        c["type"] == "Complete" for c in j["status"].get("conditions") or []) and j)
    assert done["status"]["succeeded"] == 2 and "active" not in done["status"]
    assert [p["status"]["phase"] for p in job_pods(store)] == ["Succeeded", "Succeeded"]
    cluster.stop()


async def test_a_missing_configmap_holds_the_container_until_it_exists(tmp_path: Path) -> None:
    store = Store()
    runtime = FakeProcesses(refuse=0)
    cluster = SimCluster(store, "mount", settings=SimSettings.fast(), runtime=runtime)
    cluster.kubelet.procs.root = tmp_path / "pods"
    cluster.start()
    spec = job(completions=1, parallelism=1)
    container = spec["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "code", "mountPath": "/opt/code", "readOnly": True}]
    container["command"] = ["python", "-u", "/opt/code/worker.py"]
    container.pop("workingDir")
    spec["spec"]["template"]["spec"]["volumes"] = [{"name": "code", "configMap": {"name": "code"}}]
    registry.create(store, gvrs.JOBS, spec)
    await settle(lambda: any(e["reason"] == "FailedMount" for e in store.iter(gvrs.EVENTS)))
    event = next(e for e in store.iter(gvrs.EVENTS) if e["reason"] == "FailedMount")
    assert event["message"] == 'MountVolume.SetUp failed for volume "code" : configmap "code" not found'
    assert runtime.started == []
    store.create(gvrs.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "code", "namespace": "default"},
                                   "data": {"worker.py": "print('hi')\n"}})
    await settle(lambda: runtime.started, 5.0)
    uid, argv, _env, _cwd = runtime.started[0]
    script = tmp_path / "pods" / uid / "volumes" / "code" / "worker.py"
    assert argv == [sys.executable, "-u", str(script)]  # the mountPath in argv, rewritten
    assert script.read_text() == "print('hi')\n"
    assert oct(script.stat().st_mode & 0o777) == oct(0o444)  # a configMap volume is read-only
    cluster.stop()
