"""The node lifecycle controller and the taint eviction controller of kube-controller-manager
(Kubernetes 1.31), and what a node's kubelet says about itself when it is cordoned.

- Node health (pkg/controller/nodelifecycle/node_lifecycle_controller.go, ``monitorNodeHealth``):
  every ``node_monitor_period`` (``--node-monitor-period``, 5 s) each node's Lease in
  ``kube-node-lease`` is looked at; a node whose Lease was not renewed for
  ``node_monitor_grace_period`` (``--node-monitor-grace-period``, 40 s in 1.31, 50 s from
  1.32) gets its Ready, MemoryPressure, DiskPressure and PIDPressure conditions ``Unknown``
  (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status."), a NodeNotReady
  event, and its pods' Ready condition set False (``MarkPodsNotReady``), so the EndpointSlice
  controller takes them out of the Services.
- Taints (``doNoExecuteTaintingPass`` and ``doNoScheduleTaintingPass``): Ready Unknown →
  ``node.kubernetes.io/unreachable`` with NoSchedule and NoExecute; Ready False →
  ``node.kubernetes.io/not-ready``; ``spec.unschedulable`` → ``node.kubernetes.io/unschedulable``
  NoSchedule. They go when the condition does.
- Taint eviction (pkg/controller/tainteviction/taint_eviction.go): a pod on a node with a
  NoExecute taint it does not tolerate is deleted at once; one it tolerates for
  ``tolerationSeconds`` (the DefaultTolerationSeconds admission plugin gives 300 s) is
  deleted when that time has passed since the taint was added (event TaintManagerEviction).
- The kubelet records NodeNotSchedulable / NodeSchedulable when ``spec.unschedulable`` changes
  (pkg/kubelet/nodestatus/setters.go, ``ReadyCondition``/``recordNodeSchedulableEvent``).

Times are read on the store's clock (monotonic; a test may give the store a clock it moves).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx, delete_pod
from k3dtui.sim.store import ApiError, Event, Obj

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
HEALTH_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def tolerates(pod: Obj, taint: dict[str, Any]) -> tuple[bool, float | None]:
    """Whether ``pod`` tolerates a NoExecute ``taint``, and for how long (None: forever)."""
    best: tuple[bool, float | None] = (False, None)
    seconds: list[float] = []
    forever = False
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        op = t.get("operator") or "Equal"
        key = t.get("key")
        if key and key != taint.get("key"):
            continue
        if op == "Equal" and (t.get("value") or "") != (taint.get("value") or ""):
            continue
        if not key and op != "Exists":
            continue
        if t.get("tolerationSeconds") is None:
            forever = True
        else:
            seconds.append(max(0.0, float(t["tolerationSeconds"])))
    if forever and not seconds:
        return True, None
    if seconds:
        # the taint eviction controller takes the smallest tolerationSeconds (getMinTolerationTime)
        return True, min(seconds)
    return best


class NodeLifecycle(Controller):
    watches = frozenset({gvrs.NODES, gvrs.LEASES, gvrs.PODS})

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self._probe: dict[str, tuple[str, float]] = {}  # node → (lease renewTime seen, when seen)
        self._tainted_at: dict[str, float] = {}  # node → when its NoExecute taint was seen
        self._evict_timers: dict[str, asyncio.TimerHandle] = {}  # pod uid → its eviction
        self._task: asyncio.Task[None] | None = None

    def clock(self) -> float:
        return float(self.store.clock())

    # -- events ------------------------------------------------------------------
    def keys_for(self, event: Event) -> list[Any]:
        if event.gvr == gvrs.LEASES:
            if event.namespace == "kube-node-lease" and event.type != "DELETED":
                renew = str((event.obj.get("spec") or {}).get("renewTime") or "")
                seen = self._probe.get(event.name)
                if seen is None or seen[0] != renew:
                    self._probe[event.name] = (renew, self.clock())
            return []
        if event.gvr == gvrs.NODES:
            if event.type == "DELETED":
                return []
            if event.old is not None:
                was = bool((event.old.get("spec") or {}).get("unschedulable"))
                now = bool((event.obj.get("spec") or {}).get("unschedulable"))
                if was != now:
                    self.ctx.record(
                        {**event.obj, "metadata": {**event.obj["metadata"], "namespace": "default"}},
                        "NodeNotSchedulable" if now else "NodeSchedulable",
                        f"Node {event.name} status is now: {'NodeNotSchedulable' if now else 'NodeSchedulable'}",
                        component="kubelet", host=event.name)
            return [("node", event.name)]
        # pods: one bound to a node with a NoExecute taint is looked at
        if event.type == "DELETED":
            timer = self._evict_timers.pop(str(event.obj["metadata"].get("uid", "")), None)
            if timer is not None:
                timer.cancel()
            return []
        node = (event.obj.get("spec") or {}).get("nodeName")
        if node and event.name and self._noexecute(str(node)):
            return [("pod", f"{event.namespace}/{event.name}")]
        return []

    def start(self) -> None:
        now = self.clock()
        for lease in list(self.store.iter(gvrs.LEASES)):
            if lease["metadata"].get("namespace") == "kube-node-lease":
                self._probe[str(lease["metadata"]["name"])] = (
                    str((lease.get("spec") or {}).get("renewTime") or ""), now)
        for node in list(self.store.iter(gvrs.NODES)):
            self.enqueue(("node", str(node["metadata"]["name"])))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._monitor())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for timer in self._evict_timers.values():
            timer.cancel()
        self._evict_timers.clear()

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(max(0.01, self.ctx.settings.node_monitor_period))
            self.monitor()

    # -- node health ---------------------------------------------------------------
    def monitor(self) -> None:
        """One ``monitorNodeHealth`` pass."""
        now = self.clock()
        grace = self.ctx.settings.node_monitor_grace_period
        for node in list(self.store.iter(gvrs.NODES)):
            name = str(node["metadata"]["name"])
            seen = self._probe.get(name)
            if seen is None:
                self._probe[name] = ("", now)
                continue
            ready = util.condition(node, "Ready") or {}
            if now - seen[1] > grace and ready.get("status") != "Unknown":
                self._mark_unknown(name)
        # evictions whose time has come on the clock (the timers cover the real clock)
        for node_name in list(self._tainted_at):
            for pod in list(self.store.iter(gvrs.PODS)):
                if (pod.get("spec") or {}).get("nodeName") != node_name or util.is_terminating(pod):
                    continue
                wait = self.eviction_in(pod)
                if wait is not None and wait <= 0:
                    m = pod["metadata"]
                    timer = self._evict_timers.pop(str(m.get("uid", "")), None)
                    if timer is not None:
                        timer.cancel()
                    self._evict(str(m["namespace"]), str(m["name"]), str(m.get("uid", "")))

    def since_heartbeat(self, node: str) -> float | None:
        """Seconds since the node's Lease was last seen renewed (the store's clock)."""
        seen = self._probe.get(node)
        return None if seen is None else self.clock() - seen[1]

    def _mark_unknown(self, name: str) -> None:
        ts = util.now()

        def fn(node: Obj) -> None:
            for c in (node.get("status") or {}).get("conditions") or []:
                if c.get("type") in HEALTH_CONDITIONS and c.get("status") != "Unknown":
                    c.update(status="Unknown", reason="NodeStatusUnknown",
                             message="Kubelet stopped posting node status.", lastTransitionTime=ts)

        updated = self.store.mutate(gvrs.NODES, "", name, fn)
        if updated is None:
            return
        self.ctx.record({**updated, "metadata": {**updated["metadata"], "namespace": "default"}},
                        "NodeNotReady", f"Node {name} status is now: NodeNotReady", component="node-controller")
        self._mark_pods_not_ready(name)

    def _mark_pods_not_ready(self, node: str) -> None:
        """``MarkPodsNotReady`` (pkg/controller/util/node/controller_utils.go)."""

        def fn(p: Obj) -> None:
            for c in (p.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready" and c.get("status") != "False":
                    c["status"] = "False"
                    c["lastTransitionTime"] = util.now()

        for pod in list(self.store.iter(gvrs.PODS)):
            if (pod.get("spec") or {}).get("nodeName") != node or util.is_terminating(pod):
                continue
            m = pod["metadata"]
            if util.is_ready(pod):
                with contextlib.suppress(ApiError):
                    self.store.mutate(gvrs.PODS, str(m["namespace"]), str(m["name"]), fn)
                self.ctx.record(pod, "NodeNotReady", "Node is not ready", component="node-controller",
                                warning=True)

    # -- reconcile -------------------------------------------------------------------
    def reconcile(self, key: tuple[str, str]) -> None:
        kind, name = key
        if kind == "node":
            self._taints(name)
            if self._noexecute(name):
                for pod in list(self.store.iter(gvrs.PODS)):
                    if (pod.get("spec") or {}).get("nodeName") == name:
                        self._consider(pod)
            else:
                self._tainted_at.pop(name, None)
            return
        ns, pod_name = name.split("/", 1)
        current = self.store.peek(gvrs.PODS, ns, pod_name)
        if current is not None:
            self._consider(current)

    def _taints(self, name: str) -> None:
        node = self.store.peek(gvrs.NODES, "", name)
        if node is None:
            return
        ready = (util.condition(node, "Ready") or {}).get("status")
        wanted: list[tuple[str, str]] = []
        if ready == "Unknown":
            wanted += [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
        elif ready == "False":
            wanted += [(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
        if (node.get("spec") or {}).get("unschedulable"):
            wanted.append((UNSCHEDULABLE, "NoSchedule"))
        managed = {UNREACHABLE, NOT_READY, UNSCHEDULABLE}
        current = [(t.get("key"), t.get("effect")) for t in (node.get("spec") or {}).get("taints") or []
                   if t.get("key") in managed]
        if sorted(current) == sorted(wanted):
            return
        ts = util.now()

        def fn(n: Obj) -> None:
            spec = n.setdefault("spec", {})
            keep = [t for t in spec.get("taints") or [] if t.get("key") not in managed
                    or (t.get("key"), t.get("effect")) in wanted]
            have = {(t.get("key"), t.get("effect")) for t in keep}
            for key, effect in wanted:
                if (key, effect) not in have:
                    taint: dict[str, Any] = {"key": key, "effect": effect}
                    if effect == "NoExecute" or key == UNREACHABLE:
                        taint["timeAdded"] = ts
                    keep.append(taint)
            if keep:
                spec["taints"] = keep
            else:
                spec.pop("taints", None)

        self.store.mutate(gvrs.NODES, "", name, fn)

    def _noexecute(self, node_name: str) -> list[dict[str, Any]]:
        node = self.store.peek(gvrs.NODES, "", node_name)
        if node is None:
            return []
        out = [dict(t) for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if out:
            self._tainted_at.setdefault(node_name, self.clock())
        return out

    def eviction_in(self, pod: Obj) -> float | None:
        """Seconds until the taint eviction controller deletes ``pod`` (None: not scheduled)."""
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        taints = self._noexecute(node) if node else []
        if not taints:
            return None
        wait = 0.0
        for taint in taints:
            ok, seconds = tolerates(pod, taint)
            if not ok:
                return 0.0
            if seconds is None:
                return None
            wait = max(wait, seconds)
        return max(0.0, self._tainted_at.get(node, self.clock()) + wait - self.clock())

    def _consider(self, pod: Obj) -> None:
        uid = str(pod["metadata"].get("uid", ""))
        if util.is_terminating(pod) or uid in self._evict_timers:
            return
        wait = self.eviction_in(pod)
        if wait is None:
            return
        ns, name = str(pod["metadata"]["namespace"]), str(pod["metadata"]["name"])
        loop = asyncio.get_running_loop()
        self._evict_timers[uid] = loop.call_later(wait, self._evict, ns, name, uid)

    def _evict(self, ns: str, name: str, uid: str) -> None:
        self._evict_timers.pop(uid, None)
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or pod["metadata"].get("uid") != uid or util.is_terminating(pod):
            return
        if self.eviction_in(pod) is None:
            return  # the taint went (the node came back) before the time ran out
        remaining = self.eviction_in(pod)
        if remaining and remaining > 0.01:
            self._evict_timers[uid] = asyncio.get_running_loop().call_later(remaining, self._evict, ns, name, uid)
            return
        self.ctx.record(pod, "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}",
                        component="taint-eviction-controller")
        delete_pod(self.store, ns, name)
