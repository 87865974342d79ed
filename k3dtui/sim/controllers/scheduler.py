"""The scheduler: binds each new pod to a node, spreading an owner's pods.

Score (lower wins): active pods matching the pod's spread selector on the node (its
topologySpreadConstraints' labelSelector, else its owner's selector), then all active pods
on the node, then a random tie-break. The k3s server is schedulable (no taints).

A node holds at most ``status.allocatable.pods`` pods (110, the kubelet's --max-pods
default): the NodeResourcesFit filter counts every pod bound to it that has not finished,
terminating ones included (kube-scheduler's informer leaves out Succeeded and Failed pods).
A pod no node can take stays Pending, ``0/3 nodes are available: 3 Too many pods.``, and is
tried again when a pod leaves a node or a node changes.

The per-node counts are computed once per turn of the loop (``tick``) and kept up to date
as this turn binds pods, rather than by walking every pod for every pod to bind.
"""

from __future__ import annotations

import json
import random
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx
from k3dtui.sim.controllers.nodes import node_is_ready
from k3dtui.sim.registry import pods
from k3dtui.sim.store import Event, Obj

DEFAULT_MAX_PODS = 110  # the kubelet's --max-pods default (k3s keeps it)
_TERMINAL = ("Succeeded", "Failed")


def max_pods(node: Obj) -> int:
    """The pods a node may hold: ``status.allocatable.pods``."""
    try:
        return int(((node.get("status") or {}).get("allocatable") or {}).get("pods", DEFAULT_MAX_PODS))
    except (TypeError, ValueError):
        return DEFAULT_MAX_PODS


class _Counts:
    """Per node: active pods (the spread score), pods that hold a place (the capacity), and
    per spread selector the active pods it matches; valid for one turn of the loop."""

    def __init__(self, pods: list[Obj]) -> None:
        self.pods = pods
        self.total: dict[str, int] = {}
        self.occupied: dict[str, int] = {}
        self.matching: dict[tuple[str, str], dict[str, int]] = {}
        self.selectors: dict[tuple[str, str], dict[str, Any]] = {}
        for p in pods:
            node = (p.get("spec") or {}).get("nodeName")
            if not node or util.phase(p) in _TERMINAL:
                continue
            self.occupied[node] = self.occupied.get(node, 0) + 1
            if util.is_active(p):
                self.total[node] = self.total.get(node, 0) + 1

    def matching_for(self, ns: str, selector: dict[str, Any]) -> dict[str, int]:
        key = (ns, json.dumps(selector, sort_keys=True))
        counts = self.matching.get(key)
        if counts is None:
            counts = {}
            for p in self.pods:
                node = (p.get("spec") or {}).get("nodeName")
                if (node and util.is_active(p) and p["metadata"].get("namespace") == ns
                        and util.match_selector(selector, util.labels_of(p))):
                    counts[node] = counts.get(node, 0) + 1
            self.matching[key] = counts
            self.selectors[key] = selector
        return counts

    def bound(self, pod: Obj, node: str) -> None:
        self.occupied[node] = self.occupied.get(node, 0) + 1
        self.total[node] = self.total.get(node, 0) + 1
        ns, labels = pod["metadata"].get("namespace"), util.labels_of(pod)
        for key, counts in self.matching.items():
            if key[0] == ns and util.match_selector(self.selectors[key], labels):
                counts[node] = counts.get(node, 0) + 1


