"""``pods/{name}/portforward``: TCP to the pod's real listener (its server in the data
plane), over the WebSocket protocols current clients use:

- ``SPDY/3.1+portforward.k8s.io`` (kubectl ≥ 1.31, client-go ``tools/portforward``): a SPDY
  connection tunnelled in the WebSocket (:mod:`.spdy`). Each forwarded connection is a pair
  of streams opened by the client with the headers ``streamType`` (``error`` or ``data``),
  ``port`` and ``requestID``; the server answers every stream with a SYN_REPLY, dials the
  port when the data stream arrives, copies bytes both ways and ends both streams with FIN
  (kubelet ``pkg/kubelet/cri/streaming/portforward/httpstream.go``). A port nothing listens
  on gets its error on the error stream.
- ``v4.channel.k8s.io`` (and ``v5.channel.k8s.io``, ``channel.k8s.io``; the Python client's
  ``kubernetes.stream.portforward``): the ports are in the ``ports`` query parameter; port i
  has the data channel 2i and the error channel 2i+1, each of which first carries the
  port as two little-endian bytes (kubelet ``pkg/kubelet/cri/streaming/portforward/websocket.go``).

SPDY without the WebSocket (``Upgrade: SPDY/3.1``, kubectl < 1.31) is refused with a 400
Status (:func:`.streams.refuse_spdy`).

The pod's listener: the app's server listens on 3000 inside the pod (``app/Dockerfile``
``uvicorn ... --port 3000``); the simulated cluster serves it on a loopback port, which
``pod_port(uid)`` gives. Ports the pod's containers declare are forwarded there too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from k3dtui.sim.apiserver import spdy
from k3dtui.sim.apiserver.errors import bad_request
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.apiserver.streams import refuse_spdy
from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import Obj

SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
APP_PORT = 3000
CHUNK = 32 * 1024
V5_CLOSE = 255


@dataclass
class _Pair:
    """One forwarded connection of the SPDY protocol: its two streams and its bytes."""

    port: int
    error: int = 0
    data: int = 0
    up: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class PortForward(Handlers):
    """``portforward`` over SPDY-in-WebSocket and over the channel protocol."""

    pod_port: Callable[[str], int | None] | None = None

    def _listeners(self, pod: Obj) -> set[int]:
        declared = {int(p["containerPort"]) for c in (pod.get("spec") or {}).get("containers") or []
                    for p in c.get("ports") or [] if isinstance(p, dict) and p.get("containerPort")}
        return declared | {APP_PORT}

    async def _dial(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        """A connection to ``port`` inside the pod, or the error kubelet would report."""
        name = pod["metadata"]["name"]
        uid = str(pod["metadata"].get("uid", ""))
        loopback = self.pod_port(uid) if self.pod_port is not None else None
        refused = (f"error forwarding port {port} to pod {name}, uid {uid}: failed to connect to localhost:{port} "
                   f"inside the pod: connection refused")
        if loopback is None or port not in self._listeners(pod):
            return refused
        try:
            return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", loopback), 5)
        except (OSError, TimeoutError):
            return refused

    async def _portforward(self, request: web.Request, kind: Kind, ns: str, name: str) -> web.StreamResponse:
        pod = self.store.require(kind.gvr, ns, name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        refuse_spdy(request)
        ports: list[int] = []
        for value in request.query.getall("ports", []):
            for part in value.split(","):
                try:
                    port = int(part)
                except ValueError as exc:
                    raise bad_request(f'invalid port "{part}"') from exc
                if not 0 < port < 65536:
                    raise bad_request(f"port {port} must be > 0 and < 65536")
                ports.append(port)
        ws = web.WebSocketResponse(protocols=(SPDY_TUNNEL, *CHANNEL_PROTOCOLS), heartbeat=None,
                                   max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        try:
            if ws.ws_protocol == SPDY_TUNNEL:
                await self._spdy_session(ws, pod)
            else:
                if not ports:
                    await ws.close(message=b"query parameter \"port\" is required")
                    return ws
                await self._channel_session(ws, pod, ports, ws.ws_protocol != "channel.k8s.io")
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()
        return ws

    # -- SPDY in the WebSocket --------------------------------------------------------------
    async def _spdy_session(self, ws: web.WebSocketResponse, pod: Obj) -> None:
        codec = spdy.Codec()
        lock = asyncio.Lock()
        pairs: dict[str, _Pair] = {}
        by_stream: dict[int, _Pair] = {}
        last = 0

        async def send(data: bytes) -> None:
            async with lock:
                if not ws.closed:
                    await ws.send_bytes(data)

        async def forward(pair: _Pair) -> None:
            dialed = await self._dial(pod, pair.port)
            if isinstance(dialed, str):
                await send(codec.data(pair.error, dialed.encode()) + codec.data(pair.error, b"", fin=True)
                           + codec.data(pair.data, b"", fin=True))
                return
            reader, writer = dialed

            async def up() -> None:
                while (chunk := await pair.up.get()) is not None:
                    writer.write(chunk)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

            upload = asyncio.get_running_loop().create_task(up())
            try:
                while chunk := await reader.read(CHUNK):
                    await send(codec.data(pair.data, chunk))
                await send(codec.data(pair.data, b"", fin=True) + codec.data(pair.error, b"", fin=True))
            except (ConnectionError, RuntimeError):
                pass
            finally:
                upload.cancel()
                writer.close()

        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
                    continue
                try:
                    frames = codec.feed(msg.data)
                except spdy.SpdyError:
                    await send(codec.goaway(last, 1))
                    break
                for frame in frames:
                    if not frame.control:
                        target = by_stream.get(frame.stream_id)
                        if target is not None and frame.stream_id == target.data:
                            if frame.data:
                                target.up.put_nowait(frame.data)
                            if frame.flags & spdy.FLAG_FIN:
                                target.up.put_nowait(None)
                        continue
                    if frame.type == spdy.SYN_STREAM:
                        last = max(last, frame.stream_id)
                        h = frame.headers
                        try:
                            port = int(h.get("port", ""))
                        except ValueError:
                            await send(codec.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
                            continue
                        pair = pairs.setdefault(h.get("requestid", str(frame.stream_id)), _Pair(port))
                        by_stream[frame.stream_id] = pair
                        await send(codec.syn_reply(frame.stream_id))
                        if h.get("streamtype") == "error":
                            pair.error = frame.stream_id
                        elif h.get("streamtype") == "data":
                            pair.data = frame.stream_id
                        else:
                            await send(codec.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
                            continue
                        if pair.error and pair.data and pair.task is None:
                            pair.task = asyncio.get_running_loop().create_task(forward(pair))
                    elif frame.type == spdy.RST_STREAM:
                        target = by_stream.get(frame.stream_id)
                        if target is not None:
                            target.up.put_nowait(None)
                            if target.task is not None:
                                target.task.cancel()
                    elif frame.type == spdy.PING:
                        await send(codec.ping(frame.data[:4]))  # the client's pings are echoed
                    elif frame.type == spdy.GOAWAY:
                        return
        finally:
            for pair in pairs.values():
                if pair.task is not None:
                    pair.task.cancel()

    # -- the channel protocol ---------------------------------------------------------------
    async def _channel_session(self, ws: web.WebSocketResponse, pod: Obj, ports: list[int], prefixed: bool) -> None:
        lock = asyncio.Lock()
        writers: list[asyncio.StreamWriter | None] = []
        tasks: list[asyncio.Task[None]] = []

        async def send(data: bytes) -> None:
            async with lock:
                if not ws.closed:
                    await ws.send_bytes(data)

        if prefixed:  # v4: each channel first says its port
            for i, port in enumerate(ports):
                await send(bytes([2 * i]) + port.to_bytes(2, "little"))
                await send(bytes([2 * i + 1]) + port.to_bytes(2, "little"))

        async def down(i: int, reader: asyncio.StreamReader) -> None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                while chunk := await reader.read(CHUNK):
                    await send(bytes([2 * i]) + chunk)
            # the pod closed this connection: as kubelet, end the whole stream
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()

        for i, port in enumerate(ports):
            dialed = await self._dial(pod, port)
            if isinstance(dialed, str):
                writers.append(None)
                await send(bytes([2 * i + 1]) + dialed.encode())
                continue
            reader, writer = dialed
            writers.append(writer)
            tasks.append(asyncio.get_running_loop().create_task(down(i, reader)))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
                    continue
                data = bytes(msg.data)
                if not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == V5_CLOSE and payload:  # v5: the client will send no more on that channel
                    index = payload[0] // 2
                    target = writers[index] if index < len(writers) else None
                    if target is not None and target.can_write_eof():
                        target.write_eof()
                    continue
                index = channel // 2
                target = writers[index] if channel % 2 == 0 and index < len(writers) else None
                if target is not None and payload:
                    target.write(payload)
                    await target.drain()
        finally:
            for task in tasks:
                task.cancel()
            for w in writers:
                if w is not None:
                    w.close()
