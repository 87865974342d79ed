"""The load generator's worker: runs in its own process with its own event loop.

The hot loop is a minimal HTTP/1.1 client on asyncio protocols (uvloop when installed):
it writes one fixed GET per request and parses only the status line, Content-Length /
chunked framing, ``Connection`` and the ``X-Pod``/``X-Node``/``X-Client`` headers. Every response or
error lands in cumulative counters and a latency histogram; about ten times a second the
worker sends one aggregated snapshot (a plain dict) to the parent over a pipe, and only
while the parent keeps acknowledging them, so a parent that stops reading never blocks
the loop.

Messages from the parent: ``("update", {field: value})``, ``("reset",)``, ``("ack", n)``,
``("announcer", node)`` (the node announcing the Service from now on: each response is
attributed to the announcer of its moment), ``("stop",)``. The run ends by itself at its deadline or request count, on ``stop``, on the
stop event, when the pipe reaches EOF or when the parent process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import os
import re
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from math import log as _log
from typing import Any, Protocol
from urllib.parse import urlsplit

TICK = 0.1  # seconds between snapshots
RPS_WINDOW = 1.0  # seconds: sliding window of the requests-per-second figure
LATENCY_WINDOW = 5.0  # seconds: sliding window of the windowed percentiles
HISTORY = 300  # rps values kept for a sparkline (one per tick)
MAX_UNACKED = 4  # snapshots in flight before the worker waits for the parent
MAX_HEAD = 65536  # bytes of response head accepted
LINGER = 1.0  # seconds a closed-by-us connection may wait for the server's FIN

# Latency histogram: logarithmic buckets of about 2% width, from 1 µs up.
_BASE = 1.02
_INV_LOG_BASE = 1.0 / math.log(_BASE)
_BUCKETS = int(math.log(600e6) * _INV_LOG_BASE) + 2  # up to 10 minutes

ERROR_KINDS = ("refused", "reset", "timeout", "other")


class _Conn(Protocol):
    def send(self, obj: Any) -> None: ...
    def recv(self) -> Any: ...
    def poll(self, timeout: float | None = ...) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class _Event(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class Target:
    """Where requests go, resolved once: a numeric address, the port and the request bytes."""

    host: str
    port: int
    keep_alive_request: bytes
    close_request: bytes

    @classmethod
    def from_url(cls, url: str) -> Target:
        host, port, path, netloc = parse_url(url)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        address = str(infos[0][4][0])
        # the port as resolved: the same as asked on a real network; a resolver that maps a
        # name and port to another address and port (the simulated cluster's DNS) is honoured
        port = int(infos[0][4][1]) or port
        head = f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: k3dtui-load\r\nAccept: */*\r\n"
        return cls(
            host=address,
            port=port,
            keep_alive_request=(head + "\r\n").encode("latin-1"),
            close_request=(head + "Connection: close\r\n\r\n").encode("latin-1"),
        )


def parse_url(url: str) -> tuple[str, int, str, str]:
    """``http://host[:port][/path]`` → (host, port, path with query, netloc). Raises ValueError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme != "http":
        raise ValueError(f"URL {url!r} must start with http:// (https is not supported)")
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port or 80, path, parts.netloc


def bucket_of(seconds: float) -> int:
    us = seconds * 1e6
    if us <= 1.0:
        return 0
    index = int(math.log(us) * _INV_LOG_BASE) + 1
    return index if index < _BUCKETS else _BUCKETS - 1


def bucket_value_ms(index: int) -> float:
    """The representative latency of a bucket (geometric middle), in milliseconds."""
    if index <= 0:
        return 0.001
    return float(_BASE ** (index - 0.5)) / 1000.0


