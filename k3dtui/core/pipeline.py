"""The setup pipeline, as the headless CLI (`k3dtui up/down/status`) drives it.

The steps are objects in :mod:`k3dtui.core.steps`, run over a
:class:`k3dtui.core.session.SetupSession` (one event loop, one Kubernetes client); the TUI
runs the same step objects over the same kind of session. :class:`Pipeline` is that
session with the CLI's names for the steps, and ``status()``.

Steps: cluster → pool (network inspection + range) → metallb (install, waits, pool
through the webhook) → image (build + import) → deploy (apply, replicas Ready, external
IP) → probe (the app answers through the provider's dial address).

Everything is checked before the first change (spec, manifest path and checksum, the
pool when the network is known). A re-run reuses what exists and says so: an existing
cluster is never recreated, an installed MetalLB is not re-applied, the Deployment keeps
the replica count it has.
"""

from __future__ import annotations

import asyncio
from typing import Any

from k3dtui.core.kubeapply import Kube
from k3dtui.core.session import (
    STEPS,
    EventKind,
    PipelineEvent,
    SetupSession,
    Stage,
    Step,
    UpResult,
    stage_at_least,
)
from k3dtui.core.steps import (
    ClusterStep,
    DeployStep,
    ExternalIPStep,
    ImageStep,
    MetalLBStep,
    PoolApplyStep,
    PoolChoiceStep,
    ProbeStep,
)

__all__ = [
    "STEPS",
    "EventKind",
    "Pipeline",
    "PipelineEvent",
    "Stage",
    "Step",
    "UpResult",
    "stage_at_least",
]


class Pipeline(SetupSession):
    """A setup session with the CLI's step names (each runs the step object of that name)."""

    async def _get_kube(self) -> Kube:
        return await self.kube()

    async def create_cluster(self, *, reuse: bool = True) -> None:
        await self.run(ClusterStep(reuse=reuse))

    async def choose_pool(self) -> str:
        return await self.run(PoolChoiceStep())

    async def install_metallb(self) -> None:
        await self.run(MetalLBStep())

    async def apply_pool(self, pool_range: str) -> None:
        await self.run(PoolApplyStep(pool_range))

    async def build_and_import(self) -> None:
        await self.run(ImageStep())

    async def deploy_app(self, replicas: int) -> str:
        await self.run(DeployStep(replicas))
        return await self.run(ExternalIPStep())

    async def wait_external_ip(self) -> str:
        return await self.run(ExternalIPStep())

    async def probe(self, ip: str) -> str:
        return (await self.run(ProbeStep(ip))).dial_url

    # -- status --------------------------------------------------------------------------------
    def stopped_fix(self) -> str:
        """How to bring back this provider's stopped cluster."""
        hint = getattr(self.provider, "start_hint", None)
        if callable(hint):
            return str(hint())
        name = self.spec.name
        return f"start it with `k3d cluster start {name}`, or delete it with `k3dtui down --name {name}`"

    async def status(self) -> dict[str, Any]:
        """The cluster as `k3dtui status --json` prints it (built by ``core.status`` from the
        same views the live state uses)."""
        from k3dtui.core.status import cluster_status

        self._bind_loop()
        stage = await self.detect_stage()
        out: dict[str, Any] = {
            "cluster": self.spec.name,
            "provider": self.provider.kind,
            "context": self.provider.context,
            "stage": stage,
            "nodes": [],
            "deployment": None,
            "service": None,
        }
        if stage == "absent":
            kept = getattr(self.provider, "kept", None)
            if callable(kept) and kept():  # a simulated cluster whose daemon is gone, its state kept
                out["stage"] = stage = "stopped"
        if stage == "stopped":
            out["fix"] = self.stopped_fix()
        if not stage_at_least(stage, "cluster"):
            return out
        kube = await self._get_kube()
        out.update(await asyncio.to_thread(cluster_status, kube, self.identity, self.provider.dial))
        return out
