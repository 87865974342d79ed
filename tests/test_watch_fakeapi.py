"""A tiny scripted Kubernetes API server on 127.0.0.1 for the watcher's tests (no tests here).

Lists answer from ``lists[path]``; each watch request on ``path`` plays the next script of
``scripts[path]`` (events, sleeps, a normal close, a dropped connection, an HTTP error, or
hanging until told to stop); with no script left a watch hangs like an idle real one.
Every request is recorded (method, path, query) so tests can check what the client sent.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Step = tuple[Any, ...]

PODS_PATH = "/api/v1/namespaces/default/pods"


def pod(name: str, rv: int, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": str(rv),
            "labels": {"app": "fastapi"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"nodeName": "k3d-x-agent-0", "containers": [{"name": "fastapi", "image": "x"}]},
        "status": {"phase": "Running"},
    }
    obj.update(extra)
    return obj


def event(type_: str, obj: dict[str, Any]) -> Step:
    return ("event", {"type": type_, "object": obj})


def bookmark(rv: int) -> Step:
    return ("event", {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}}})


EXPIRED: Step = (
    "event",
    {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "too old resource version: 1 (110)",
            "reason": "Expired",
            "code": 410,
        },
    },
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("true", "1", "True")


@dataclass
class FakeApi:
    lists: dict[str, tuple[list[dict[str, Any]], int]] = field(default_factory=dict)
    scripts: dict[str, collections.deque[list[Step]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    # -- control -----------------------------------------------------------------------
    def start(self) -> FakeApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self)

        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, path: str, *steps: Step) -> None:
        self.scripts.setdefault(path, collections.deque()).append(list(steps))

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "fake-kubeconfig.yaml"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{self.port}'}}}}]\n"
            "users: [{name: fake, user: {token: sim}}]\n"
            "contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]\n"
            "current-context: fake\n"
        )
        return path

    def watches(self, path: str = PODS_PATH) -> list[Request]:
        return [r for r in list(self.requests) if r.path == path and r.watch]

    def list_requests(self, path: str = PODS_PATH) -> list[Request]:
        return [r for r in list(self.requests) if r.path == path and not r.watch]

    # -- serving -----------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        req = Request("GET", parts.path, query)
        self.requests.append(req)
        if parts.path not in self.lists:
            self._json(h, 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404})
            return
        if not req.watch:
            items, rv = self.lists[parts.path]
            self._json(h, 200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}, "items": items})
            return
        queue = self.scripts.get(parts.path)
        steps = queue.popleft() if queue else [("hang",)]
        if steps and steps[0][0] == "http":
            code = int(steps[0][1])
            self._json(h, code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": f"scripted {code}", "reason": "Expired" if code == 410 else "InternalError", "code": code})
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            for step in steps:
                what = step[0]
                if what == "event":
                    self._chunk(h, json.dumps(step[1]).encode() + b"\n")
                elif what == "sleep":
                    time.sleep(float(step[1]))
                elif what == "close":
                    break
                elif what == "drop":
                    h.wfile.flush()
                    h.connection.shutdown(socket.SHUT_RDWR)
                    h.close_connection = True
                    return
                elif what == "hang":
                    while not self._stopping.wait(0.05):
                        pass
                    # The server goes away: so do its connections.
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    @staticmethod
    def _chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
        h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        h.wfile.flush()

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
