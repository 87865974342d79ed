"""The load generator against real app servers behind a per-connection random relay.

Three uvicorn servers of app/main.py (pod-a and pod-c on node-1, pod-b on node-2) sit behind
a relay that picks a backend at random for each accepted connection, as a Service does.
Every run is bounded (a request count or a short duration) and stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import psutil
import pytest
from loadservers import ServerThread, closed_port

from k3dtui.core.errors import UsageError
from k3dtui.core.load import LoadGenerator, validate_settings
from k3dtui.core.loadworker import (
    HttpConnection,
    bucket_of,
    bucket_value_ms,
    classify,
    parse_url,
    percentiles,
)
from k3dtui.core.models import LoadSettings, LoadSnapshot

PODS = {"pod-a": "node-1", "pod-b": "node-2", "pod-c": "node-1"}


@pytest.fixture(scope="module")
def servers() -> Iterator[ServerThread]:
    st = ServerThread()
    try:
        yield st
    finally:
        st.close()


@pytest.fixture(scope="module")
def relay_url(servers: ServerThread) -> str:
    ports = [servers.app(pod, node) for pod, node in PODS.items()]
    return f"http://127.0.0.1:{servers.relay(ports)}/"


def run(settings: LoadSettings, timeout: float = 30.0) -> LoadSnapshot:
    with LoadGenerator(settings) as gen:
        gen.start()
        snap = gen.wait(timeout)
        assert not gen.running, "the run did not end by itself"
    return snap


def wait_for(gen: LoadGenerator, cond, timeout: float = 15.0) -> LoadSnapshot:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = gen.latest()
        if cond(snap):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s; last snapshot {gen.latest()}")


# --- balancing ---
def test_new_connection_spreads_requests_over_every_pod(relay_url: str) -> None:
    snap = run(LoadSettings(url=relay_url, mode="new-connection", concurrency=8, duration=None, requests=600))
    assert snap.finished_reason == "requests"
    assert snap.requests == 600 and snap.responses == 600
    assert snap.status == {200: 600}
    assert snap.errors == {}
    assert set(snap.per_pod) == set(PODS)
    for pod, n in snap.per_pod.items():
        # a fair share is 200 of 600 (sd ~12): well inside 120..280
        assert 120 <= n <= 280, (pod, snap.per_pod)
    assert snap.per_node == {
        "node-1": snap.per_pod["pod-a"] + snap.per_pod["pod-c"],
        "node-2": snap.per_pod["pod-b"],
    }
    assert set(snap.latency_ms_total) == {"p50", "p95", "p99"}
    assert 0 < snap.latency_ms_total["p50"] <= snap.latency_ms_total["p95"] <= snap.latency_ms_total["p99"]


def test_keep_alive_with_one_connection_lands_on_exactly_one_pod(relay_url: str) -> None:
    snap = run(LoadSettings(url=relay_url, mode="keep-alive", concurrency=1, duration=None, requests=300))
    assert snap.requests == 300 and snap.responses == 300
    assert len(snap.per_pod) == 1, snap.per_pod
    (pod, n), = snap.per_pod.items()
    assert n == 300
    assert snap.per_node == {PODS[pod]: 300}


def test_keep_alive_pool_uses_at_most_its_connections(relay_url: str) -> None:
    for _ in range(3):
        snap = run(LoadSettings(url=relay_url, mode="keep-alive", concurrency=2, duration=None, requests=200))
        assert snap.responses == 200
        assert 1 <= len(snap.per_pod) <= 2


# --- bounds ---
def test_request_count_is_exact_with_high_concurrency(relay_url: str) -> None:
    snap = run(LoadSettings(url=relay_url, mode="keep-alive", concurrency=64, duration=None, requests=777))
    assert (snap.requests, snap.responses, sum(snap.per_pod.values())) == (777, 777, 777)
    assert snap.finished_reason == "requests"


def test_duration_bound_stops_by_itself(relay_url: str) -> None:
    with LoadGenerator(LoadSettings(url=relay_url, mode="keep-alive", concurrency=4, duration=0.8)) as gen:
        started = time.monotonic()
        gen.start()
        pid = gen.worker_pid
        snap = gen.wait(20)
        assert not gen.running
        assert snap.finished_reason == "duration"
        assert 0.75 <= snap.elapsed <= 1.6
        assert snap.responses > 0
        # one rps value per tick (~10 a second) for a sparkline, and windowed percentiles
        assert 5 <= len(snap.rps_history) <= 20 and max(snap.rps_history) > 0
        assert set(snap.latency_ms) == {"p50", "p95", "p99"}
        assert time.monotonic() - started < 15
    assert pid is not None and not psutil.pid_exists(pid)  # joined, not left behind


def test_rate_limit_is_honoured(relay_url: str) -> None:
    snap = run(LoadSettings(url=relay_url, mode="keep-alive", concurrency=8, rate=150.0, duration=1.5))
    rate = snap.requests / snap.elapsed
    assert 100 <= rate <= 190, (snap.requests, snap.elapsed)


def test_unbounded_or_bad_settings_are_refused() -> None:
    url = "http://127.0.0.1:9/"
    with pytest.raises(UsageError, match="bounded"):
        LoadGenerator(LoadSettings(url=url, duration=None, requests=None))
    with pytest.raises(UsageError, match="concurrency"):
        LoadGenerator(LoadSettings(url=url, concurrency=0))
    with pytest.raises(UsageError, match="concurrency"):
        validate_settings(LoadSettings(url=url, concurrency=-3))
    with pytest.raises(UsageError, match="duration"):
        validate_settings(LoadSettings(url=url, duration=-1))
    with pytest.raises(UsageError, match="rate"):
        validate_settings(LoadSettings(url=url, rate=0))
    with pytest.raises(UsageError, match="http://"):
        validate_settings(LoadSettings(url="ftp://x/"))
    gen = LoadGenerator(LoadSettings(url=""))
    with pytest.raises(UsageError, match="URL"):
        gen.start()
    with pytest.raises(UsageError, match="unknown load setting"):
        gen.update(colour="red")
    with pytest.raises(UsageError, match="bounded"):
        gen.update(duration=None)
    assert not gen.running


# --- errors by kind ---
def test_refused_connections_are_counted() -> None:
    sock, port = closed_port()
    with sock:
        snap = run(LoadSettings(url=f"http://127.0.0.1:{port}/", concurrency=2, duration=None, requests=20))
    assert snap.requests == 20 and snap.responses == 0
    assert snap.errors == {"refused": 20}


def test_timeouts_are_counted(servers: ServerThread) -> None:
    port = servers.silent()
    started = time.monotonic()
    snap = run(
        LoadSettings(url=f"http://127.0.0.1:{port}/", mode="keep-alive", concurrency=4, timeout=0.3, duration=None, requests=8)
    )
    assert snap.errors == {"timeout": 8}
    assert snap.responses == 0
    # 8 requests, 4 at a time, 0.3 s each: about 0.6 s plus spawning
    assert time.monotonic() - started < 10


def test_resets_are_counted(servers: ServerThread) -> None:
    port = servers.closing()
    snap = run(LoadSettings(url=f"http://127.0.0.1:{port}/", concurrency=2, duration=None, requests=10))
    assert snap.errors == {"reset": 10}
    assert snap.responses == 0


def test_killed_backend_moves_connections_to_survivors(servers: ServerThread) -> None:
    live = servers.app("pod-live", "node-9")
    sock, dead = closed_port()
    with sock:
        port = servers.relay([live, dead], seed=3)
        snap = run(LoadSettings(url=f"http://127.0.0.1:{port}/", mode="keep-alive", concurrency=4, duration=None, requests=200))
    # the relay drops connections to the dead backend: counted as resets, then retried elsewhere
    assert snap.requests == 200
    assert set(snap.per_pod) == {"pod-live"}
    assert snap.responses + snap.errors.get("reset", 0) == 200
    assert snap.responses >= 150


# --- live changes ---
def test_reset_zeroes_the_counts_while_running(relay_url: str) -> None:
    with LoadGenerator(LoadSettings(url=relay_url, mode="keep-alive", concurrency=2, rate=400.0, duration=8)) as gen:
        gen.start()
        before = wait_for(gen, lambda s: s.requests >= 200)
        gen.reset()
        assert gen.latest().requests == 0  # at once, on the caller's side
        after = wait_for(gen, lambda s: s.requests > 0)
        assert after.requests < before.requests
        assert gen.running
        gen.stop()
        final = gen.latest()
    assert final.finished_reason == "stopped"
    assert not final.running and final.elapsed < 8


def test_update_mode_and_concurrency_while_running(relay_url: str) -> None:
    settings = LoadSettings(url=relay_url, mode="keep-alive", concurrency=1, duration=15)
    with LoadGenerator(settings) as gen:
        gen.start()
        first = wait_for(gen, lambda s: s.responses >= 100)
        assert len(first.per_pod) == 1  # one kept connection, one pod
        gen.update(mode="new-connection", concurrency=4)
        gen.reset()
        snap = wait_for(gen, lambda s: s.mode == "new-connection" and s.responses >= 300)
        assert snap.concurrency == 4
        assert gen.settings.mode == "new-connection"
        snap = wait_for(gen, lambda s: len(s.per_pod) == 3)
        gen.update(duration=0.1)  # shorten the run: it ends by itself
        final = gen.wait(10)
    assert final.finished_reason == "duration"


def test_mark_gone_keeps_counts(relay_url: str) -> None:
    with LoadGenerator(LoadSettings(url=relay_url, mode="new-connection", concurrency=4, duration=None, requests=300)) as gen:
        gen.start()
        gen.mark_gone(["pod-b"])
        snap = gen.wait(30)
    assert snap.gone_pods == frozenset({"pod-b"})
    assert snap.per_pod["pod-b"] > 0  # its responses are still counted
    assert sum(snap.per_pod.values()) == 300


def test_latest_before_start_and_restart(relay_url: str) -> None:
    gen = LoadGenerator(LoadSettings(url=relay_url, mode="keep-alive", concurrency=2, duration=None, requests=50))
    try:
        empty = gen.latest()
        assert not empty.running and empty.requests == 0
        for _ in range(2):  # a generator runs again after a run ended
            gen.start()
            assert gen.running
            assert gen.wait(30).responses == 50
    finally:
        gen.close()
    with pytest.raises(RuntimeError):
        gen.start()


def test_worker_stops_when_its_parent_dies(relay_url: str) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys, time
        from k3dtui.core.load import LoadGenerator
        from k3dtui.core.models import LoadSettings
        if __name__ == "__main__":
            gen = LoadGenerator(LoadSettings(url={relay_url!r}, mode="keep-alive", concurrency=1, rate=50.0, duration=120))
            gen.start()
            while gen.latest().requests == 0:
                time.sleep(0.05)
            print(gen.worker_pid, flush=True)
            os._exit(0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    if alive:
        os.kill(pid, 9)
    assert not alive, "the worker outlived its parent"


# --- the client's pieces ---
def _feed(chunks: list[bytes]) -> tuple[int, bytes, bytes, bytes] | BaseException:
    async def go() -> tuple[int, bytes, bytes, bytes] | BaseException:
        loop = asyncio.get_running_loop()
        conn = HttpConnection(loop)

        class T(asyncio.Transport):
            def write(self, data: bytes) -> None:  # type: ignore[override]
                pass

            def is_closing(self) -> bool:
                return False

            def abort(self) -> None:
                pass

            def close(self) -> None:
                pass

        conn.connection_made(T())
        fut = conn.request(b"GET / HTTP/1.1\r\n\r\n")
        for c in chunks:
            conn.data_received(c)
        if not fut.done():
            conn.connection_lost(None)
        try:
            return await fut
        except BaseException as exc:
            return exc

    return asyncio.run(go())


def test_parser_handles_split_heads_chunked_bodies_and_missing_headers() -> None:
    resp = b"HTTP/1.1 200 OK\r\nX-Pod: p1\r\nx-node: n1\r\nX-Client: 10.42.1.0\r\nContent-Length: 5\r\n\r\nhello"
    for cut in range(1, len(resp)):
        assert _feed([resp[:cut], resp[cut:]]) == (200, b"p1", b"n1", b"10.42.1.0")
    chunked = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    for cut in range(1, len(chunked)):
        assert _feed([chunked[:cut], chunked[cut:]]) == (503, b"unknown", b"unknown", b"")
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-Pod: q\r\n\r\n"
    assert _feed([interim]) == (204, b"q", b"unknown", b"")
    truncated = _feed([resp[:-2]])
    assert isinstance(truncated, ConnectionResetError)
    assert classify(truncated) == "reset"
    garbage = _feed([b"SSH-2.0-OpenSSH\r\n\r\n"])
    assert isinstance(garbage, Exception) and classify(garbage) == "other"


def test_cached_head_keeps_its_connection_close() -> None:
    async def go() -> list[tuple[object, bool]]:
        loop = asyncio.get_running_loop()
        out = []
        resp = b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Pod: c1\r\nContent-Length: 2\r\n\r\nok"
        for _ in range(2):  # the second time the head comes from the cache
            conn = HttpConnection(loop)

            class T(asyncio.Transport):
                def write(self, data: bytes) -> None:  # type: ignore[override]
                    pass

                def is_closing(self) -> bool:
                    return False

            conn.connection_made(T())
            fut = conn.request(b"GET / HTTP/1.1\r\n\r\n")
            conn.data_received(resp)
            out.append((await fut, conn.keep))
        return out

    assert asyncio.run(go()) == [((200, b"c1", b"unknown", b""), False)] * 2


def test_histogram_percentiles_track_the_samples() -> None:
    hist: dict[int, int] = {}
    samples = [i / 1000.0 for i in range(1, 1001)]  # 1 ms .. 1000 ms
    for s in samples:
        b = bucket_of(s)
        hist[b] = hist.get(b, 0) + 1
    p = percentiles(hist, len(samples))
    for name, expected in (("p50", 500.0), ("p95", 950.0), ("p99", 990.0)):
        assert abs(p[name] - expected) / expected < 0.03, (name, p[name])
    assert percentiles({}, 0) == {}
    assert abs(bucket_value_ms(bucket_of(0.0123)) - 12.3) / 12.3 < 0.02


def test_classify_and_parse_url() -> None:
    assert classify(ConnectionRefusedError()) == "refused"
    assert classify(ConnectionResetError()) == "reset"
    assert classify(BrokenPipeError()) == "reset"
    assert classify(TimeoutError()) == "timeout"
    assert classify(OSError(113, "No route to host")) == "other"
    assert parse_url("http://example:8080/a?b=1") == ("example", 8080, "/a?b=1", "example:8080")
    assert parse_url("http://[::1]/") == ("::1", 80, "/", "[::1]")
    for bad in ("https://x/", "x:80", "http:///path", "http://h:99999/"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_latest_answers_at_once_while_another_thread_waits_or_stops(relay_url: str) -> None:
    import threading

    settings = LoadSettings(url=relay_url, mode="keep-alive", concurrency=2, rate=300.0, duration=1.5)
    with LoadGenerator(settings) as gen:
        gen.start()
        waiter = threading.Thread(target=gen.wait, daemon=True)
        waiter.start()
        seen = []
        slowest = 0.0
        while waiter.is_alive() and len(seen) < 200:
            t0 = time.monotonic()
            seen.append(gen.latest().requests)
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.01)
        waiter.join(10)
        assert slowest < 0.3, slowest  # never held up by the waiting thread
        assert max(seen) > 0 and seen == sorted(seen)


def test_start_works_when_stderr_has_no_file_descriptor(relay_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    class Capture(io.StringIO):  # what a UI framework may put there while it runs
        def fileno(self) -> int:
            return -1

    monkeypatch.setattr(sys, "stderr", Capture())
    snap = run(LoadSettings(url=relay_url, concurrency=2, duration=None, requests=20))
    assert snap.responses == 20


_FRESH_PROCESS_START = """
import io, sys
from k3dtui.core.load import LoadGenerator
from k3dtui.core.models import LoadSettings

