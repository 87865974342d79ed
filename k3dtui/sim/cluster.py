"""The simulated cluster's wiring: the store, the bootstrap objects and every controller.

``SimCluster`` runs on one asyncio loop (the API server's). Pods' HTTP servers and the
load-balancing listeners live in the data-plane process (``runtime.py``), reached through
a ``Runtime``; without one, pods still walk their lifecycle but serve nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from k3dtui.core.network import Member, NetworkInfo
from k3dtui.sim import gvrs
from k3dtui.sim.controllers import addons
from k3dtui.sim.controllers import nodes as node_ctl
from k3dtui.sim.controllers.base import Controller, Ctx, Runtime
from k3dtui.sim.controllers.disruption import DisruptionController
from k3dtui.sim.controllers.jobs import JobController, TTLAfterFinishedController
from k3dtui.sim.controllers.kubelet import Kubelet
from k3dtui.sim.controllers.metallb import MetalLB
from k3dtui.sim.controllers.nodelifecycle import NodeLifecycle
from k3dtui.sim.controllers.scheduler import Scheduler
from k3dtui.sim.controllers.services import (
    EndpointsController,
    GarbageCollector,
    ServiceController,
)
from k3dtui.sim.controllers.workloads import (
    DaemonSetController,
    DeploymentController,
    ReplicaSetController,
)
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import GVR, Store


class SimCluster:
    def __init__(
        self,
        store: Store,
        name: str,
        *,
        servers: int = 1,
        agents: int = 2,
        settings: SimSettings | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.settings = settings or SimSettings()
        self.subnet, node_specs = node_ctl.plan_nodes(name, servers, agents)
        self.ctx = Ctx(store=store, settings=self.settings, cluster=name, nodes=node_specs, runtime=runtime)
        self.kubelet = Kubelet(self.ctx)
        self.metallb = MetalLB(self.ctx)
        self.lb: Controller | None = None
        self.leases: node_ctl.NodeLeases | None = None
        self.lifecycle = NodeLifecycle(self.ctx)
        self._detach: Callable[[], None] | None = None

    @property
    def servers(self) -> int:
        return sum(1 for n in self.ctx.nodes if n.role == "server")

    @property
    def agents(self) -> int:
        return sum(1 for n in self.ctx.nodes if n.role == "agent")

    def network(self) -> NetworkInfo:
        gateway = str(self.subnet.network_address + 1)
        members = [Member(n.name, n.ip) for n in self.ctx.nodes]
        members.append(Member(f"k3d-{self.name}-serverlb", node_ctl.serverlb_ip(self.subnet, len(self.ctx.nodes))))
        return NetworkInfo(f"k3d-{self.name}", str(self.subnet), gateway, tuple(members))

    def admission_hooks(self) -> dict[GVR, Any]:
        return {gvrs.IPADDRESSPOOLS: self.metallb.admit_pool, gvrs.L2ADVERTISEMENTS: self.metallb.admit_l2}

    def start(self, lb: Controller | None = None, extra: list[Controller] | None = None) -> None:
        """Bootstrap and attach the controllers; call on the running loop."""
        node_ctl.bootstrap(self.store, self.ctx.nodes)
        addons.install(self.store)
        self.leases = node_ctl.NodeLeases(self.ctx)
        controllers: list[Controller] = [
            node_ctl.NamespaceController(self.ctx),
            self.leases,
            self.lifecycle,
            ServiceController(self.ctx),
            DeploymentController(self.ctx),
            ReplicaSetController(self.ctx),
            DaemonSetController(self.ctx),
            JobController(self.ctx),
            TTLAfterFinishedController(self.ctx),
            Scheduler(self.ctx),
            self.kubelet,
            EndpointsController(self.ctx),
            GarbageCollector(self.ctx),
            DisruptionController(self.ctx),
            self.metallb,
        ]
        if lb is not None:
            self.lb = lb
            controllers.append(lb)
        controllers.extend(extra or [])
        for c in controllers:
            self.ctx.add(c)
        self._detach = self.ctx.attach()
        for c in controllers:
            c.start()

    def stop(self) -> None:
        if self._detach is not None:
            self._detach()
            self._detach = None
        if self.leases is not None:
            self.leases.stop()
        self.lifecycle.stop()
        for task in list(self.kubelet.running.values()) + list(self.kubelet.terminating.values()):
            task.cancel()

    # -- images and faults ---------------------------------------------------------
    def import_image(self, image: str) -> None:
        self.ctx.import_image(image)
        from k3dtui.sim.controllers import util

        ref = util.normalize_image(image)

        def fn(node: dict[str, Any]) -> None:
            images = node.setdefault("status", {}).setdefault("images", [])
            if not any(ref in (i.get("names") or []) for i in images):
                images.append({"names": [ref], "sizeBytes": 61_000_000})

        for n in self.ctx.nodes:
            self.store.mutate(gvrs.NODES, "", n.name, fn)

    @property
    def images(self) -> list[str]:
        return sorted(self.ctx.images)

    def set_node_ready(self, node: str, ready: bool) -> None:
        node_ctl.set_node_ready(self.store, node, ready)

    async def stop_node(self, node: str) -> None:
        """``k3d node stop``: the node's container stops. Its kubelet stops renewing the
        Lease and its pods' servers stop; the control plane notices after the grace period."""
        await self.kubelet.stop_node(node)

    def start_node(self, node: str) -> None:
        """``k3d node start``: the kubelet comes back, posts Ready, renews its Lease and starts
        its pods' containers again."""
        if node not in self.ctx.stopped:
            return
        self.kubelet.start_node(node)
        node_ctl.post_ready(self.store, node)
        if self.leases is not None:
            self.leases.renew()

    def node_stopped(self, node: str) -> bool:
        return node in self.ctx.stopped


def subnet_of(name: str) -> ipaddress.IPv4Network:
    return node_ctl.subnet_for(name)
