"""The data plane: pods' HTTP servers and the load-balancing listeners, in their own process.

The API server's loop must never carry the pods' traffic (load would starve watches), so
the daemon starts ``python -m k3dtui.sim.runtime`` and drives it over its stdin/stdout with
JSON lines: ``{"id": n, "op": ..., ...}`` → ``{"id": n, "ok": true, ...}``. One process hosts
every node's pods: each pod is the app's ``create_app(pod, node)`` served by uvicorn on an
ephemeral 127.0.0.1 port. The process exits when its stdin closes (its parent is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from k3dtui import resources
from k3dtui.sim.lb import Listener, as_delivered
from k3dtui.sim.podio import LogBook, Usage, instrument
from k3dtui.sim.procpods import ProcessHost

log = logging.getLogger("k3dtui.sim.runtime")


def load_app_module() -> ModuleType:
    with resources.app_dir() as folder:
        spec = importlib.util.spec_from_file_location("k3dtui_sim_app_main", folder / "main.py")
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load the app from {folder}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def tcp_listen_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP listening socket whose accepted connections have ``TCP_NODELAY``.

    The protocol must be given as ``IPPROTO_TCP``: with 0, the event loop does not see a
    TCP socket and leaves Nagle on for the accepted ones, so a response written in two
    parts (headers, then body) waits for the peer's delayed ACK (about 40 ms) on every
    keep-alive request. Linux also copies ``TCP_NODELAY`` from the listener to them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _nginx_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """nginx's default page (the simulated cluster's emulated ``nginx`` image), an ASGI app."""
    if scope["type"] != "http":
        return
    from k3dtui.sim.images import NGINX_PAGE

    found = scope.get("path", "/") in ("/", "/index.html")
    body = NGINX_PAGE if found else b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.27.3</center>\r\n</body>\r\n</html>\r\n"
    await send({"type": "http.response.start", "status": 200 if found else 404,
                "headers": [(b"content-type", b"text/html"), (b"server", b"nginx/1.27.3"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})


class _PodServer:
    def __init__(self, server: Any, sock: socket.socket, port: int) -> None:
        self.server = server
        self.sock = sock
        self.port = port


class DataPlane:
    """Lives in the data-plane process."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None
        self.pods: dict[str, _PodServer] = {}
        self.lbs: dict[str, Listener] = {}
        self.logs = LogBook()  # each pod's log lines, per container incarnation
        self.usage: dict[str, Usage] = {}  # each pod's requests and CPU time (for metrics)
        self.procs = ProcessHost(self.logs)  # the emulated python image's containers (real processes)

    def warm(self) -> None:
        import uvicorn  # noqa: F401

        if self._module is None:
            self._module = load_app_module()

    def _app(self, pod: str, node: str, app: str = "app") -> Any:
        if app == "nginx":
            return _nginx_app
        if self._module is None:
            self._module = load_app_module()
        return self._module.create_app(pod, node)

    async def start_pod(self, uid: str, pod: str, node: str, app: str = "app") -> int:
        import uvicorn

        if uid in self.pods:
            return self.pods[uid].port
        served = as_delivered(instrument(self._app(pod, node, app), self.logs, uid, self.usage.setdefault(uid, Usage())))
        config = uvicorn.Config(
            served, lifespan="off", log_level="warning", access_log=False,
            timeout_keep_alive=30, server_header=False,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        sock = tcp_listen_socket()
        port = int(sock.getsockname()[1])
        ps = _PodServer(server, sock, port)
        self.pods[uid] = ps  # a stop_pod from now on wins over this start
        self.logs.start(uid, 1, port)  # PID 1: the server is the container's first process
        try:
            await server.startup(sockets=[sock])
            await server.on_tick(0)
        except (OSError, ValueError) as exc:
            self.pods.pop(uid, None)
            with contextlib.suppress(OSError):
                sock.close()
            raise RuntimeError(f"pod {pod}: the server did not start: {exc}") from None
        if self.pods.get(uid) is not ps:
            await self._close(ps)
            raise RuntimeError(f"pod {pod} was stopped while it started")
        await self._wait_healthy(port, "/healthz" if app == "app" else "/")
        return port

    async def _wait_healthy(self, port: int, path: str = "/healthz", timeout: float = 10.0) -> None:
        """Readiness: the server must answer ``GET path`` with 200."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n".encode())
                line = await asyncio.wait_for(reader.readline(), 2.0)
                writer.close()
                if line.split(b" ")[1:2] == [b"200"]:
                    return
            except (OSError, TimeoutError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"pod server on port {port} never answered /healthz")
            await asyncio.sleep(0.02)

    async def stop_pod(self, uid: str) -> None:
        ps = self.pods.pop(uid, None)
        if ps is None:
            return
        self.logs.stop(uid)
        self.usage.pop(uid, None)  # a restart counts from zero (the metrics take differences)
        await self._close(ps)

    async def _close(self, ps: _PodServer) -> None:
        for lb in self.lbs.values():
            lb.reset_backend(ps.port)
        server = ps.server
        for srv in server.servers:
            with contextlib.suppress(ValueError, OSError):  # its socket may be closed already
                srv.close()
        with contextlib.suppress(OSError):
            ps.sock.close()
        for conn in list(server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()

    async def set_lb(self, key: str, backends: list[int], snat: dict[int, str] | None = None) -> int:
        lb = self.lbs.get(key)
        if lb is None:
            lb = Listener(key)
            await lb.start()
            self.lbs[key] = lb
        lb.set_backends(backends, snat)
        return lb.port

    async def remove_lb(self, key: str) -> None:
        lb = self.lbs.pop(key, None)
        if lb is not None:
            await lb.close()

    def read_logs(self, req: dict[str, Any]) -> dict[str, Any]:
        """A pod's log lines: ``{uid, previous, after, since_ns, tail}`` → ``{found, lines:
        [[ns, text]...], next, incarnation, running}``."""
        uid = str(req["uid"])
        inc = self.logs.previous(uid) if req.get("previous") else self.logs.current(uid)
        if inc is None:
            return {"found": False, "lines": [], "next": 0, "incarnation": -1, "running": False}
        lines, nxt = inc.read(after=int(req.get("after", 0)), since_ns=int(req.get("since_ns", 0)),
                              tail=int(req.get("tail", -1)))
        return {"found": True, "lines": lines, "next": nxt, "incarnation": inc.number,
                "running": inc.running and (uid in self.pods or self.procs.running(uid))}

    def read_usage(self) -> dict[str, Any]:
        """Per pod uid: requests, CPU nanoseconds, bytes, log lines kept; the process's
        RSS and CPU time (what the pods share)."""
        rss = 0
        with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm", encoding="ascii") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        pods = {}
        for uid in self.pods:
            u = self.usage.get(uid) or Usage()
            inc = self.logs.current(uid)
            pods[uid] = {"requests": u.requests, "cpu_ns": u.cpu_ns, "bytes_out": u.bytes_out,
                         "log_bytes": inc.size + 40 * len(inc.lines) if inc else 0}
        return {"pods": pods, "rss": rss, "cpu_ns": time.process_time_ns(), "time_ns": time.time_ns()}

    async def stats(self) -> dict[str, Any]:
        return {"pods": len(self.pods), "lbs": {k: lb.accepted for k, lb in self.lbs.items()}}

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "start_pod":
            return {"port": await self.start_pod(req["uid"], req["pod"], req["node"], str(req.get("app", "app")))}
        if op == "stop_pod":
            await self.stop_pod(req["uid"])
            return {}
        if op == "set_lb":
            snat = {int(k): str(v) for k, v in (req.get("snat") or {}).items()}
            return {"port": await self.set_lb(req["key"], list(req["backends"]), snat)}
        if op == "remove_lb":
            await self.remove_lb(req["key"])
            return {}
        if op == "logs":
            return self.read_logs(req)
        if op == "start_proc":
            return await self.procs.start(str(req["uid"]), [str(a) for a in req["argv"]],
                                          {str(k): str(v) for k, v in (req.get("env") or {}).items()},
                                          str(req.get("cwd") or ""))
        if op == "wait_proc":
            return await self.procs.wait(str(req["uid"]))
        if op == "stop_proc":
            return await self.procs.stop(str(req["uid"]), float(req.get("grace", 30)))
        if op == "forget_proc":
            await self.procs.forget(str(req["uid"]))
            return {}
        if op == "procs":
            return {"pids": self.procs.pids()}
        if op == "usage":
            return self.read_usage()
        if op == "stats":
            return await self.stats()
        if op == "ping":
            return {"pid": os.getpid()}
        raise ValueError(f"unknown op {op!r}")


async def _serve_stdio() -> None:
    loop = asyncio.get_running_loop()
    plane = DataPlane()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def reply(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg).encode() + b"\n")
        out.flush()

    async def run(req: dict[str, Any]) -> None:
        try:
            result = await plane.handle(req)
            reply({"id": req.get("id"), "ok": True, **result})
        except Exception as exc:
            reply({"id": req.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    tasks: set[asyncio.Task[None]] = set()
    # load the app (FastAPI, uvicorn) before the first pod needs it
    loop.call_soon(plane.warm)
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            req = json.loads(line)
        except ValueError:
            continue
        task = loop.create_task(run(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await plane.procs.stop_all()
    for uid in list(plane.pods):
        await plane.stop_pod(uid)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    try:
        import uvloop

        uvloop.run(_serve_stdio())
    except ImportError:
        asyncio.run(_serve_stdio())


# -- the daemon's side --------------------------------------------------------------
class DataPlaneClient:
    """Starts the data-plane process and sends it requests (implements ``Runtime``)."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.on_exit: Callable[[], None] | None = None  # called when it dies unexpectedly
        self._stopping = False
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self._stopping = False
        env = dict(os.environ)
        env.pop("PYTHONSTARTUP", None)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "k3dtui.sim.runtime",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=1 << 20,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def ping(self) -> int:
        """Waits until the data plane answers; returns its pid."""
        return int((await self.request("ping"))["pid"])

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            fut = self._waiting.pop(int(msg.get("id", 0)), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the data-plane process exited"))
        self._waiting.clear()
        if not self._stopping and self.on_exit is not None:
            log.error("the data-plane process exited unexpectedly")
            self.on_exit()

    async def request(self, op: str, **kwargs: Any) -> dict[str, Any]:
        if self.proc is None or self.proc.stdin is None or self.proc.returncode is not None:
            raise RuntimeError("the data-plane process is not running")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self.proc.stdin.write(json.dumps({"id": rid, "op": op, **kwargs}).encode() + b"\n")
        msg = await fut
        if not msg.get("ok"):
            raise RuntimeError(str(msg.get("error")))
        return msg

    async def start_pod(self, uid: str, pod: str, node: str, app: str = "app") -> int:
        extra = {} if app == "app" else {"app": app}
        return int((await self.request("start_pod", uid=uid, pod=pod, node=node, **extra))["port"])

    async def stop_pod(self, uid: str) -> None:
        await self.request("stop_pod", uid=uid)

    async def read_logs(self, uid: str, *, previous: bool = False, after: int = 0, since_ns: int = 0,
                        tail: int = -1) -> dict[str, Any]:
        """A pod's log lines (see :meth:`DataPlane.read_logs`)."""
        return await self.request("logs", uid=uid, previous=previous, after=after, since_ns=since_ns, tail=tail)

    async def start_process(self, uid: str, argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
        """Start a process container (:mod:`k3dtui.sim.procpods`): ``{pid, startedAt}``."""
        return await self.request("start_proc", uid=uid, argv=argv, env=env, cwd=cwd)

    async def wait_process(self, uid: str) -> dict[str, Any]:
        """Its end: ``{exitCode, reason, startedAt, finishedAt, pid}`` (``{}``: none)."""
        return await self.request("wait_proc", uid=uid)

    async def stop_process(self, uid: str, grace: float) -> dict[str, Any]:
        """SIGTERM, SIGKILL after ``grace`` seconds; its end."""
        return await self.request("stop_proc", uid=uid, grace=grace)

    async def forget_process(self, uid: str) -> None:
        """The pod is gone: kill what still runs."""
        await self.request("forget_proc", uid=uid)

    async def process_pids(self) -> dict[str, int]:
        """The running process containers' pids, by pod uid."""
        return {str(k): int(v) for k, v in (await self.request("procs"))["pids"].items()}

    async def read_usage(self) -> dict[str, Any]:
        """Every running pod's requests and CPU time (see :meth:`DataPlane.read_usage`)."""
        return await self.request("usage")

    async def set_lb(self, key: str, backends: list[int], snat: dict[int, str] | None = None) -> int:
        wire = {str(k): v for k, v in (snat or {}).items()}
        return int((await self.request("set_lb", key=key, backends=backends, snat=wire))["port"])

    async def remove_lb(self, key: str) -> None:
        await self.request("remove_lb", key=key)

    async def stop(self, timeout: float = 3.0) -> None:
        self._stopping = True
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
        self.proc = None


if __name__ == "__main__":
    main()
