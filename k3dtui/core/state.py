"""The in-memory picture of the cluster that the UI renders, fed by the watchers.

``ClusterState`` is a ``WatchSink`` for every watched kind (nodes, the app's pods, its
Deployment and Service, MetalLB's ServiceL2Status objects, recent Events) and turns what
it holds into a frozen ``ClusterSnapshot`` on demand. Every change calls ``on_update``;
``Coalescer`` turns a burst of those into one callback (the first at once, then at most
one per interval).

The pure helpers (``pod_status`` and friends) read the JSON objects as the API server
sends them; a missing field means its zero value (the API omits zero counts).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k3dtui.core.clock import MONOTONIC, Clock
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.models import (
    ClusterEvent,
    ClusterSnapshot,
    DeploymentView,
    NodeView,
    PodView,
    ServiceView,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NODES = "nodes"
PODS = "pods"
DEPLOYMENTS = "deployments"
SERVICES = "services"
L2STATUSES = "servicel2statuses"
EVENTS = "events"
LEASES = "leases"  # the kubelets' heartbeats (kube-node-lease)
KINDS = (NODES, PODS, DEPLOYMENTS, SERVICES, L2STATUSES, EVENTS, LEASES)

TERMINAL_PHASES = ("Succeeded", "Failed")
NODE_UNREACHABLE_REASON = "NodeLost"


# -- small readers ---------------------------------------------------------------------------
def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def parse_time(value: Any) -> float:
    """RFC 3339 (``2026-01-01T00:00:00Z``, with or without fraction) → epoch seconds; 0 if unset."""
    if not value or not isinstance(value, str):
        return 0.0
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


# -- pods ------------------------------------------------------------------------------------
def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    return bool(container) and _d(container).get("restartPolicy") == "Always"


def _has_condition(status: Mapping[str, Any], type_: str) -> bool:
    return any(
        _d(c).get("type") == type_ and _d(c).get("status") == "True"
        for c in _l(status.get("conditions"))
    )


def pod_summary(pod: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """(status, ready containers, total containers, restarts) as ``kubectl get pods`` prints them."""
    meta = _d(pod.get("metadata"))
    spec = _d(pod.get("spec"))
    status = _d(pod.get("status"))
    containers = _l(spec.get("containers"))
    init_specs = {str(_d(c).get("name")): _d(c) for c in _l(spec.get("initContainers"))}
    total = len(containers) + sum(1 for c in init_specs.values() if _is_restartable_init(c))
    ready = 0
    restarts = 0
    restartable_init_restarts = 0

    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or "") or phase
    for cond in _l(status.get("conditions")):
        c = _d(cond)
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = _l(status.get("initContainerStatuses"))
    for i, raw in enumerate(init_statuses):
        cs = _d(raw)
        count = _int(cs.get("restartCount"))
        restarts += count
        init_spec = init_specs.get(str(cs.get("name")))
        restartable = _is_restartable_init(init_spec)
        if restartable:
            restartable_init_restarts += count
        state = _d(cs.get("state"))
        terminated = _d(state.get("terminated"))
        waiting = _d(state.get("waiting"))
        if state.get("terminated") is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if restartable and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if state.get("terminated") is not None:
            if terminated.get("reason"):
                reason = f"Init:{terminated['reason']}"
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(status, "Initialized"):
        restarts = restartable_init_restarts
        has_running = False
        for raw in reversed(_l(status.get("containerStatuses"))):
            cs = _d(raw)
            restarts += _int(cs.get("restartCount"))
            state = _d(cs.get("state"))
            waiting = _d(state.get("waiting"))
            terminated = _d(state.get("terminated"))
            if state.get("waiting") is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif state.get("terminated") is not None and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif state.get("terminated") is not None:
                if _int(terminated.get("signal")):
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == NODE_UNREACHABLE_REASON:
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in TERMINAL_PHASES:
        reason = "Terminating"
    return reason, ready, total, restarts


def pod_status(pod: Mapping[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods``."""
    return pod_summary(pod)[0]


