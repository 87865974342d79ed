"""The scheduler: binds each new pod to a node, spreading an owner's pods.

Score (lower wins): active pods matching the pod's spread selector on the node (its
topologySpreadConstraints' labelSelector, else its owner's selector), then all active pods
on the node, then a random tie-break. The k3s server is schedulable (no taints).
"""

from __future__ import annotations

import random
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller
from k3dtui.sim.controllers.nodes import node_is_ready
from k3dtui.sim.registry import pods
from k3dtui.sim.store import Event, Obj


class Scheduler(Controller):
    watches = frozenset({gvrs.PODS, gvrs.NODES})

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr == gvrs.NODES:
            return [
                (p["metadata"]["namespace"], p["metadata"]["name"])
                for p in self.store.iter(gvrs.PODS)
                if not (p.get("spec") or {}).get("nodeName")
            ]
        if event.type == "DELETED":
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
            return
        nodes = [n for n in self.store.iter(gvrs.NODES) if self.feasible(pod, n)]
        if not nodes:
            self._unschedulable(pod)
            return
        selector = self._spread_selector(pod)
        matching: dict[str, int] = {}
        total: dict[str, int] = {}
        for p in self.store.iter(gvrs.PODS):
            node = (p.get("spec") or {}).get("nodeName")
            if not node or not util.is_active(p):
                continue
            total[node] = total.get(node, 0) + 1
            if (
                selector is not None
                and p["metadata"].get("namespace") == ns
                and util.match_selector(selector, util.labels_of(p))
            ):
                matching[node] = matching.get(node, 0) + 1
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
            self.ctx.record(bound, "Scheduled", f"Successfully assigned {ns}/{name} to {target}",
                            component="default-scheduler")

    def _unschedulable(self, pod: Obj) -> None:
        count = len(list(self.store.iter(gvrs.NODES)))
        msg = f"0/{count} nodes are available: {count} node(s) didn't match Pod's node affinity/selector or were not ready."
        cond = util.condition(pod, "PodScheduled")
        if cond and cond.get("reason") == "Unschedulable":
            return

        def fn(p: Obj) -> None:
            util.set_condition(p, "PodScheduled", "False", "Unschedulable", msg)

        updated = self.store.mutate(gvrs.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], fn)
        if updated is not None:
            self.ctx.record(updated, "FailedScheduling", msg, component="default-scheduler", warning=True)
