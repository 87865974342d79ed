"""Node failure on the simulated cluster, from `node stop` to every replica Ready on the other
nodes (run on demand: python tests/benchmarks/bench_node_failure.py [--grace S] [--toleration S]
[--runs N]).

The cluster runs in this process with the simulator's default timings (a replacement pod
is Ready about a second after it is created) and, unless told otherwise, Kubernetes 1.31's
node-monitor-grace-period (40 s) and the app's tolerationSeconds (15 s). Prints the median
of the runs and its parts: stop → NotReady, NotReady → evicted, evicted → replacements
scheduled, scheduled → all Ready.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers import util
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import Store

REPLICAS = 3


def deployment(toleration: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "containers": [{"name": "web", "image": "fastapi-random:latest", "imagePullPolicy": "IfNotPresent"}],
                     "terminationGracePeriodSeconds": 5,
                     "tolerations": [{"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": toleration}
                                     for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]}}},
    }


async def until(pred: Any, limit: float = 600.0) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > limit:
            raise TimeoutError
        await asyncio.sleep(0.01)
    return time.monotonic()


async def one_run(grace: float, toleration: int) -> dict[str, float]:
    store = Store()
    # the kubelet renews every 10 s and the controller looks every 5 s (both shortened with the grace)
    settings = SimSettings().replace(node_monitor_grace_period=grace, node_monitor_period=min(5.0, grace / 8),
                                     lease_renew_interval=min(10.0, grace / 4))
    cluster = SimCluster(store, "bench", servers=1, agents=2, settings=settings)
    cluster.start()
    cluster.import_image("fastapi-random:latest")
    store.create(gvrs.DEPLOYMENTS, deployment(toleration))

    def pods() -> list[dict[str, Any]]:
        return [p for p in store.iter(gvrs.PODS) if (p["metadata"].get("labels") or {}).get("app") == "web"]

    await until(lambda: sum(1 for p in pods() if util.is_ready(p)) == REPLICAS)
    victim = next(p["spec"]["nodeName"] for p in pods() if "-agent-" in p["spec"]["nodeName"])
    uids = {p["metadata"]["uid"] for p in pods() if p["spec"]["nodeName"] == victim}
    t0 = time.monotonic()
    await cluster.stop_node(victim)
    node = lambda: store.peek(gvrs.NODES, "", victim) or {}  # noqa: E731
    t_notready = await until(lambda: (util.condition(node(), "Ready") or {}).get("status") != "True")
    t_evicted = await until(lambda: all(util.is_terminating(p) for p in pods() if p["metadata"]["uid"] in uids))

    def elsewhere(ready: bool) -> int:
        return sum(1 for p in pods() if not util.is_terminating(p) and p["spec"].get("nodeName")
                   and p["spec"]["nodeName"] != victim and (util.is_ready(p) or not ready))

    t_scheduled = await until(lambda: elsewhere(False) == REPLICAS)
    t_ready = await until(lambda: elsewhere(True) == REPLICAS)
    cluster.stop()
    return {"total": t_ready - t0, "NotReady": t_notready - t0, "eviction": t_evicted - t_notready,
            "scheduling": t_scheduled - t_evicted, "ready": t_ready - t_scheduled}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grace", type=float, default=40.0, help="node-monitor-grace-period (default 40 s)")
    parser.add_argument("--toleration", type=int, default=15, help="the pods' tolerationSeconds (default 15, the app's)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [asyncio.run(one_run(args.grace, args.toleration)) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"node stop → every replica Ready elsewhere (grace {args.grace:g} s, tolerationSeconds "
          f"{args.toleration}, median of {args.runs}): {med['total']:.2f} s")
    print(f"  stop → NotReady {med['NotReady']:.2f} s, NotReady → evicted {med['eviction']:.2f} s, "
          f"evicted → scheduled {med['scheduling']:.2f} s, scheduled → Ready {med['ready']:.2f} s")


if __name__ == "__main__":
    main()