def pod_view(pod: Mapping[str, Any]) -> PodView:
    meta = _d(pod.get("metadata"))
    spec = _d(pod.get("spec"))
    status = _d(pod.get("status"))
    text, ready, total, restarts = pod_summary(pod)
    conditions = [_d(c) for c in _l(status.get("conditions"))]
    ready_cond = next((c for c in conditions if c.get("type") == "Ready"), None)
    is_ready = (
        ready_cond.get("status") == "True" if ready_cond is not None else total > 0 and ready == total
    )
    ips = [str(_d(i).get("ip")) for i in _l(status.get("podIPs")) if _d(i).get("ip")]
    ip = ips[0] if ips else str(status.get("podIP") or "")
    return PodView(
        uid=str(meta.get("uid") or meta.get("name") or ""),
        name=str(meta.get("name") or ""),
        node=str(spec.get("nodeName") or ""),
        status=text,
        ready=bool(is_ready),
        ready_text=f"{ready}/{total}",
        ip=ip,
        restarts=restarts,
        created=parse_time(meta.get("creationTimestamp")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


# -- nodes, deployment, service, events -------------------------------------------------------
def node_roles(node: Mapping[str, Any]) -> str:
    labels = _d(_d(node.get("metadata")).get("labels"))
    roles: set[str] = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.split("/", 1)[1]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) if roles else "<none>"


def node_view(node: Mapping[str, Any], lease: Mapping[str, Any] | None = None) -> NodeView:
    """The node as the live view shows it; ``lease`` is its Lease in ``kube-node-lease``,
    whose ``renewTime`` is the kubelet's heartbeat (every 10 s by default: kubelet's
    nodeLeaseDurationSeconds 40 / 4, kubernetes.io/docs/concepts/architecture/leases)."""
    meta = _d(node.get("metadata"))
    status = _d(node.get("status"))
    addresses = [_d(a) for a in _l(status.get("addresses"))]
    ip = next((str(a.get("address")) for a in addresses if a.get("type") == "InternalIP"), "")
    return NodeView(
        name=str(meta.get("name") or ""),
        roles=node_roles(node),
        ip=ip,
        ready=_has_condition(status, "Ready"),
        unschedulable=bool(_d(node.get("spec")).get("unschedulable")),
        taints=tuple(f"{_d(t).get('key')}:{_d(t).get('effect')}" for t in _l(_d(node.get("spec")).get("taints"))),
        ready_since=next((parse_time(_d(c).get("lastTransitionTime")) for c in _l(status.get("conditions"))
                          if _d(c).get("type") == "Ready"), 0.0),
        tainted_at=next((parse_time(_d(t).get("timeAdded")) for t in _l(_d(node.get("spec")).get("taints"))
                         if _d(t).get("effect") == "NoExecute" and _d(t).get("key") in NODE_FAILURE_TAINTS), 0.0),
        heartbeat=parse_time(_d(_d(lease).get("spec")).get("renewTime")) if lease else 0.0,
    )


def nodes_from_pods(pods: Iterable[Mapping[str, Any]]) -> list[NodeView]:
    """Without permission to list nodes: one node per ``spec.nodeName`` of the pods (its
    address the pods' ``status.hostIP``; readiness unknown, shown as Ready)."""
    seen: dict[str, str] = {}
    for pod in pods:
        name = str(_d(pod.get("spec")).get("nodeName") or "")
        if name and not seen.get(name):
            seen[name] = str(_d(pod.get("status")).get("hostIP") or "")
    return [NodeView(name=name, roles="<none>", ip=ip, ready=True) for name, ip in sorted(seen.items())]


NODE_FAILURE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")


def diff_nodes(old: ClusterSnapshot | None, new: ClusterSnapshot) -> list[Obj]:
    """The nodes whose readiness, cordon or taints changed from ``old`` to ``new`` (all of
    them on the first picture), as ``watch --json`` prints them."""
    before = {n.name: n for n in (old.nodes if old is not None else ())}
    out: list[Obj] = []
    for n in sorted(new.nodes, key=lambda v: v.name):
        prev = before.get(n.name)
        if prev is not None and (prev.ready, prev.unschedulable, prev.taints) == (n.ready, n.unschedulable, n.taints):
            continue
        out.append({"change": "node", "node": n.name, "ready": n.ready,
                    "unschedulable": n.unschedulable, "taints": list(n.taints)})
    return out


def deployment_view(deployment: Mapping[str, Any]) -> DeploymentView:
    meta = _d(deployment.get("metadata"))
    spec = _d(deployment.get("spec"))
    status = _d(deployment.get("status"))
    desired = spec.get("replicas")
    return DeploymentView(
        name=str(meta.get("name") or ""),
        desired=1 if desired is None else _int(desired),
        ready=_int(status.get("readyReplicas")),
        updated=_int(status.get("updatedReplicas")),
        available=_int(status.get("availableReplicas")),
    )


def announcing_node(l2statuses: Sequence[Mapping[str, Any]], service: str, namespace: str) -> str:
    """The node MetalLB announces ``namespace/service`` from (``ServiceL2Status``), or ""."""
    for obj in l2statuses:
        status = _d(obj.get("status"))
        labels = _d(_d(obj.get("metadata")).get("labels"))
        name = status.get("serviceName") or labels.get("metallb.io/service-name")
        ns = status.get("serviceNamespace") or labels.get("metallb.io/service-namespace")
        node = status.get("node") or labels.get("metallb.io/node")
        if name == service and ns == namespace and node:
            return str(node)
    return ""


def service_view(
    service: Mapping[str, Any], l2statuses: Sequence[Mapping[str, Any]] | None = None
) -> ServiceView:
    meta = _d(service.get("metadata"))
    spec = _d(service.get("spec"))
    ingress = [_d(i) for i in _l(_d(_d(service.get("status")).get("loadBalancer")).get("ingress"))]
    external = next((str(i.get("ip") or i.get("hostname")) for i in ingress if i.get("ip") or i.get("hostname")), "")
    ports = [_d(p) for p in _l(spec.get("ports"))]
    name = str(meta.get("name") or "")
    return ServiceView(
        name=name,
        external_ip=external,
        port=_int(ports[0].get("port")) if ports else 0,
        announcing_node=announcing_node(list(l2statuses or []), name, str(meta.get("namespace") or "")),
        traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
    )


def event_time(event: Mapping[str, Any]) -> float:
    series = _d(event.get("series"))
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        _d(event.get("metadata")).get("creationTimestamp"),
    ):
        t = parse_time(value)
        if t:
            return t
    return 0.0


