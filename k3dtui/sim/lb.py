"""Load balancing for LoadBalancer Services, as kube-proxy's iptables mode does it.

Data-plane side (``Listener``): a TCP listener on 127.0.0.1 that, per accepted connection,
picks a ready endpoint at random and relays bytes both ways. The choice is made once per
connection, so every request on a keep-alive connection reaches the same pod. When a pod
dies, the connections relayed to it are reset.

Control side (``LoadBalancerController``): from Services and EndpointSlices, the set of
listeners and their backends, pushed to the data plane; ``lb.json`` maps
``"<externalIP>:<port>"`` to ``"127.0.0.1:<listener port>"``.

Where a connection enters and what source address the pod sees (kube-proxy's iptables rules
for a LoadBalancer Service; kubernetes/kubernetes ``pkg/proxy/iptables/proxier.go``, the
``KUBE-EXT-``/``KUBE-SVC-`` chains, and the Kubernetes docs "Using Source IP"):

- a connection enters at the node MetalLB announces the address from (its ServiceL2Status);
- ``externalTrafficPolicy: Cluster``: any ready endpoint, chosen uniformly once per
  connection (``KUBE-SVC-`` uses ``statistic --mode random``); external traffic is marked
  with ``KUBE-MARK-MASQ``, so the pod sees the forwarding node's address. With flannel,
  k3s's CNI, that is the node's ``cni0`` address (``10.42.N.1``) for a pod on the same node
  and its ``flannel.1`` address (``10.42.N.0``) for a pod on another node;
- ``externalTrafficPolicy: Local``: only the receiving node's ready endpoints
  (``KUBE-SVL-``), no masquerade: the pod sees the client's own address (the Kubernetes docs
  "Create an External Load Balancer", preserving the client source IP).

The rewrite is a table shared with the pods' servers in the data-plane process (``SNAT``,
what conntrack's NAT entries are on a node): the relay's source port toward the pod → the
address the pod sees; ``as_delivered`` gives the pod's app that address as its peer.

ClusterIP (``ClusterIPController``): for the process containers of the emulated ``python``
image (:mod:`k3dtui.sim.podboot.sitecustomize`), one listener per Service port with every
ready endpoint of every node (``internalTrafficPolicy: Cluster``, the ``KUBE-SVC-`` chain);
``services.json`` maps ``<svc>.<ns>`` to its ClusterIP and each port to its listener, and each
ClusterIP to its Service. Pod-to-Service traffic is not masqueraded: a client that connects
from ``127.42.N.H`` (the bootstrap binds there) is seen by the serving pod as ``10.42.N.H``,
its own pod IP. A Service with no ready endpoint resets the connection (kube-proxy rejects it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx, spawn
from k3dtui.sim.statefiles import read_lb_file as read_lb_file  # re-exported
from k3dtui.sim.statefiles import write_json
from k3dtui.sim.store import Event

log = logging.getLogger("k3dtui.sim.lb")

_CHUNK = 65536

# the relay's local port toward a pod → the source address kube-proxy would have delivered
SNAT: dict[int, str] = {}


def as_delivered(app: Any) -> Any:
    """An ASGI app whose peer (``scope["client"]``) is the address kube-proxy delivers: the
    masquerading node's when the connection came through a masquerading listener, else the
    real peer (the client's own address)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        client = scope.get("client")
        if client and scope.get("type") == "http":
            addr = SNAT.get(int(client[1]))
            if addr is not None:
                scope = {**scope, "client": (addr, client[1])}
        await app(scope, receive, send)

    return wrapped


def flannel_addresses(pod_cidr: str) -> tuple[str, str]:
    """A node's ``cni0`` and ``flannel.1`` addresses from its podCIDR (``10.42.N.0/24`` →
    ``10.42.N.1``, ``10.42.N.0``), as flannel configures them (flannel-io/flannel
    ``pkg/backend/vxlan``: the VTEP gets the subnet's network address; the bridge CNI
    plugin gives ``cni0`` the subnet's first host address)."""
    import ipaddress

    try:
        net = ipaddress.ip_network(pod_cidr, strict=False)
    except ValueError:
        return "", ""
    return str(net.network_address + 1), str(net.network_address)


def masquerade_address(entry_cidr: str, pod_node: str, entry_node: str) -> str:
    """What a pod sees under ``Cluster``: the entry node's ``cni0`` address when the pod is on
    it, its ``flannel.1`` address when the connection crossed to another node."""
    cni0, vtep = flannel_addresses(entry_cidr)
    return cni0 if pod_node == entry_node else vtep


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
        self.snat: dict[int, str] = {}  # backend port → the address its pod sees (masquerade)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: dict[int, set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]]] = {}
        self.accepted = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def set_backends(self, ports: list[int], snat: dict[int, str] | None = None) -> None:
        self.backends = list(ports)
        self.snat = dict(snat or {})

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
        local = bwriter.get_extra_info("sockname")
        relay_port = int(local[1]) if local else 0
        masq = self.snat.get(port) or pod_address(writer.get_extra_info("peername"))
        if masq and relay_port:
            SNAT[relay_port] = masq
        try:
            await asyncio.gather(_pipe(reader, bwriter), _pipe(breader, writer))
        finally:
            if masq and relay_port:
                SNAT.pop(relay_port, None)
            conns = self._conns.get(port)
            if conns is not None:
                conns.discard(pair)
            for w in (writer, bwriter):
                if not w.transport.is_closing():
                    w.close()


def pod_address(peer: Any) -> str | None:
    """A process container's pod IP from the loopback alias it connected from
    (``127.42.N.H`` → ``10.42.N.H``), or None."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str) and peer[0].startswith("127.42."):
        return "10.42." + peer[0][len("127.42."):]
    return None


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


Wanted = dict[str, tuple[list[int], dict[int, str]]]  # listener key → (backend ports, port → address the pod sees)


class _Listeners(Controller):
    """Keeps the data plane's listeners of one kind of Service address as ``wanted()`` names
    them: each listener's backends and, where kube-proxy rewrites the source, the address each
    backend's pod sees. One sync at a time: a sync waiting for the lock sees every change made
    before it, so a burst of events costs one sync, not one each. ``published(changed)`` then
    tells the world (a file of the addresses)."""

    watches = frozenset({gvrs.SERVICES, gvrs.ENDPOINTSLICES})

    def __init__(self, ctx: Ctx, ports_of: Callable[[str], int | None], file: Path | None) -> None:
        super().__init__(ctx)
        self.ports_of = ports_of  # pod uid → loopback port of its server
        self.file = file
        self._lock = asyncio.Lock()
        self._backends: dict[str, list[int]] = {}
        self._snat: dict[str, dict[int, str]] = {}
        self._listeners: dict[str, int] = {}
        self._sync_queued = False

    @property
    def backends(self) -> dict[str, list[int]]:
        return dict(self._backends)

    def keys_for(self, event: Event) -> list[str]:
        return ["all"]

    def start(self) -> None:
        self.enqueue("all")

    def reconcile(self, key: str) -> None:
        if not self._sync_queued:  # one sync waiting for the lock sees every change before it
            self._sync_queued = True
            spawn(self._sync())

    def wanted(self) -> Wanted:
        raise NotImplementedError

    def published(self, changed: bool) -> None:
        """After a sync: ``changed`` when a listener came, went or moved to another port."""

    async def _sync(self) -> None:
        runtime = self.ctx.runtime
        if runtime is None:
            self._sync_queued = False
            return
        async with self._lock:
            self._sync_queued = False
            want = self.wanted()
            changed = False
            for key in list(self._listeners):
                if key not in want:
                    with contextlib.suppress(Exception):
                        await runtime.remove_lb(key)
                    del self._listeners[key]
                    self._backends.pop(key, None)
                    self._snat.pop(key, None)
                    changed = True
            for key, (ports, snat) in want.items():
                if self._backends.get(key) == ports and self._snat.get(key) == snat and key in self._listeners:
                    continue
                try:
                    port = await runtime.set_lb(key, ports, snat)
                except Exception:
                    log.exception("set_lb %s", key)
                    continue
                self._backends[key] = ports
                self._snat[key] = snat
                if self._listeners.get(key) != port:
                    changed = True
                self._listeners[key] = port
            self.published(changed)

    def forget(self) -> None:
        """The data plane was replaced: every listener must be created again."""
        self._listeners.clear()
        self._backends.clear()
        self._snat.clear()
        self.enqueue("all")

    def _write_json(self, data: Any) -> None:
        if self.file is not None:
            write_json(self.file, data, sort_keys=True)


class LoadBalancerController(_Listeners):
    """Keeps one data-plane listener per (LoadBalancer Service with an IP, port)."""

    watches = frozenset({gvrs.SERVICES, gvrs.ENDPOINTSLICES, gvrs.SERVICEL2STATUSES})

    def __init__(self, ctx: Ctx, ports_of: Callable[[str], int | None], lb_file: Path | None) -> None:
        super().__init__(ctx, ports_of, lb_file)
        self.mapping: dict[str, str] = {}

    def wanted(self) -> Wanted:
        """Each listener's backends and, under ``Cluster``, the address each backend's pod sees."""
        cidrs = {
            str(n["metadata"]["name"]): str((n.get("spec") or {}).get("podCIDR") or "")
            for n in self.store.iter(gvrs.NODES)
        }
        out: dict[str, tuple[list[int], dict[int, str]]] = {}
        for svc in self.store.iter(gvrs.SERVICES):
            spec = svc.get("spec") or {}
            if spec.get("type") != "LoadBalancer":
                continue
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ips = [str(i["ip"]) for i in ingress if i.get("ip")]
            if not ips:
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            announcer = ""
            for st in self.store.iter(gvrs.SERVICEL2STATUSES):
                status = st.get("status") or {}
                if status.get("serviceName") == name and status.get("serviceNamespace") == ns:
                    announcer = str(status.get("node") or "")
            local_node: str | None = None
            if spec.get("externalTrafficPolicy") == "Local":
                # traffic arrives at the announcing node and stays there (KUBE-SVL-)
                local_node = announcer
            ready_uids: list[str] = []
            node_of: dict[str, str] = {}
            for es in self.store.iter(gvrs.ENDPOINTSLICES, ns):
                if util.labels_of(es).get("kubernetes.io/service-name") != name:
                    continue
                for ep in es.get("endpoints") or []:
                    if local_node is not None and ep.get("nodeName") != local_node:
                        continue
                    if (ep.get("conditions") or {}).get("ready") and ep.get("targetRef", {}).get("uid"):
                        uid = str(ep["targetRef"]["uid"])
                        ready_uids.append(uid)
                        node_of[uid] = str(ep.get("nodeName") or "")
            snat: dict[int, str] = {}
            ports_set: set[int] = set()
            for uid in ready_uids:
                port = self.ports_of(uid)
                if port is None:
                    continue
                ports_set.add(port)
                if local_node is None:
                    # Cluster: KUBE-MARK-MASQ; the entry is the announcing node (or, with none
                    # announcing, the pod's own node: the address is still a node's)
                    entry = announcer or node_of[uid]
                    snat[port] = masquerade_address(cidrs.get(entry, ""), node_of[uid], entry)
            ports = sorted(ports_set)
            for ip in ips:
                for sp in spec.get("ports") or []:
                    if sp.get("protocol", "TCP") == "TCP":
                        out[f"{ip}:{sp.get('port')}"] = (ports, {p: a for p, a in snat.items() if a})
        return out

    def published(self, changed: bool) -> None:
        self.mapping = {k: f"127.0.0.1:{p}" for k, p in sorted(self._listeners.items())}
        if changed:
            self._write_json(self.mapping)


class ClusterIPController(_Listeners):
    """One data-plane listener per (Service with a ClusterIP, TCP port): every ready endpoint,
    a random one per connection; the table the process containers resolve names with."""

    def __init__(self, ctx: Ctx, ports_of: Callable[[str], int | None], table_file: Path | None) -> None:
        super().__init__(ctx, ports_of, table_file)
        self.table: dict[str, Any] = {"services": {}, "ips": {}}
        self._services: dict[str, Any] = {}  # the services table of the last wanted(), without listener ports

    def wanted(self) -> Wanted:
        """Each listener's backends (``cip/<ns>/<svc>:<port>``; no source rewrite: the pod sees
        the client pod's address); the services table without listener ports is kept for
        ``published``."""
        ready: dict[tuple[str, str], list[int]] = {}
        for es in self.store.iter(gvrs.ENDPOINTSLICES):
            svc_name = util.labels_of(es).get("kubernetes.io/service-name")
            if not svc_name:
                continue
            ports = ready.setdefault((str(es["metadata"].get("namespace", "")), svc_name), [])
            for ep in es.get("endpoints") or []:
                uid = (ep.get("targetRef") or {}).get("uid")
                if (ep.get("conditions") or {}).get("ready") and uid:
                    port = self.ports_of(str(uid))
                    if port is not None and port not in ports:
                        ports.append(port)
        want: Wanted = {}
        services: dict[str, Any] = {}
        for svc in self.store.iter(gvrs.SERVICES):
            spec = svc.get("spec") or {}
            ip = str(spec.get("clusterIP") or "")
            if not ip or ip == "None" or spec.get("type") == "ExternalName":
                continue
            ns, name = str(svc["metadata"]["namespace"]), str(svc["metadata"]["name"])
            entry: dict[str, Any] = {"ip": ip, "ports": {}}
            for sp in spec.get("ports") or []:
                if sp.get("protocol", "TCP") != "TCP" or sp.get("port") is None:
                    continue
                key = f"cip/{ns}/{name}:{sp['port']}"
                want[key] = (sorted(ready.get((ns, name), [])), {})
                entry["ports"][str(sp["port"])] = key
            services[f"{name}.{ns}"] = entry
        self._services = services
        return want

    def published(self, changed: bool) -> None:
        table: dict[str, Any] = {"services": {}, "ips": {}}
        for svc_key, entry in sorted(self._services.items()):
            listening = {p: self._listeners[k] for p, k in entry["ports"].items() if k in self._listeners}
            table["services"][svc_key] = {"ip": entry["ip"], "ports": listening}
            table["ips"][entry["ip"]] = svc_key
        if table != self.table:
            self.table = table
            self._write_json(table)
