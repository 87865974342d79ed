"""A provider owns what is outside Kubernetes: the cluster's lifecycle, its network, the
app image, and turning the Service's external IP into an address this machine can dial.

Two implementations: ``k3dtui.core.k3d_provider.K3dProvider`` (k3d + Docker) and
``k3dtui.sim.provider.SimProvider`` (the embedded simulated cluster). Everything that
speaks Kubernetes is shared and goes through the kubeconfig ``kubeconfig()`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from k3dtui.core.network import NetworkInfo

LineSink = Callable[[str], None]
"""Receives progress output line by line (k3d's output, docker build log...)."""


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    servers: int
    agents: int
    servers_running: int
    agents_running: int

    @property
    def running(self) -> bool:
        return self.servers_running == self.servers and self.agents_running == self.agents


@dataclass(frozen=True)
class Reachability:
    routable: bool
    explanation: str  # one line: why, and what to do when not routable
    engine_kind: str = ""  # k3dtui.core.dockerctx's kinds ("" for the simulated cluster)
    probe: str = ""  # what a probe of a node address found ("" when none was made)


class Provider(Protocol):
    kind: str  # "k3d" or "sim"
    name: str  # the cluster name

    @property
    def context(self) -> str:
        """The kube context name acted on (``k3d-<name>``)."""
        ...

    async def find(self) -> ClusterInfo | None:
        """The cluster when it exists (running or not), else None."""
        ...

    async def create(self, servers: int, agents: int, log: LineSink) -> None: ...

    async def delete(self, log: LineSink) -> None: ...

    async def kubeconfig(self) -> Path:
        """A kubeconfig file in k3dtui's own state folder for this cluster."""
        ...

    async def network(self) -> NetworkInfo: ...

    async def build_image(self, tag: str, log: LineSink) -> None: ...

    async def import_image(self, tag: str, log: LineSink) -> None: ...

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        """Where to connect to reach ``ip:port`` of a LoadBalancer Service from this machine."""
        ...

    def reachability(self) -> Reachability: ...