def cluster_event(event: Mapping[str, Any]) -> ClusterEvent:
    involved = _d(event.get("involvedObject")) or _d(event.get("regarding"))
    kind = str(involved.get("kind") or "").lower()
    name = str(involved.get("name") or "")
    return ClusterEvent(
        time=event_time(event),
        reason=str(event.get("reason") or ""),
        object=f"{kind}/{name}" if kind else name,
        message=str(event.get("message") or event.get("note") or ""),
        type=str(event.get("type") or "Normal"),
        resource_version=_int(_d(event.get("metadata")).get("resourceVersion")),
    )


# -- the state ---------------------------------------------------------------------------------
def _key(obj: Mapping[str, Any]) -> str:
    meta = _d(obj.get("metadata"))
    return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")


class ClusterState:
    """What the watchers have seen, kept per kind by uid. Thread-safe."""

    def __init__(
        self,
        identity: AppIdentity = APP,
        *,
        max_events: int = 50,
        on_update: Callable[[], None] | None = None,
        expected: Sequence[str] = (),
    ) -> None:
        self.identity = identity
        self.namespace = identity.namespace
        self.app_label = identity.app
        self.deployment = identity.deployment
        self.service = identity.service
        self.max_events = max_events
        self.on_update = on_update
        self.expected = tuple(expected)  # kinds that must have listed before "connected"
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Obj]] = {kind: {} for kind in KINDS}
        self._status: dict[str, tuple[bool, str]] = {}
        self.changes = 0  # how many changes were applied (for tests and benchmarks)
        self.server_generation = 0  # grows when the watches move to a new API server
        self._forbidden: set[str] = set()  # kinds the credentials may not list (403)

    def new_server(self) -> None:
        """The kubeconfig names a new API server: every kind counts as not connected until it
        has listed from it (the old picture is stale, and says so)."""
        with self._lock:
            self.server_generation += 1
            self._status = {kind: (False, "reconnecting to a new API server") for kind in self.expected}
        self._updated()

    # -- WatchSink ------------------------------------------------------------------------
    def forbidden(self, kind: str) -> None:
        """The credentials may not list ``kind`` (403): nodes then come from the pods."""
        with self._lock:
            self._forbidden.add(kind)
        self._updated()

    @property
    def nodes_forbidden(self) -> bool:
        with self._lock:
            return NODES in self._forbidden

    def resync(self, kind: str, items: list[Obj]) -> None:
        with self._lock:
            if items:
                self._forbidden.discard(kind)
            self._objects[kind] = {_key(o): o for o in items if self._wanted(kind, o)}
            self.changes += 1
        self._updated()

    def event(self, kind: str, type_: str, obj: Obj) -> None:
        with self._lock:
            table = self._objects.setdefault(kind, {})
            key = _key(obj)
            if type_ == "DELETED" or not self._wanted(kind, obj):
                if table.pop(key, None) is None:
                    return
            else:
                table[key] = obj
                if kind == EVENTS and len(table) > self.max_events * 2:
                    self._trim_events(table)
            self.changes += 1
        self._updated()

    def status(self, kind: str, connected: bool, reason: str) -> None:
        with self._lock:
            if self._status.get(kind) == (connected, reason):
                return
            self._status[kind] = (connected, reason)
        self._updated()

    # -- reading --------------------------------------------------------------------------
    def snapshot(self) -> ClusterSnapshot:
        with self._lock:
            leases = {str(_d(lease.get("metadata")).get("name")): lease for lease in self._objects[LEASES].values()}
            nodes = [node_view(n, leases.get(str(_d(n.get("metadata")).get("name"))))
                     for n in self._objects[NODES].values()]
            pods = [pod_view(p) for p in self._objects[PODS].values()]
            deployments = [deployment_view(d) for d in self._objects[DEPLOYMENTS].values()]
            l2 = list(self._objects[L2STATUSES].values())
            services = [service_view(s, l2) for s in self._objects[SERVICES].values()]
            events = [cluster_event(e) for e in self._objects[EVENTS].values()]
            statuses = dict(self._status)
            generation = self.server_generation
            if NODES in self._forbidden and not nodes:
                nodes = nodes_from_pods(self._objects[PODS].values())
        nodes.sort(key=lambda n: ("control-plane" not in n.roles and "master" not in n.roles, n.name))
        pods.sort(key=lambda p: (p.created, p.name))
        events.sort(key=lambda e: (e.time, e.resource_version))  # the cluster's order
        problems = [reason for ok, reason in statuses.values() if not ok]
        waiting = not statuses or any(kind not in statuses for kind in self.expected)
        if problems:
            connected, error = False, problems[0]
        elif waiting:
            connected, error = False, "connecting to the API server"
        else:
            connected, error = True, ""
        return ClusterSnapshot(
            nodes=tuple(nodes),
            pods=tuple(pods),
            deployment=deployments[0] if deployments else None,
            service=services[0] if services else None,
            events=tuple(events[-self.max_events :]),
            connected=connected,
            error=error,
            server_generation=generation,
        )

    def pod_objects(self) -> list[Obj]:
        with self._lock:
            return list(self._objects[PODS].values())

    # -- internals ------------------------------------------------------------------------
    def _wanted(self, kind: str, obj: Mapping[str, Any]) -> bool:
        meta = _d(obj.get("metadata"))
        if kind == PODS:
            return (
                meta.get("namespace", self.namespace) == self.namespace
                and self.identity.matches(_d(meta.get("labels")))
            )
        if kind == DEPLOYMENTS:
            return meta.get("name") == self.deployment and meta.get("namespace", self.namespace) == self.namespace
        if kind == SERVICES:
            return meta.get("name") == self.service and meta.get("namespace", self.namespace) == self.namespace
        return True

    def _trim_events(self, table: dict[str, Obj]) -> None:
        ordered = sorted(table.items(), key=lambda kv: event_time(kv[1]))
        for key, _ in ordered[: len(ordered) - self.max_events]:
            del table[key]

    def _updated(self) -> None:
        callback = self.on_update
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("state update callback failed")


