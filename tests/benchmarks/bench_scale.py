"""A large scale on the simulated cluster: does it settle, and does its API keep answering?

Run: python tests/benchmarks/bench_scale.py [--replicas 300,1000,2000] [--agents 2] [--timeout 300]

For each N: a fresh simulated cluster (1 server + --agents agents, default settings) with the
app installed at 3 replicas; a watch of the default namespace's pods opened before the change;
then `scale` to N through the Deployment's scale subresource (as `k3dtui scale` and
`kubectl scale deployment fastapi-app --replicas N` do). Printed:

- time until the Deployment reports N ready replicas (or how many were ready at --timeout),
  then the same back down to 3;
- /healthz latency p50/p99/max, one request every 100 ms from the scale until settled;
- the watch: events received, the longest gap between two of them, how many gaps > 1 s, and
  whether it was still open at the end;
- the CPU time the daemon and the data plane used during the change (less sensitive than
  wall times to other work on the machine);
- the peak resident memory of the daemon (API server and controllers) and of its data plane
  (the pods' HTTP servers), sampled every second.

Not part of the test run (tests/benchmarks is not collected); every request goes to 127.0.0.1.

Measured on the 2-core development VM (shared; load average 1-3), before and after the
controllers' bounds (turns of at most tick_bound = 100, slow-start ReplicaSet batches, per-turn
scheduler counts, pod events batched for large ReplicaSets/Services, paced kubelet writes,
MetalLB no longer walking every pod per pod event, orjson copies in the store):

    N on nodes       Ready          /healthz p50 / p99 / max       longest watch gap   daemon CPU
    300 on 3         2.9 s -> 1.8   8.9 / 397 / 397 ms -> 2.0 / 95 / 95     0.58 -> 0.38 s   1.7 -> 0.8 s
    1000 on 10      11.0 s -> 3.6   229 / 2354 / 2354 -> 6.7 / 319 / 319    2.66 -> 0.47 s  10.4 -> 2.8 s
    2000 on 20      46.1 s -> 10.7  446 / 17963 / 17963 -> 175 / 816 / 816  18.2 -> 0.97 s  38.7 -> 9.1 s
    1000 on 3       never (754 Running, 246 stuck ContainerCreating: each node's /24 pod range was
                    exhausted) -> 322 Running, 678 Pending "0/3 nodes are available: 3 Too many pods."
                    (110 pods per node, as on k3d), /healthz max 2459 -> 220 ms
    5000 on 20      before: a list 60 s after the scale did not finish its TLS handshake in 120 s;
                    after: 2175 Running, 2825 Pending (Too many pods), /healthz max 1.08 s
"""

from __future__ import annotations

import argparse
import itertools
import os
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from k3dtui.sim.settings import SimSettings
from tests.simfixtures import SimHandle, install_app, start_sim, stop_sim


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class Probe:
    """/healthz every 100 ms and the RSS of the daemon and its data plane every second."""

    handle: SimHandle
    daemon_pid: int
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    rss_daemon: int = 0
    rss_plane: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        next_rss = 0.0
        with self.handle.http(timeout=120) as http:
            while not self.stop.is_set():
                t = time.perf_counter()
                try:
                    http.get("/healthz").raise_for_status()
                    self.latencies.append(time.perf_counter() - t)
                except httpx.HTTPError:
                    self.failures += 1
                    self.latencies.append(time.perf_counter() - t)
                if time.perf_counter() >= next_rss:
                    next_rss = time.perf_counter() + 1.0
                    self.sample_rss()
                time.sleep(max(0.0, 0.1 - (time.perf_counter() - t)))

    def sample_rss(self) -> None:
        try:
            daemon = psutil.Process(self.daemon_pid)
            self.rss_daemon = max(self.rss_daemon, daemon.memory_info().rss)
            plane = sum(p.memory_info().rss for p in daemon.children(recursive=True))
            self.rss_plane = max(self.rss_plane, plane)
        except psutil.Error:
            pass


@dataclass
class Watcher:
    """A watch of the default namespace's pods: when each event arrived."""

    handle: SimHandle
    rv: str
    arrivals: list[float] = field(default_factory=list)
    ended: float | None = None
    error: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        server, token = self.handle.server_and_token()
        ca = self.handle.kubeconfig.parent / "ca.crt"
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
        try:
            with httpx.Client(verify=verify, timeout=httpx.Timeout(10, read=None),
                              headers={"Authorization": f"Bearer {token}"}) as http, http.stream(
                    "GET", f"{server}/api/v1/namespaces/default/pods",
                    params={"watch": "1", "resourceVersion": self.rv, "timeoutSeconds": "3600"}) as res:
                for _line in res.iter_lines():
                    self.arrivals.append(time.perf_counter())
                    if self.stop.is_set():
                        return
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self.ended = time.perf_counter()


