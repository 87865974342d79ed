"""Test-only servers on 127.0.0.1 for the load generator's tests (tests/test_load*.py).

One background thread runs an event loop hosting: uvicorn servers of app/main.py's
``create_app`` with distinct pod/node identities; a TCP relay that picks a backend at
random per accepted connection (as a Service's kube-proxy rules do); and misbehaving
servers (never answers, closes mid-request, answers without X-Pod using chunked bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

import uvicorn

from k3dtui import resources

T = TypeVar("T")


def load_app_module() -> ModuleType:
    with resources.app_dir() as folder:
        spec = importlib.util.spec_from_file_location("fastapi_random_main_load", folder / "main.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["fastapi_random_main_load"] = module
        spec.loader.exec_module(module)
        return module


def _listening_socket() -> socket.socket:
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it a response written in two parts waits ~40 ms for the client's delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="load-test-servers", daemon=True)
        self._thread.start()
        self._uvicorns: list[uvicorn.Server] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[Any]] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float = 20.0) -> T:
        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    # --- servers ---
    def app(self, pod: str, node: str) -> int:
        """A uvicorn server of app/main.py answering as ``pod`` on ``node``; its port."""
        module = load_app_module()
        sock = _listening_socket()
        config = uvicorn.Config(
            module.create_app(pod, node), log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

        async def start() -> None:
            self._tasks.append(asyncio.ensure_future(server.serve(sockets=[sock])))
            while not server.started:
                await asyncio.sleep(0.01)

        self.run(start())
        self._uvicorns.append(server)
        return int(sock.getsockname()[1])

    def relay(self, backends: list[int], seed: int = 7) -> int:
        """A TCP relay: each accepted connection goes to a backend chosen at random."""
        rng = random.Random(seed)

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    writer.close()

        async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
            port = rng.choice(backends)
            try:
                breader, bwriter = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                cwriter.transport.abort()
                return
            await asyncio.gather(pump(creader, bwriter), pump(breader, cwriter))

        return self._serve(handle)

    def silent(self) -> int:
        """Accepts, reads, never answers."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            writer.close()

        return self._serve(handle)

    def closing(self) -> int:
        """Reads the request's first bytes, then drops the connection without answering."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await reader.read(10)
            writer.transport.abort()

        return self._serve(handle)

    def plain(self) -> int:
        """A keep-alive HTTP/1.1 server without X-Pod/X-Node; chunked and fixed-length bodies."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            n = 0
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    n += 1
                    close = b"connection: close" in head.lower()
                    tail = b"Connection: close\r\n" if close else b""
                    if n % 2:
                        body = b'{"hello":"world"}'
                        writer.write(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            + tail
                            + b"Transfer-Encoding: chunked\r\n\r\n"
                            + b"%x\r\n%s\r\n" % (5, body[:5])
                            + b"%x;ext=1\r\n%s\r\n" % (len(body) - 5, body[5:])
                            + b"0\r\n\r\n"
                        )
                    else:
                        writer.write(
                            b"HTTP/1.1 200 OK\r\n" + tail + b"Content-Length: 2\r\n\r\nok"
                        )
                    await writer.drain()
                    if close:
                        break
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            writer.close()

        return self._serve(handle)

    def _serve(
        self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> int:
        sock = _listening_socket()

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(handle, sock=sock)

        self._servers.append(self.run(start()))
        return int(sock.getsockname()[1])

    def close(self) -> None:
        async def shutdown() -> None:
            for server in self._uvicorns:
                server.should_exit = True
            for s in self._servers:
                s.close()
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)

        with contextlib.suppress(Exception):
            self.run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def closed_port() -> tuple[socket.socket, int]:
    """A port bound but not listening: connecting to it is refused. Keep the socket open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])
