"""The simulated cluster's object store.

Objects are plain JSON dicts kept by (group, version, resource), namespace and name. One
global integer resourceVersion is bumped on every write; a window of recent events, bounded
by count and by age (the store's clock), lets a watch resume from a resourceVersion (or be
told 410 Expired when it is too old) and a list be served as it was at a past
resourceVersion (``state_at``). Writes
are fanned out synchronously to subscribers (controllers enqueue work; API watches
filter and forward).

All methods run on the simulator's event loop thread; nothing here is thread-safe.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

Obj = dict[str, Any]
_T = TypeVar("_T")


def clone(obj: _T) -> _T:
    """A deep copy of JSON data by orjson's round trip (about 8 times faster than
    ``copy.deepcopy`` for a pod: the store copies on every read and write); anything orjson
    cannot encode (non-string keys, huge integers) by ``copy.deepcopy``."""
    try:
        out: _T = orjson.loads(orjson.dumps(obj))
        return out
    except TypeError:
        return copy.deepcopy(obj)


@dataclass(frozen=True, order=True)
class GVR:
    group: str
    version: str
    resource: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


class ApiError(Exception):
    """A Kubernetes ``Status`` failure: code, reason, message and optional details."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def not_found(gvr: GVR, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{gvr} "{name}" not found', {"name": name, "group": gvr.group, "kind": gvr.resource})


_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def modified_conflict(gvr: GVR, name: str) -> ApiError:
    """409: the write names a resourceVersion that is no longer the stored one."""
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {gvr} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "group": gvr.group, "kind": gvr.resource},
    )


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime(_RFC3339)


def rfc3339(t: float) -> str:
    """A Unix time as the API writes timestamps (``2025-01-01T00:00:00Z``)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime(_RFC3339)


def parse_rfc3339(text: str | None) -> float | None:
    """A timestamp the API wrote, as Unix time (``None`` when absent or malformed)."""
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, _RFC3339).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Event:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``obj`` is the stored state."""

    type: str
    gvr: GVR
    obj: Obj
    rv: int
    old: Obj | None = None
    at: float = 0.0  # the store's clock when it happened (the event window's age)

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


Key = tuple[GVR, str, str]
_NAMESPACES = GVR("", "v1", "namespaces")
Subscriber = Callable[[Event], None]


# kube-apiserver's watch cache keeps a window of recent events bounded by count and by age
# (staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go: eventFreshDuration,
# 75 s by default and up to 5 minutes); a watch or list from an older resourceVersion gets
# 410 Expired, as after an etcd compaction.
WINDOW_EVENTS = 4000
WINDOW_SECONDS = 300.0


