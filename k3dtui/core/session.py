"""One setup session: the context every setup step runs in, for the CLI and the TUI alike.

A :class:`SetupSession` holds what one run of the setup shares: the provider, the spec,
the event sink, the durations, what earlier steps found (network, pool range, replicas,
external IP, whether this run created the cluster), one Kubernetes client reused by every
step (closed by :meth:`SetupSession.close`) and one event loop.

The steps themselves are objects (:mod:`k3dtui.core.steps`), each with ``run(session)``.
Two ways to drive them:

- ``await session.run(step)`` on the caller's event loop: ``k3dtui up``
  (:meth:`SetupSession.up` runs every step in order, the MetalLB line and the app line
  concurrently);
- ``session.call(step)`` from any thread: the step runs on the session's own event loop
  (a thread started on first use, stopped by ``close()``) and the caller blocks until it
  ends. The TUI's screens run one step at a time this way, over the same session.

Either way ``session.ran`` records the names of the steps run, in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from k3dtui.core.deploy import DeployTimeouts
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeapply import Kube, preload
from k3dtui.core.metallb import (
    Manifest,
    MetalLBInstaller,
    Timeouts,
    read_user_manifest,
    resolve_manifest,
)
from k3dtui.core.network import NetworkInfo
from k3dtui.core.provider import Provider
from k3dtui.core.spec import ClusterSpec, validate_spec

if TYPE_CHECKING:
    from k3dtui.core.steps import SetupStep

T = TypeVar("T")

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


class SetupSession:
    """The shared context of one setup run (see the module's docstring)."""

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
        self.identity = identity  # the names of everything the steps create
        self.provider = provider
        self.spec = spec
        self.emit = emit
        self.metallb_manifest = metallb_manifest
        self.insecure_skip_verify = insecure_skip_verify
        self.metallb_timeouts = metallb_timeouts or Timeouts()
        self.deploy_timeouts = deploy_timeouts or DeployTimeouts()
        self.durations: dict[str, float] = {}
        self.ran: list[str] = []  # the names of the steps run, in the order they started
        # what the steps found, for the steps after them
        self.network: NetworkInfo | None = None
        self.pool_range: str = ""
        self.replicas_live: int | None = None
        self.external_ip: str = ""
        self.created_cluster = False  # this session created the cluster (and may remove it)
        self.rolled_back = False  # a failed up removed the cluster it had created
        self._manifest: Manifest | None = None
        self._kube: Kube | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._step_start: dict[str, float] = {}
        # the session's own loop (``call``), started on first use
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    # -- events ------------------------------------------------------------------------------
    def _send(self, event: PipelineEvent) -> None:
        """Deliver on the session's loop thread, in order, whoever reports it."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or loop.is_closed():
            self.emit(event)
        else:
            loop.call_soon_threadsafe(self.emit, event)

    def event(self, step: Step, kind: EventKind, message: str, data: Mapping[str, Any] | None = None) -> None:
        start = self._step_start.get(step)
        elapsed = time.monotonic() - start if start is not None else 0.0
        self._send(PipelineEvent(step, kind, message, elapsed, dict(data or {})))

    def progress(self, step: Step) -> Callable[[str, str, Mapping[str, Any]], None]:
        def report(kind: str, message: str, data: Mapping[str, Any]) -> None:
            ev: EventKind = kind if kind in ("log", "progress", "warning") else "log"  # type: ignore[assignment]
            self.event(step, ev, message, data)

        return report

    def lines(self, step: Step) -> Callable[[str], None]:
        def line(text: str) -> None:
            text = text.rstrip()
            if text:
                self.event(step, "log", text)

        return line

    def _bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @asynccontextmanager
    async def step(self, step: Step, message: str) -> AsyncIterator[None]:
        """One reported span of work: ``start``, then ``done`` or ``failed`` (with what was done)."""
        self._bind_loop()
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

    # -- running steps -------------------------------------------------------------------------
    async def run(self, step: SetupStep[T]) -> T:
        """Run one step on the running loop; its name is recorded in ``ran``."""
        self._bind_loop()
        self.ran.append(step.name)
        return await step.run(self)

    def call(self, step: SetupStep[T]) -> T:
        """Run one step on the session's own loop from any (non-loop) thread; blocks until it ends."""
        return self.call_soon(self.run(step))

    def call_soon(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run any coroutine on the session's own loop (a lookup, a deletion) and wait for it."""
        loop = self._ensure_own_loop()
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result()

    def _ensure_own_loop(self) -> asyncio.AbstractEventLoop:
        with self._thread_lock:
            if self._own_loop is not None and self._thread is not None and self._thread.is_alive():
                return self._own_loop
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="k3dtui-setup-session", daemon=True)
            thread.start()
            started.wait()
            self._own_loop, self._thread = loop, thread
            return loop

    # -- the Kubernetes client -----------------------------------------------------------------
    async def new_kube(self) -> Kube:
        """A client of its own (closed by whoever asked): for work running beside the shared one."""
        kubeconfig = await self.provider.kubeconfig()
        # a second client (the app line's) starts from the first one's discovery
        return await asyncio.to_thread(Kube, kubeconfig, self.provider.context, discovery_from=self._kube)

    async def kube(self) -> Kube:
        """The session's one client, made on first use."""
        if self._kube is None:
            self._kube = await self.new_kube()
        return self._kube

    def drop_kube(self) -> None:
        """Close the client (the cluster changed: created anew, or deleted)."""
        kube, self._kube = self._kube, None
        if kube is not None:
            kube.close()

    def close(self) -> None:
        """Close the client and stop the session's own loop (when it was started).

        Work still running on that loop is cancelled first: a caller blocked in ``call``
        gets ``CancelledError`` instead of waiting forever."""
        with self._thread_lock:
            loop, thread = self._own_loop, self._thread
            self._own_loop = self._thread = None
        if loop is not None and thread is not None:
            if thread.is_alive() and threading.current_thread() is not thread:
                with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                    asyncio.run_coroutine_threadsafe(_cancel_others(), loop).result(5.0)
                loop.call_soon_threadsafe(loop.stop)
                thread.join(5.0)
            if not loop.is_running():
                loop.close()
        self.drop_kube()

    # -- what steps share ----------------------------------------------------------------------
    def validate(self) -> None:
        """Every check that needs no cluster: the spec, and the user's manifest (exists, sha256)."""
        validate_spec(self.spec)
        if self.metallb_manifest is not None and self._manifest is None:
            self._manifest = read_user_manifest(self.metallb_manifest, verify=not self.insecure_skip_verify)

    async def resolve_manifest(self) -> Manifest:
        if self._manifest is None:
            allow_minimal = self.provider.kind == "sim"
            self._manifest = await asyncio.to_thread(
                resolve_manifest,
                self.metallb_manifest,
                insecure_skip_verify=self.insecure_skip_verify,
                allow_minimal=allow_minimal,
                progress=self.progress("metallb"),
            )
        return self._manifest

    async def inspect_network(self) -> NetworkInfo:
        net = await self.provider.network()
        self.network = net
        return net

    async def detect_stage(self) -> Stage:
        """How far an existing cluster of this name got."""
        info = await self.provider.find()
        if info is None:
            return "absent"
        if not info.running:
            return "stopped"
        kube = await self.kube()
        installer = MetalLBInstaller(kube, identity=self.identity)
        if not await installer.installed():
            return "cluster"

        def deployed() -> bool:
            app = self.identity
            dep = kube.try_get("apps/v1", "Deployment", app.deployment, app.namespace)
            svc = kube.try_get("v1", "Service", app.service, app.namespace)
            return dep is not None and svc is not None

        return "deployed" if await asyncio.to_thread(deployed) else "metallb"

    async def remove_created_cluster(self, step: Step) -> bool:
        """Remove the cluster when this session created it (a later step found it unusable)."""
        if not self.created_cluster:
            return False
        self.event(step, "warning", f"removing the cluster {self.spec.name} this run created")
        self.drop_kube()
        await self.provider.delete(self.lines(step))
        self.created_cluster = False
        return True

    async def down(self) -> None:
        """Delete the cluster (refused with a clear error when there is none)."""
        async with self.step("cluster", f"deleting cluster {self.spec.name} ({self.provider.kind})"):
            info = await self.provider.find()
            if info is None:
                raise K3dtuiError(
                    f"no {self.provider.kind} cluster named {self.spec.name}: nothing deleted",
                    "see which clusters exist with `k3d cluster list` (or `k3dtui sim status` for the simulated one)",
                )
            self.drop_kube()
            await self.provider.delete(self.lines("cluster"))
            self.created_cluster = False

    # -- everything ----------------------------------------------------------------------------
    @staticmethod
    async def together(*lines: Awaitable[Any]) -> None:
        """Run concurrently; on a failure cancel the rest and raise the first real error."""
        try:
            async with asyncio.TaskGroup() as group:
                for line in lines:
                    group.create_task(_awaited(line))
        except BaseExceptionGroup as eg:
            errors = [e for e in eg.exceptions if not isinstance(e, asyncio.CancelledError)]
            raise (errors[0] if errors else eg.exceptions[0]) from None

    async def run_line(self, *steps: SetupStep[Any]) -> None:
        """Steps one after the other (one line of work)."""
        for step in steps:
            await self.run(step)

    async def up(self) -> UpResult:
        """Every step, in order, reusing what exists."""
        from k3dtui.core import steps as st  # the steps import this module
        from k3dtui.core.pool import validate_range

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
            await self.resolve_manifest()  # fetched (or refused) before anything is created
        try:
            return await self._up_steps(st, stage, started, preloading)
        except Exception as exc:
            # One rule on every failure path: a cluster this run created is removed (a failed
            # run leaves nothing behind); one that existed before is kept as it is, with what
            # this run did. An interruption (Ctrl+C) is not a failure: nothing is removed.
            if self.created_cluster:
                try:
                    await self.remove_created_cluster("cluster")
                except Exception as cleanup:
                    note = f"the cluster {self.spec.name} this run created could not be removed: {cleanup}"
                else:
                    note = f"the cluster {self.spec.name} this run created was removed"
                if isinstance(exc, K3dtuiError):
                    exc.hint = f"{exc.hint}; {note}" if exc.hint else note
                self.rolled_back = True
            raise

    async def _up_steps(self, st: Any, stage: Stage, started: float, preloading: asyncio.Task[Any]) -> UpResult:
        await self.run(st.ClusterStep(reuse=True))
        await preloading
        pool_range = await self.run(st.PoolChoiceStep())
        # Two independent lines of work: MetalLB (install, waits, the pool through the
        # webhook race) and the app (image, apply, replicas Ready). The external IP needs both.
        # The app line has a client of its own: the MetalLB line uses the shared one meanwhile.
        await self.together(
            self.run_line(st.MetalLBStep(), st.PoolApplyStep(pool_range)),
            self.run_line(st.ImageStep(), st.DeployStep(self.spec.replicas, own_client=True)),
        )
        ip = await self.run(st.ExternalIPStep())
        probe = await self.run(st.ProbeStep())
        kubeconfig = await self.provider.kubeconfig()
        return UpResult(
            cluster=self.spec.name,
            provider=self.provider.kind,
            context=self.provider.context,
            external_ip=ip,
            url=f"http://{ip}/",
            dial_url=probe.dial_url,
            dial=probe.dial,
            pool=pool_range,
            stage_before=stage,
            kubeconfig=str(kubeconfig),
            durations=dict(self.durations),
            total=time.monotonic() - started,
        )


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _cancel_others() -> None:
    """Cancel every other task of the running loop and wait for them to end."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