def percentiles(hist: list[int] | dict[int, int], total: int) -> dict[str, float]:
    """p50/p95/p99 in ms from bucket counts (empty dict when there are no samples)."""
    if total <= 0:
        return {}
    items = sorted(hist.items()) if isinstance(hist, dict) else list(enumerate(hist))
    wanted = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)]
    out: dict[str, float] = {}
    seen = 0
    k = 0
    for index, count in items:
        if not count:
            continue
        seen += count
        while k < len(wanted) and seen >= math.ceil(wanted[k][1] * total):
            out[wanted[k][0]] = round(bucket_value_ms(index), 4)
            k += 1
        if k == len(wanted):
            break
    return out


def classify(exc: BaseException) -> str:
    """refused / reset / timeout / other."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError | EOFError):
        return "reset"
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return "refused"
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return "reset"
        if exc.errno == errno.ETIMEDOUT:
            return "timeout"
    return "other"


class BadResponse(Exception):
    """The peer answered something that is not HTTP/1.x."""


_CL = b"\r\ncontent-length:"
_TE = b"\r\ntransfer-encoding:"
_CONN = b"\r\nconnection:"
_XPOD = b"\r\nx-pod:"
_XNODE = b"\r\nx-node:"
_XCLIENT = b"\r\nx-client:"
_UNKNOWN = b"unknown"
MAX_BODY = 1 << 20  # bytes of a body read for a json: identity (beyond: the pod is unknown)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

DEFAULT_IDENTITY_HELP = "header:NAME or json:FIELD (dotted for nested fields, e.g. json:pod.name)"


class Identity:
    """Where each response says which pod served it, when not in k3dtui's own ``X-Pod``:
    a header (``header:NAME``) or a field of a JSON body (``json:FIELD``, dotted path)."""

    __slots__ = ("header", "heads", "json_path", "spec")

    def __init__(self, spec: str, header: bytes, json_path: tuple[str, ...] | None) -> None:
        self.spec = spec
        self.header = header  # b"\r\nname:" (lower case) for a header identity
        self.json_path = json_path  # the field's path for a json identity
        # a header identity keeps its own head cache (the same head means another pod here)
        self.heads: dict[bytes, tuple[Result, int, bool]] | None = {} if json_path is None else None


def parse_identity(spec: str | None) -> Identity | None:
    """``""``/None → None (k3dtui's app headers); ``header:NAME`` or ``json:FIELD`` → an
    ``Identity``. Raises ValueError with one line naming the fix."""
    if not spec:
        return None
    kind, sep, name = spec.partition(":")
    kind = kind.strip().lower()
    name = name.strip()
    if not sep or kind not in ("header", "json"):
        raise ValueError(f"unknown identity {spec!r}: use {DEFAULT_IDENTITY_HELP}")
    if kind == "header":
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"identity {spec!r} needs a header name, e.g. header:X-Hostname")
        return Identity(f"header:{name}", b"\r\n" + name.lower().encode("ascii") + b":", None)
    path = tuple(name.split("."))
    if not name or any(not part for part in path):
        raise ValueError(f"identity {spec!r} needs a JSON field, e.g. json:hostname or json:pod.name")
    return Identity(f"json:{name}", b"", path)


def json_field(body: bytes, path: tuple[str, ...]) -> bytes:
    """The value at ``path`` in a JSON body (b"unknown" when absent or not a scalar)."""
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _UNKNOWN
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _UNKNOWN
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return _UNKNOWN
    return str(value).encode("utf-8")


def identity_missing(spec: str, per_pod: dict[str, int], responses: int) -> str:
    """Why the figures have no per-pod split ("" when they have one, or before any response)."""
    if responses <= 0 or any(n and pod != "unknown" for pod, n in per_pod.items()):
        return ""
    if not spec:
        return ("the responses carry no X-Pod header (not k3dtui's app), so there is no per-pod split: "
                "give --identity header:NAME or --identity json:FIELD where the app names the pod that answered")
    kind, _, name = spec.partition(":")
    if kind == "header":
        return (f"the responses carry no {name} header, so there is no per-pod split: "
                "check the name (--identity header:NAME) or try --identity json:FIELD")
    return (f"the responses' JSON bodies have no field {name!r}, so there is no per-pod split: "
            "check it (--identity json:FIELD, dotted for nested fields) or try --identity header:NAME")


def _header(head: bytes, lower: bytes, name: bytes) -> bytes | None:
    i = lower.find(name)
    if i < 0:
        return None
    start = i + len(name)
    end = head.find(b"\r\n", start)
    return (head[start:] if end < 0 else head[start:end]).strip()


# a response's (status, X-Pod, X-Node, X-Client): who served it and the source address it saw
Result = tuple[int, bytes, bytes, bytes]

MAX_HEADS = 4096
# response head → ((status, x-pod, x-node), Content-Length, keep-alive): a server repeats
# the same few heads, so most responses are recognised by one dict lookup
_HEADS: dict[bytes, tuple[Result, int, bool]] = {}
RECORDED: Result = (0, b"", b"", b"")  # a burst's end: every response was already recorded


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 client connection: one request at a time, responses parsed minimally."""

    __slots__ = (
        "_body",
        "_body_left",
        "_buf",
        "_chunked",
        "_eof",
        "_heads",
        "_json_path",
        "_linger",
        "_loop",
        "_pod_header",
        "_result",
        "_until_close",
        "closed",
        "keep",
        "repeat",
        "t0",
        "transport",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, ident: Identity | None = None) -> None:
        self._loop = loop
        # k3dtui's app headers by default; else the identity's header, or a JSON body's field
        self._heads = _HEADS if ident is None else ident.heads
        self._pod_header = _XPOD if ident is None or ident.json_path is not None else ident.header
        self._json_path = None if ident is None else ident.json_path
        self._body: bytearray | None = None
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Result] | None = None
        self._buf = b""
        self._result: Result | None = None
        self._body_left = 0
        self._chunked = False
        self._until_close = False
        self._eof = False
        self._linger: asyncio.TimerHandle | None = None
        self.closed = False
        self.keep = True
        self.t0 = 0.0  # when the current request was written
        # Burst mode: called on each response with (result, latency, can_continue); returns
        # the next request to write at once (no coroutine in between) or None to hand back.
        self.repeat: Callable[[Result, float, float, bool], bytes | None] | None = None

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            return  # nothing asked for: ignore (the connection is then not reused)
        heads = self._heads
        if heads is not None and self._result is None and not self._buf:
            # fast path: a head seen before (same server, same headers) in one read
            end = data.find(b"\r\n\r\n")
            if end > 0:
                hit = heads.get(data[:end])
                if hit is not None:
                    result, length, keep = hit
                    rest = len(data) - end - 4
                    if rest <= length:
                        if not keep:
                            self.keep = False
                        self._result = result
                        if rest == length:
                            self._complete()
                        else:
                            self._chunked = self._until_close = False
                            self._body_left = length - rest
                        return
        self._buf = self._buf + data if self._buf else data
        try:
            self._parse()
        except BadResponse as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        self._eof = True
        self.keep = False
        if self.waiter is not None and self._until_close and self._result is not None:
            self._complete()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep = False
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self.waiter is not None:
            if self._until_close and self._result is not None:
                self._complete()
            else:
                self._fail(exc if exc is not None else ConnectionResetError("connection closed"))

    # --- requests ---
    def request(self, data: bytes) -> asyncio.Future[Result]:
        """Send one request; the future gives (status, x-pod, x-node, x-client)."""
        fut: asyncio.Future[Result] = self._loop.create_future()
        if self.closed or self.transport is None or self.transport.is_closing():
            fut.set_exception(ConnectionResetError("connection closed"))
            return fut
        self.waiter = fut
        self._buf = b""
        self._result = None
        self._until_close = False
        self.t0 = time.monotonic()
        self.transport.write(data)
        return fut

    def finish(self) -> None:
        """Done with the connection: let the server close first (no TIME_WAIT on our side)."""
        if self.closed or self.transport is None:
            return
        if self._eof:
            self.transport.close()
        else:
            self._linger = self._loop.call_later(LINGER, self.abort)

    def abort(self) -> None:
        self.keep = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # --- parsing ---
    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        self.keep = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def _complete(self) -> None:
        waiter = self.waiter
        result, self._result = self._result, None
        if self._json_path is not None and result is not None:
            body, self._body = self._body, None
            pod = json_field(bytes(body), self._json_path) if body else _UNKNOWN
            result = (result[0], pod, result[2], result[3])
        if waiter is None or waiter.done() or result is None:
            self.waiter = None
            return
        repeat = self.repeat
        if repeat is not None:
            now = time.monotonic()
            can_continue = self.keep and not self.closed and not self._eof
            following = repeat(result, now - self.t0, now, can_continue)
            if following is not None and self.transport is not None:
                self._buf = b""
                self._until_close = False
                self.t0 = now
                self.transport.write(following)
                return
            self.waiter = None
            waiter.set_result(RECORDED)
            return
        self.waiter = None
        waiter.set_result(result)

    def _parse(self) -> None:
        buf = self._buf
        if self._result is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise BadResponse("response head too large")
                return
            head = buf[:end]
            if not head.startswith(b"HTTP/1."):
                raise BadResponse("not an HTTP/1.x response")
            try:
                status = int(head[9:12])
            except ValueError:
                raise BadResponse("bad status line") from None
            lower = head.lower()
            pod = _header(head, lower, self._pod_header) or _UNKNOWN
            node = _header(head, lower, _XNODE) or _UNKNOWN
            client = _header(head, lower, _XCLIENT) or b""
            conn = _header(head, lower, _CONN)
            head_keep = not ((conn is not None and conn.lower() == b"close") or head[5:8] == b"1.0")
            if not head_keep:
                self.keep = False
            if 100 <= status < 200:
                # an interim response: skip it and wait for the final one
                self._buf = buf[end + 4 :]
                if self._buf:
                    self._parse()
                return
            self._result = (status, pod, node, client)
            if self._json_path is not None:
                self._body = bytearray()
            buf = buf[end + 4 :]
            te = _header(head, lower, _TE)
            cl = _header(head, lower, _CL)
            if te is not None and b"chunked" in te.lower():
                self._chunked = True
            elif cl is not None:
                self._chunked = False
                try:
                    self._body_left = int(cl)
                except ValueError:
                    raise BadResponse("bad Content-Length") from None
                heads = self._heads
                if heads is not None:
                    if len(heads) >= MAX_HEADS:
                        heads.clear()
                    heads[head] = (self._result, self._body_left, head_keep)
            elif status in (204, 304):
                self._chunked = False
                self._body_left = 0
            else:
                self._chunked = False
                self._until_close = True
                self.keep = False
                self._keep_body(buf)
                self._buf = b""
                if self._eof:
                    self._complete()
                return
        if self._until_close:
            self._keep_body(buf)
            self._buf = b""
            return
        if self._chunked:
            self._buf = buf
            self._parse_chunks()
            return
        if len(buf) >= self._body_left:
            if self._body is not None:
                self._keep_body(buf[: self._body_left])
            self._buf = b""
            if len(buf) > self._body_left:
                self.keep = False  # unexpected extra bytes: do not reuse
            self._complete()
        else:
            if self._body is not None:
                self._keep_body(buf)
            self._body_left -= len(buf)
            self._buf = b""

    def _keep_body(self, data: bytes) -> None:
        """A json: identity reads the body (up to ``MAX_BODY``); otherwise bodies are skipped."""
        body = self._body
        if body is not None and len(body) + len(data) <= MAX_BODY:
            body += data

    def _parse_chunks(self) -> None:
        buf = self._buf
        pos = 0
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            size_text = buf[pos:line_end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse("bad chunk size") from None
            if size == 0:
                # the last chunk, then optional trailers, then an empty line
                if buf.find(b"\r\n\r\n", line_end) < 0:
                    break
                self._buf = b""
                self._chunked = False
                self._complete()
                return
            chunk_end = line_end + 2 + size + 2
            if len(buf) < chunk_end:
                break
            if self._body is not None:
                self._keep_body(buf[line_end + 2 : line_end + 2 + size])
            pos = chunk_end
        self._buf = buf[pos:]


class Stats:
    """Cumulative counters, a latency histogram, and per-tick windows for the sliding figures."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.responses = 0
        self.errors: dict[str, int] = {}
        # (status, x-pod, x-node, x-client) → responses; the tuples come from the head cache,
        # so the key's parts have their hashes cached and counting costs one dict update.
        # One such table per announcing node (the table of the current one is ``results``).
        announcer = getattr(self, "announcer", "")
        self.by_announcer: dict[str, dict[Result, int]] = {}
        self.announcer = ""
        self.results: dict[Result, int] = {}
        self.set_announcer(announcer)
        self.hist_total = [0] * _BUCKETS
        self.tick_hist: dict[int, int] = {}
        self.tick_responses = 0
        self.tick_errors = 0
        # (time, requests in the tick, histogram of the tick)
        self.windows: deque[tuple[float, int, dict[int, int]]] = deque()
        self.history: deque[float] = deque(maxlen=HISTORY)
        self.epoch = time.monotonic()

    def set_announcer(self, node: str) -> None:
        """Responses from now on entered at ``node`` (the node MetalLB announces from)."""
        self.announcer = node
        self.results = self.by_announcer.setdefault(node, {})

    def response(self, result: Result, seconds: float) -> None:
        results = self.results
        results[result] = results.get(result, 0) + 1
        us = seconds * 1e6
        if us > 1.0:
            b = int(_log(us) * _INV_LOG_BASE) + 1
            if b >= _BUCKETS:
                b = _BUCKETS - 1
        else:
            b = 0
        th = self.tick_hist
        th[b] = th.get(b, 0) + 1
        self.tick_responses += 1

    def error(self, kind: str) -> None:
        self.tick_errors += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def histograms(self) -> tuple[dict[int, int], dict[int, int]]:
        """(the whole run's latency histogram, the window's), sparse: bucket → count."""
        total = {i: c for i, c in enumerate(self.hist_total) if c}
        window: dict[int, int] = {}
        for _, _, h in self.windows:
            for index, count in h.items():
                window[index] = window.get(index, 0) + count
        return total, window

    def tick(self, now: float) -> dict[str, Any]:
        """Close the current tick; the figures of the snapshot."""
        hist = self.tick_hist
        total = self.hist_total
        for index, count in hist.items():
            total[index] += count
        in_tick = self.tick_responses + self.tick_errors
        self.responses += self.tick_responses
        self.requests += in_tick
        self.windows.append((now, in_tick, hist))
        self.tick_hist = {}
        self.tick_responses = self.tick_errors = 0
        while self.windows and self.windows[0][0] < now - LATENCY_WINDOW:
            self.windows.popleft()
        since = now - RPS_WINDOW
        in_window = sum(n for t, n, _ in self.windows if t > since)
        span = min(RPS_WINDOW, max(now - self.epoch, TICK))
        rps = in_window / span if span > 0 else 0.0
        self.history.append(round(rps, 1))
        window_hist: dict[int, int] = {}
        for _, _, h in self.windows:
            for index, count in h.items():
                window_hist[index] = window_hist.get(index, 0) + count
        per_pod: dict[str, int] = {}
        per_node: dict[str, int] = {}
        status: dict[int, int] = {}
        paths: dict[str, dict[str, int]] = {}
        client_addrs: dict[str, int] = {}
        cross = 0
        for announcer, results in self.by_announcer.items():
            for (code, pod, node, client), n in results.items():
                p = pod.decode("latin-1")
                d = node.decode("latin-1")
                per_pod[p] = per_pod.get(p, 0) + n
                per_node[d] = per_node.get(d, 0) + n
                status[code] = status.get(code, 0) + n
                if code == 0 or pod == _UNKNOWN:
                    continue  # not the app's answer: no path to attribute
                row = paths.setdefault(announcer, {})
                row[d] = row.get(d, 0) + n
                if announcer and d != announcer:
                    cross += n
                c = client.decode("latin-1")
                if c:
                    client_addrs[c] = client_addrs.get(c, 0) + n
        return {
            "requests": self.requests,
            "responses": self.responses,
            "rps": round(rps, 1),
            "rps_history": tuple(self.history),
            "latency_ms": percentiles(window_hist, sum(window_hist.values())),
            "latency_ms_total": percentiles(total, self.responses),
            "status": status,
            "errors": dict(self.errors),
            "per_pod": per_pod,
            "per_node": per_node,
            "announcing_node": self.announcer,
            "paths": paths,
            "cross_node": cross,
            "client_addrs": client_addrs,
        }


@dataclass
class RunSettings:
    url: str
    mode: str
    concurrency: int
    rate: float | None
    duration: float | None
    requests: int | None
    timeout: float
    identity: str = ""  # "" (k3dtui's X-Pod/X-Node), "header:NAME" or "json:FIELD"


class Worker:
    """One run: ``concurrency`` request slots, a ticker, and the parent's commands."""

    def __init__(
        self,
        settings: RunSettings,
        conn: _Conn | None,
        stop_event: _Event | None = None,
        parent_pid: int | None = None,
        publish: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.s = settings
        self.conn = conn
        self.stop_event = stop_event
        self.parent_pid = parent_pid
        self.publish = publish
        self.stats = Stats()
        self.target = Target.from_url(settings.url)
        self.ident = parse_identity(settings.identity)
        self.target_gen = 0
        self.issued = 0
        self.unacked = 0
        self.problem = ""  # the last unexpected problem inside the loop (never printed)
        self.epoch = 0  # counts resets: the parent ignores snapshots of an older epoch
        self.stale = False  # a snapshot was skipped because the parent was not reading
        self.started = 0.0
        self.next_slot = 0.0
        self.slots: dict[int, asyncio.Task[None]] = {}
        self.active = 0
        self.busy: dict[int, float] = {}  # slot → when its request started
        self.expired: set[int] = set()  # slots whose request the sweep cancelled
        self.finished_reason = ""
        self.done: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- the parent's side of the conversation ---
    def _on_readable(self) -> None:
        assert self.conn is not None
        try:
            while self.conn.poll(0):
                self._command(self.conn.recv())
        except (EOFError, OSError):
            self._finish("parent gone")

    def _command(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ack":
            self.unacked = max(0, self.unacked - int(msg[1]))
            if self.stale and self.unacked == 0 and not self.finished_reason:
                # the parent fell behind and caught up: give it a fresh picture now
                self._send(self.snapshot())
        elif kind == "stop":
            self._finish("stopped")
        elif kind == "reset":
            self.stats.reset()
            self.epoch = int(msg[1]) if len(msg) > 1 else self.epoch + 1
        elif kind == "update":
            self._update(dict(msg[1]))
        elif kind == "announcer":
            self.stats.set_announcer(str(msg[1]))

    def _update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if hasattr(self.s, key):
                setattr(self.s, key, value)
        if "url" in changes:
            try:
                self.target = Target.from_url(self.s.url)
            except (OSError, ValueError) as exc:
                self.problem = f"cannot use {self.s.url}: {exc}"
            else:
                self.target_gen += 1
        if "identity" in changes:
            try:
                self.ident = parse_identity(self.s.identity)
            except ValueError as exc:
                self.problem = str(exc)
            else:
                self.target_gen += 1  # new connections read the new identity
        if "concurrency" in changes:
            self._spawn_slots()

    def _loop_problem(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.problem = str(context.get("exception") or context.get("message", ""))

    def _finish(self, reason: str) -> None:
        if not self.finished_reason:
            self.finished_reason = reason
        if self.done is not None:
            self.done.set()

    # --- the run ---
    def _spawn_slots(self) -> None:
        assert self.loop is not None
        for index in range(self.s.concurrency):
            task = self.slots.get(index)
            if task is None or task.done():
                self.slots[index] = self.loop.create_task(self._slot(index))

    def snapshot(self, final: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        figures = self.stats.tick(now)
        figures.update(
            running=not final,
            mode=self.s.mode,
            concurrency=self.s.concurrency,
            elapsed=round(now - self.started, 3),
            sent_at=now,
            epoch=self.epoch,
            finished_reason=self.finished_reason if final else "",
            final=final,
        )
        return figures

    def _send(self, snap: dict[str, Any], force: bool = False) -> None:
        if self.publish is not None:
            self.publish(snap)
        if self.conn is None:
            return
        if self.unacked >= MAX_UNACKED and not force:
            self.stale = True
            return
        try:
            self.conn.send(snap)
            self.unacked += 1
            self.stale = False
        except (OSError, EOFError, ValueError):
            self._finish("parent gone")

    def _checks(self, now: float) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            self._finish("stopped")
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self._finish("parent gone")
        if self.s.duration is not None and now - self.started >= self.s.duration:
            self._finish("duration")

    async def run(self) -> dict[str, Any]:
        self.loop = asyncio.get_running_loop()
        # the worker shares the terminal with a UI: keep loop errors off stderr
        self.loop.set_exception_handler(self._loop_problem)
        self.done = asyncio.Event()
        self.started = time.monotonic()
        self.stats.epoch = self.started
        if self.conn is not None:
            self.loop.add_reader(self.conn.fileno(), self._on_readable)
        self._spawn_slots()
        try:
            next_tick = self.started + TICK
            next_sweep = self.started + self._sweep_every()
            while not self.done.is_set():
                wake = min(next_tick, next_sweep)
                if self.s.duration is not None:
                    wake = min(wake, self.started + self.s.duration)
                timeout = max(0.0, wake - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.done.wait(), timeout)
                now = time.monotonic()
                self._checks(now)
                self._check_count()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + self._sweep_every()
                if now >= next_tick and not self.done.is_set():
                    self._send(self.snapshot())
                    next_tick = max(next_tick + TICK, now + TICK / 2)
        finally:
            tasks = list(self.slots.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(self.conn.fileno())
        final = self.snapshot(final=True)
        self._send(final, force=True)
        return final

    def _burst(
        self, index: int, gen: int, request: bytes
    ) -> Callable[[Result, float, float, bool], bytes | None]:
        stats = self.stats
        busy = self.busy

        response = stats.response
        may_issue = self._may_issue
        s = self.s

        def repeat(result: Result, latency: float, now: float, can_continue: bool) -> bytes | None:
            response(result, latency)
            if can_continue and not s.rate and s.mode == "keep-alive" and gen == self.target_gen and may_issue(index):
                self.issued += 1
                busy[index] = now
                return request
            return None

        return repeat

    def _sweep_every(self) -> float:
        return max(0.01, min(TICK, self.s.timeout / 5))

    def _sweep(self, now: float) -> None:
        """Cancel the requests that ran past the timeout (cheaper than a timer per request)."""
        limit = self.s.timeout
        for index, t0 in list(self.busy.items()):
            if now - t0 >= limit and index not in self.expired:
                task = self.slots.get(index)
                if task is not None and not task.done():
                    self.expired.add(index)
                    task.cancel()

    def _check_count(self) -> None:
        limit = self.s.requests
        if limit is not None and self.active == 0 and self.issued >= limit:
            self._finish("requests")

    def _may_issue(self, index: int) -> bool:
        if index >= self.s.concurrency or self.finished_reason:
            return False
        limit = self.s.requests
        return limit is None or self.issued < limit

    async def _slot(self, index: int) -> None:
        loop = self.loop
        assert loop is not None
        stats = self.stats
        conn: HttpConnection | None = None
        gen = -1
        failures = 0
        monotonic = time.monotonic
        busy = self.busy
        self.active += 1
        try:
            while self._may_issue(index):
                self.issued += 1
                s = self.s
                if s.rate:
                    now = monotonic()
                    slot = self.next_slot if self.next_slot > now else now
                    self.next_slot = slot + 1.0 / s.rate
                    if slot > now:
                        await asyncio.sleep(slot - now)
                keep_alive = s.mode == "keep-alive"
                if conn is not None and (not keep_alive or gen != self.target_gen or not conn.keep):
                    conn.finish()
                    conn = None
                target = self.target
                t0 = monotonic()
                busy[index] = t0
                fut: asyncio.Future[Result] | None = None
                try:
                    if conn is None:
                        _, conn = await loop.create_connection(
                            lambda: HttpConnection(loop, self.ident), target.host, target.port
                        )
                        gen = self.target_gen
                    if keep_alive and not s.rate:
                        # keep-alive at full speed: the connection chains its requests itself
                        conn.repeat = self._burst(index, gen, target.keep_alive_request)
                    else:
                        conn.repeat = None
                    fut = conn.request(
                        target.keep_alive_request if keep_alive else target.close_request
                    )
                    result = await fut
                    del busy[index]
                except BaseException as exc:
                    busy.pop(index, None)
                    error: BaseException | None = exc
                    if isinstance(exc, asyncio.CancelledError):
                        if index not in self.expired:
                            raise
                        # the sweep cancelled this request: it ran past the timeout
                        self.expired.discard(index)
                        task = asyncio.current_task()
                        if task is not None:
                            task.uncancel()
                        error = TimeoutError()
                        if fut is not None and fut.done() and not fut.cancelled():
                            # ...unless its answer arrived just before the sweep
                            error = fut.exception()
                            if error is None:
                                result = fut.result()
                    if error is not None:
                        stats.error(classify(error))
                        if conn is not None:
                            conn.abort()
                            conn = None
                        failures += 1
                        # back off a little while the target keeps failing (a pod just died)
                        await asyncio.sleep(min(0.1, 0.002 * failures))
                        continue
                assert conn is not None
                failures = 0
                if result is not RECORDED:  # a burst's responses are recorded already
                    stats.response(result, monotonic() - t0)
                if not keep_alive or not conn.keep:
                    conn.finish()
                    conn = None
        finally:
            if conn is not None:
                conn.abort()
            self.active -= 1
            self._check_count()


def settings_from(obj: Any) -> RunSettings:
    return RunSettings(
        url=str(obj.url),
        mode=str(obj.mode),
        concurrency=int(obj.concurrency),
        rate=None if obj.rate is None else float(obj.rate),
        duration=None if obj.duration is None else float(obj.duration),
        requests=None if obj.requests is None else int(obj.requests),
        timeout=float(obj.timeout),
        identity=str(getattr(obj, "identity", "") or ""),
    )


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def worker_main(settings: Any, conn: _Conn, stop_event: _Event, parent_pid: int) -> None:
    """The process entry point (``multiprocessing`` spawn target)."""
    # Ctrl-C on a terminal reaches the whole process group: the parent decides, then
    # sends "stop", and the worker answers with its final snapshot
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = Worker(settings_from(settings), conn, stop_event, parent_pid)
    except (OSError, ValueError) as exc:
        with contextlib.suppress(Exception):
            conn.send({"final": True, "running": False, "failed": f"{exc}"})
        return
    with _runner() as runner, contextlib.suppress(KeyboardInterrupt):
        try:
            runner.run(worker.run())
        except Exception as exc:  # a bug: tell the parent rather than print a traceback
            with contextlib.suppress(Exception):
                conn.send({"final": True, "running": False, "failed": f"{type(exc).__name__}: {exc}"})
    with contextlib.suppress(Exception):
        conn.close()
