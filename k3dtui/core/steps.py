"""The setup steps, as objects: each one ``run(session)`` over a :class:`SetupSession`.

``k3dtui up`` runs them all (:meth:`SetupSession.up`); the TUI's screens run the same
objects one screen at a time through the same kind of session. What a step finds is kept
on the session for the steps after it (network, pool range, live replicas, external IP).

Order (``SETUP_STEPS``): cluster → pool_choice → metallb → pool_apply → image → deploy →
external_ip → probe. ``up`` runs metallb+pool_apply beside image+deploy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from k3dtui.core.deploy import AppDeployer
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.metallb import MetalLBInstaller
from k3dtui.core.migrate import carry_over_legacy
from k3dtui.core.session import SetupSession

T_co = TypeVar("T_co", covariant=True)

SETUP_STEPS: tuple[str, ...] = (
    "cluster",
    "pool_choice",
    "metallb",
    "pool_apply",
    "image",
    "deploy",
    "external_ip",
    "probe",
)


class SetupStep(Protocol[T_co]):
    """One setup step: a name (recorded by the session) and what it does."""

    @property
    def name(self) -> str: ...

    async def run(self, session: SetupSession) -> T_co: ...


@dataclass(frozen=True)
class ProbeResult:
    """What the probe step found: the URL that answered (empty when nothing was asked)."""

    dial_url: str  # the URL that answered, or http://<ip>/ when not probed from here
    dial: str  # "host:port", "" when skipped
    answered: bool  # a pod answered through the dial address
    note: str = ""  # why it did not probe (0 replicas, not routable from here)


@dataclass(frozen=True)
class ClusterStep:
    """Create the cluster, or reuse the running one of that name (``reuse``)."""

    name: ClassVar[str] = "cluster"
    reuse: bool = True
    servers: int | None = None  # None: the session's spec
    agents: int | None = None

    async def run(self, session: SetupSession) -> None:
        from dataclasses import replace

        s = session
        if self.servers is not None or self.agents is not None:
            s.spec = replace(
                s.spec,
                servers=s.spec.servers if self.servers is None else self.servers,
                agents=s.spec.agents if self.agents is None else self.agents,
            )
        spec, kind = s.spec, s.provider.kind
        async with s.step("cluster", f"cluster {spec.name} ({kind})"):
            info = await s.provider.find()
            if info is not None:
                if not self.reuse:
                    raise K3dtuiError(
                        f"a {kind} cluster named {spec.name} already exists",
                        f"reuse it with `k3dtui up`, or delete it first with `k3dtui down --name {spec.name}`",
                    )
                if not info.running:
                    raise K3dtuiError(
                        f"the {kind} cluster {spec.name} exists but is not running "
                        f"({info.servers_running}/{info.servers} servers, {info.agents_running}/{info.agents} agents)",
                        f"start it (`k3d cluster start {spec.name}`) or delete it with `k3dtui down --name {spec.name}`",
                    )
                s.event(
                    "cluster",
                    "log",
                    f"reusing the existing cluster {spec.name} ({info.servers} server(s), {info.agents} agent(s))",
                    {"reused": True, "servers": info.servers, "agents": info.agents},
                )
                if (info.servers, info.agents) != (spec.servers, spec.agents):
                    s.event(
                        "cluster",
                        "warning",
                        f"the existing cluster has {info.servers} server(s) and {info.agents} agent(s), "
                        f"not the {spec.servers}/{spec.agents} asked for; delete it with `k3dtui down` to change that",
                    )
                return
            s.event(
                "cluster",
                "log",
                f"creating {spec.name}: {spec.servers} server(s), {spec.agents} agent(s), ServiceLB off",
            )
            await s.provider.create(spec.servers, spec.agents, s.lines("cluster"))
            # a simulated cluster started again from its kept state was not created by this run
            s.created_cluster = not getattr(s.provider, "restarted", False)
            s.drop_kube()


@dataclass(frozen=True)
class PoolChoiceStep:
    """The pool range: ``wanted`` (or the spec's) checked against the network, else the
    existing pool's, else a suggested one. When the range does not fit and this session
    created the cluster, the cluster is removed: a failed run leaves nothing behind."""

    name: ClassVar[str] = "pool_choice"
    wanted: str | None = None

    async def run(self, session: SetupSession) -> str:
        try:
            return await self._choose(session)
        except UsageError:
            await session.remove_created_cluster("pool")
            raise

    async def _choose(self, session: SetupSession) -> str:
        from k3dtui.core.pool import suggest_range, validate_range

        s = session
        wanted = self.wanted or s.spec.pool
        async with s.step("pool", "choosing the MetalLB address pool"):
            if not s.created_cluster:
                # objects under an earlier k3dtui's names → the current ones, before the range
                # is chosen (the carried-over pool keeps its range and is reused below)
                await asyncio.to_thread(carry_over_legacy, await s.kube(), s.identity, s.progress("pool"))
            net = await s.inspect_network()
            s.event(
                "pool",
                "log",
                f"network {net.name}: subnet {net.subnet}, gateway {net.gateway or '-'}, "
                f"{len(net.members)} container(s) on it",
                net.to_json(),
            )
            if wanted:
                choice = validate_range(wanted, net.subnet, net.used)
                s.event("pool", "progress", f"using the given range {choice.range} ({choice.size} addresses)")
            else:
                existing = await _existing_pool(s)
                if existing:
                    try:
                        choice = validate_range(existing, net.subnet, net.used)
                    except UsageError as exc:
                        s.event("pool", "warning", f"the existing pool {existing} no longer fits: {exc.message}")
                    else:
                        s.event("pool", "progress", f"reusing the existing pool {choice.range}")
                        s.pool_range = choice.range
                        return choice.range
                choice = suggest_range(net.subnet, net.used)
                note = f"; {choice.note}" if choice.note else ""
                s.event("pool", "progress", f"range {choice.range} ({choice.size} addresses){note}")
            s.pool_range = choice.range
            return choice.range


async def _existing_pool(session: SetupSession) -> str | None:
    """The single ``A-B`` range of k3dtui's IPAddressPool when the cluster has one."""
    try:
        kube = await session.kube()
        app = session.identity
        pool = await asyncio.to_thread(
            kube.try_get, "metallb.io/v1beta1", "IPAddressPool", app.pool, app.metallb_namespace
        )
    except K3dtuiError:
        return None
    addresses = ((pool or {}).get("spec") or {}).get("addresses") or []
    if len(addresses) == 1 and "-" in str(addresses[0]):
        return str(addresses[0])
    return None


@dataclass(frozen=True)
class MetalLBStep:
    """Install MetalLB (pinned manifest) and wait for it; an installed one is only checked."""

    name: ClassVar[str] = "metallb"

    async def run(self, session: SetupSession) -> None:
        s = session
        async with s.step("metallb", "installing MetalLB"):
            kube = await s.kube()
            installer = MetalLBInstaller(kube, s.progress("metallb"), s.metallb_timeouts, s.identity)
            if await installer.installed():
                s.event("metallb", "log", "MetalLB is already installed; checking it is ready")
                await installer.check_servicelb()
                await installer.wait_ready()
                return
            manifest = await s.resolve_manifest()
            where = {
                "path": f"from {manifest.location}",
                "cache": "pinned v0.15.2, from the cache",
                "download": "pinned v0.15.2, downloaded",
                "minimal": "k3dtui's minimal manifest (the upstream one could not be had)",
            }[manifest.origin]
            verified = "sha256 verified" if manifest.verified else "not verified"
            s.event(
                "metallb",
                "log",
                f"{len(manifest.documents)} objects, {where} ({verified})",
                {"origin": manifest.origin, "sha256": manifest.sha256, "objects": len(manifest.documents)},
            )
            await installer.install(manifest)


@dataclass(frozen=True)
class PoolApplyStep:
    """Apply the IPAddressPool and L2Advertisement (through MetalLB's webhook)."""

    name: ClassVar[str] = "pool_apply"
    pool_range: str | None = None  # None: the range the pool choice step chose

    async def run(self, session: SetupSession) -> None:
        s = session
        pool_range = self.pool_range or s.pool_range
        if not pool_range:
            raise UsageError("no MetalLB address range chosen yet", "choose the pool first")
        async with s.step("pool", f"applying the address pool {pool_range}"):
            kube = await s.kube()
            installer = MetalLBInstaller(kube, s.progress("pool"), s.metallb_timeouts, s.identity)
            await installer.apply_pool(pool_range)
        s.pool_range = pool_range


@dataclass(frozen=True)
class ImageStep:
    """Build the app's image and import it into the cluster's nodes."""

    name: ClassVar[str] = "image"

    async def run(self, session: SetupSession) -> None:
        from k3dtui.resources import app_dir

        s = session
        image = s.identity.image
        async with s.step("image", f"building and importing {image}"):
            with app_dir() as context:
                s.event("image", "log", f"building {image} from {context}")
                await s.provider.build_image(image, s.lines("image"))
            s.event("image", "log", f"importing {image} into {s.spec.name}")
            await s.provider.import_image(image, s.lines("image"))


@dataclass(frozen=True)
class DeployStep:
    """Apply the Deployment and Service (keeping a live scale) and wait for the replicas.

    ``own_client``: use a client of its own, for running beside steps that use the shared one.
    """

    name: ClassVar[str] = "deploy"
    replicas: int | None = None  # None: the session's spec
    own_client: bool = False

    async def run(self, session: SetupSession) -> int:
        from dataclasses import replace

        s = session
        if self.replicas is not None and self.replicas != s.spec.replicas:
            s.spec = replace(s.spec, replicas=self.replicas)
        replicas = s.spec.replicas
        kube = await (s.new_kube() if self.own_client else s.kube())
        try:
            async with s.step("deploy", f"deploying the app ({replicas} replicas asked)"):
                deployer = AppDeployer(kube, s.progress("deploy"), s.deploy_timeouts, s.identity)
                s.replicas_live = await deployer.apply(replicas)
                await deployer.wait_ready()
        finally:
            if self.own_client:
                kube.close()
        return s.replicas_live


@dataclass(frozen=True)
class ExternalIPStep:
    """Wait for MetalLB to give the Service its external IP."""

    name: ClassVar[str] = "external_ip"

    async def run(self, session: SetupSession) -> str:
        s = session
        async with s.step("deploy", "waiting for the Service's external IP"):
            kube = await s.kube()
            deployer = AppDeployer(kube, s.progress("deploy"), s.deploy_timeouts, s.identity)
            s.external_ip = await deployer.wait_external_ip()
        return s.external_ip


@dataclass(frozen=True)
class ProbeStep:
    """The app answers through the provider's dial address. Skipped (with a warning) when
    the Deployment has 0 replicas, or when the external IP is not routable from here."""

    name: ClassVar[str] = "probe"
    ip: str | None = None  # None: the external IP step's

    async def run(self, session: SetupSession) -> ProbeResult:
        s = session
        ip = self.ip or s.external_ip
        if not ip:
            raise UsageError("the Service has no external IP yet", "wait for the external IP first")
        if s.replicas_live == 0:
            note = "the Deployment has 0 replicas: nothing can answer; scale it up"
            async with s.step("probe", "probing skipped"):
                s.event("probe", "warning", note)
            return ProbeResult(dial_url="", dial="", answered=False, note=note)
        async with s.step("probe", f"probing http://{ip}/"):
            reach = await asyncio.to_thread(s.provider.reachability)
            if not reach.routable:
                # e.g. Docker Desktop: the cluster's network lives in a VM; probing from
                # here can only time out. Say why instead of failing the whole setup.
                s.event("probe", "warning", f"not probing from this machine: {reach.explanation}")
                dial_url, answered, note = f"http://{ip}/", False, reach.explanation
            else:
                kube = await s.kube()
                deployer = AppDeployer(kube, s.progress("probe"), s.deploy_timeouts, s.identity)
                dial_url, answered, note = await deployer.probe(ip, s.provider.dial), True, ""
        host, port = s.provider.dial(ip, s.identity.service_port)
        return ProbeResult(dial_url=dial_url, dial=f"{host}:{port}", answered=answered, note=note)


STEP_TYPES: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (
        ClusterStep,
        PoolChoiceStep,
        MetalLBStep,
        PoolApplyStep,
        ImageStep,
        DeployStep,
        ExternalIPStep,
        ProbeStep,
    )
}


def make_step(name: str, **args: Any) -> SetupStep[Any]:
    """A step by its name (``SETUP_STEPS``) with its arguments."""
    try:
        cls = STEP_TYPES[name]
    except KeyError:
        raise UsageError(f"no setup step named {name!r}", f"use one of: {', '.join(SETUP_STEPS)}") from None
    step: SetupStep[Any] = cls(**args)
    return step


__all__ = [
    "SETUP_STEPS",
    "ClusterStep",
    "DeployStep",
    "ExternalIPStep",
    "ImageStep",
    "MetalLBStep",
    "PoolApplyStep",
    "PoolChoiceStep",
    "ProbeResult",
    "ProbeStep",
    "SetupStep",
    "make_step",
]
