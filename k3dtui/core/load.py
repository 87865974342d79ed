"""The load generator: GETs to the Service, counted per pod and per node.

``LoadGenerator`` is the caller's handle. Each run happens in a process of its own
(``multiprocessing`` spawn, its own event loop, uvloop when installed: see
``k3dtui.core.loadworker``), so neither a UI's rendering nor the GIL slows the requests
down, and the second core is used. The worker sends one aggregated snapshot about ten
times a second over a pipe; ``latest()`` drains the pipe without blocking and returns the
newest as a ``LoadSnapshot``.

Every run is bounded (a duration or a request count, refused otherwise) and ends by
itself, even when the caller dies: the worker watches its deadline, its request count, the
pipe's EOF and its parent's pid. ``stop()`` asks (a message and an event), waits for the
final snapshot, joins, and kills the process if it does not leave.

Connection modes:
- ``keep-alive``: each of ``concurrency`` connections is kept and reused. A Kubernetes
  Service balances per *connection*, so each connection stays on one pod: the counts show
  how the connections landed (the skew), not a per-request spread.
- ``new-connection``: one connection per request (``Connection: close``): every request is
  balanced anew, so the counts show the even spread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.loadworker import (
    ERROR_KINDS,
    identity_missing,
    parse_identity,
    parse_url,
    worker_main,
)
from k3dtui.core.models import LoadSettings, LoadSnapshot

__all__ = ["ERROR_KINDS", "LoadGenerator", "validate_settings"]

MODES = ("keep-alive", "new-connection")
MAX_CONCURRENCY = 4096
FRESH = 0.35  # seconds: a snapshot older than this is stale (the worker ticks every 0.1 s)
FRESH_WAIT = 0.25  # seconds latest() waits at most for a fresh snapshot after a pause
STOP_GRACE = 2.0  # seconds the worker gets to send its final snapshot and leave
SLICE = 0.1  # seconds a blocking call holds the lock at a time


def validate_settings(settings: LoadSettings, *, need_url: bool = True) -> None:
    """Raise ``UsageError`` (one line naming the fix) when the settings cannot run."""
    if settings.mode not in MODES:
        raise UsageError(f"unknown connection mode {settings.mode!r}: use keep-alive or new-connection")
    if isinstance(settings.concurrency, bool) or not isinstance(settings.concurrency, int):
        raise UsageError(f"concurrency must be a whole number, not {settings.concurrency!r}")
    if not 1 <= settings.concurrency <= MAX_CONCURRENCY:
        raise UsageError(
            f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {settings.concurrency}"
        )
    if settings.rate is not None and not settings.rate > 0:
        raise UsageError(f"rate must be a positive number of requests per second, not {settings.rate}")
    if settings.duration is None and settings.requests is None:
        raise UsageError("a load run must be bounded: give a duration or a request count")
    if settings.duration is not None and not settings.duration > 0:
        raise UsageError(f"duration must be a positive number of seconds, not {settings.duration}")
    if settings.requests is not None and (
        isinstance(settings.requests, bool) or not isinstance(settings.requests, int) or settings.requests < 1
    ):
        raise UsageError(f"requests must be a whole number of at least 1, not {settings.requests!r}")
    if not settings.timeout > 0:
        raise UsageError(f"timeout must be a positive number of seconds, not {settings.timeout}")
    try:
        parse_identity(settings.identity)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if need_url or settings.url:
        if not settings.url:
            raise UsageError("no URL to send load to: give http://host:port/")
        try:
            parse_url(settings.url)
        except ValueError as exc:
            raise UsageError(f"{exc}; give http://host:port/path") from None


def preflight(url: str, timeout: float) -> None:
    """Fail fast, with one line, when nothing answers at the target."""
    host, port, _path, _netloc = parse_url(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        why = exc.strerror or exc.__class__.__name__
        if isinstance(exc, TimeoutError):
            why = f"no answer within {timeout:g} s"
        raise K3dtuiError(
            f"cannot connect to {url}: {why}",
            hint="check the address, or that the app is running (`k3dtui status`)",
        ) from None


def _has_fd(stream: Any) -> bool:
    try:
        return stream is not None and int(stream.fileno()) >= 0
    except (AttributeError, OSError, ValueError, TypeError):
        return False


@contextlib.contextmanager
def _spawnable_stderr() -> Iterator[None]:
    """Make ``sys.stderr`` usable by the spawn start method while a worker starts.

    A UI may replace ``sys.stderr`` with an object whose ``fileno()`` is -1 (or that has
    none); multiprocessing hands that descriptor to the resource tracker it starts, and
    the start fails. While the worker (and the tracker) start, ``sys.stderr`` is the
    process's real stderr, or fd 2 when that is open, or else ``/dev/null``."""
    current = sys.stderr
    if _has_fd(current):
        yield
        return
    opened: Any = None
    if _has_fd(sys.__stderr__):
        substitute: Any = sys.__stderr__
    else:
        try:
            os.fstat(2)
            opened = substitute = open(2, "w", closefd=False)  # noqa: SIM115 - closed below
        except OSError:
            opened = substitute = open(os.devnull, "w")  # noqa: SIM115 - closed below
    sys.stderr = substitute
    try:
        yield
    finally:
        if sys.stderr is substitute:
            sys.stderr = current
        if opened is not None:
            with contextlib.suppress(OSError):
                opened.close()


