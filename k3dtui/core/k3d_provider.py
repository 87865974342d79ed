"""The real provider: a k3d cluster on the local Docker engine."""

from __future__ import annotations

import asyncio
import platform
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from k3dtui.core import docker as dockerx
from k3dtui.core import k3d
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP
from k3dtui.core.network import NetworkInfo
from k3dtui.core.process import CommandError
from k3dtui.core.provider import ClusterInfo, LineSink, Reachability
from k3dtui.core.spec import ClusterSpec, validate_name, validate_spec
from k3dtui.resources import app_dir

PROBE_PORT = 6443  # every k3s server listens here on its node address (kube-apiserver)
PROBE_TIMEOUT = 1.5


def probe_address(ip: str, port: int = PROBE_PORT, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Can this host reach ``ip`` directly? A TCP connect, never through a proxy: an answer
    (accepted, or refused by the node itself) proves a route; a timeout or "no route" does not.
    """
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True, f"{ip}:{port} answered"
    except ConnectionRefusedError:
        return True, f"{ip} answered (port {port} refused)"
    except TimeoutError:
        return False, f"{ip}:{port} did not answer within {timeout:g} s"
    except OSError as exc:
        return False, f"{ip}:{port}: {exc.strerror or exc}"


_IN_NETWORK = (
    "`k3dtui load` and the TUI's load run inside the cluster's network instead (a container "
    "on {network}); `kubectl port-forward svc/"
    + APP.service
    + f" 8080:{APP.service_port}` reaches the app too"
)


def reachability_for(
    kind: str, system: str, network: str = "k3d-<name>", probe: tuple[bool, str] | None = None
) -> Reachability:
    """Whether MetalLB IPs on the cluster's Docker network can be dialled from this host.

    From the engine's kind (k3dtui.core.dockerctx.engine_kind) and, where one was made, a probe
    of a node address. The facts (../shared/reference/request-flow.md, "Docker engines people
    have"): native rootful Linux: the host is on the bridge; rootless: containers live in
    RootlessKit's network namespace (moby/moby#43625, docs.docker.com/engine/security/rootless);
    remote (tcp://, ssh://): the bridge is on another machine; Docker Desktop and colima: the
    bridge is inside a VM, unless a route was added; OrbStack on macOS routes container
    addresses (docs.orbstack.dev/docker/network).
    """
    from k3dtui.core.dockerctx import (
        COLIMA,
        DESKTOP,
        KIND_NAMES,
        NATIVE,
        ORBSTACK,
        REMOTE,
        ROOTLESS,
    )

    what = KIND_NAMES.get(kind, kind)
    seen = probe[1] if probe is not None else ""
    instead = _IN_NETWORK.format(network=network)

    def yes(why: str) -> Reachability:
        return Reachability(True, why, kind, seen)

    def no(why: str) -> Reachability:
        return Reachability(False, f"{why}: {instead}", kind, seen)

    if kind == REMOTE:
        return no(f"the Docker engine is remote, so {network} is on another machine")
    if kind == ROOTLESS:
        return no(f"rootless Docker keeps {network} inside RootlessKit's network namespace")
    if probe is not None and not probe[0]:
        return no(f"{what}: a node address on {network} does not answer from here ({seen})")
    if kind == NATIVE:
        how = f" (probe: {seen})" if seen else ""
        return yes(f"native Linux engine: this host is on the {network} bridge, so MetalLB "
                   f"IPs are reachable directly{how}")
    if kind == ORBSTACK and system == "Darwin":
        how = f" (probe: {seen})" if seen else ""
        return yes(f"OrbStack routes container addresses to macOS, so MetalLB IPs on {network} "
                   f"are reachable{how}")
    if probe is not None and probe[0]:
        return yes(f"{what}: a node address on {network} answers from here ({seen}), so "
                   "MetalLB IPs are reachable")
    if kind in (DESKTOP, COLIMA):
        return no(f"{what} keeps {network} inside its VM and no probe showed a route")
    return no(f"{what} on {system}: {network} is not known to be reachable and no probe showed "
              "a route")


class K3dProvider:
    """Implements ``k3dtui.core.provider.Provider`` with the k3d CLI and the Docker SDK."""

    kind = "k3d"

    def __init__(self, name: str) -> None:
        validate_name(name)
        self.name = name
        self._reachability: Reachability | None = None

    @property
    def context(self) -> str:
        return f"k3d-{self.name}"

    @property
    def network_name(self) -> str:
        return f"k3d-{self.name}"

    async def _require_docker(self) -> None:
        """Raise the clear "Docker engine not reachable" error when it is the cause."""
        await asyncio.to_thread(dockerx.connect, 3.0)

    async def find(self) -> ClusterInfo | None:
        try:
            return await k3d.cluster_get(self.name)
        except CommandError:
            await self._require_docker()  # k3d fails the same way when Docker is down
            raise

    async def create(self, servers: int, agents: int, log: LineSink) -> None:
        validate_spec(ClusterSpec(name=self.name, servers=servers, agents=agents))
        await self._require_docker()
        existing = await self.find()
        if existing is not None:
            raise K3dtuiError(
                f"k3d cluster {self.name!r} already exists "
                f"({existing.servers} server(s), {existing.agents} agent(s))",
                f"reuse it, or delete it first with `k3dtui down --name {self.name}`",
            )
        await self.pull_images(log)
        await k3d.cluster_create(self.name, servers, agents, log)
        await self.kubeconfig()

    async def pull_images(self, log: LineSink) -> list[str]:
        """The images k3d will need, pulled first through the SDK with per-image progress
        (k3dtui.core.imagepull); those that could not be pulled are left to k3d."""
        from k3dtui.core import imagepull

        refs = imagepull.required_images(await k3d.version_output())
        loop = asyncio.get_running_loop()

        def sink(line: str) -> None:  # called from the worker thread
            loop.call_soon_threadsafe(log, line)

        def work() -> list[str]:
            return imagepull.pull_missing(dockerx.connect(), refs, sink)

        failed = await asyncio.to_thread(work)
        await asyncio.sleep(0)
        return failed

    async def start(self, log: LineSink) -> None:
        """Start a stopped cluster (``k3d cluster start``)."""
        await k3d.cluster_start(self.name, log)

    async def stop_node(self, node: str, log: LineSink) -> None:
        """``k3d node stop NODE``."""
        await self._require_docker()
        await k3d.node_stop(node, log)

    async def start_node(self, node: str, log: LineSink) -> None:
        """``k3d node start NODE``."""
        await self._require_docker()
        await k3d.node_start(node, log)

    async def delete(self, log: LineSink) -> None:
        await k3d.cluster_delete(self.name, log)
        k3d.kubeconfig_path(self.name).unlink(missing_ok=True)

    async def kubeconfig(self) -> Path:
        return await k3d.kubeconfig_get(self.name)

    async def network(self) -> NetworkInfo:
        def inspect() -> NetworkInfo:
            cli = dockerx.connect()
            return dockerx.inspect_network(dockerx.cluster_network_name(self.name, cli), cli)

        return await asyncio.to_thread(inspect)

    async def build_image(self, tag: str, log: LineSink) -> None:
        loop = asyncio.get_running_loop()

        def sink(line: str) -> None:  # build lines come from a worker thread
            loop.call_soon_threadsafe(log, line)

        with app_dir() as context:
            await asyncio.to_thread(dockerx.build_image, context, tag, sink)
        await asyncio.sleep(0)  # let the last queued lines reach ``log``

    async def import_image(self, tag: str, log: LineSink) -> None:
        """``k3d image import TAG -c NAME``; with Docker's containerd image store, or when
        that import fails, ``docker save`` into ``ctr -n k8s.io images import -`` in each
        node instead (k3dtui.core.nodeimport), saying so."""
        from k3dtui.core import nodeimport

        try:
            cli = await asyncio.to_thread(dockerx.connect, 3.0)
            engine = await asyncio.to_thread(dockerx.info, cli)
        except K3dtuiError:
            cli, engine = None, {}
        reason = ""
        if dockerx.containerd_image_store(engine):
            reason = ("Docker uses the containerd image store, where `k3d image import` can fail "
                      "('content digest not found', k3d-io/k3d#1538)")
        else:
            try:
                await k3d.image_import(tag, self.name, log)
                return
            except CommandError as exc:
                if cli is None:
                    raise
                reason = f"`k3d image import` failed ({exc.message})"
        if cli is None:
            cli = await asyncio.to_thread(dockerx.connect, 3.0)
        log(f"{reason}: importing with `docker save {tag}` into `ctr -n k8s.io images import -` "
            "in each server and agent node instead")
        loop = asyncio.get_running_loop()

        def sink(line: str) -> None:  # called from the worker thread
            loop.call_soon_threadsafe(log, line)

        nodes = await asyncio.to_thread(nodeimport.import_into_nodes, cli, self.name, tag, sink, engine)
        await asyncio.sleep(0)
        log(f"imported {tag} into {len(nodes)} node(s) with ctr: {', '.join(nodes)}")

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        return ip, port

    def reachability(self) -> Reachability:
        if self._reachability is None:
            self._reachability = engine_reachability(self.name)
        return self._reachability


def engine_reachability(cluster: str | None) -> Reachability:
    """The engine's kind, and a probe of one of ``cluster``'s node addresses when the cluster
    exists (blocking: a second or two at most)."""
    from k3dtui.core import dockerctx

    system = platform.system()
    network = f"k3d-{cluster}" if cluster else "k3d-<name>"
    try:
        ep = dockerctx.resolve()
    except K3dtuiError as exc:
        return Reachability(False, exc.message, dockerctx.OTHER)
    engine: Mapping[str, Any] | None
    try:
        cli = dockerx.connect(timeout=3)
        engine = dockerx.info(cli)
    except K3dtuiError:
        cli, engine = None, None
    kind = dockerctx.engine_kind(ep, engine, system)
    probe: tuple[bool, str] | None = None
    if cli is not None and cluster and kind not in (dockerctx.REMOTE, dockerctx.ROOTLESS):
        try:
            net = dockerx.inspect_network(dockerx.cluster_network_name(cluster, cli), cli)
        except K3dtuiError:
            net = None
        if net is not None and net.members:
            network = net.name
            probe = probe_address(net.members[0].ip)
    return reachability_for(kind, system, network, probe)