def cpu_seconds(daemon_pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the daemon and by its data plane."""
    daemon = psutil.Process(daemon_pid)
    t = daemon.cpu_times()
    plane = sum(sum(c.cpu_times()[:2]) for c in daemon.children(recursive=True))
    return t.user + t.system, plane


def wait_ready(http: httpx.Client, replicas: int, timeout: float) -> tuple[float | None, int]:
    """Seconds until the app's Deployment has ``replicas`` ready (and no more), or None and
    the last count seen at ``timeout``."""
    t0 = time.perf_counter()
    ready = -1
    while time.perf_counter() - t0 < timeout:
        try:
            res = http.get("/apis/apps/v1/namespaces/default/deployments/fastapi-app")
            st = res.json().get("status") or {}
            ready = int(st.get("readyReplicas") or 0)
            if ready == replicas and int(st.get("replicas") or 0) == replicas:
                return time.perf_counter() - t0, ready
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return None, ready


def scale(http: httpx.Client, replicas: int) -> None:
    http.patch("/apis/apps/v1/namespaces/default/deployments/fastapi-app/scale",
               json={"spec": {"replicas": replicas}},
               headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()


def bench(replicas: int, agents: int, timeout: float) -> None:
    handle = start_sim(name=f"bench-scale-{replicas}", settings=SimSettings(), agents=agents)
    try:
        install_app(handle)
        pid = int((handle.kubeconfig.parent / "pid").read_text().split()[0])
        with handle.http(timeout=120) as http:
            rv = str(http.get("/api/v1/namespaces/default/pods", params={"limit": "1"}).json()
                     ["metadata"]["resourceVersion"])
            watcher = Watcher(handle, rv)
            probe = Probe(handle, pid)
            threads = [threading.Thread(target=watcher.run, daemon=True),
                       threading.Thread(target=probe.run, daemon=True)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            cpu0 = cpu_seconds(pid)
            t_scale = time.perf_counter()
            scale(http, replicas)
            up, ready = wait_ready(http, replicas, timeout)
            t_done = time.perf_counter()
            cpu_daemon, cpu_plane = (a - b for a, b in zip(cpu_seconds(pid), cpu0, strict=True))
            probe.stop.set()
            threads[1].join(130)
            up_lat, up_failures = list(probe.latencies), probe.failures
            rss_daemon, rss_plane = probe.rss_daemon, probe.rss_plane
            during = [a for a in watcher.arrivals if t_scale <= a <= t_done]
            edges = [t_scale, *during, t_done if watcher.ended is None else min(t_done, watcher.ended)]
            gaps = [b - a for a, b in itertools.pairwise(edges)]
            still_open = watcher.ended is None
            phases: dict[str, int] = {}
            if up is None:
                try:
                    items = http.get("/api/v1/namespaces/default/pods").json()["items"]
                except httpx.HTTPError as exc:
                    items = []
                    phases[f"unknown: the API did not answer a list within 120 s ({type(exc).__name__})"] = replicas
                for pod in items:
                    st = pod.get("status") or {}
                    cond = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
                    what = st.get("phase", "?") + (f" ({cond.get('message')})" if cond.get("status") == "False" else "")
                    phases[what] = phases.get(what, 0) + 1
            down: float | None = None
            if up is not None:
                scale(http, 3)
                down, _ = wait_ready(http, 3, timeout)
            watcher.stop.set()
        nodes = 1 + agents
        settled = f"all Ready in {up:.1f} s" if up is not None else f"NOT settled in {timeout:.0f} s ({ready} ready)"
        print(f"scale 3 -> {replicas} on {nodes} nodes: {settled}"
              + (f"; back to 3 in {down:.1f} s" if down is not None else ""))
        for what, count in sorted(phases.items()):
            print(f"  {count} pods {what}")
        print(f"  /healthz every 100 ms during the change ({len(up_lat)} samples, {up_failures} failed): "
              f"p50 {pct(up_lat, 50) * 1000:.1f} ms, p99 {pct(up_lat, 99) * 1000:.1f} ms, "
              f"max {max(up_lat, default=0) * 1000:.0f} ms")
        print(f"  watch opened before the change: {len(during)} events, longest gap {max(gaps) :.2f} s, "
              f"{sum(1 for g in gaps if g > 1.0)} gaps > 1 s, "
              + ("still open" if still_open else f"CLOSED ({watcher.error or 'by the server'})"))
        print(f"  CPU time during the change: daemon {cpu_daemon:.1f} s, data plane {cpu_plane:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f}: other work on the machine slows the wall times)")
        print(f"  peak RSS: daemon {rss_daemon / 2**20:.0f} MiB, data plane {rss_plane / 2**20:.0f} MiB")
        sys.stdout.flush()
    finally:
        stop_sim(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="300,1000,2000", help="comma-separated counts to scale to")
    parser.add_argument("--agents", type=int, default=2, help="agent nodes besides the server (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up waiting after this many seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k3dtui-bench-scale-") as tmp:
        os.environ["K3DTUI_STATE_DIR"] = f"{tmp}/state"
        os.environ["K3DTUI_CACHE_DIR"] = f"{tmp}/cache"
        for n in (int(x) for x in args.replicas.split(",")):
            bench(n, args.agents, args.timeout)


if __name__ == "__main__":
    main()
