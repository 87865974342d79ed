"""Benchmarks of the simulated cluster (figures printed; run on demand).

Run: python tests/benchmarks/bench_sim.py [--runs 5] [--deletes 30] [--replicas 100]

1. start → API answering: `SimProvider.create` (and the `k3dtui sim start` CLI) median.
2. delete a pod → a watcher sees its MODIFIED (deletionTimestamp) and the replacement's
   ADDED: p50/p95 over N deletions.
3. scale to N replicas on 1 server + 9 agents (default settings): time until all Ready,
   and the resident memory of every simulated-cluster process (psutil).
4. 1,000 pods on 20 nodes (issue 13's target: list all pods < 100 ms, watch fan-out to 20
   watchers, memory < 1.5 GiB): a busybox Deployment of --pods replicas on 1 server + 19
   agents; time until all Ready; list all pods (JSON, and kubectl's Table) p50/p95; 20
   watchers of every pod: delay until all 20 have seen one change, p50/p95; resident memory.

Only some: --only start,delete,scale,thousand
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from k3dtui.sim.settings import SimSettings
from tests.simfixtures import install_app, start_sim, stop_sim, wait_for


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_start(runs: int) -> None:
    from k3dtui.sim.provider import SimProvider

    inproc, cli = [], []
    for i in range(runs):
        p = SimProvider(f"bench-start-{i}", settings=SimSettings())
        t = time.perf_counter()
        asyncio.run(p.create(1, 2, lambda _l: None))
        inproc.append(time.perf_counter() - t)
        asyncio.run(p.delete(lambda _l: None))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "k3dtui", "sim", "start", "--name", f"bench-cli-{i}"],
                       check=True, capture_output=True)
        cli.append(time.perf_counter() - t)
        subprocess.run([sys.executable, "-m", "k3dtui", "sim", "stop", "--name", f"bench-cli-{i}"],
                       check=True, capture_output=True)
    print(f"start -> API answering (SimProvider.create): median {statistics.median(inproc):.3f}s "
          f"min {min(inproc):.3f}s max {max(inproc):.3f}s over {runs} runs")
    print(f"`k3dtui sim start` wall time (CLI start-up included): median {statistics.median(cli):.3f}s")


def bench_delete(deletes: int) -> None:
    handle = start_sim(name="bench-delete", settings=SimSettings())
    try:
        install_app(handle)
        api = client.CoreV1Api(handle.api_client())
        lock = threading.Lock()
        arrivals: dict[str, float] = {}
        added: list[tuple[float, str]] = []
        stop = threading.Event()
        rv = api.list_namespaced_pod("default").metadata.resource_version

        def watcher() -> None:
            w = watch.Watch()
            for ev in w.stream(api.list_namespaced_pod, "default", label_selector="app=fastapi",
                               resource_version=rv, timeout_seconds=600):
                now = time.perf_counter()
                pod = ev["object"]
                with lock:
                    if ev["type"] == "MODIFIED" and pod.metadata.deletion_timestamp:
                        arrivals.setdefault(pod.metadata.name, now)
                    if ev["type"] == "ADDED":
                        added.append((now, pod.metadata.name))
                if stop.is_set():
                    w.stop()

        t = threading.Thread(target=watcher, daemon=True)
        t.start()
        time.sleep(0.3)
        mod_lat, add_lat = [], []

        def ready_count() -> int:
            return sum(
                1 for p in api.list_namespaced_pod("default", label_selector="app=fastapi").items
                if not p.metadata.deletion_timestamp
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            )

        for _ in range(deletes):
            wait_for(lambda: ready_count() == 3, 30, "3 ready pods")
            victim = next(p.metadata.name for p in api.list_namespaced_pod("default", label_selector="app=fastapi").items
                          if not p.metadata.deletion_timestamp)
            with lock:
                n_added = len(added)
            t0 = time.perf_counter()
            api.delete_namespaced_pod(victim, "default")
            wait_for(lambda victim=victim, n_added=n_added: victim in arrivals and len(added) > n_added, 10, "events")
            with lock:
                mod_lat.append(arrivals[victim] - t0)
                add_lat.append(added[n_added][0] - t0)
        stop.set()
        print(f"delete -> MODIFIED seen by a watcher: p50 {pct(mod_lat, 50) * 1000:.1f} ms, "
              f"p95 {pct(mod_lat, 95) * 1000:.1f} ms ({deletes} deletions)")
        print(f"delete -> replacement ADDED seen:     p50 {pct(add_lat, 50) * 1000:.1f} ms, "
              f"p95 {pct(add_lat, 95) * 1000:.1f} ms")
    finally:
        stop_sim(handle)


def sim_processes(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def bench_scale(replicas: int) -> None:
    handle = start_sim(name="bench-scale", settings=SimSettings(), agents=9)
    try:
        install_app(handle)
        apps = client.AppsV1Api(handle.api_client())
        pid = int((handle.kubeconfig.parent / "pid").read_text().split()[0])
        rss0 = sum(p.memory_info().rss for p in sim_processes(pid))
        t0 = time.perf_counter()
        apps.patch_namespaced_deployment_scale("fastapi-app", "default", {"spec": {"replicas": replicas}})

        def all_ready() -> bool:
            d = apps.read_namespaced_deployment("fastapi-app", "default")
            return (d.status.ready_replicas or 0) == replicas

        wait_for(all_ready, 120, f"{replicas} ready")
        elapsed = time.perf_counter() - t0
        status = handle.control("GET", "/sim/status")
        procs = sim_processes(pid)
        rss = sum(p.memory_info().rss for p in procs)
        print(f"scale 3 -> {replicas} on 1 server + 9 agents: all Ready in {elapsed:.2f}s; "
              f"load balancer backends {list((status.get('lb_backends') or {}).values())}")
        print(f"resident memory of the simulated cluster ({len(procs)} processes): "
              f"{rss / 2**20:.0f} MiB (before scaling: {rss0 / 2**20:.0f} MiB)")
    finally:
        stop_sim(handle)


def bench_thousand(pods: int, nodes: int, image: str = "busybox", lists: int = 20, changes: int = 20) -> None:
    """``image``: busybox (sleeping processes) or the app's image (each pod a real HTTP server
    in the data plane)."""
    import httpx

    handle = start_sim(name="bench-thousand", settings=SimSettings(), agents=nodes - 1)
    try:
        pid = int((handle.kubeconfig.parent / "pid").read_text().split()[0])
        if image != "busybox":
            asyncio.run(handle.provider.import_image(image, lambda _line: None))
        labels = {"app": "sleepers"}
        handle.apply({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleepers", "namespace": "default"},
            "spec": {"replicas": pods, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                                         "command": ["sleep", "1d"]} if image == "busybox" else
                                        {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent"}]}}},
        })
        apps = client.AppsV1Api(handle.api_client())
        t0 = time.perf_counter()

        def all_ready() -> bool:
            d = apps.read_namespaced_deployment("sleepers", "default")
            return (d.status.ready_replicas or 0) == pods

        wait_for(all_ready, 600, f"{pods} ready")
        ready_s = time.perf_counter() - t0
        with handle.http(timeout=30) as http:
            total = len(http.get("/api/v1/pods").json()["items"])
            json_times, table_times = [], []
            table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            for _ in range(lists):
                t = time.perf_counter()
                http.get("/api/v1/pods").raise_for_status()
                json_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                http.get("/api/v1/pods", params={"limit": "500"}, headers={"Accept": table}).raise_for_status()
                table_times.append(time.perf_counter() - t)
        print(f"{pods} pods ({image}) on {nodes} nodes: all Ready in {ready_s:.1f}s; {total} pods in all")
        print(f"list all pods (JSON): p50 {pct(json_times, 50) * 1000:.1f} ms, p95 {pct(json_times, 95) * 1000:.1f} ms")
        print(f"list pods as kubectl does (Table, limit 500): p50 {pct(table_times, 50) * 1000:.1f} ms, "
              f"p95 {pct(table_times, 95) * 1000:.1f} ms")

        # 20 watchers of every pod; one label change at a time; when have all 20 seen it?
        server, token = handle.server_and_token()
        ca = str(handle.kubeconfig.parent / "ca.crt")
        rv = client.CoreV1Api(handle.api_client()).list_pod_for_all_namespaces(limit=1).metadata.resource_version
        seen: dict[str, list[float]] = {}
        lock = threading.Lock()
        stop = threading.Event()
        ready_watchers = threading.Barrier(21)

        def watcher() -> None:
            with httpx.Client(verify=ca, timeout=httpx.Timeout(5, read=None),
                              headers={"Authorization": f"Bearer {token}"}) as http, http.stream(
                    "GET", f"{server}/api/v1/pods",
                    params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "300"}) as res:
                ready_watchers.wait()
                for line in res.iter_lines():
                    if stop.is_set():
                        return
                    if '"bench-mark"' not in line:
                        continue
                    now = time.perf_counter()
                    marks = json.loads(line)["object"]["metadata"].get("labels", {}).get("bench-mark")
                    if marks:
                        with lock:
                            seen.setdefault(marks, []).append(now)

        threads = [threading.Thread(target=watcher, daemon=True) for _ in range(20)]
        for t in threads:
            t.start()
        ready_watchers.wait()
        core = client.CoreV1Api(handle.api_client())
        victims = [p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=sleepers",
                                                                     limit=changes).items]
        fanout = []
        for i, victim in enumerate(victims):
            mark = f"m{i}"
            t = time.perf_counter()
            core.patch_namespaced_pod(victim, "default", {"metadata": {"labels": {"bench-mark": mark}}})
            wait_for(lambda mark=mark: len(seen.get(mark, [])) >= 20, 30, "20 watchers")
            with lock:
                fanout.append(max(seen[mark][:20]) - t)
        stop.set()
        print(f"one change seen by all 20 watchers of every pod: p50 {pct(fanout, 50) * 1000:.1f} ms, "
              f"p95 {pct(fanout, 95) * 1000:.1f} ms ({len(fanout)} changes)")
        procs = sim_processes(pid)
        rss = sum(p.memory_info().rss for p in procs)
        print(f"resident memory of the simulated cluster ({len(procs)} processes): {rss / 2**20:.0f} MiB")
    finally:
        stop_sim(handle)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deletes", type=int, default=30)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--image", default="busybox", help="for the 1,000 pods: busybox or fastapi-random:latest")
    parser.add_argument("--only", default="start,delete,scale,thousand")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="k3dtui-bench-sim-") as tmp:
        os.environ["K3DTUI_STATE_DIR"] = f"{tmp}/state"
        os.environ["K3DTUI_CACHE_DIR"] = f"{tmp}/cache"
        if "start" in only:
            bench_start(args.runs)
        if "delete" in only:
            bench_delete(args.deletes)
        if "scale" in only:
            bench_scale(args.replicas)
        if "thousand" in only:
            bench_thousand(args.pods, args.nodes, args.image)


if __name__ == "__main__":
    main()
