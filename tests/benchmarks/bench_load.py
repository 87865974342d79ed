"""Load generator vs wrk (and an aiohttp client) on 127.0.0.1: the figures behind the hot loop.

Runs, side by side, 32 connections for 10 s each (change with --connections/--seconds):
- one uvicorn process serving app/main.py: keep-alive, and a new connection per request
  (wrk with ``Connection: close``);
- nginx (its own temporary config, a non-daemon child, one worker): keep-alive, where the
  client is the limit; the generator's CPU is reported.

Targets: keep-alive >= 95% of wrk, new-connection >= 90% of wrk's ``Connection: close``,
nginx >= 40% of wrk. The aiohttp rows show why the generator has its own minimal client.
With two or more cores the servers are pinned to core 0 and the clients to core 1.

    python tests/benchmarks/bench_load.py [--seconds 10] [--repeat 1] [--no-aiohttp]

Measured on the 2-core development VM (``--repeat 3``, other work running, load average ~1.5-2.4;
ratio = median of back-to-back k3dtui/wrk pairs):

    uvicorn keep-alive       wrk 6,454   k3dtui 7,767   100%   aiohttp 3,799 (59%)
    uvicorn new-connection   wrk 5,112   k3dtui 4,050    97%   aiohttp 2,474 (48%)
    nginx keep-alive         wrk 51,349  k3dtui 48,438   91%   aiohttp 8,362 (16%)
    client CPU per request (nginx): wrk 8.3 µs, k3dtui 10.9 µs

On a busy machine single runs swing by +-30%; use --repeat 3 or more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from k3dtui import resources
from k3dtui.core.load import LoadGenerator
from k3dtui.core.models import ConnectionMode, LoadSettings

SERVER_CPU = {0}
CLIENT_CPU = {1}


@dataclass
class Result:
    rps: float
    cpu: float  # % of one core, -1 when unknown
    p50: float
    p99: float
    errors: int
    us_per_req: float = float("nan")  # client CPU per request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PIN = True


def pinned() -> bool:
    return PIN and (os.cpu_count() or 1) >= 2


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def uvicorn_server() -> Iterator[str]:
    port = free_port()
    with resources.app_dir() as app:
        env = dict(os.environ, POD_NAME="bench-pod", NODE_NAME="bench-node")
        argv = [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(app), "--host",
                "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
        proc = subprocess.Popen(argv, env=env)
        try:
            if pinned():
                os.sched_setaffinity(proc.pid, SERVER_CPU)
            wait_port(port)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop(proc)


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            add_header X-Pod nginx-pod;
            add_header X-Node nginx-node;
            return 200 '{{"pod":"nginx-pod","node":"nginx-node","random":1}}';
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_server() -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="k3dtui-bench-nginx-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        proc = subprocess.Popen([nginx, "-e", f"{tmp}/error.log", "-p", tmp, "-c", str(conf)])
        try:
            if pinned():
                os.sched_setaffinity(proc.pid, SERVER_CPU)
            wait_port(port)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop(proc)


def run_wrk(url: str, connections: int, seconds: float, close: bool) -> Result:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    if pinned():
        argv = ["taskset", "-c", ",".join(map(str, CLIENT_CPU)), *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_err = sum(int(x) for x in errors.groups()) if errors else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Result(rps, 100 * cpu / elapsed, _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), n_err, 1e6 * cpu / max(total, 1))


def _wrk_ms(out: str, which: str) -> float:
    m = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_k3dtui(url: str, connections: int, seconds: float, mode: ConnectionMode) -> Result:
    gen = LoadGenerator(
        LoadSettings(url=url, mode=mode, concurrency=connections, duration=seconds, timeout=5.0)
    )
    gen.start()
    pid = gen.worker_pid
    assert pid is not None
    proc = psutil.Process(pid)
    if pinned():
        os.sched_setaffinity(pid, CLIENT_CPU)
    # CPU over the run, between the first snapshot and shortly before the end
    while gen.latest().requests == 0 and gen.running:
        time.sleep(0.02)
    t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
    time.sleep(max(0.5, seconds - 0.6))
    t1, c1 = time.monotonic(), sum(proc.cpu_times()[:2])
    snap = gen.wait(seconds + 10)
    gen.close()
    lat = snap.latency_ms_total
    rps = snap.requests / snap.elapsed if snap.elapsed else 0.0
    errors = sum(snap.errors.values())
    cpu_pct = 100 * (c1 - c0) / (t1 - t0)
    return Result(
        rps, cpu_pct, lat.get("p50", 0.0), lat.get("p99", 0.0), errors, 1e4 * cpu_pct / rps if rps else float("nan")
    )


AIOHTTP_CLIENT = r"""
import asyncio, json, sys, time, aiohttp
url, conns, seconds, close = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
counts = {"n": 0, "err": 0}
async def worker(session, deadline):
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as r:
                await r.read()
                r.headers.get("X-Pod")
            counts["n"] += 1
        except Exception:
            counts["err"] += 1
