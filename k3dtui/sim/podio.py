"""What a simulated pod's container writes and spends, kept in the data-plane process.

- :class:`LogBook`: each pod's log lines with their times, one list per container
  incarnation (kubelet keeps the running container's log and the previous one's, which
  ``kubectl logs --previous`` reads). The lines are the ones the app's server prints:
  uvicorn's startup lines, then one access line per request it really served, in
  uvicorn's format (``uvicorn/protocols/http/*`` ``access_logger`` and ``uvicorn/server.py``).
- :class:`Usage`: per pod, the requests served, the CPU time spent in them and the bytes
  written, for the metrics API (``kubectl top``).
- :func:`instrument`: the ASGI wrapper that feeds both from the real requests.
"""

from __future__ import annotations

import collections
import http
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_LINES = 20_000  # per incarnation; older lines are dropped (kubelet rotates at 10 MiB)
MAX_BYTES = 1 << 20  # and at most this much text per incarnation
KEPT_INCARNATIONS = 2  # the running container and the previous one
MAX_PODS = 4_096  # incarnations of pods long gone are forgotten beyond this many
# stopped pods (deleted, or between a crash and their restart) whose logs are kept: beyond
# this many the oldest are forgotten, so pods killed all day keep the memory flat (each
# keeps up to KEPT_INCARNATIONS x MAX_BYTES of text; a soak with a kill every 2 s grew the
# data plane by 30 MiB a minute without this bound)
MAX_STOPPED = 32


@dataclass
class Incarnation:
    number: int
    started_ns: int
    lines: collections.deque[tuple[int, str]] = field(default_factory=lambda: collections.deque(maxlen=MAX_LINES))
    written: int = 0  # lines ever written (so a follower's offset survives dropped lines)
    running: bool = True
    size: int = 0  # bytes of text kept

    def write(self, text: str, when_ns: int | None = None) -> None:
        if len(self.lines) == self.lines.maxlen:
            self.size -= len(self.lines[0][1])
        self.lines.append((when_ns if when_ns is not None else time.time_ns(), text))
        self.size += len(text)
        self.written += 1
        while self.size > MAX_BYTES and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()[1])

    def read(self, *, after: int = 0, since_ns: int = 0, tail: int = -1) -> tuple[list[tuple[int, str]], int]:
        """Lines from absolute index ``after`` on, newer than ``since_ns``, the last ``tail``;
        and the absolute index after the last line."""
        first = self.written - len(self.lines)
        skip = max(0, after - first)
        out = [ln for i, ln in enumerate(self.lines) if i >= skip and ln[0] >= since_ns]
        if tail >= 0:
            out = out[len(out) - tail:] if tail else []
        return out, self.written


class LogBook:
    """Every pod's incarnations, by pod uid."""

    def __init__(self) -> None:
        self._pods: collections.OrderedDict[str, collections.deque[Incarnation]] = collections.OrderedDict()
        self._stopped: collections.OrderedDict[str, None] = collections.OrderedDict()  # oldest first

    def start(self, uid: str, pid: int, port: int, startup: list[str] | None = None) -> Incarnation:
        """A new container incarnation, with the lines its program prints as it starts:
        ``startup``, else uvicorn's (``uvicorn main:app --host 0.0.0.0 --port 3000``,
        lifespan on: the app's image)."""
        kept = self._pods.setdefault(uid, collections.deque(maxlen=KEPT_INCARNATIONS))
        self._pods.move_to_end(uid)
        self._stopped.pop(uid, None)
        while len(self._pods) > MAX_PODS:
            self._pods.popitem(last=False)
        for old in kept:
            old.running = False
        inc = Incarnation(number=(kept[-1].number + 1) if kept else 0, started_ns=time.time_ns())
        kept.append(inc)
        lines = startup if startup is not None else [
            f"INFO:     Started server process [{pid}]",
            "INFO:     Waiting for application startup.",
            "INFO:     Application startup complete.",
            "INFO:     Uvicorn running on http://0.0.0.0:3000 (Press CTRL+C to quit)",
        ]
        for line in lines:
            inc.write(line)
        return inc

    def stop(self, uid: str) -> None:
        for inc in self._pods.get(uid, ()):
            inc.running = False
        if uid in self._pods:
            self._stopped[uid] = None
            self._stopped.move_to_end(uid)
            while len(self._stopped) > MAX_STOPPED:
                gone, _ = self._stopped.popitem(last=False)
                self._pods.pop(gone, None)

    def current(self, uid: str) -> Incarnation | None:
        kept = self._pods.get(uid)
        return kept[-1] if kept else None

    def previous(self, uid: str) -> Incarnation | None:
        kept = self._pods.get(uid)
        return kept[-2] if kept and len(kept) > 1 else None


@dataclass
class Usage:
    """What one pod's server has done since it started."""

    requests: int = 0
    cpu_ns: int = 0  # process CPU time spent while its requests were being handled
    bytes_out: int = 0


def access_line(scope: Scope, status: int) -> str:
    """uvicorn's access line: ``INFO:     <client> - "<METHOD> <path> HTTP/<v>" <status> <phrase>``."""
    client = scope.get("client")
    addr = f"{client[0]}:{client[1]}" if client else "-"
    path = scope.get("raw_path", b"").decode("latin-1") or scope.get("path", "/")
    if scope.get("query_string"):
        path += "?" + scope["query_string"].decode("latin-1")
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f'INFO:     {addr} - "{scope.get("method", "GET")} {path} HTTP/{scope.get("http_version", "1.1")}" {status} {phrase}'.rstrip()


def instrument(app: ASGIApp, book: LogBook, uid: str, usage: Usage) -> ASGIApp:
    """``app`` writing an access line per request into the pod's current incarnation and
    counting its requests, CPU time and bytes."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        status = 500
        cpu0 = time.process_time_ns()

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 500))
            elif message.get("type") == "http.response.body":
                usage.bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, counting_send)
        finally:
            usage.requests += 1
            usage.cpu_ns += time.process_time_ns() - cpu0
            inc = book.current(uid)
            if inc is not None and inc.running:
                inc.write(access_line(scope, status))

    return wrapped
