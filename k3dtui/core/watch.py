"""Follow one kind of Kubernetes object: list, then watch from the list's resourceVersion.

The loop, per kind, on a thread of its own (the ``kubernetes`` client is synchronous):

1. **list** (keep the list's ``metadata.resourceVersion``) → hand the whole set to the sink
   as a *resync* (the sink replaces what it knew of that kind: no ghosts, no duplicates);
2. **watch** from that resourceVersion with ``allowWatchBookmarks`` and a server-side
   ``timeoutSeconds``, plus a client-side read timeout (the inactivity timeout);
3. a **normal end** of the stream (server deadline, inactivity) → watch again from the last
   resourceVersion seen (objects and BOOKMARKs both advance it; BOOKMARKs are not passed on);
4. **410 Expired** (an ``ERROR`` event or an HTTP 410) → list again (step 1);
5. **errors** (refused, reset, dropped stream, 5xx) → report "disconnected" with the reason,
   back off exponentially (capped) and start again from step 1; recovery is reported as
   "connected" once a list succeeds.

A 404 on the list can be declared acceptable (``absent_ok``, for a CRD that may not be
installed): the sink gets an empty resync and the list is retried now and then.

Objects are handed over as plain JSON dicts, exactly as the server sent them: the typed
models of the client are strict and one odd field would end the stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3
from kubernetes.client.exceptions import ApiException

from k3dtui.core.clock import MONOTONIC, Clock
from k3dtui.core.kubeerrors import describe

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ListCall = Callable[..., Any]
"""A ``list_*`` method of the kubernetes client with its positional arguments bound
(``functools.partial(CoreV1Api(api).list_namespaced_pod, "default", label_selector=...)``).
The watcher adds ``watch``, ``resource_version``, ``allow_watch_bookmarks``,
``timeout_seconds``, ``_preload_content=False`` and ``_request_timeout``."""


class WatchSink(Protocol):
    """Where a watcher delivers what it sees. Called from the watcher's thread."""

    def resync(self, kind: str, items: list[Obj]) -> None:
        """The complete current set of ``kind`` (after a list)."""

    def event(self, kind: str, type_: str, obj: Obj) -> None:
        """One change: ``type_`` is ADDED, MODIFIED or DELETED."""

    def status(self, kind: str, connected: bool, reason: str) -> None:
        """Connection state of this watcher; ``reason`` says why when not connected."""


@dataclass(frozen=True)
class WatchSettings:
    timeout_seconds: int = 240  # server-side end of each watch request
    inactivity_timeout: float = 90.0  # client-side read timeout (no byte for this long → re-watch)
    connect_timeout: float = 5.0
    list_timeout: float = 15.0  # read timeout of a list request
    backoff_initial: float = 0.25
    backoff_max: float = 8.0
    absent_poll: float = 10.0  # re-list interval while the resource does not exist (404)


