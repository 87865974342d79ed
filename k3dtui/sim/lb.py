"""Load balancing for LoadBalancer Services, as kube-proxy's iptables mode does it.

Data-plane side (``Listener``): a TCP listener on 127.0.0.1 that, per accepted connection,
picks a ready endpoint at random and relays bytes both ways. The choice is made once per
connection, so every request on a keep-alive connection reaches the same pod. When a pod
dies, the connections relayed to it are reset.

Control side (``LoadBalancerController``): from Services and EndpointSlices, the set of
listeners and their backends, pushed to the data plane; ``lb.json`` maps
``"<externalIP>:<port>"`` to ``"127.0.0.1:<listener port>"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from k3dtui.sim import gvrs
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx, spawn
from k3dtui.sim.statefiles import read_lb_file as read_lb_file  # re-exported
from k3dtui.sim.store import Event

log = logging.getLogger("k3dtui.sim.lb")

_CHUNK = 65536


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a connection to a dead pod ends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Listener:
    """One loopback listener: random backend per connection, byte relay, resets on pod death."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.backends: list[int] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: dict[int, set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]]] = {}
        self.accepted = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def set_backends(self, ports: list[int]) -> None:
        self.backends = list(ports)

    def reset_backend(self, port: int) -> int:
        """Reset every connection relayed to ``port``; returns how many."""
        pairs = self._conns.pop(port, set())
        for client, backend in pairs:
            reset(client)
            backend.transport.abort()
        return len(pairs)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for port in list(self._conns):
            self.reset_backend(port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if not self.backends:
            reset(writer)  # no endpoints: REJECT
            return
        port = random.choice(self.backends)
        try:
            breader, bwriter = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            reset(writer)
            return
        pair = (writer, bwriter)
        self._conns.setdefault(port, set()).add(pair)
        try:
            await asyncio.gather(_pipe(reader, bwriter), _pipe(breader, writer))
        finally:
            conns = self._conns.get(port)
            if conns is not None:
                conns.discard(pair)
            for w in (writer, bwriter):
                if not w.transport.is_closing():
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            writer.write(data)
            if writer.transport.get_write_buffer_size() > _CHUNK * 4:
                await writer.drain()
        if writer.can_write_eof() and not writer.transport.is_closing():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError):
        writer.transport.abort()


class LoadBalancerController(Controller):
    """Keeps one data-plane listener per (LoadBalancer Service with an IP, port)."""

    watches = frozenset({gvrs.SERVICES, gvrs.ENDPOINTSLICES, gvrs.SERVICEL2STATUSES})

    def __init__(self, ctx: Ctx, ports_of: Callable[[str], int | None], lb_file: Path | None) -> None:
        super().__init__(ctx)
        self.ports_of = ports_of  # pod uid → loopback port of its server
        self.lb_file = lb_file
        self.mapping: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._backends: dict[str, list[int]] = {}
        self._listeners: dict[str, int] = {}
        self.changed: asyncio.Event = asyncio.Event()

    @property
    def backends(self) -> dict[str, list[int]]:
        return dict(self._backends)

    def keys_for(self, event: Event) -> list[str]:
        return ["all"]

    def start(self) -> None:
        self.enqueue("all")

    def reconcile(self, key: str) -> None:
        spawn(self._sync())

    def desired(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for svc in self.store.iter(gvrs.SERVICES):
            spec = svc.get("spec") or {}
            if spec.get("type") != "LoadBalancer":
                continue
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ips = [str(i["ip"]) for i in ingress if i.get("ip")]
            if not ips:
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            local_node: str | None = None
            if spec.get("externalTrafficPolicy") == "Local":
                # traffic arrives at the announcing node and stays there
                local_node = ""
                for st in self.store.iter(gvrs.SERVICEL2STATUSES):
                    status = st.get("status") or {}
                    if status.get("serviceName") == name and status.get("serviceNamespace") == ns:
                        local_node = str(status.get("node") or "")
            ready_uids: list[str] = []
            for es in self.store.iter(gvrs.ENDPOINTSLICES, ns):
                if util.labels_of(es).get("kubernetes.io/service-name") != name:
                    continue
                for ep in es.get("endpoints") or []:
                    if local_node is not None and ep.get("nodeName") != local_node:
                        continue
                    if (ep.get("conditions") or {}).get("ready") and ep.get("targetRef", {}).get("uid"):
                        ready_uids.append(str(ep["targetRef"]["uid"]))
            ports = sorted({p for p in (self.ports_of(u) for u in ready_uids) if p is not None})
            for ip in ips:
                for sp in spec.get("ports") or []:
                    if sp.get("protocol", "TCP") == "TCP":
                        out[f"{ip}:{sp.get('port')}"] = ports
        return out

    async def _sync(self) -> None:
        runtime = self.ctx.runtime
        if runtime is None:
            return
        async with self._lock:
            want = self.desired()
            changed = False
            for key in list(self._listeners):
                if key not in want:
                    with contextlib.suppress(Exception):
                        await runtime.remove_lb(key)
                    del self._listeners[key]
                    self._backends.pop(key, None)
                    changed = True
            for key, ports in want.items():
                if self._backends.get(key) == ports and key in self._listeners:
                    continue
                try:
                    port = await runtime.set_lb(key, ports)
                except Exception:
                    log.exception("set_lb %s", key)
                    continue
                self._backends[key] = ports
                if self._listeners.get(key) != port:
                    changed = True
                self._listeners[key] = port
            self.mapping = {k: f"127.0.0.1:{p}" for k, p in sorted(self._listeners.items())}
            if changed:
                self.write_file()
            self.changed.set()

    def forget(self) -> None:
        """The data plane was replaced: every listener must be created again."""
        self._listeners.clear()
        self._backends.clear()
        self.enqueue("all")

    def write_file(self) -> None:
        if self.lb_file is None:
            return
        tmp = self.lb_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.mapping, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.lb_file)
