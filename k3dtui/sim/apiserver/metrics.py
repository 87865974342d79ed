"""``metrics.k8s.io/v1beta1``: PodMetrics and NodeMetrics, as metrics-server serves them on
k3s (k3s ships metrics-server and registers its APIService, so ``kubectl top`` works).

The figures come from the pods' real work in the data plane (:mod:`k3dtui.sim.podio`):
CPU is the rate of the CPU time spent serving each pod's requests over the last
``window`` seconds; memory is the pod's share of the data-plane process's resident
memory plus the log it keeps. A node adds up its pods; a server node adds the simulator's
own process too (the API server and controllers are what k3s's server is). metrics-server
reports CPU in nanocores and memory in KiB (sigs.k8s.io/metrics-server
``pkg/api/pod.go``/``node.go``), with the sampling ``window`` and ``timestamp``; a pod it has
no sample of is NotFound (``podmetrics.metrics.k8s.io "ns/name" not found``).

metrics-server scrapes every 15 s (k3s's manifest, ``--metric-resolution=15s``); the
simulated one samples every second and reports a 5 s window, so ``top`` follows a load
test while it runs and falls back soon after.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from k3dtui.sim import gvrs
from k3dtui.sim import registry as rules
from k3dtui.sim.apiserver.errors import NOT_FOUND_MSG, json_response
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.selectors import parse_field_selector, parse_label_selector
from k3dtui.sim.store import GVR, ApiError, Obj, now_rfc3339

METRICS_GROUP = "metrics.k8s.io"
UsageSource = Callable[[], Awaitable[dict[str, Any]]]
SAMPLE_EVERY = 1.0
WINDOW = 5.0
IDLE_AFTER = 60.0  # the sampler stops when nobody has asked for this long


class CpuRates:
    """CPU rates from cumulative CPU-time samples: ``observe(key, t, cpu_ns)``, then
    ``rate(key, now, window)`` in cores over the latest ``window`` seconds (the clock is
    the caller's)."""

    def __init__(self, keep: float = 30.0) -> None:
        self.keep = keep
        self._samples: dict[str, collections.deque[tuple[float, int]]] = {}

    def observe(self, key: str, t: float, cpu_ns: int) -> None:
        q = self._samples.setdefault(key, collections.deque())
        q.append((t, cpu_ns))
        while q and q[0][0] < t - self.keep:
            q.popleft()

    def forget_except(self, keys: set[str]) -> None:
        for key in [k for k in self._samples if k not in keys]:
            del self._samples[key]

    def rate(self, key: str, window: float) -> tuple[float, float] | None:
        """(cores, seconds measured) over the samples of the last ``window`` seconds."""
        q = self._samples.get(key)
        if not q or len(q) < 2:
            return None
        t1, c1 = q[-1]
        t0, c0 = q[0]
        for t, c in q:
            if t >= t1 - window - 1e-9:
                t0, c0 = t, c
                break
        if t1 - t0 <= 0:
            t0, c0 = q[-2]
        dt = t1 - t0
        return (max(0, c1 - c0) / 1e9 / dt if dt > 0 else 0.0), dt


def _self_usage() -> tuple[int, int]:
    """(CPU ns, resident bytes) of this process (the API server and the controllers)."""
    rss = 0
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm", encoding="ascii") as fh:
        rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return time.process_time_ns(), rss


def _cpu(cores: float) -> str:
    return f"{round(cores * 1e9)}n"


def _memory(nbytes: float) -> str:
    return f"{round(nbytes / 1024)}Ki"


class Metrics(Handlers):
    """GET/LIST of ``metrics.k8s.io/v1beta1`` pods and nodes, and the APIServices that say
    which group-versions are served."""

    def ensure_apiservices(self) -> None:
        """An APIService per group-version served, as kube-apiserver's autoregistration makes
        them (``Local``: served by kube-apiserver itself), and k3s's metrics-server one
        (``v1beta1.metrics.k8s.io``, backed by the Service ``kube-system/metrics-server``;
        k3s ``manifests/metrics-server/metrics-apiservice.yaml``). Here the API server itself
        answers metrics.k8s.io, so it is Available from the start."""
        gvr = GVR("apiregistration.k8s.io", "v1", "apiservices")
        kind = self.registry.get(gvr)
        if kind is None:
            return
        for group, version in self.registry.group_versions():
            name = f"{version}.{group}" if group else version
            if self.store.peek(gvr, "", name) is not None:
                continue
            spec: Obj = {"group": group, "version": version, "groupPriorityMinimum": 18000,
                         "versionPriority": 15}
            condition = {"type": "Available", "status": "True", "lastTransitionTime": now_rfc3339(),
                         "reason": "Local", "message": "Local APIServices are always available"}
            labels: Obj = {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
            if group == METRICS_GROUP:
                spec.update({"service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                             "groupPriorityMinimum": 100, "versionPriority": 100, "insecureSkipTLSVerify": True})
                condition.update({"reason": "Passed", "message": "all checks passed"})
                labels = {"k8s-app": "metrics-server"}
            obj: Obj = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                        "metadata": {"name": name, "labels": labels}, "spec": spec,
                        "status": {"conditions": [condition]}}
            rules.create(self.store, kind, obj)

    metrics_source: UsageSource | None = None
    metrics_window: float = WINDOW
    _rates: CpuRates | None = None
    _usage: dict[str, Any] | None = None
    _sampler: asyncio.Task[None] | None = None
    _asked: float = 0.0
    _sampled: float = 0.0

    async def _metrics(self, request: web.Request, version: str, rest: list[str]) -> web.Response:
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if version != "v1beta1" or not rest or rest[0] not in ("pods", "nodes") or len(rest) > 2 \
                or (rest[0] == "nodes" and ns is not None):
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if request.query.get("watch") in ("true", "1"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        await self._sample_now()
        name = rest[1] if len(rest) > 1 else None
        if rest[0] == "pods":
            if name is not None:
                if ns is None:
                    raise ApiError(404, "NotFound", NOT_FOUND_MSG)
                pod = self.store.peek(gvrs.PODS, ns, name)
                item = self._pod_metrics(pod) if pod is not None else None
                if item is None:
                    raise ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{ns}/{name}" not found',
                                   {"name": f"{ns}/{name}", "group": METRICS_GROUP, "kind": "pods"})
                return json_response(item)
            items = [m for p in self._selected(request, gvrs.PODS, ns) if (m := self._pod_metrics(p)) is not None]
            return json_response({"kind": "PodMetricsList", "apiVersion": f"{METRICS_GROUP}/v1beta1",
                                  "metadata": {}, "items": items})
        if name is not None:
            node = self.store.peek(gvrs.NODES, "", name)
            if node is None:
                raise ApiError(404, "NotFound", f'nodemetrics.metrics.k8s.io "{name}" not found',
                               {"name": name, "group": METRICS_GROUP, "kind": "nodes"})
            return json_response(self._node_metrics(node))
        items = [self._node_metrics(n) for n in self._selected(request, gvrs.NODES, None)]
        return json_response({"kind": "NodeMetricsList", "apiVersion": f"{METRICS_GROUP}/v1beta1",
                              "metadata": {}, "items": items})

    def _selected(self, request: web.Request, gvr: Any, ns: str | None) -> list[Obj]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), gvr.resource)
        items, _ = self.store.list_objects(gvr, ns)
        return [o for o in items if labels.matches_obj(o) and (fields is None or fields(o))]

    # -- sampling ------------------------------------------------------------------------
    async def _take_sample(self) -> None:
        if self._rates is None:
            self._rates = CpuRates()
        now = self._sampled = time.monotonic()
        usage: dict[str, Any] = {"pods": {}, "rss": 0}
        if self.metrics_source is not None:
            with contextlib.suppress(RuntimeError):
                usage = await self.metrics_source()
        for uid, u in (usage.get("pods") or {}).items():
            self._rates.observe(uid, now, int(u.get("cpu_ns", 0)))
        cpu, rss = _self_usage()
        self._rates.observe("<server>", now, cpu)
        usage["server_rss"] = rss
        self._rates.forget_except(set(usage.get("pods") or {}) | {"<server>"})
        self._usage = usage

    async def _sample_now(self) -> None:
        """Make sure a sampler runs (it samples every second while someone asks) and that
        there are at least two samples to make a rate from."""
        self._asked = time.monotonic()
        if self._sampler is None or self._sampler.done():
            await self._take_sample()
            await asyncio.sleep(0.25)
            await self._take_sample()
            self._sampler = asyncio.get_running_loop().create_task(self._sample_loop())
            self._tasks.add(self._sampler)
            self._sampler.add_done_callback(self._tasks.discard)
        elif self._asked - self._sampled > 0.5:
            await self._take_sample()  # a rate up to this moment

    async def _sample_loop(self) -> None:
        while time.monotonic() - self._asked < IDLE_AFTER:
            await asyncio.sleep(SAMPLE_EVERY)
            await self._take_sample()

    # -- the objects ----------------------------------------------------------------------
    def _pod_usage(self, pod: Obj) -> tuple[float, float, float] | None:
        """(cores, bytes, window seconds) of a running pod, None if it has no sample."""
        status = pod.get("status") or {}
        if status.get("phase") != "Running" or self._rates is None or self._usage is None:
            return None
        uid = str(pod["metadata"].get("uid", ""))
        pods = self._usage.get("pods") or {}
        u = pods.get(uid)
        if u is None:
            # a container with no process behind it (an image the simulated cluster only
            # pretends to run) does no work: zero, measured over the same window
            return 0.0, 0.0, self.metrics_window
        measured = self._rates.rate(uid, self.metrics_window)
        cores, window = measured if measured is not None else (0.0, self.metrics_window)
        share = float(self._usage.get("rss", 0)) / max(1, len(pods))
        return cores, share + float(u.get("log_bytes", 0)), window

    def _pod_metrics(self, pod: Obj | None) -> Obj | None:
        if pod is None:
            return None
        got = self._pod_usage(pod)
        if got is None:
            return None
        cores, memory, window = got
        meta = pod["metadata"]
        containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        n = max(1, len(containers))
        return {
            "kind": "PodMetrics", "apiVersion": f"{METRICS_GROUP}/v1beta1",
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace", ""),
                         "creationTimestamp": now_rfc3339(), "labels": dict(meta.get("labels") or {})},
            "timestamp": now_rfc3339(), "window": f"{window:.3f}s".replace(".000s", "s"),
            "containers": [{"name": c, "usage": {"cpu": _cpu(cores / n), "memory": _memory(memory / n)}}
                           for c in containers],
        }

    def _node_metrics(self, node: Obj) -> Obj:
        name = node["metadata"]["name"]
        cores = memory = 0.0
        pods, _ = self.store.list_objects(gvrs.PODS, None)
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != name:
                continue
            got = self._pod_usage(pod)
            if got is not None:
                cores += got[0]
                memory += got[1]
        labels = node["metadata"].get("labels") or {}
        servers = [n for n in self.store.iter(gvrs.NODES)
                   if "node-role.kubernetes.io/control-plane" in (n["metadata"].get("labels") or {})]
        if "node-role.kubernetes.io/control-plane" in labels and self._rates is not None and self._usage is not None:
            measured = self._rates.rate("<server>", self.metrics_window)
            cores += (measured[0] if measured else 0.0) / max(1, len(servers))
            memory += float(self._usage.get("server_rss", 0)) / max(1, len(servers))
        return {
            "kind": "NodeMetrics", "apiVersion": f"{METRICS_GROUP}/v1beta1",
            "metadata": {"name": name, "creationTimestamp": now_rfc3339(), "labels": dict(labels)},
            "timestamp": now_rfc3339(), "window": f"{self.metrics_window:g}s",
            "usage": {"cpu": _cpu(cores), "memory": _memory(memory)},
        }