class Backoff:
    """Exponential back-off: initial, initial*factor, ... capped at ``maximum``."""

    def __init__(self, initial: float = 0.25, maximum: float = 8.0, factor: float = 2.0) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("back-off needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (self.factor**self.attempts))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


class _Expired(Exception):
    """The resourceVersion we watch from is too old: list again."""


class _StreamDropped(Exception):
    """An established watch stream broke mid-way."""


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong talking to the API server (``core.kubeerrors``)."""
    if isinstance(exc, _StreamDropped):
        return f"the watch stream broke ({exc})"
    return describe(exc)


def _iter_lines(resp: Any) -> Iterator[bytes]:
    buffer = bytearray()
    for segment in resp.stream(amt=None, decode_content=False):
        buffer.extend(segment if isinstance(segment, bytes) else str(segment).encode())
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end]).strip()
            start = end + 1
            if line:
                yield line
        del buffer[:start]
    tail = bytes(buffer).strip()
    if tail:
        yield tail


class Watcher:
    """List-then-watch loop for one kind, on its own thread. ``stop()`` ends it promptly."""

    def __init__(
        self,
        kind: str,
        call: ListCall,
        sink: WatchSink,
        *,
        settings: WatchSettings | None = None,
        absent_ok: bool = False,
        forbidden_ok: bool = False,
        clock: Clock = MONOTONIC,
        refresh: Callable[[], ListCall | None] | None = None,
    ) -> None:
        self.kind = kind
        self._clock = clock
        self._call = call
        # After a failed request: a new call when the connection changed (a restarted
        # cluster's kubeconfig names a new server, token or CA), else None. Asked while the
        # watcher waits to retry, so a new server is reached at once, not after the back-off.
        self._refresh = refresh
        self.reconnects = 0  # how many times a new connection replaced the old one
        self._sink = sink
        self.settings = settings or WatchSettings()
        self._absent_ok = absent_ok
        # a 403 on the list means "no permission to see these" (RBAC of an attached cluster's
        # user), not a disconnection: an empty picture, said to the sink, looked at again later
        self._forbidden_ok = forbidden_ok
        self.forbidden = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._resp_lock = threading.Lock()
        self._resp: Any = None
        self._backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        self.resource_version = ""
        self.connected = False
        self.lists = 0  # how many lists were made (first one included)
        self.watches = 0  # how many watch requests were made
        self.expired = 0  # how many times the server answered 410 Expired (each followed by a list)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"watcher {self.kind} already started")
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._abort_response()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop --------------------------------------------------------------------------
    def _run(self) -> None:
        need_list = True
        # Streams that end (or break, or expire) right after they began would make a busy
        # loop with a misbehaving server: those wait on a back-off of their own, reset once
        # a watch has lasted a while. Real failures use ``_backoff`` and report themselves.
        churn = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        while not self._stopping.is_set():
            began = self._clock.now()
            try:
                if need_list:
                    present = self._list()
                    need_list = False
                    if not present:
                        # The resource does not exist (yet): look again later.
                        self._clock.wait(self._stopping, self.settings.absent_poll)
                        need_list = True
                        continue
                    began = self._clock.now()
                got_events = self._watch_once()
                if got_events:
                    self._backoff.reset()
                if self._clock.now() - began >= 1.0:
                    churn.reset()
                elif not got_events:
                    # An empty stream that ended at once: do not hammer the server.
                    self._clock.wait(self._stopping, churn.next())
            except _Expired:
                self.expired += 1
                need_list = True
                if self._clock.now() - began < 1.0:
                    self._clock.wait(self._stopping, churn.next())
                continue
            except _StreamDropped as exc:
                # The stream was up and broke: list again at once (only a failing request
                # counts as disconnected), unless streams keep breaking as soon as they start.
                if self._stopping.is_set():
                    break
                log.debug("watch %s: %s", self.kind, exc)
                need_list = True
                if self._clock.now() - began < 1.0:
                    self._clock.wait(self._stopping, churn.next())
                else:
                    churn.reset()
                continue
            except Exception as exc:
                if self._stopping.is_set():
                    break
                reason = describe_error(exc)
                log.debug("watch %s failed: %s", self.kind, reason)
                self._set_status(False, reason)
                need_list = True
                self._pause(self._backoff.next())
                continue
        self._abort_response()

    def _pause(self, delay: float, slice_: float = 0.25) -> None:
        """Wait ``delay`` before retrying; with ``refresh``, look for a new connection every
        ``slice_`` seconds and take it at once (the next request lists afresh)."""
        if self._refresh is None:
            self._clock.wait(self._stopping, delay)
            return
        end = self._clock.now() + delay
        while not self._stopping.is_set():
            try:
                call = self._refresh()
            except Exception:
                log.exception("watch %s: refresh failed", self.kind)
                call = None
            if call is not None:
                self._call = call
                self.resource_version = ""  # another server's resourceVersions mean nothing here
                self.reconnects += 1
                self._backoff.reset()
                return
            left = end - self._clock.now()
            if left <= 0:
                return
            self._clock.wait(self._stopping, min(slice_, left))

    def _set_status(self, connected: bool, reason: str) -> None:
        self.connected = connected
        try:
            self._sink.status(self.kind, connected, reason)
        except Exception:
            log.exception("watch sink failed on status")

    def _list(self) -> bool:
        s = self.settings
        try:
            resp = self._call(
                _preload_content=False, _request_timeout=(s.connect_timeout, s.list_timeout)
            )
        except ApiException as exc:
            if exc.status == 404 and self._absent_ok:
                self.lists += 1
                self.resource_version = ""
                self._deliver_resync([])
                self._backoff.reset()
                self._set_status(True, "")
                return False
            if exc.status == 403 and self._forbidden_ok:
                self.lists += 1
                self.resource_version = ""
                self.forbidden = True
                self._deliver_resync([])
                said = getattr(self._sink, "forbidden", None)
                if callable(said):
                    said(self.kind)
                self._backoff.reset()
                self._set_status(True, "")
                return False
            raise
        self._hold(resp)
        try:
            data = json.loads(resp.data)
        finally:
            self._release(resp, reuse=True)
        if not isinstance(data, dict):
            raise ValueError(f"list of {self.kind}: not a JSON object")
        items = [i for i in data.get("items") or [] if isinstance(i, dict)]
        self.forbidden = False
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        self.lists += 1
        self._deliver_resync(items)
        self._backoff.reset()
        self._set_status(True, "")
        return True

    def _watch_once(self) -> bool:
        """One watch request. Returns whether any event came; raises _Expired/_StreamDropped."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": s.timeout_seconds,
            "_preload_content": False,
            "_request_timeout": (s.connect_timeout, s.inactivity_timeout),
        }
        if self.resource_version:
            kwargs["resource_version"] = self.resource_version
        try:
            resp = self._call(**kwargs)
        except ApiException as exc:
            if exc.status == 410:
                raise _Expired() from exc
            raise
        self.watches += 1
        self._hold(resp)
        got = False
        try:
            for line in _iter_lines(resp):
                if self._stopping.is_set():
                    break
                got = True
                self._handle_line(line)
        except urllib3.exceptions.ReadTimeoutError:
            # Inactivity: nothing (not even a bookmark) for too long. Watch again.
            log.debug("watch %s: inactive for %.0fs, re-watching", self.kind, s.inactivity_timeout)
        except (urllib3.exceptions.ProtocolError, ConnectionError, OSError) as exc:
            if self._stopping.is_set():
                return got
            raise _StreamDropped(describe_error(exc)) from exc
        finally:
            self._release(resp)
        return got

    def _handle_line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise _StreamDropped(f"undecodable watch line: {line[:80]!r}") from exc
        if not isinstance(event, dict):
            return
        type_ = str(event.get("type", ""))
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        if type_ == "ERROR":
            code = obj.get("code")
            if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                raise _Expired()
            raise ApiException(
                status=int(code) if isinstance(code, int) else 500,
                reason=f"{obj.get('reason', '')}: {obj.get('message', '')}",
            )
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = str(rv)
        if type_ == "BOOKMARK":
            return
        if type_ in ("ADDED", "MODIFIED", "DELETED"):
            try:
                self._sink.event(self.kind, type_, obj)
            except Exception:
                log.exception("watch sink failed on %s %s", type_, self.kind)

    def _deliver_resync(self, items: list[Obj]) -> None:
        try:
            self._sink.resync(self.kind, items)
        except Exception:
            log.exception("watch sink failed on resync of %s", self.kind)

    # -- the response being read (so stop() can cut it) ------------------------------------
    def _hold(self, resp: Any) -> None:
        with self._resp_lock:
            self._resp = resp
        if self._stopping.is_set():
            self._abort_response()

    def _release(self, resp: Any, *, reuse: bool = False) -> None:
        """Forget ``resp``; a fully read list keeps its connection, a watch closes its own."""
        with self._resp_lock:
            if self._resp is resp:
                self._resp = None
        try:
            if not reuse:
                resp.close()
            resp.release_conn()
        except Exception:
            pass

    def _abort_response(self) -> None:
        with self._resp_lock:
            resp = self._resp
        if resp is None:
            return
        # Wake the reading thread (SHUT_RD makes its recv return); it closes the response.
        try:
            resp.shutdown()
        except Exception:
            with contextlib.suppress(Exception):
                resp.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (a helper for callers/tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