_real_stderr = _spawnable_stderr  # the former name


def _empty(settings: LoadSettings, running: bool = False, reason: str = "") -> LoadSnapshot:
    return LoadSnapshot(
        running=running,
        mode=settings.mode,
        concurrency=settings.concurrency,
        elapsed=0.0,
        requests=0,
        responses=0,
        rps=0.0,
        finished_reason=reason,
    )


class LoadGenerator:
    """Start, watch, change and stop one bounded load run at a time (each in its own process)."""

    def __init__(self, settings: LoadSettings) -> None:
        validate_settings(settings, need_url=False)
        self.settings = settings
        self.running = False
        self._lock = threading.RLock()
        self._proc: Any = None  # multiprocessing.Process of the spawn context
        self._conn: Connection | None = None
        self._stop_event: Any = None
        self._gone: set[str] = set()
        self._last = _empty(settings)
        self._closed = False
        self._sent_at = 0.0  # the worker's monotonic clock (system-wide) of the newest snapshot
        self._epoch = 0  # resets asked for in this run
        self._announcer = ""  # the node announcing the Service, as the caller last saw it

    # --- lifecycle ---
    @property
    def worker_pid(self) -> int | None:
        """The pid of the worker process of the current (or last) run."""
        proc = self._proc
        return None if proc is None else int(proc.pid) if proc.pid is not None else None

    def start(self) -> None:
        """Start a run with the current settings (non-blocking). A no-op while one runs."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this LoadGenerator is closed")
            self._poll()
            if self.running:
                return
            self._reap()
            validate_settings(self.settings)
            ctx = multiprocessing.get_context("spawn")
            with _spawnable_stderr():  # the resource tracker and the worker both start here
                parent_conn, child_conn = ctx.Pipe(duplex=True)
                stop_event = ctx.Event()
                proc = ctx.Process(
                    target=worker_main,
                    args=(self.settings, child_conn, stop_event, os.getpid()),
                    name="k3dtui-load",
                    daemon=True,
                )
                proc.start()
            child_conn.close()
            self._proc, self._conn, self._stop_event = proc, parent_conn, stop_event
            self.running = True
            self._epoch = 0
            self._sent_at = time.monotonic() + 5.0  # no staleness wait before the first snapshot
            self._last = _empty(self.settings, running=True)
            self._send_announcer()

    def stop(self) -> None:
        """End the run now; returns once the worker has sent its final snapshot (or was killed).

        The lock is taken in short slices, so ``latest()`` from another thread keeps answering.
        """
        with self._lock:
            if not self.running:
                self._reap()
                return
            if self._stop_event is not None:
                self._stop_event.set()
            if self._conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("stop",))
        deadline = time.monotonic() + STOP_GRACE
        while True:
            with self._lock:
                if not self.running:
                    break
                if time.monotonic() >= deadline:  # no final snapshot: stuck or gone
                    self._finish_without_final("stopped")
                    break
                self._drain_until_final(SLICE)
        with self._lock:
            self._reap()

    def close(self) -> None:
        """Stop and release the worker for good."""
        with self._lock:
            self.stop()
            self._closed = True

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- changes while running ---
    def reset(self) -> None:
        """Zero the counts (the run goes on; its bound is unchanged)."""
        with self._lock:
            self._epoch += 1
            if self.running and self._conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("reset", self._epoch))
            self._last = dataclasses.replace(
                _empty(self.settings, running=self.running), elapsed=self._last.elapsed
            )

    def update(self, **changes: Any) -> None:
        """Change settings (mode, concurrency, rate, duration, requests, timeout, url); live while running."""
        with self._lock:
            try:
                new = dataclasses.replace(self.settings, **changes)
            except TypeError as exc:
                raise UsageError(f"unknown load setting: {exc}") from None
            validate_settings(new, need_url=self.running)
            self.settings = new
            if self.running and self._conn is not None:
                fields = {k: getattr(new, k) for k in changes}
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("update", fields))

    def set_announcer(self, node: str) -> None:
        """The node MetalLB announces the Service from (``ServiceL2Status``), as just seen:
        responses from now on are attributed to it (their path: announcer → serving node)."""
        with self._lock:
            if node == self._announcer:
                return
            self._announcer = node
            self._send_announcer()

    def _send_announcer(self) -> None:
        if self.running and self._conn is not None and self._announcer:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("announcer", self._announcer))

    def mark_gone(self, pods: Iterable[str]) -> None:
        """Pods that died: their counts stay, flagged in ``LoadSnapshot.gone_pods``."""
        with self._lock:
            self._gone.update(pods)
            self._last = dataclasses.replace(self._last, gone_pods=frozenset(self._gone))

    # --- reading ---
    def latest(self) -> LoadSnapshot:
        """The newest snapshot (drains the pipe). Never waits for another thread's call."""
        if self._lock.acquire(blocking=False):
            try:
                self._poll()
            finally:
                self._lock.release()
        return self._last

    def wait(self, timeout: float | None = None) -> LoadSnapshot:
        """Block until the run ends (or ``timeout`` passes); the last snapshot."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self.running:
                    self._reap()
                    return self._last
                left = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
                if left <= 0:
                    return self._last
                self._drain_until_final(left)
                if self.running and self._proc is not None and not self._proc.is_alive():
                    self._drain_until_final(0.0)
                    if self.running:
                        self._finish_without_final("worker exited")

    # --- internals ---
    def _poll(self) -> None:
        self._drain_until_final(0.0)
        if self.running and time.monotonic() - self._sent_at > FRESH:
            # we had not read for a while: the worker paused its snapshots and sends a
            # fresh one as soon as it sees our acknowledgement
            self._drain_until_final(FRESH_WAIT, until_fresh=True)
        if self.running and self._proc is not None and not self._proc.is_alive():
            self._drain_until_final(0.0)
            if self.running:
                self._finish_without_final("worker exited")

    def _drain_until_final(self, timeout: float | None, until_fresh: bool = False) -> None:
        """Read snapshots until the final one or until ``timeout`` (None = no limit)."""
        conn = self._conn
        if conn is None or not self.running:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        received = 0
        try:
            while self.running:
                wait = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
                if deadline is None:
                    wait = 0.2
                if not conn.poll(wait):
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    if self._proc is not None and not self._proc.is_alive() and not conn.poll(0):
                        break
                    continue
                msg = conn.recv()
                received += 1
                self._accept(msg)
                if until_fresh and time.monotonic() - self._sent_at <= FRESH:
                    break
                if until_fresh and received:
                    with contextlib.suppress(OSError, ValueError):
                        conn.send(("ack", received))
                    received = 0
        except (EOFError, OSError):
            if self.running:
                self._finish_without_final("worker exited")
        if received and self.running:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("ack", received))

    def _accept(self, msg: dict[str, Any]) -> None:
        if "failed" in msg:
            self._last = _empty(self.settings, reason=f"error: {msg['failed']}")
            self.running = False
            return
        final = bool(msg.get("final"))
        self._sent_at = float(msg.get("sent_at", time.monotonic()))
        if int(msg.get("epoch", 0)) < self._epoch and not final:
            return  # counted before the last reset()
        self._last = LoadSnapshot(
            running=not final,
            mode=msg["mode"],
            concurrency=int(msg["concurrency"]),
            elapsed=float(msg["elapsed"]),
            requests=int(msg["requests"]),
            responses=int(msg["responses"]),
            rps=float(msg["rps"]),
            rps_history=tuple(msg["rps_history"]),
            latency_ms=dict(msg["latency_ms"]),
            latency_ms_total=dict(msg["latency_ms_total"]),
            status={int(k): int(v) for k, v in msg["status"].items()},
            errors=dict(msg["errors"]),
            per_pod=dict(msg["per_pod"]),
            per_node=dict(msg["per_node"]),
            gone_pods=frozenset(self._gone),
            finished_reason=str(msg.get("finished_reason", "")),
            announcing_node=str(msg.get("announcing_node", "")),
            paths={str(a): {str(k): int(v) for k, v in row.items()} for a, row in (msg.get("paths") or {}).items()},
            cross_node=int(msg.get("cross_node", 0)),
            client_addrs={str(k): int(v) for k, v in (msg.get("client_addrs") or {}).items()},
            identity_missing=identity_missing(self.settings.identity, dict(msg["per_pod"]), int(msg["responses"])),
        )
        if final:
            self.running = False

    def _finish_without_final(self, reason: str) -> None:
        self.running = False
        self._last = dataclasses.replace(self._last, running=False, finished_reason=reason)

    def _reap(self) -> None:
        proc = self._proc
        if proc is not None:
            proc.join(STOP_GRACE)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._stop_event = None
