"""Benchmark: keep-alive requests per second through the simulated load balancer, with the
pods' listening sockets as the data plane makes them (TCP, ``TCP_NODELAY``) and, for
comparison, as they were made before (protocol 0, Nagle on).

Run: python tests/benchmarks/bench_lb_nodelay.py [--seconds 3] [--connections 1]

One data plane in this process (uvloop when installed, as the simulator runs it), one pod,
one listener; ``wrk`` (or a small client when wrk is missing) sends keep-alive GETs to the
listener, bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import time

from k3dtui.sim import runtime
from k3dtui.sim.runtime import DataPlane


def nagle_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # protocol 0, as before
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def small_client(port: int, seconds: float) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        writer.write(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        done += 1
    writer.close()
    return done / (time.monotonic() - start)


async def measure(port: int, seconds: float, connections: int) -> float:
    wrk = shutil.which("wrk")
    if wrk is None:
        rates = await asyncio.gather(*(small_client(port, seconds) for _ in range(connections)))
        return float(sum(rates))
    proc = await asyncio.create_subprocess_exec(
        wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{port}/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    found = re.search(rb"Requests/sec:\s*([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk gave no rate:\n{out.decode(errors='replace')}")
    return float(found.group(1))


async def one(nodelay: bool, seconds: float, connections: int) -> tuple[float, float]:
    runtime.tcp_listen_socket = runtime.tcp_listen_socket if nodelay else nagle_socket  # type: ignore[assignment]
    plane = DataPlane()
    plane.warm()
    pod_port = await plane.start_pod("uid-1", "bench-pod", "bench-node")
    lb_port = await plane.set_lb("10.0.0.1:80", [pod_port])
    try:
        direct = await measure(pod_port, seconds, connections)
        through = await measure(lb_port, seconds, connections)
    finally:
        await plane.remove_lb("10.0.0.1:80")
        await plane.stop_pod("uid-1")
    return direct, through


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the data plane's event loop (uvloop when installed, as the simulator runs it)")
    args = parser.parse_args()
    fixed = runtime.tcp_listen_socket
    run = asyncio.run
    if args.loop == "uvloop":
        try:
            import uvloop

            run = uvloop.run
        except ImportError:
            args.loop = "asyncio (uvloop is not installed)"
    rows = []
    for label, nodelay in (("protocol 0, Nagle on (before)", False), ("IPPROTO_TCP + TCP_NODELAY", True)):
        runtime.tcp_listen_socket = fixed
        direct, through = run(one(nodelay, args.seconds, args.connections))
        rows.append((label, direct, through))
    runtime.tcp_listen_socket = fixed
    print(f"keep-alive GET /, {args.connections} connection(s), {args.seconds:.0f}s each, {args.loop} loop, "
          f"({'wrk' if shutil.which('wrk') else 'asyncio client'})")
    for label, direct, through in rows:
        print(f"  {label:<32} pod direct {direct:8.0f} req/s   through the sim LB {through:8.0f} req/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