class Coalescer:
    """Turns bursts of ``notify()`` into calls of ``fire()`` on a thread of its own.

    A token bucket: ``burst`` calls may go out at once (so the first change after a quiet
    moment is never delayed), refilled at one per ``interval`` seconds; a sustained burst
    therefore gives at most 1/interval calls a second (20/s by default). Every notify is
    followed by a call made after it, so the last call always sees the latest state.
    """

    def __init__(
        self, fire: Callable[[], None], interval: float = 0.05, burst: int = 2, *, clock: Clock = MONOTONIC
    ) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError("coalescing needs interval > 0 and burst >= 1")
        self._fire = fire
        self._clock = clock
        self.interval = interval
        self.burst = burst
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._tokens = float(burst)
        self._stamp = clock.now()
        self.fired = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="state-coalescer", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        self._pending.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._pending.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _refill(self) -> None:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now

    def _run(self) -> None:
        while True:
            self._pending.wait()
            if self._stopping.is_set():
                return
            self._refill()
            if self._tokens < 1.0:
                if self._clock.wait(self._stopping, (1.0 - self._tokens) * self.interval):
                    return
                self._refill()
            self._tokens -= 1.0
            self._pending.clear()
            self.fired += 1
            try:
                self._fire()
            except Exception:
                log.exception("change callback failed")