class Scheduler(Controller):
    watches = frozenset({gvrs.PODS, gvrs.NODES})

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self._counts: _Counts | None = None
        # pods no node could take, in the order they first failed (kube-scheduler's queue
        # sorts by priority, then by the time a pod entered it: the oldest goes first)
        self._waiting: dict[tuple[str, str], None] = {}

    def tick(self) -> None:
        self._counts = None

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr == gvrs.NODES:
            return [
                (p["metadata"]["namespace"], p["metadata"]["name"])
                for p in self.store.iter(gvrs.PODS)
                if not (p.get("spec") or {}).get("nodeName")
            ]
        if (self._waiting and (event.obj.get("spec") or {}).get("nodeName")
                and (event.type == "DELETED"
                     or (util.phase(event.obj) in _TERMINAL and util.phase(event.old or {}) not in _TERMINAL))):
            return list(self._waiting)  # a place was freed on a node: try the waiting pods again
        if event.type == "DELETED":
            self._waiting.pop((event.namespace, event.name), None)
            return []
        spec = event.obj.get("spec") or {}
        if spec.get("nodeName") or util.is_terminating(event.obj):
            return []
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return []
        return [(event.namespace, event.name)]

    def event_delay(self) -> float:
        return self.ctx.settings.schedule_delay + self.ctx.settings.api_delay

    def start(self) -> None:
        for p in list(self.store.iter(gvrs.PODS)):
            if not (p.get("spec") or {}).get("nodeName"):
                self.enqueue((p["metadata"]["namespace"], p["metadata"]["name"]))

    def _spread_selector(self, pod: Obj) -> dict[str, Any] | None:
        for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []:
            if c.get("topologyKey") == "kubernetes.io/hostname" and c.get("labelSelector"):
                sel: dict[str, Any] = c["labelSelector"]
                return sel
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "ReplicaSet":
                rs = self.store.peek(gvrs.REPLICASETS, pod["metadata"]["namespace"], str(ref.get("name")))
                if rs is not None:
                    sel = (rs.get("spec") or {}).get("selector") or {}
                    return sel
        return None

    def feasible(self, pod: Obj, node: Obj) -> bool:
        """The node's readiness, selector and taints admit the pod (its room aside)."""
        if not node_is_ready(node):
            return False
        spec = pod.get("spec") or {}
        labels = util.labels_of(node)
        for k, v in (spec.get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return False
        tolerations = spec.get("tolerations") or []
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not any(
                (t.get("key") == taint.get("key") and (t.get("operator") == "Exists" or t.get("value") == taint.get("value")))
                or (t.get("operator") == "Exists" and not t.get("key"))
                for t in tolerations
            ):
                return False
        return True

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or util.is_terminating(pod):
            self._waiting.pop(key, None)
            return
        if self._counts is None:
            self._counts = _Counts(list(self.store.iter(gvrs.PODS)))
        counts = self._counts
        feasible = [n for n in self.store.iter(gvrs.NODES) if self.feasible(pod, n)]
        nodes = [n for n in feasible if counts.occupied.get(n["metadata"]["name"], 0) < max_pods(n)]
        if not nodes:
            self._waiting.setdefault(key, None)
            self._unschedulable(pod, full=len(feasible))
            return
        self._waiting.pop(key, None)
        selector = self._spread_selector(pod)
        matching = counts.matching_for(ns, selector) if selector is not None else {}
        total = counts.total
        scored = sorted(
            nodes,
            key=lambda n: (
                matching.get(n["metadata"]["name"], 0),
                total.get(n["metadata"]["name"], 0),
                random.random(),
            ),
        )
        target = scored[0]["metadata"]["name"]

        def bind(p: Obj) -> None:
            pods.bind(p, target)

        bound = self.store.mutate(gvrs.PODS, ns, name, bind)
        if bound is not None:
            counts.bound(bound, target)
            self.ctx.record(bound, "Scheduled", f"Successfully assigned {ns}/{name} to {target}",
                            component="default-scheduler")

    def _unschedulable(self, pod: Obj, full: int = 0) -> None:
        """``full``: nodes that would take the pod but have no room left."""
        count = len(list(self.store.iter(gvrs.NODES)))
        reasons = []
        if count - full:
            reasons.append(f"{count - full} node(s) didn't match Pod's node affinity/selector or were not ready")
        if full:
            reasons.append(f"{full} Too many pods")
        msg = f"0/{count} nodes are available: {', '.join(reasons)}."
        cond = util.condition(pod, "PodScheduled")
        if cond and cond.get("reason") == "Unschedulable" and cond.get("message") == msg:
            return

        def fn(p: Obj) -> None:
            util.set_condition(p, "PodScheduled", "False", "Unschedulable", msg)

        updated = self.store.mutate(gvrs.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], fn)
        if updated is not None:
            self.ctx.record(updated, "FailedScheduling", msg, component="default-scheduler", warning=True)
