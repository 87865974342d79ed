"""The real provider: a k3d cluster on the local Docker engine."""

from __future__ import annotations

import asyncio
import platform
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


def reachability_for(
    system: str, engine_info: Mapping[str, Any] | None, network: str = "k3d-<name>"
) -> Reachability:
    """Whether MetalLB IPs on a Docker network can be dialled from this host.

    Linux with a native engine: the host sits on the bridge, so yes. Docker Desktop
    (macOS/Windows, or an engine reporting "Docker Desktop"): the bridge is inside a VM, no.
    """
    desktop = dockerx.is_docker_desktop(engine_info or {}, system)
    if not desktop and system == "Linux":
        return Reachability(
            True,
            f"Linux with a native Docker engine: this host is on the {network} bridge, "
            "so MetalLB IPs are reachable directly",
        )
    where = "Docker Desktop" if desktop else f"Docker on {system}"
    return Reachability(
        False,
        f"{where} keeps the {network} bridge inside a VM, so MetalLB IPs are not reachable "
        "from this host: run the load from a container on that network, use `kubectl "
        f"port-forward svc/{APP.service} 8080:{APP.service_port}`, or on macOS add a route into the VM "
        "(docker-mac-net-connect); or use --sim",
    )


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
        await k3d.cluster_create(self.name, servers, agents, log)
        await self.kubeconfig()

    async def start(self, log: LineSink) -> None:
        """Start a stopped cluster (``k3d cluster start``)."""
        await k3d.cluster_start(self.name, log)

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
        try:
            engine = await asyncio.to_thread(dockerx.info, dockerx.connect(timeout=3))
        except K3dtuiError:
            engine = {}
        if dockerx.containerd_image_store(engine):
            log(
                "warning: Docker uses the containerd image store; `k3d image import` may fail "
                "with 'content digest not found' (turn that store off in Docker's settings)"
            )
        await k3d.image_import(tag, self.name, log)

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        return ip, port

    def reachability(self) -> Reachability:
        if self._reachability is None:
            try:
                engine: Mapping[str, Any] | None = dockerx.info(dockerx.connect(timeout=3))
            except K3dtuiError:
                engine = None
            self._reachability = reachability_for(platform.system(), engine, self.network_name)
        return self._reachability