@dataclass(frozen=True)
class PodChange:
    """One difference between two snapshots, for line-per-change output."""

    change: str  # "added", "changed" or "deleted"
    pod: PodView
    previous: str = ""  # the status before, for "changed"

    def to_json(self, at: float) -> dict[str, Any]:
        return {
            "time": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "change": self.change,
            "pod": self.pod.name,
            "node": self.pod.node,
            "status": self.pod.status,
            "previous": self.previous,
            "ready": self.pod.ready_text,
            "ip": self.pod.ip,
            "restarts": self.pod.restarts,
        }


def diff_pods(old: ClusterSnapshot | None, new: ClusterSnapshot) -> list[PodChange]:
    """What changed in the app's pods from ``old`` to ``new`` (by uid), in a stable order."""
    before = {p.uid: p for p in (old.pods if old is not None else ())}
    after = {p.uid: p for p in new.pods}
    out: list[PodChange] = []
    for uid, pod in after.items():
        prev = before.get(uid)
        if prev is None:
            out.append(PodChange("added", pod))
        elif (prev.status, prev.node, prev.ready_text, prev.ip, prev.restarts) != (
            pod.status,
            pod.node,
            pod.ready_text,
            pod.ip,
            pod.restarts,
        ):
            out.append(PodChange("changed", pod, prev.status))
    out.extend(PodChange("deleted", pod, pod.status) for uid, pod in before.items() if uid not in after)
    return out
