"""Benchmark: a pod deleted → LiveCluster's on_change shows it (change latency), p50/p95/max.

Run: python tests/benchmarks/bench_state.py [--runs 40] [--realistic]

Starts a simulated cluster in fresh state folders (1 server + 2 agents, the app with 3
replicas), starts a LiveCluster, then repeatedly deletes a Running pod of the app straight
through the API and times, from the moment the DELETE is sent, until the coalesced
``on_change`` callback (what the UI receives) shows:
  - graceful delete: the pod as Terminating (deletionTimestamp set);
  - forced delete (grace 0): the pod gone.
Between deletions it waits for the replacement to be Running. Target: p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="deletions per mode (default 40)")
    parser.add_argument("--realistic", action="store_true", help="the simulator's default delays instead of the fast ones")
    args = parser.parse_args()
    if not 1 <= args.runs <= 500:
        print("bench_state: --runs must be 1..500", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="k3dtui-bench-state-") as tmp:
        os.environ["K3DTUI_STATE_DIR"] = f"{tmp}/state"
        os.environ["K3DTUI_CACHE_DIR"] = f"{tmp}/cache"
        from kubernetes import client

        from k3dtui.core.kube import make_api_client
        from k3dtui.core.live import LiveCluster
        from k3dtui.core.models import ClusterSnapshot
        from k3dtui.core.watch import wait_until
        from k3dtui.sim.settings import SimSettings
        from tests.simfixtures import install_app, start_sim, stop_sim

        settings = SimSettings() if args.realistic else SimSettings.fast()
        handle = start_sim(f"bench-state-{os.getpid()}", settings=settings)
        try:
            install_app(handle)
            cond = threading.Condition()
            latest: dict[str, ClusterSnapshot] = {}
            callbacks = {"n": 0}

            def on_change(snap: ClusterSnapshot) -> None:
                with cond:
                    latest["snap"] = snap
                    callbacks["n"] += 1
                    cond.notify_all()

            live = LiveCluster(handle.kubeconfig)
            # Also time when the watched state itself applies the change (before coalescing).
            applied: dict[str, float] = {}
            apply_event = live.state.event

            def timed_event(kind: str, type_: str, obj: dict[str, object]) -> None:
                apply_event(kind, type_, obj)
                name = str((obj.get("metadata") or {}).get("name", ""))  # type: ignore[attr-defined]
                if kind == "pods" and name in watching and name not in applied and watching[name](obj):  # type: ignore[operator]
                    applied[name] = time.perf_counter()

            watching: dict[str, object] = {}
            live.state.event = timed_event  # type: ignore[method-assign]
            live.start(on_change)
            api = make_api_client(handle.kubeconfig)
            core = client.CoreV1Api(api)

            def settled() -> bool:
                s = live.snapshot()
                return s.connected and len(s.pods) == 3 and all(p.status == "Running" for p in s.pods)

            def wait_seen(pred: object, timeout: float = 5.0) -> float:
                deadline = time.perf_counter() + timeout
                with cond:
                    while True:
                        snap = latest.get("snap")
                        if snap is not None and pred(snap):  # type: ignore[operator]
                            return time.perf_counter()
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            raise TimeoutError("the change never showed up")
                        cond.wait(left)

            results: dict[str, list[float]] = {"graceful → Terminating": [], "force → gone": []}
            state_results: dict[str, list[float]] = {"graceful → Terminating": [], "force → gone": []}
            try:
                for mode, grace in (("graceful → Terminating", None), ("force → gone", 0)):
                    for _ in range(args.runs):
                        if not wait_until(settled, 30):
                            raise TimeoutError("the app did not settle at 3 Running pods")
                        time.sleep(0.1)  # quiet: the next change is a fresh burst
                        victim = live.snapshot().pods[0].name
                        if grace is None:
                            watching[victim] = lambda o: bool((o.get("metadata") or {}).get("deletionTimestamp"))
                        else:
                            watching[victim] = lambda o: True  # the DELETED event
                        t0 = time.perf_counter()
                        core.delete_namespaced_pod(victim, "default", grace_period_seconds=grace,
                                                   _preload_content=False)
                        if grace is None:
                            t1 = wait_seen(lambda s, v=victim: any(p.name == v and p.status == "Terminating" for p in s.pods))
                        else:
                            t1 = wait_seen(lambda s, v=victim: all(p.name != v for p in s.pods))
                        results[mode].append((t1 - t0) * 1000)
                        state_results[mode].append((applied[victim] - t0) * 1000)
            finally:
                live.stop()
                api.close()
        finally:
            stop_sim(handle)

    print(f"change latency, DELETE sent → on_change shows it ({args.runs} runs each, "
          f"{'default' if args.realistic else 'fast'} simulator delays, coalesced to <= 20/s, burst 2)")
    print(f"{'mode':<26}{'seen by':<11}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'mean ms':>9}")
    ok = True
    for mode, values in results.items():
        p95 = pct(values, 95)
        ok = ok and p95 < 100
        for who, vals in (("state", state_results[mode]), ("on_change", values)):
            print(f"{mode:<26}{who:<11}{pct(vals, 50):>9.1f}{pct(vals, 95):>9.1f}{max(vals):>9.1f}"
                  f"{statistics.mean(vals):>9.1f}")
    print(f"on_change callbacks: {callbacks['n']}; target p95 < 100 ms: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