async def main():
    conn = aiohttp.TCPConnector(limit=conns, force_close=close)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.monotonic(); deadline = t0 + seconds
        await asyncio.gather(*(worker(s, deadline) for _ in range(conns)))
        el = time.monotonic() - t0
    print(json.dumps({"rps": counts["n"] / el, "errors": counts["err"], "cpu": 100 * time.process_time() / el}))
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def run_aiohttp(url: str, connections: int, seconds: float, close: bool) -> Result:
    argv = [sys.executable, "-c", AIOHTTP_CLIENT, url, str(connections), f"{seconds:g}", "1" if close else "0"]
    if pinned():
        argv = ["taskset", "-c", ",".join(map(str, CLIENT_CPU)), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Result(
        data["rps"], data["cpu"], float("nan"), float("nan"), data["errors"], 1e4 * data["cpu"] / data["rps"]
    )


def median(results: list[Result]) -> Result:
    def med(xs: list[float]) -> float:
        return float(statistics.median(xs))

    return Result(
        med([r.rps for r in results]),
        med([r.cpu for r in results]),
        med([r.p50 for r in results]),
        med([r.p99 for r in results]),
        int(med([float(r.errors) for r in results])),
        med([r.us_per_req for r in results]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median)")
    parser.add_argument("--no-aiohttp", action="store_true", help="skip the aiohttp comparison rows")
    parser.add_argument("--only", choices=["uvicorn", "nginx"], help="one target only")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and clients to cores")
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin
    if not shutil.which("wrk"):
        print("bench_load: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    c, secs = args.connections, args.seconds
    rows: list[tuple[str, str, Result, Result, Result | None, float, float]] = []

    def scenario(url: str, mode: ConnectionMode, close: bool) -> tuple[Result, Result, Result | None, float]:
        """wrk, k3dtui and aiohttp, interleaved ``--repeat`` times (so drifting load hits all)."""
        runs: dict[str, list[Result]] = {"wrk": [], "k3dtui": [], "aiohttp": []}
        for _ in range(args.repeat):
            runs["wrk"].append(run_wrk(url, c, secs, close))
            runs["k3dtui"].append(run_k3dtui(url, c, secs, mode))
            if not args.no_aiohttp:
                runs["aiohttp"].append(run_aiohttp(url, c, secs, close))
        aio = median(runs["aiohttp"]) if runs["aiohttp"] else None
        # the ratio of runs made side by side, then the median: drifting load cancels out
        ratio = statistics.median(o.rps / w.rps for w, o in zip(runs["wrk"], runs["k3dtui"], strict=True) if w.rps)
        return median(runs["wrk"]), median(runs["k3dtui"]), aio, float(ratio)

    print(f"# {c} connections, {secs:g} s per run, median of {args.repeat}; "
          f"{'server on core 0, clients on core 1' if pinned() else 'unpinned'}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.only in (None, "uvicorn"):
        with uvicorn_server() as url:
            time.sleep(0.5)
            for mode, close, goal in (("keep-alive", False, 0.95), ("new-connection", True, 0.90)):
                wrk, ours, aio, ratio = scenario(url, mode, close)  # type: ignore[arg-type]
                rows.append(("uvicorn app/main.py", mode, wrk, ours, aio, goal, ratio))
                print(f"  done: uvicorn {mode}", flush=True)
    if args.only in (None, "nginx"):
        with nginx_server() as url:
            time.sleep(0.3)
            wrk, ours, aio, ratio = scenario(url, "keep-alive", False)
            rows.append(("nginx (client-bound)", "keep-alive", wrk, ours, aio, 0.40, ratio))
            print("  done: nginx", flush=True)

    print()
    head = f"{'target':<22} {'mode':<15} {'wrk req/s':>10} {'k3dtui req/s':>13} {'ratio':>7} {'goal':>6} " \
           f"{'CPU wrk | k3dtui':>17} {'µs/req wrk | k3dtui':>20} {'p50/p99 ms (wrk | k3dtui)':>28} {'aiohttp req/s':>14} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    failed = False
    for target, mode, wrk, ours, aio, goal, ratio in rows:
        ok = ratio >= goal
        failed |= not ok
        lat = f"{wrk.p50:.2f}/{wrk.p99:.2f} | {ours.p50:.2f}/{ours.p99:.2f}"
        aio_txt = f"{aio.rps:>14,.0f} {aio.rps / wrk.rps:>6.0%}" if aio else f"{'-':>14} {'-':>6}"
        print(f"{target:<22} {mode:<15} {wrk.rps:>10,.0f} {ours.rps:>13,.0f} {ratio:>7.0%} "
              f"{'>=' + format(goal, '.0%'):>6} {f'{wrk.cpu:.0f}% | {ours.cpu:.0f}%':>17} "
              f"{f'{wrk.us_per_req:.1f} | {ours.us_per_req:.1f}':>20} {lat:>28} {aio_txt}"
              f"{'' if ok else '  BELOW GOAL'}")
        if ours.errors or wrk.errors:
            print(f"{'':<22} errors: wrk {wrk.errors}, k3dtui {ours.errors}")
    print("\nratio: median over the repeats of k3dtui / wrk in back-to-back runs; "
          "wrk new-connection rows use -H 'Connection: close'; CPU is % of one core; "
          f"load average at the end {os.getloadavg()[0]:.1f} (other work on the machine skews every figure)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
