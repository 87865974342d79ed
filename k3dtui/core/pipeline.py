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

from k3dtui.core.deploy import (
    APP_LABEL,
    DEPLOYMENT,
    NAMESPACE,
    SERVICE,
    SERVICE_PORT,
    pod_ready,
    service_ip,
)
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.kubeapply import ApiUnreachable, Kube
from k3dtui.core.metallb import (
    NAMESPACE as METALLB_NAMESPACE,
)
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
    "pod_status",
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
    async def status(self) -> dict[str, Any]:
        """The cluster as `k3dtui status --json` prints it."""
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
        if not stage_at_least(stage, "cluster"):
            return out
        kube = await self._get_kube()

        def collect() -> dict[str, Any]:
            nodes = kube.list("v1", "Node")
            pods = kube.list("v1", "Pod", NAMESPACE, APP_LABEL)
            by_node: dict[str, list[dict[str, Any]]] = {}
            for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
                node = str((pod.get("spec") or {}).get("nodeName") or "")
                by_node.setdefault(node, []).append(
                    {
                        "name": pod["metadata"]["name"],
                        "status": pod_status(pod),
                        "ip": (pod.get("status") or {}).get("podIP") or "",
                        "ready": pod_ready(pod),
                    }
                )
            node_rows = []
            for nd in sorted(nodes, key=lambda n: str(n["metadata"]["name"])):
                name = str(nd["metadata"]["name"])
                labels = (nd.get("metadata") or {}).get("labels") or {}
                roles = sorted(
                    k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")
                ) or ["agent"]
                addresses = (nd.get("status") or {}).get("addresses") or []
                ip = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), "")
                ready = any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (nd.get("status") or {}).get("conditions") or []
                )
                node_rows.append(
                    {"name": name, "roles": roles, "ready": ready, "ip": ip or "", "pods": by_node.pop(name, [])}
                )
            unscheduled = [p for pods_ in by_node.values() for p in pods_]
            dep = kube.try_get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE)
            svc = kube.try_get("v1", "Service", SERVICE, NAMESPACE)
            result: dict[str, Any] = {"nodes": node_rows}
            if unscheduled:
                result["unscheduled"] = unscheduled
            if dep is not None:
                result["deployment"] = {
                    "name": DEPLOYMENT,
                    "replicas": int((dep.get("spec") or {}).get("replicas") or 0),
                    "ready": int((dep.get("status") or {}).get("readyReplicas") or 0),
                }
            if svc is not None:
                ip = service_ip(svc)
                dial = ""
                if ip:
                    try:
                        host, port = self.provider.dial(ip, SERVICE_PORT)
                        dial = f"{host}:{port}"
                    except K3dtuiError:
                        dial = ""
                    except OSError:
                        dial = ""
                result["service"] = {
                    "name": SERVICE,
                    "external_ip": ip,
                    "port": SERVICE_PORT,
                    "dial": dial,
                    "url": f"http://{dial}/" if dial else None,
                }
            pool = kube.try_get("metallb.io/v1beta1", "IPAddressPool", "k3dtui-pool", METALLB_NAMESPACE)
            if pool is not None:
                result["pool"] = ",".join((pool.get("spec") or {}).get("addresses") or [])
            return result

        try:
            out.update(await asyncio.to_thread(collect))
        except ApiUnreachable:
            raise
        return out


def pod_status(pod: dict[str, Any]) -> str:
    """What `kubectl get pods` shows in STATUS, roughly."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    pstatus: dict[str, Any] = pod.get("status") or {}
    for cs in pstatus.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = state.get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
        terminated = state.get("terminated")
        if terminated and terminated.get("reason"):
            return str(terminated["reason"])
    return str(pstatus.get("phase") or "Pending")