class Capture(io.StringIO):  # what Textual puts in sys.stderr while it runs
    def fileno(self):
        return -1

sys.stderr = Capture()
if sys.argv[2] == "no-real-stderr":
    sys.__stderr__ = Capture()
with LoadGenerator(LoadSettings(url=sys.argv[1], concurrency=2, duration=None, requests=20)) as gen:
    gen.start()
    snap = gen.wait(30)
assert isinstance(sys.stderr, Capture), "sys.stderr was not given back"
print("responses", snap.responses)
"""


@pytest.mark.parametrize("case", ["real-stderr", "no-real-stderr"])
def test_start_in_a_fresh_process_whose_stderr_has_no_file_descriptor(relay_url: str, case: str) -> None:
    # A fresh interpreter: multiprocessing's resource tracker is not running yet, so the
    # start must launch it as well, which is where a descriptor of -1 is refused.
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_START, relay_url, case],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "responses 20" in proc.stdout


def test_update_url_moves_the_load_to_another_target(relay_url: str, servers: ServerThread) -> None:
    plain = f"http://127.0.0.1:{servers.plain()}/"
    with LoadGenerator(LoadSettings(url=plain, mode="keep-alive", concurrency=2, duration=15)) as gen:
        gen.start()
        wait_for(gen, lambda s: s.per_pod.get("unknown", 0) >= 50)
        gen.update(url=relay_url)
        gen.reset()
        snap = wait_for(gen, lambda s: sum(n for p, n in s.per_pod.items() if p in PODS) >= 50)
        gen.stop()
    assert gen.settings.url == relay_url
    assert snap.per_pod.get("unknown", 0) <= 2  # at most the requests in flight at the switch


def test_a_killed_worker_ends_the_run_without_hanging(relay_url: str) -> None:
    import signal

    with LoadGenerator(LoadSettings(url=relay_url, mode="keep-alive", concurrency=2, rate=200.0, duration=30)) as gen:
        gen.start()
        wait_for(gen, lambda s: s.requests > 20)
        pid = gen.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        snap = gen.wait(10)
        assert time.monotonic() - started < 5
        assert not gen.running
    assert snap.finished_reason == "worker exited"
    assert snap.requests > 20  # the last figures received are kept


def test_stats_attribute_each_response_to_the_announcer_of_its_moment() -> None:
    from k3dtui.core.loadworker import Stats

    stats = Stats()
    stats.set_announcer("agent-1")
    for node in (b"agent-1", b"agent-0", b"server-0"):
        stats.response((200, b"p-" + node, node, b"10.42.2.0" if node != b"agent-1" else b"10.42.2.1"), 0.001)
    stats.set_announcer("agent-0")  # the announcement moved
    stats.response((200, b"p-agent-0", b"agent-0", b"172.18.0.1"), 0.001)
    stats.response((200, b"p-agent-0", b"agent-0", b"172.18.0.1"), 0.001)
    stats.response((503, b"unknown", b"unknown", b""), 0.001)
    figures = stats.tick(time.monotonic())
    assert figures["announcing_node"] == "agent-0"
    assert figures["paths"] == {"agent-1": {"agent-1": 1, "agent-0": 1, "server-0": 1}, "agent-0": {"agent-0": 2}}
    assert figures["cross_node"] == 2
    assert figures["client_addrs"] == {"10.42.2.0": 2, "10.42.2.1": 1, "172.18.0.1": 2}
    stats.reset()  # the counts go, the announcer stays
    stats.response((200, b"p-agent-0", b"agent-0", b"172.18.0.1"), 0.001)
    assert stats.tick(time.monotonic())["paths"] == {"agent-0": {"agent-0": 1}}
