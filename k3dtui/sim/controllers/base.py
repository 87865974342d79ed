"""The controllers' shared context and their reconcile loop.

Controllers run on the simulator's event loop. The store calls subscribers synchronously
from inside a write, so a controller never writes from its event handler: it enqueues a
key, and the loop drains the queue on its next turn (like a workqueue fed by a watch).
A turn works through at most ``SimSettings.tick_bound`` keys, and keys queued during a turn
wait for the next one: a burst of events about one object is one reconcile, and a large
change (a scale to hundreds of replicas) proceeds in bounded turns with the API served in
between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from k3dtui.sim import gvrs, registry
from k3dtui.sim.controllers import util
from k3dtui.sim.registry import namespaces
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import GVR, ApiError, Event, Obj, Store

log = logging.getLogger("k3dtui.sim")

Key = tuple[GVR, str, str]


class Runtime(Protocol):
    """What the kubelet and the load balancer controller need from the data plane."""

    async def start_pod(self, uid: str, pod: str, node: str, app: str = "app") -> int:
        """Start the app's HTTP server for a pod (``app="nginx"``: nginx's default page);
        returns its loopback port once it answers."""
        ...

    async def stop_pod(self, uid: str) -> None: ...

    async def set_lb(self, key: str, backends: list[int], snat: dict[int, str] | None = None) -> int:
        """Create or update a listener; returns its loopback port. ``snat``: backend port →
        the source address its pod sees (kube-proxy's masquerade), none: the client's."""
        ...

    async def remove_lb(self, key: str) -> None: ...


@dataclass
class NodeSpec:
    name: str
    role: str  # "server" | "agent"
    ip: str
    index: int  # podCIDR 10.42.<index>.0/24


@dataclass
class Ctx:
    store: Store
    settings: SimSettings
    cluster: str
    nodes: list[NodeSpec]
    runtime: Runtime | None = None
    images: set[str] = field(default_factory=set)  # normalized references imported
    children: dict[str, set[Key]] = field(default_factory=dict)  # owner uid → dependents
    controllers: list[Controller] = field(default_factory=list)
    on_images: list[Callable[[], None]] = field(default_factory=list)
    ca_pem: str = ""  # the API server's CA (published as kube-root-ca.crt in every namespace)
    stopped: set[str] = field(default_factory=set)  # nodes whose container is stopped (k3d node stop)
    _events: list[Key] = field(default_factory=list)
    _turn_steps: int = 0  # paced steps taken in this turn of the loop (``pace``)
    _turn_reset: bool = False

    async def pace(self) -> None:
        """Take one of this turn's ``tick_bound`` steps, or wait for a later turn that has one.

        The kubelets' pod workers call this before each status write: a thousand pods whose
        timers expire together then write in turns of at most ``tick_bound``, with the API
        answered in between, rather than all in one turn (the kubelet's API client paces its
        writes the same way: --kube-api-qps 50, --kube-api-burst 100)."""
        while self._turn_steps >= max(1, self.settings.tick_bound):
            await asyncio.sleep(0)
        if not self._turn_reset:
            self._turn_reset = True
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._turn_steps += 1

    def _next_turn(self) -> None:
        self._turn_steps = 0
        self._turn_reset = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # -- wiring ----------------------------------------------------------------
    def add(self, controller: Controller) -> None:
        self.controllers.append(controller)

    def attach(self) -> Callable[[], None]:
        for obj_gvr in list(self.store.resources()):
            for obj in list(self.store.iter(obj_gvr)):
                self._index(Event("ADDED", obj_gvr, obj, 0))
        return self.store.subscribe(self.dispatch)

    def dispatch(self, event: Event) -> None:
        self._index(event)
        for c in self.controllers:
            if event.gvr in c.watches or "*" in c.watch_all:
                try:
                    c.on_event(event)
                except Exception:  # a controller bug must never break a write
                    log.exception("%s.on_event", type(c).__name__)

    def _index(self, event: Event) -> None:
        m = event.obj.get("metadata", {})
        key: Key = (event.gvr, str(m.get("namespace", "")), str(m.get("name", "")))
        refs = m.get("ownerReferences") or []
        if event.type == "DELETED":
            for ref in refs:
                self.children.get(str(ref.get("uid")), set()).discard(key)
        else:
            old_refs = ((event.old or {}).get("metadata") or {}).get("ownerReferences") or []
            for ref in old_refs:
                if ref not in refs:
                    self.children.get(str(ref.get("uid")), set()).discard(key)
            for ref in refs:
                self.children.setdefault(str(ref.get("uid")), set()).add(key)
        if event.gvr == gvrs.EVENTS:
            if event.type == "ADDED":
                self._events.append(key)
            elif event.type == "DELETED" and key in self._events:
                self._events.remove(key)

    def dependents(self, uid: str, gvr: GVR | None = None) -> list[Obj]:
        out = []
        for key in list(self.children.get(uid, ())):
            if gvr is not None and key[0] != gvr:
                continue
            obj = self.store.peek(*key)
            if obj is not None:
                out.append(obj)
        return out

    def node(self, name: str) -> NodeSpec | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    # -- images ----------------------------------------------------------------
    def import_image(self, image: str) -> None:
        self.images.add(util.normalize_image(image))
        for fn in list(self.on_images):
            fn()

    def has_image(self, image: str) -> bool:
        return util.normalize_image(image) in self.images

    # -- events ----------------------------------------------------------------
    def record(
        self, obj: Obj, reason: str, message: str, *, component: str, warning: bool = False,
        host: str | None = None, field_path: str | None = None,
    ) -> None:
        """Create a core/v1 Event about ``obj``."""
        m = obj.get("metadata", {})
        ns = str(m.get("namespace") or "default")
        if namespaces.terminating(self.store, ns):
            return  # the namespace lifecycle admission refuses new content there
        ts = util.now()
        involved: dict[str, Any] = {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", ""),
            "name": m.get("name", ""),
            "namespace": ns,
            "uid": m.get("uid", ""),
            "resourceVersion": m.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{m.get('name', 'x')}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "type": "Warning" if warning else "Normal",
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        try:
            self.store.create(gvrs.EVENTS, ev)
        except ApiError:
            return
        limit = max(10, self.settings.event_limit)
        while len(self._events) > limit:
            oldest = self._events.pop(0)
            with contextlib.suppress(ApiError):
                self.store.delete(*oldest)


_background: set[asyncio.Task[Any]] = set()

# A reconcile that walks every pod of a large ReplicaSet or Service is not run for every
# event about one of its pods: pod events wait to join one reconcile for a period that grows with
# what it walks (1 ms per object, at most 1 s; none up to 50 objects), so its share of the
# loop stays bounded however large the change. kube-controller-manager batches the same way:
# --endpointslice-updates-batch-period ("processing of pod changes will be delayed by this
# duration to join them with potential upcoming updates"), and the ReplicaSet controller's
# expectations hold a sync until the creations it made are observed.
BATCH_FREE = 50
BATCH_PER_OBJECT = 0.001
BATCH_MAX = 1.0


def batch_period(size: int) -> float:
    """How long events wait to join one reconcile that walks ``size`` objects."""
    return 0.0 if size <= BATCH_FREE else min(BATCH_MAX, size * BATCH_PER_OBJECT)


def spawn(coro: Any) -> asyncio.Task[Any]:
    """Start a task and keep a reference until it ends (the loop holds only weak ones)."""
    task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class Controller:
    """A reconcile loop keyed by whatever ``on_event`` enqueues."""

    watches: frozenset[GVR] = frozenset()
    watch_all: frozenset[str] = frozenset()

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self._pending: dict[Any, None] = {}
        self._scheduled = False
        self._batching: set[Any] = set()  # keys whose events wait to join one reconcile
        self.sizes: dict[Any, int] = {}  # per key, how many objects its last reconcile walked

    def on_event(self, event: Event) -> None:
        delay = self.event_delay()
        for key in self.keys_for(event):
            period = batch_period(self.sizes.get(key, 0)) if event.gvr == gvrs.PODS else 0.0
            if period <= 0:
                self.enqueue(key, delay)
            elif key not in self._batching:
                self._batching.add(key)
                asyncio.get_running_loop().call_later(delay + period, self._batched, key)

    def _batched(self, key: Any) -> None:
        self._batching.discard(key)
        self._enqueue_now(key)

    def event_delay(self) -> float:
        """How long after a watch event the reconcile runs."""
        return self.ctx.settings.api_delay

    def keys_for(self, event: Event) -> Iterable[Any]:
        return ()

    def enqueue(self, key: Any, delay: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        if delay > 0:
            loop.call_later(delay, self._enqueue_now, key)
            return
        self._enqueue_now(key)

    def enqueue_all(self, gvr: GVR) -> None:
        """Queue every stored object of ``gvr`` by (namespace, name): a start's initial sync."""
        for obj in list(self.store.iter(gvr)):
            m = obj["metadata"]
            self.enqueue((str(m.get("namespace", "")), str(m["name"])))

    def _enqueue_now(self, key: Any) -> None:
        loop = asyncio.get_running_loop()
        self._pending[key] = None
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        """One turn of the loop's work: at most ``tick_bound`` keys, taken in the order they
        were queued. Keys queued meanwhile (this turn's own writes come back as events) wait
        for the next turn, where events about one key coalesce into one reconcile; the next
        turn is a fresh callback, so the loop answers the API (/healthz, lists, watches)
        between two turns."""
        self._scheduled = False
        bound = max(1, self.ctx.settings.tick_bound)
        batch: list[Any] = []
        while self._pending and len(batch) < bound:
            key = next(iter(self._pending))
            del self._pending[key]
            batch.append(key)
        self.tick()
        for key in batch:
            try:
                self.reconcile(key)
            except ApiError as exc:
                log.debug("%s.reconcile(%s): %s", type(self).__name__, key, exc.message)
            except Exception:
                log.exception("%s.reconcile(%s)", type(self).__name__, key)
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def tick(self) -> None:
        """Called at the start of each turn, before its reconciles: a controller that caches
        what every reconcile of a turn would compute again forgets it here."""

    def reconcile(self, key: Any) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Called once the loop runs (initial sync)."""


def delete_pod(store: Store, namespace: str, name: str, grace: int | None = None) -> None:
    """Delete a pod as the API does (:func:`k3dtui.sim.registry.pods.delete_pod`): graceful
    unless unscheduled, finished or ``grace`` 0; a pod already gone is no error."""
    opts = {} if grace is None else {"gracePeriodSeconds": grace}
    registry.delete_quietly(store, gvrs.PODS, namespace, name, opts)


def delete_object(store: Store, gvr: GVR, namespace: str, name: str) -> None:
    """Delete as the API does, by the kind's rules; an object already gone is no error."""
    registry.delete_quietly(store, gvr, namespace, name)
