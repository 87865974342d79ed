"""Fault tests: the simulated cluster's daemon is killed with SIGKILL under `watch` and under
`load`; `up` brings it back (its kept state, on a new port with a new token and CA): `watch`
reconnects within 10 s, saying it is a new API server, and `load` follows the Service's new
dial address; without a cluster coming back `watch` gives up after --reconnect-within (exit 5)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = {**os.environ, "K3DTUI_STATE_DIR": str(tmp_path / "state"), "K3DTUI_CACHE_DIR": str(tmp_path / "cache"),
         "PYTHONPATH": str(ROOT)}
    yield e
    subprocess.run([sys.executable, "-m", "k3dtui", "--sim", "down", "--yes", "--name", "fault"], env=e,
                   capture_output=True, timeout=60, check=False)


def cli(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k3dtui", "--sim", *argv, "--name", "fault"], env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def daemon_pids(env: dict[str, str]) -> tuple[int, int]:
    state = json.loads((Path(env["K3DTUI_STATE_DIR"]) / "sim" / "fault" / "state.json").read_text())
    return int(state["pid"]), int(state["dataplane_pid"])


class Lines:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        for line in proc.stdout or []:
            self.q.put(json.loads(line))

    def until(self, pred: Any, timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                item = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return None
            self.seen.append(item)
            if pred(item):
                return item
        return None


def test_watch_reconnects_to_the_cluster_up_brings_back_after_a_kill_9(env: dict[str, str]) -> None:
    assert cli(env, "up").returncode == 0
    watch = subprocess.Popen([sys.executable, "-m", "k3dtui", "--sim", "watch", "--name", "fault", "--json",
                              "--duration", "90", "--reconnect-within", "80"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(watch)
    try:
        first = lines.until(lambda e: e.get("event") == "connected", 15)
        assert first is not None and first["server"].startswith("https://127.0.0.1:") and "new_server" not in first
        assert lines.until(lambda e: e.get("change") == "added", 10) is not None
        lines.until(lambda e: False, 1.0)  # the rest of the first picture
        old_pods = {e["pod"] for e in lines.seen if e.get("change") == "added"}
        pid, _ = daemon_pids(env)
        os.kill(pid, signal.SIGKILL)  # the simulated cluster crashes
        assert lines.until(lambda e: e.get("event") == "disconnected", 10) is not None
        up = cli(env, "up")
        assert up.returncode == 0, up.stderr
        done = time.monotonic()
        back = lines.until(lambda e: e.get("event") == "connected", 10)
        assert back is not None, lines.seen
        assert time.monotonic() - done < 10
        assert back.get("new_server") is True and back["server"] != first["server"]
        # the cluster came back with its kept state: the same pods, their containers restarted
        # (their lines may come as each kind lists, before "connected")
        restarted = lines.until(lambda e: e.get("change") == "changed" and e["pod"] in old_pods
                                and e.get("ready") == "1/1", 10)
        assert restarted is not None or any(e.get("change") == "changed" for e in lines.seen), lines.seen
        assert not [e for e in lines.seen if e.get("change") == "deleted"], lines.seen
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=20)
    assert watch.returncode == 0
    assert "Traceback" not in (watch.stderr.read() if watch.stderr else "")


def test_watch_gives_up_when_nothing_comes_back(env: dict[str, str]) -> None:
    assert cli(env, "up").returncode == 0
    watch = subprocess.Popen([sys.executable, "-m", "k3dtui", "--sim", "watch", "--name", "fault", "--json",
                              "--reconnect-within", "2"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(watch)
    try:
        assert lines.until(lambda e: e.get("event") == "connected", 15) is not None
        pid, _ = daemon_pids(env)
        os.kill(pid, signal.SIGKILL)
        gave_up = lines.until(lambda e: e.get("event") == "gave-up", 15)
        assert gave_up is not None, lines.seen
        assert watch.wait(timeout=15) == 5
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()


def test_load_follows_the_service_to_the_cluster_up_brings_back(env: dict[str, str]) -> None:
    assert cli(env, "up").returncode == 0
    load = subprocess.Popen([sys.executable, "-m", "k3dtui", "--sim", "load", "--name", "fault", "--json",
                             "--duration", "40", "--new-connections", "--concurrency", "2", "--rate", "100",
                             "--max-error-share", "100"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in load.stderr or []], daemon=True).start()
    try:
        time.sleep(3)
        pid, _ = daemon_pids(env)
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        up = cli(env, "up")
        assert up.returncode == 0, up.stderr
        done = time.monotonic()
        followed = None
        while time.monotonic() - done < 10 and followed is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if "the Service moved" in line:
                followed = line
        assert followed is not None, "load did not follow the Service within 10 s"
        out, _ = load.communicate(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    result = json.loads(out)
    assert result["errors"]["refused"] > 0  # the time the cluster was away
    assert sum(result["per_pod"].values()) == result["requests"] - sum(result["errors"].values())
    assert load.returncode == 0, (json.dumps(result), followed)
