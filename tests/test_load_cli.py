"""`k3dtui load`: JSON shape and values, the table, bad input, and finding the Service's address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loadservers import ServerThread, closed_port

from k3dtui.cli import main
from k3dtui.core.provider import ClusterInfo, Reachability
from k3dtui.sim import gvrs
from k3dtui.sim.testing import run_api_in_thread

PODS = {"pod-a": "node-1", "pod-b": "node-2", "pod-c": "node-1"}
JSON_KEYS = {"mode", "duration_s", "requests", "errors", "status", "rps", "latency_ms", "per_pod", "per_node",
             "announcing_node", "cross_node_share", "paths", "client_addrs", "identity_missing", "per_worker"}


@pytest.fixture(scope="module")
def servers() -> Iterator[ServerThread]:
    st = ServerThread()
    try:
        yield st
    finally:
        st.close()


@pytest.fixture(scope="module")
def relay_port(servers: ServerThread) -> int:
    return servers.relay([servers.app(pod, node) for pod, node in PODS.items()])


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["load", *argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


def test_json_shape_and_values_new_connections(capsys: pytest.CaptureFixture[str], relay_port: int) -> None:
    data = run_json(
        capsys, "--url", f"http://127.0.0.1:{relay_port}/", "--requests", "300",
        "--concurrency", "4", "--new-connections",
    )
    assert set(data) == JSON_KEYS
    assert data["mode"] == "new-connection"
    assert data["requests"] == 300
    assert data["status"] == {"200": 300}
    assert data["errors"] == {"refused": 0, "reset": 0, "timeout": 0, "other": 0}
    assert set(data["per_pod"]) == set(PODS) and sum(data["per_pod"].values()) == 300
    assert data["per_node"] == {
        "node-1": data["per_pod"]["pod-a"] + data["per_pod"]["pod-c"],
        "node-2": data["per_pod"]["pod-b"],
    }
    assert set(data["latency_ms"]) == {"p50", "p95", "p99"}
    assert 0 < data["latency_ms"]["p50"] <= data["latency_ms"]["p99"]
    # --url: no cluster, so no announcer; every response counted on an unknown entry
    assert data["announcing_node"] is None and data["cross_node_share"] is None
    assert data["paths"] == {"": data["per_node"]}
    assert data["duration_s"] > 0
    assert data["rps"] == pytest.approx(300 / data["duration_s"], rel=0.01)


def test_duration_run_in_keep_alive_mode(capsys: pytest.CaptureFixture[str], relay_port: int) -> None:
    data = run_json(capsys, "--url", f"http://127.0.0.1:{relay_port}/", "--duration", "0.5", "--concurrency", "1")
    assert data["mode"] == "keep-alive"
    assert 0.45 <= data["duration_s"] <= 1.5
    assert data["requests"] > 0
    assert len(data["per_pod"]) == 1  # one kept connection: one pod


def test_target_without_x_pod_counts_as_unknown(capsys: pytest.CaptureFixture[str], servers: ServerThread) -> None:
    port = servers.plain()  # no X-Pod/X-Node; chunked and fixed-length bodies alternate
    data = run_json(capsys, "--url", f"http://127.0.0.1:{port}/", "--requests", "50", "--concurrency", "2")
    assert data["per_pod"] == {"unknown": 50}
    assert data["per_node"] == {"unknown": 50}
    assert data["status"] == {"200": 50}


def test_table_shows_pods_nodes_shares_and_the_keep_alive_note(
    capsys: pytest.CaptureFixture[str], relay_port: int
) -> None:
    code = main(["load", "--url", f"http://127.0.0.1:{relay_port}/", "--requests", "200", "--concurrency", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "200 requests: 200 responses, 0 errors" in out
    assert "latency ms: p50" in out
    lines = out.splitlines()
    pod_rows = [ln for ln in lines if ln.strip().startswith("pod-")]
    assert 1 <= len(pod_rows) <= 2
    shares = [float(ln.split()[-1].rstrip("%")) for ln in pod_rows]
    assert sum(shares) == pytest.approx(100.0, abs=0.2)
    assert any(ln.strip().startswith("node-") for ln in lines)
    assert "--new-connections" in out  # the keep-alive note


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--concurrency", "-1"], "--concurrency must be greater than 0"),
        (["--concurrency", "0"], "--concurrency must be greater than 0"),
        (["--duration", "-5"], "--duration must be greater than 0"),
        (["--duration", "abc"], "--duration must be a number"),
        (["--requests", "1.5"], "--requests must be a whole number"),
        (["--duration", "1", "--requests", "5"], "either --duration or --requests"),
        (["--rate", "0"], "--rate must be greater than 0"),
        (["--url", "not a url"], "must start with http://"),
        (["--url", "http://[::1"], "malformed URL"),
        (["--url", "https://127.0.0.1/"], "https is not supported"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    if "--url" not in argv:
        argv = [*argv, "--url", "http://127.0.0.1:9/"]
    code = main(["load", *argv])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], captured.err


def test_unreachable_target_fails_fast(capsys: pytest.CaptureFixture[str]) -> None:
    sock, port = closed_port()
    with sock:
        code = main(["load", "--url", f"http://127.0.0.1:{port}/", "--duration", "30"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot connect to http://127.0.0.1:{port}/" in err and "refused" in err
    assert "Traceback" not in err


# --- finding the Service through the provider ---
class FakeProvider:
    kind = "sim"

    def __init__(self, name: str, kubeconfig: Path | None, dial_to: int) -> None:
        self.name = name
        self._kubeconfig = kubeconfig
        self._dial_to = dial_to
        self.dialed: list[tuple[str, int]] = []

    @property
    def context(self) -> str:
        return f"k3d-{self.name}"

    async def find(self) -> ClusterInfo | None:
        if self._kubeconfig is None:
            return None
        return ClusterInfo(self.name, 1, 2, 1, 2)

    async def kubeconfig(self) -> Path:
        assert self._kubeconfig is not None
        return self._kubeconfig

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        self.dialed.append((ip, port))
        return "127.0.0.1", self._dial_to

    def reachability(self) -> Reachability:  # `load` asks before it runs
        return Reachability(True, "the relay listens on 127.0.0.1")


def service(ingress: list[dict[str, str]] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fastapi-service", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "fastapi"},
                 "ports": [{"port": 80, "targetPort": 3000, "protocol": "TCP"}]},
    }
    if ingress is not None:
        obj["status"] = {"loadBalancer": {"ingress": ingress}}
    return obj


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    thread = run_api_in_thread(tmp_path)
    try:
        yield thread
    finally:
        thread.stop()


def use_provider(monkeypatch: pytest.MonkeyPatch, provider: FakeProvider) -> list[tuple[str, bool]]:
    calls: list[tuple[str, bool]] = []

    def select(name: str, force_sim: bool) -> tuple[FakeProvider, str]:
        calls.append((name, force_sim))
        return provider, "test provider"

    monkeypatch.setattr("k3dtui.providers.select_provider", select)
    return calls


def test_without_url_it_finds_the_service_external_ip_and_dials_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: Any, relay_port: int
) -> None:
    api.call(lambda: api.store.create(gvrs.SERVICES, service([{"ip": "172.20.255.200"}])))
    provider = FakeProvider("demo", api.kubeconfig, relay_port)
    calls = use_provider(monkeypatch, provider)
    data = run_json(capsys, "--sim", "--name", "demo", "--requests", "120", "--new-connections")
    assert calls == [("demo", True)]
    assert provider.dialed == [("172.20.255.200", 80)]
    assert data["requests"] == 120 and set(data["per_pod"]) <= set(PODS)


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        (service(None), "has no external IP yet"),
        (service([]), "has no external IP yet"),
        (None, "the app is not deployed"),
    ],
)
def test_without_url_missing_service_or_ip_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: Any,
    obj: dict[str, Any] | None, needle: str,
) -> None:
    if obj is not None:
        api.call(lambda: api.store.create(gvrs.SERVICES, obj))
    use_provider(monkeypatch, FakeProvider("demo", api.kubeconfig, 9))
    code = main(["load", "--sim", "--name", "demo", "--requests", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert needle in err and "Traceback" not in err
    assert "k3dtui up" in err


def test_without_url_and_without_cluster(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    use_provider(monkeypatch, FakeProvider("nope", None, 9))
    code = main(["load", "--sim", "--name", "nope"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no sim cluster named 'nope'" in err
    assert "k3dtui up --sim --name nope" in err


def test_live_progress_line_on_a_terminal(relay_port: int) -> None:
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "k3dtui", "load", "--url", f"http://127.0.0.1:{relay_port}/",
             "--duration", "1.2", "--concurrency", "2", "--rate", "200"],
            stdout=subprocess.PIPE, stderr=slave, text=True,
        )
        os.close(slave)
        slave = -1
        out, _ = proc.communicate(timeout=60)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert "req/s" in err and "\r" in err  # redrawn in place
    assert "/1.2 s" in err
    assert "requests:" in out and "req/s" in out  # the table goes to stdout


def test_ctrl_c_stops_the_run_and_still_reports(relay_port: int) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "k3dtui", "load", "--url", f"http://127.0.0.1:{relay_port}/",
         "--duration", "30", "--concurrency", "2", "--rate", "200", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        time.sleep(2.5)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["requests"] > 0 and data["duration_s"] < 29
    assert "Traceback" not in err
