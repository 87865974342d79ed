"""Figures for the simulated API server (run on demand: python tests/benchmarks/bench_api.py).

Prints: server start time, list/get latency with 100 pods (Python client), watch latency
from a write to the event reaching a Python watcher, and one ``kubectl get pods`` round trip.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, watch

from k3dtui.core.kube import make_api_client
from k3dtui.sim import gvrs
from k3dtui.sim.testing import run_api_in_thread


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    starts = []
    for i in range(5):
        t0 = time.perf_counter()
        api = run_api_in_thread(tmp / f"s{i}")
        starts.append(time.perf_counter() - t0)
        api.stop()
    print(f"server start (TLS, thread): median {statistics.median(starts) * 1000:.1f} ms")

    api = run_api_in_thread(tmp / "main")
    kc = make_api_client(api.kubeconfig)
    core = client.CoreV1Api(kc)
    for i in range(100):
        core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"app": "web"}},
                                               "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
    lists, gets = [], []
    for _ in range(30):
        t0 = time.perf_counter()
        core.list_namespaced_pod("default", label_selector="app=web")
        lists.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        core.read_namespaced_pod("p7", "default")
        gets.append(time.perf_counter() - t0)
    print(f"list 100 pods: median {statistics.median(lists) * 1000:.1f} ms, p95 {pct(lists, 0.95) * 1000:.1f} ms")
    print(f"get one pod:   median {statistics.median(gets) * 1000:.1f} ms, p95 {pct(gets, 0.95) * 1000:.1f} ms")

    rv = core.list_namespaced_pod("default").metadata.resource_version
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    ready = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        ready.set()
        for ev in w.stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=20):
            name = ev["object"].metadata.name
            if ev["type"] == "MODIFIED" and name not in seen:
                seen[name] = time.perf_counter()
                if len(seen) == 50:
                    w.stop()

    t = threading.Thread(target=watcher)
    t.start()
    ready.wait()
    time.sleep(0.3)
    for i in range(50):
        name = f"p{i}"
        sent[name] = time.perf_counter()
        api.call(lambda n=name: api.store.mutate(gvrs.PODS, "default", n,  # type: ignore[misc]
                                                  lambda p: p["metadata"].setdefault("labels", {}).update(x="1")))
        time.sleep(0.01)
    t.join(30)
    lat = [seen[n] - sent[n] for n in seen]
    print(f"store write -> Python watch event: median {statistics.median(lat) * 1000:.1f} ms, p95 {pct(lat, 0.95) * 1000:.1f} ms (n={len(lat)})")

    env = {**os.environ, "HOME": str(tmp / "home")}
    argv = ["kubectl", "--kubeconfig", str(api.kubeconfig), "get", "pods"]
    subprocess.run(argv, capture_output=True, env=env, check=True)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True)
        runs.append(time.perf_counter() - t0)
    print(f"kubectl get pods (100 rows, warm cache): median {statistics.median(runs) * 1000:.0f} ms")
    kc.close()
    api.stop()


if __name__ == "__main__":
    main()