class Store:
    def __init__(self, window: int = WINDOW_EVENTS, *, window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._objects: dict[Key, Obj] = {}
        # the same objects by resource: lists and controllers read one resource at a time
        self._by_gvr: dict[GVR, dict[tuple[str, str], Obj]] = {}
        self._rv = 1
        self._ring: collections.deque[Event] = collections.deque(maxlen=window)
        self._subscribers: list[Subscriber] = []
        self.window_seconds = window_seconds
        self.clock = clock
        # the oldest resourceVersion the window can still answer for (history before it is gone)
        self._horizon = 1

    # -- reads ---------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, gvr: GVR, namespace: str, name: str) -> Obj | None:
        obj = self._objects.get((gvr, namespace, name))
        return clone(obj) if obj is not None else None

    def peek(self, gvr: GVR, namespace: str, name: str) -> Obj | None:
        """Like ``get`` without the copy: the caller must not mutate the result."""
        return self._objects.get((gvr, namespace, name))

    def require(self, gvr: GVR, namespace: str, name: str) -> Obj:
        obj = self.get(gvr, namespace, name)
        if obj is None:
            raise not_found(gvr, name)
        return obj

    def iter(self, gvr: GVR, namespace: str | None = None) -> Iterator[Obj]:
        """Stored objects of one resource (not copied: do not mutate)."""
        for (ns, _), obj in list(self._by_gvr.get(gvr, {}).items()):
            if namespace is None or ns == namespace:
                yield obj

    def list_objects(self, gvr: GVR, namespace: str | None = None) -> tuple[list[Obj], int]:
        items = [clone(o) for o in self.list_stored(gvr, namespace)]
        return items, self._rv

    def list_stored(self, gvr: GVR, namespace: str | None = None) -> list[Obj]:
        """The stored objects of one resource sorted by (namespace, name), not copied: for
        a reader that serializes them at once (an API list) and never mutates them."""
        index = self._by_gvr.get(gvr, {})
        return [index[k] for k in sorted(k for k in index if namespace is None or k[0] == namespace)]

    def resources(self) -> set[GVR]:
        return {g for g, objs in self._by_gvr.items() if objs}

    # -- writes --------------------------------------------------------------
    def create(self, gvr: GVR, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        ns = str(meta.get("namespace", ""))
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        key = (gvr, ns, str(name))
        if key in self._objects:
            raise ApiError(
                409, "AlreadyExists", f'{gvr} "{name}" already exists',
                {"name": name, "group": gvr.group, "kind": gvr.resource},
            )
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta.setdefault("generation", 1)
        stored = self._bump(obj)
        self._put(key, stored)
        self._emit(Event("ADDED", gvr, clone(stored), self._rv))
        return clone(stored)

    def update(
        self, gvr: GVR, obj: Obj, *, expect_rv: str | None = None, bump_generation: bool = False
    ) -> Obj:
        """Replace a stored object. ``expect_rv`` (when given) must match, else 409.

        ``generation`` goes up when anything but metadata and status changes (or when
        ``bump_generation``). An object being deleted (``deletionTimestamp``) whose last
        finalizer this update removes is deleted, as the API server does (pods only once
        their grace period is 0: until then the kubelet finishes them).
        """
        meta = obj["metadata"]
        ns = str(meta.get("namespace", ""))
        name = str(meta["name"])
        key = (gvr, ns, name)
        old = self._objects.get(key)
        if old is None:
            raise not_found(gvr, name)
        if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
            raise modified_conflict(gvr, name)
        # identity fields are the server's
        for field in ("uid", "creationTimestamp"):
            meta[field] = old["metadata"][field]
        gen = int(old["metadata"].get("generation", 1))
        if _spec_of(obj) != _spec_of(old) or bump_generation:
            gen += 1
        meta["generation"] = gen
        if obj == old:
            return clone(old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and (
            (old["metadata"].get("finalizers")
             and (gvr.resource != "pods" or meta.get("deletionGracePeriodSeconds") == 0))
            # a namespace whose last spec.finalizer goes (the finalize subresource):
            # pkg/registry/core/namespace/storage ShouldDeleteNamespaceDuringUpdate
            or (gvr == _NAMESPACES and not (obj.get("spec") or {}).get("finalizers")
                and (old.get("spec") or {}).get("finalizers"))
        ):
            # the DELETED event carries this last state
            self._put(key, self._bump(obj))
            return self.delete(gvr, ns, name)
        stored = self._bump(obj)
        self._put(key, stored)
        # ``old`` is no longer stored: the event may hold it as it is (nothing mutates a stored
        # object in place; every writer edits a copy and puts it back)
        self._emit(Event("MODIFIED", gvr, clone(stored), self._rv, old=old))
        return clone(stored)

    def mutate(self, gvr: GVR, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj | None:
        """Read-modify-write for controllers: ``fn`` edits a copy; no-op when unchanged.

        Returns the stored object, or ``None`` when it no longer exists.
        """
        stored = self._objects.get((gvr, namespace, name))
        if stored is None:
            return None
        current = clone(stored)
        fn(current)
        if current == stored:
            return current
        return self.update(gvr, current)

    def delete(self, gvr: GVR, namespace: str, name: str) -> Obj:
        key = (gvr, namespace, name)
        old = self._objects.pop(key, None)
        if old is None:
            raise not_found(gvr, name)
        self._by_gvr.get(gvr, {}).pop((namespace, name), None)
        gone = self._bump(clone(old))
        self._emit(Event("DELETED", gvr, clone(gone), self._rv, old=old))
        return gone

    # -- events --------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn`` after every write (synchronously). Returns an unsubscribe function."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def events_since(self, rv: int) -> list[Event] | None:
        """Events with resourceVersion > ``rv``, or ``None`` when ``rv`` is older than the window."""
        self._prune()
        if rv >= self._rv:
            return []
        if rv < self.oldest_rv:
            return None
        return [e for e in self._ring if e.rv > rv]

    def expire(self) -> None:
        """Forget the event window: a watch from any older resourceVersion now gets 410."""
        self._ring.clear()
        self._horizon = self._rv

    @property
    def oldest_rv(self) -> int:
        """The oldest resourceVersion a watch may resume from (or a list be served at)."""
        self._prune()
        return self._ring[0].rv - 1 if self._ring else max(self._horizon, self._rv)

    def _prune(self) -> None:
        """Drop events older than ``window_seconds`` (the count bound is the ring's length)."""
        limit = self.clock() - self.window_seconds
        while self._ring and self._ring[0].at < limit:
            gone = self._ring.popleft()
            self._horizon = gone.rv

    def state_at(self, gvr: GVR, rv: int, namespace: str | None = None) -> list[Obj] | None:
        """The objects of one resource as they were at resourceVersion ``rv`` (copies, sorted
        as ``list_objects``), rebuilt by undoing the window's later events; ``None`` when
        ``rv`` is older than the window (410) or newer than the store."""
        if rv > self._rv:
            return None
        events = self.events_since(rv)
        if events is None:
            return None
        state: dict[tuple[str, str], Obj] = {
            key: obj for key, obj in self._by_gvr.get(gvr, {}).items()
            if namespace is None or key[0] == namespace
        }
        for ev in reversed(events):
            if ev.gvr != gvr or (namespace is not None and ev.namespace != namespace):
                continue
            key = (ev.namespace, ev.name)
            if ev.type == "ADDED":
                state.pop(key, None)
            elif ev.old is not None:
                state[key] = ev.old
        items = [clone(o) for o in state.values()]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    # -- keeping the state (sim/persist.py) ------------------------------------------
    def dump(self) -> dict[str, Any]:
        """Every object and the resourceVersion counter, as plain data (references to the
        stored objects: serialize before the loop changes them)."""
        return {"rv": self._rv,
                "objects": [[k[0].group, k[0].version, k[0].resource, obj] for k, obj in self._objects.items()]}

    def restore(self, data: dict[str, Any]) -> int:
        """Load what ``dump`` gave into an empty store: the objects and the counter; the event
        window starts empty at that counter (a watch from before gets 410 and lists again).
        Returns how many objects were loaded."""
        if self._objects:
            raise RuntimeError("restore needs an empty store")
        count = 0
        for group, version, resource, obj in data.get("objects") or []:
            meta = obj.get("metadata") or {}
            self._put((GVR(str(group), str(version), str(resource)), str(meta.get("namespace", "")),
                       str(meta["name"])), obj)
            count += 1
        self._rv = max(int(data.get("rv") or 1), self._rv)
        self._horizon = self._rv
        self._ring.clear()
        return count

    def _put(self, key: Key, obj: Obj) -> None:
        self._objects[key] = obj
        self._by_gvr.setdefault(key[0], {})[(key[1], key[2])] = obj

    def _bump(self, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        return obj

    def _emit(self, event: Event) -> None:
        if len(self._ring) == self._ring.maxlen and self._ring:
            self._horizon = self._ring[0].rv
        event = dataclasses.replace(event, at=self.clock())
        self._ring.append(event)
        for fn in list(self._subscribers):
            fn(event)


def _spec_of(obj: Obj) -> Any:
    """What bumps ``generation``: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
