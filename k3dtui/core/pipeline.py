"""The setup pipeline: the ordered steps from nothing to the app answering behind MetalLB,
reported as events. The headless CLI (`k3dtui up/down/status`) and the TUI both drive it.

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
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from k3dtui.core.deploy import AppDeployer, DeployTimeouts
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeapply import ApiUnreachable, Kube, preload
from k3dtui.core.metallb import (
    Manifest,
    MetalLBInstaller,
    Timeouts,
    read_user_manifest,
    resolve_manifest,
)
from k3dtui.core.migrate import carry_over_legacy
from k3dtui.core.network import NetworkInfo
from k3dtui.core.provider import Provider
from k3dtui.core.spec import ClusterSpec, validate_spec

Step = Literal["cluster", "metallb", "pool", "image", "deploy", "probe"]
EventKind = Literal["start", "log", "progress", "done", "failed", "warning"]
Stage = Literal["absent", "stopped", "cluster", "metallb", "deployed"]
STEPS: tuple[Step, ...] = ("cluster", "pool", "metallb", "image", "deploy", "probe")
_STAGE_ORDER: tuple[Stage, ...] = ("absent", "stopped", "cluster", "metallb", "deployed")


@dataclass(frozen=True)
class PipelineEvent:
    step: Step
    kind: EventKind
    message: str
    elapsed: float  # seconds since the step started
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "step",
            "step": self.step,
            "kind": self.kind,
            "message": self.message,
            "elapsed": round(self.elapsed, 3),
        }
        if self.data:
            out["data"] = dict(self.data)
        return out


@dataclass(frozen=True)
class UpResult:
    cluster: str
    provider: str
    context: str
    external_ip: str
    url: str  # http://<external ip>/
    dial_url: str  # the URL that answered (through the provider's dial address)
    dial: str  # "host:port"
    pool: str
    stage_before: Stage
    kubeconfig: str
    durations: Mapping[str, float] = field(default_factory=dict)
    total: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "done",
            "cluster": self.cluster,
            "provider": self.provider,
            "context": self.context,
            "external_ip": self.external_ip,
            "url": self.url,
            "dial": self.dial,
            "dial_url": self.dial_url,
            "pool": self.pool,
            "stage_before": self.stage_before,
            "kubeconfig": self.kubeconfig,
            "durations": {k: round(v, 3) for k, v in self.durations.items()},
            "total": round(self.total, 3),
        }


def stage_at_least(stage: Stage, wanted: Stage) -> bool:
    return _STAGE_ORDER.index(stage) >= _STAGE_ORDER.index(wanted)


class Pipeline:
    def __init__(
        self,
        provider: Provider,
        spec: ClusterSpec,
        emit: Callable[[PipelineEvent], None],
        *,
        metallb_manifest: Path | None = None,
        insecure_skip_verify: bool = False,
        metallb_timeouts: Timeouts | None = None,
        deploy_timeouts: DeployTimeouts | None = None,
        identity: AppIdentity = APP,
    ) -> None:
        self.identity = identity
        self.provider = provider
        self.spec = spec
        self._emit = emit
        self.metallb_manifest = metallb_manifest
        self.insecure_skip_verify = insecure_skip_verify
        self.metallb_timeouts = metallb_timeouts or Timeouts()
        self.deploy_timeouts = deploy_timeouts or DeployTimeouts()
        self.durations: dict[str, float] = {}
        self._manifest: Manifest | None = None
        self._kube: Kube | None = None
        self._network: NetworkInfo | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._step_start: dict[str, float] = {}
        self._current: Step = "cluster"
        self._replicas_live: int | None = None

    # -- events ------------------------------------------------------------------------------
    def _send(self, event: PipelineEvent) -> None:
        """Deliver on the pipeline's loop thread, in order, whoever reports it."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or loop.is_closed():
            self._emit(event)
        else:
            loop.call_soon_threadsafe(self._emit, event)

    def event(self, step: Step, kind: EventKind, message: str, data: Mapping[str, Any] | None = None) -> None:
        start = self._step_start.get(step)
        elapsed = time.monotonic() - start if start is not None else 0.0
        self._send(PipelineEvent(step, kind, message, elapsed, dict(data or {})))

    def _progress(self, step: Step) -> Callable[[str, str, Mapping[str, Any]], None]:
        def report(kind: str, message: str, data: Mapping[str, Any]) -> None:
            ev: EventKind = kind if kind in ("log", "progress", "warning") else "log"  # type: ignore[assignment]
            self.event(step, ev, message, data)

        return report

    def _lines(self, step: Step) -> Callable[[str], None]:
        def line(text: str) -> None:
            text = text.rstrip()
            if text:
                self.event(step, "log", text)

        return line

    def _bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @asynccontextmanager
    async def _step(self, step: Step, message: str) -> AsyncIterator[None]:
        self._bind_loop()
        self._current = step
        self._step_start[step] = time.monotonic()
        self.event(step, "start", message)
        try:
            yield
        except BaseException as exc:
            took = time.monotonic() - self._step_start[step]
            self.durations[step] = self.durations.get(step, 0.0) + took
            text = exc.message if isinstance(exc, K3dtuiError) else (str(exc) or type(exc).__name__)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                text = "cancelled"
            data: dict[str, Any] = {"done": [s for s in STEPS if s in self.durations and s != step]}
            if isinstance(exc, K3dtuiError) and exc.hint:
                data["hint"] = exc.hint
            self.event(step, "failed", text, data)
            raise
        took = time.monotonic() - self._step_start[step]
        self.durations[step] = self.durations.get(step, 0.0) + took
        self.event(step, "done", f"{step} done in {took:.2f}s", {"duration": round(took, 3)})

    # -- preparation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Every check that needs no cluster: the spec, and the user's manifest (exists, sha256)."""
        validate_spec(self.spec)
        if self.metallb_manifest is not None and self._manifest is None:
            self._manifest = read_user_manifest(self.metallb_manifest, verify=not self.insecure_skip_verify)

    async def _new_kube(self) -> Kube:
        kubeconfig = await self.provider.kubeconfig()
        # a second client (the app line's) starts from the first one's discovery
        return await asyncio.to_thread(Kube, kubeconfig, self.provider.context, discovery_from=self._kube)

    async def _get_kube(self) -> Kube:
        if self._kube is None:
            self._kube = await self._new_kube()
        return self._kube

    def close(self) -> None:
        if self._kube is not None:
            self._kube.close()
            self._kube = None

    async def detect_stage(self) -> Stage:
        """How far an existing cluster of this name got."""
        info = await self.provider.find()
        if info is None:
            return "absent"
        if not info.running:
            return "stopped"
        kube = await self._get_kube()
        installer = MetalLBInstaller(kube, identity=self.identity)
        if not await installer.installed():
            return "cluster"

        def deployed() -> bool:
            app = self.identity
            dep = kube.try_get("apps/v1", "Deployment", app.deployment, app.namespace)
            svc = kube.try_get("v1", "Service", app.service, app.namespace)
            return dep is not None and svc is not None

        return "deployed" if await asyncio.to_thread(deployed) else "metallb"

    async def _resolve_manifest(self) -> Manifest:
        if self._manifest is None:
            allow_minimal = self.provider.kind == "sim"
            self._manifest = await asyncio.to_thread(
                resolve_manifest,
                self.metallb_manifest,
                insecure_skip_verify=self.insecure_skip_verify,
                allow_minimal=allow_minimal,
                progress=self._progress("metallb"),
            )
        return self._manifest

    # -- the steps -----------------------------------------------------------------------------
    async def create_cluster(self, *, reuse: bool = True) -> None:
        spec = self.spec
        async with self._step("cluster", f"cluster {spec.name} ({self.provider.kind})"):
            info = await self.provider.find()
            if info is not None:
                if not reuse:
                    raise K3dtuiError(
                        f"a {self.provider.kind} cluster named {spec.name} already exists",
                        f"reuse it with `k3dtui up`, or delete it first with `k3dtui down --name {spec.name}`",
                    )
                if not info.running:
                    raise K3dtuiError(
                        f"the {self.provider.kind} cluster {spec.name} exists but is not running "
                        f"({info.servers_running}/{info.servers} servers, {info.agents_running}/{info.agents} agents)",
                        f"start it (`k3d cluster start {spec.name}`) or delete it with `k3dtui down --name {spec.name}`",
                    )
                self.event(
                    "cluster",
                    "log",
                    f"reusing the existing cluster {spec.name} ({info.servers} server(s), {info.agents} agent(s))",
                    {"reused": True, "servers": info.servers, "agents": info.agents},
                )
                if (info.servers, info.agents) != (spec.servers, spec.agents):
                    self.event(
                        "cluster",
                        "warning",
                        f"the existing cluster has {info.servers} server(s) and {info.agents} agent(s), "
                        f"not the {spec.servers}/{spec.agents} asked for; delete it with `k3dtui down` to change that",
                    )
                return
            self.event(
                "cluster",
                "log",
                f"creating {spec.name}: {spec.servers} server(s), {spec.agents} agent(s), ServiceLB off",
            )
            await self.provider.create(spec.servers, spec.agents, self._lines("cluster"))
            self._kube = None

    async def inspect_network(self) -> NetworkInfo:
        net = await self.provider.network()
        self._network = net
        return net

    async def choose_pool(self) -> str:
        """The pool range: the spec's (validated against the network) or a suggested one."""
        from k3dtui.core.pool import suggest_range, validate_range

        async with self._step("pool", "choosing the MetalLB address pool"):
            net = await self.inspect_network()
            self.event(
                "pool",
                "log",
                f"network {net.name}: subnet {net.subnet}, gateway {net.gateway or '-'}, "
                f"{len(net.members)} container(s) on it",
                net.to_json(),
            )
            if self.spec.pool:
                choice = validate_range(self.spec.pool, net.subnet, net.used)
                self.event("pool", "progress", f"using the given range {choice.range} ({choice.size} addresses)")
            else:
                existing = await self._existing_pool()
                if existing:
                    try:
                        choice = validate_range(existing, net.subnet, net.used)
                    except UsageError as exc:
                        self.event("pool", "warning", f"the existing pool {existing} no longer fits: {exc.message}")
                    else:
                        self.event("pool", "progress", f"reusing the existing pool {choice.range}")
                        return choice.range
                choice = suggest_range(net.subnet, net.used)
                note = f"; {choice.note}" if choice.note else ""
                self.event("pool", "progress", f"range {choice.range} ({choice.size} addresses){note}")
            return choice.range

    async def _existing_pool(self) -> str | None:
        """The single ``A-B`` range of k3dtui's IPAddressPool when the cluster has one."""
        try:
            kube = await self._get_kube()
            pool = await asyncio.to_thread(
                kube.try_get, "metallb.io/v1beta1", "IPAddressPool", self.identity.pool, self.identity.metallb_namespace
            )
        except K3dtuiError:
            return None
        addresses = ((pool or {}).get("spec") or {}).get("addresses") or []
        if len(addresses) == 1 and "-" in str(addresses[0]):
            return str(addresses[0])
        return None

    async def install_metallb(self) -> None:
        async with self._step("metallb", "installing MetalLB"):
            kube = await self._get_kube()
            installer = MetalLBInstaller(kube, self._progress("metallb"), self.metallb_timeouts, self.identity)
            if await installer.installed():
                self.event("metallb", "log", "MetalLB is already installed; checking it is ready")
                await installer.check_servicelb()
                await installer.wait_ready()
                return
            manifest = await self._resolve_manifest()
            where = {
                "path": f"from {manifest.location}",
                "cache": "pinned v0.15.2, from the cache",
                "download": "pinned v0.15.2, downloaded",
                "minimal": "k3dtui's minimal manifest (the upstream one could not be had)",
            }[manifest.origin]
            verified = "sha256 verified" if manifest.verified else "not verified"
            self.event(
                "metallb",
                "log",
                f"{len(manifest.documents)} objects, {where} ({verified})",
                {"origin": manifest.origin, "sha256": manifest.sha256, "objects": len(manifest.documents)},
            )
            await installer.install(manifest)

    async def apply_pool(self, pool_range: str) -> None:
        async with self._step("pool", f"applying the address pool {pool_range}"):
            kube = await self._get_kube()
            installer = MetalLBInstaller(kube, self._progress("pool"), self.metallb_timeouts, self.identity)
            await installer.apply_pool(pool_range)

    async def build_and_import(self) -> None:
        from k3dtui.resources import app_dir

        image = self.identity.image
        async with self._step("image", f"building and importing {image}"):
            with app_dir() as context:
                self.event("image", "log", f"building {image} from {context}")
                await self.provider.build_image(image, self._lines("image"))
            self.event("image", "log", f"importing {image} into {self.spec.name}")
            await self.provider.import_image(image, self._lines("image"))

    async def deploy_app(self, replicas: int) -> str:
        async with self._step("deploy", f"deploying the app ({replicas} replicas asked)"):
            kube = await self._get_kube()
            deployer = AppDeployer(kube, self._progress("deploy"), self.deploy_timeouts, self.identity)
            await deployer.apply(replicas)
            await deployer.wait_ready()
            return await deployer.wait_external_ip()

    async def _metallb_line(self, pool_range: str) -> None:
        await self.install_metallb()
        await self.apply_pool(pool_range)

    async def _app_line(self, replicas: int) -> None:
        await self.build_and_import()
        # its own client: the MetalLB line uses the shared one from another thread meanwhile
        kube = await self._new_kube()
        try:
            async with self._step("deploy", f"deploying the app ({replicas} replicas asked)"):
                deployer = AppDeployer(kube, self._progress("deploy"), self.deploy_timeouts, self.identity)
                self._replicas_live = await deployer.apply(replicas)
                await deployer.wait_ready()
        finally:
            kube.close()

    async def wait_external_ip(self) -> str:
        async with self._step("deploy", "waiting for the Service's external IP"):
            kube = await self._get_kube()
            deployer = AppDeployer(kube, self._progress("deploy"), self.deploy_timeouts, self.identity)
            return await deployer.wait_external_ip()

    @staticmethod
    async def _together(*coros: Any) -> None:
        """Run concurrently; on a failure cancel the rest and raise the first real error."""
        try:
            async with asyncio.TaskGroup() as group:
                for coro in coros:
                    group.create_task(coro)
        except BaseExceptionGroup as eg:
            errors = [e for e in eg.exceptions if not isinstance(e, asyncio.CancelledError)]
            raise (errors[0] if errors else eg.exceptions[0]) from None

    async def probe(self, ip: str) -> str:
        async with self._step("probe", f"probing http://{ip}/"):
            reach = await asyncio.to_thread(self.provider.reachability)
            if not reach.routable:
                # e.g. Docker Desktop: the cluster's network lives in a VM; probing from
                # here can only time out. Say why instead of failing the whole setup.
                self.event("probe", "warning", f"not probing from this machine: {reach.explanation}")
                return f"http://{ip}/"
            kube = await self._get_kube()
            deployer = AppDeployer(kube, self._progress("probe"), self.deploy_timeouts, self.identity)
            return await deployer.probe(ip, self.provider.dial)

    async def up(self) -> UpResult:
        """Everything, in order, reusing what exists."""
        self._bind_loop()
        started = time.monotonic()
        self.validate()
        # the kubernetes client's import overlaps the cluster's start (a thread of its own)
        preloading = asyncio.create_task(asyncio.to_thread(preload))
        preloading.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved when unused
        stage = await self.detect_stage()
        if stage == "stopped":
            raise K3dtuiError(
                f"the {self.provider.kind} cluster {self.spec.name} exists but is not running",
                f"start it (`k3d cluster start {self.spec.name}`) or delete it with `k3dtui down --name {self.spec.name}`",
            )
        if self.spec.pool:
            # Refuse a bad range before changing anything, when the network is known.
            from k3dtui.core.pool import validate_range

            net: NetworkInfo | None = None
            if stage != "absent":
                net = await self.inspect_network()
            else:
                planned = getattr(self.provider, "planned_network", None)
                if callable(planned):
                    net = planned(self.spec.servers, self.spec.agents)
            if net is not None:
                validate_range(self.spec.pool, net.subnet, net.used)
        if not stage_at_least(stage, "metallb"):
            await self._resolve_manifest()  # fetched (or refused) before anything is created
        await self.create_cluster(reuse=True)
        await preloading
        if stage_at_least(stage, "cluster"):  # objects under an earlier k3dtui's names → the current ones
            await asyncio.to_thread(carry_over_legacy, await self._get_kube(), self.identity, self._progress("pool"))
        try:
            pool_range = await self.choose_pool()
        except UsageError:
            if stage == "absent":
                # The network only exists now: the given range does not fit it. Leave
                # nothing behind: the cluster was created by this run, remove it.
                self.event("pool", "warning", f"removing the cluster {self.spec.name} this run created")
                self.close()
                await self.provider.delete(self._lines("pool"))
            raise
        # Two independent lines of work: MetalLB (install, waits, the pool through the
        # webhook race) and the app (image, apply, replicas Ready). The external IP needs both.
        await self._together(self._metallb_line(pool_range), self._app_line(self.spec.replicas))
        ip = await self.wait_external_ip()
        if self._replicas_live == 0:
            async with self._step("probe", "probing skipped"):
                self.event("probe", "warning", "the Deployment has 0 replicas: nothing can answer; scale it up")
            dial_url, dial = "", ""
        else:
            dial_url = await self.probe(ip)
            host, port = self.provider.dial(ip, self.identity.service_port)
            dial = f"{host}:{port}"
        kubeconfig = await self.provider.kubeconfig()
        return UpResult(
            cluster=self.spec.name,
            provider=self.provider.kind,
            context=self.provider.context,
            external_ip=ip,
            url=f"http://{ip}/",
            dial_url=dial_url,
            dial=dial,
            pool=pool_range,
            stage_before=stage,
            kubeconfig=str(kubeconfig),
            durations=dict(self.durations),
            total=time.monotonic() - started,
        )

    async def down(self) -> None:
        async with self._step("cluster", f"deleting cluster {self.spec.name} ({self.provider.kind})"):
            info = await self.provider.find()
            if info is None:
                raise K3dtuiError(
                    f"no {self.provider.kind} cluster named {self.spec.name}: nothing deleted",
                    "see which clusters exist with `k3d cluster list` (or `k3dtui sim status` for the simulated one)",
                )
            self.close()
            await self.provider.delete(self._lines("cluster"))

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
        from k3dtui.core.status import cluster_status

        def collect() -> dict[str, Any]:
            return cluster_status(kube, self.identity, self.provider.dial)

        try:
            out.update(await asyncio.to_thread(collect))
        except ApiUnreachable:
            raise
        return out
