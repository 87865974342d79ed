"""The one narrow door between the TUI and k3dtui's core.

Screens and widgets never import core modules that talk to k3d, Docker or Kubernetes;
they call a :class:`Backend`. Every method that does I/O is *blocking* and is only ever
called from a thread worker; callbacks (``emit``, ``on_change``) are called from those
threads, and the UI turns them into Messages.

:class:`CoreBackend` wires the real core parts (provider, pipeline, live cluster, load
generator). Tests and the screenshot script pass a backend with fixed data instead
(``k3dtui.ui.fixed.FixedBackend``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.models import ClusterSnapshot, LoadSettings, LoadSnapshot, ServiceView
from k3dtui.core.network import NetworkInfo
from k3dtui.core.provider import ClusterInfo, Reachability

T = TypeVar("T")


class StepEvent(Protocol):
    """What the setup screens read from a pipeline event (``core.pipeline.PipelineEvent``)."""

    @property
    def step(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class UiEvent:
    """A pipeline event of the backend's own making (same shape as ``PipelineEvent``)."""

    step: str
    kind: str
    message: str
    elapsed: float = 0.0
    data: Mapping[str, Any] = field(default_factory=dict)


Emit = Callable[[StepEvent], None]


@dataclass(frozen=True)
class HeaderInfo:
    """What the header always shows: which provider, which cluster, which kube context."""

    provider: str  # "k3d" or "sim"
    name: str
    context: str
    reason: str = ""  # why this provider was chosen


@dataclass(frozen=True)
class DoctorFinding:
    name: str
    ok: bool
    detail: str
    fix: str
    required: bool


@dataclass(frozen=True)
class Range:
    """A validated MetalLB address range."""

    start: str
    end: str
    size: int

    @property
    def text(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class Outcome:
    """The result of a kill or scale action."""

    ok: bool
    message: str


class Backend(Protocol):
    read_only: bool

    def header(self) -> HeaderInfo: ...
    def now(self) -> float: ...
    def use_name(self, name: str) -> HeaderInfo: ...

    # validation (pure, cheap: may be called on every keystroke)
    def validate_name(self, name: str) -> None: ...
    def validate_counts(self, servers: int, agents: int) -> None: ...
    def validate_replicas(self, replicas: int) -> None: ...
    def suggest_range(self, network: NetworkInfo) -> Range: ...
    def validate_range(self, text: str, network: NetworkInfo) -> Range: ...

    # setup (blocking; thread workers only)
    def doctor(self) -> list[DoctorFinding]: ...
    def detect_stage(self) -> str: ...
    def find(self) -> ClusterInfo | None: ...
    def list_clusters(self) -> list[ClusterInfo]: ...
    def create_cluster(self, servers: int, agents: int, emit: Emit, *, reuse: bool) -> None: ...
    def delete_cluster(self, emit: Emit) -> None: ...
    def inspect_network(self, emit: Emit) -> NetworkInfo: ...
    def install_metallb(self, emit: Emit) -> None: ...
    def apply_pool(self, pool_range: str, emit: Emit) -> None: ...
    def build_and_import(self, emit: Emit) -> None: ...
    def deploy_app(self, replicas: int, emit: Emit) -> str: ...
    def probe(self, ip: str, emit: Emit) -> str: ...
    def reachability(self) -> Reachability: ...

    # live cluster
    def live_start(self, on_change: Callable[[ClusterSnapshot], None]) -> None: ...
    def live_stop(self) -> None: ...
    def kill(self, pod: str, *, force: bool) -> Outcome: ...
    def kill_random(self, *, force: bool) -> Outcome: ...
    def scale_to(self, replicas: int) -> Outcome: ...
    def scale_by(self, delta: int) -> Outcome: ...

    # load generator
    def load_start(self, settings: LoadSettings, service: ServiceView) -> str | None:
        """Start (or restart) a load run; what it will do, in one line (None: nothing to say)."""
        ...
    def load_stop(self) -> None: ...
    def load_update(self, **changes: Any) -> None: ...
    def load_reset(self) -> None: ...
    def load_latest(self) -> LoadSnapshot | None: ...
    def load_mark_gone(self, pods: Iterable[str]) -> None: ...

    def close(self) -> None: ...


def problem_text(exc: BaseException) -> tuple[str, str]:
    """(what failed, what to do) for any exception a worker raised."""
    if isinstance(exc, K3dtuiError):
        return exc.message, exc.hint
    return f"{type(exc).__name__}: {exc}", "see the log above; fix the cause and try again"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a core coroutine to completion on this (worker) thread's own loop."""
    return asyncio.run(coro)


class CoreValidation:
    """Validation and pool choice, the same for every backend: core's own rules."""

    def validate_name(self, name: str) -> None:
        from k3dtui.core import spec

        spec.validate_name(name)

    def validate_counts(self, servers: int, agents: int) -> None:
        from k3dtui.core import spec

        spec.validate_spec(spec.ClusterSpec(servers=servers, agents=agents))

    def validate_replicas(self, replicas: int) -> None:
        from k3dtui.core import spec

        spec.validate_spec(spec.ClusterSpec(replicas=replicas))

    def suggest_range(self, network: NetworkInfo) -> Range:
        from k3dtui.core import pool

        choice = pool.suggest_range(network.subnet, network.used)
        return Range(choice.start, choice.end, choice.size)

    def validate_range(self, text: str, network: NetworkInfo) -> Range:
        from k3dtui.core import pool

        choice = pool.validate_range(text, network.subnet, network.used)
        return Range(choice.start, choice.end, choice.size)


class CoreBackend(CoreValidation):
    """The real wiring: provider + pipeline + live cluster + load generator."""

    def __init__(
        self, name: str, *, force_sim: bool, read_only: bool = False, provider: Any = None
    ) -> None:
        self.read_only = read_only
        self._force_sim = force_sim
        self._spec_name = name
        self._replicas = 3
        self._live: Any = None
        self._load: Any = None
        self._load_where = ""
        self._latest: LoadSnapshot | None = None
        self._poller: threading.Thread | None = None
        self._closing = threading.Event()
        if provider is not None:
            self._provider, self._reason = provider, f"{provider.kind}: given"
        else:
            self._select(name)

    def _select(self, name: str) -> None:
        from k3dtui.providers import select_provider

        self._provider, self._reason = select_provider(name, self._force_sim)
        self._spec_name = name

    # -- header, clock ---------------------------------------------------------------
    def header(self) -> HeaderInfo:
        p = self._provider
        return HeaderInfo(provider=p.kind, name=p.name, context=p.context, reason=self._reason)

    def now(self) -> float:
        return time.time()

    def use_name(self, name: str) -> HeaderInfo:
        if name != self._provider.name:
            self._select(name)
        return self.header()

    # -- setup -----------------------------------------------------------------------
    def _pipeline(self, emit: Emit | None, *, servers: int = 1, agents: int = 2) -> Any:
        from k3dtui.core import spec
        from k3dtui.core.pipeline import Pipeline

        cluster_spec = spec.ClusterSpec(
            name=self._provider.name, servers=servers, agents=agents, replicas=self._replicas
        )
        return Pipeline(self._provider, cluster_spec, emit or (lambda _e: None))

    def doctor(self) -> list[DoctorFinding]:
        from k3dtui.core.doctor import run_checks

        return [
            DoctorFinding(c.name, c.ok, c.detail, c.fix, c.required) for c in run_checks()
        ]

    def _with_pipeline(
        self, emit: Emit | None, call: Callable[[Any], Coroutine[Any, Any, T]], **spec: int
    ) -> T:
        pipeline = self._pipeline(emit, **spec)

        async def go() -> T:
            try:
                return await call(pipeline)
            finally:
                pipeline.close()

        return _run(go())

    def detect_stage(self) -> str:
        return str(self._with_pipeline(None, lambda p: p.detect_stage()))

    def find(self) -> ClusterInfo | None:
        result: ClusterInfo | None = _run(self._provider.find())
        return result

    def list_clusters(self) -> list[ClusterInfo]:
        """Every cluster of this provider on this host (to reuse or delete)."""
        from k3dtui.providers import list_clusters

        return list_clusters(force_sim=self._provider.kind == "sim")

    def create_cluster(self, servers: int, agents: int, emit: Emit, *, reuse: bool) -> None:
        self._with_pipeline(
            emit, lambda p: p.create_cluster(reuse=reuse), servers=servers, agents=agents
        )

    def delete_cluster(self, emit: Emit) -> None:
        self.live_stop()
        self.load_stop()
        self._with_pipeline(emit, lambda p: p.down())

    def inspect_network(self, emit: Emit) -> NetworkInfo:
        result: NetworkInfo = self._with_pipeline(emit, lambda p: p.inspect_network())
        return result

    def install_metallb(self, emit: Emit) -> None:
        self._with_pipeline(emit, lambda p: p.install_metallb())

    def apply_pool(self, pool_range: str, emit: Emit) -> None:
        self._with_pipeline(emit, lambda p: p.apply_pool(pool_range))

    def build_and_import(self, emit: Emit) -> None:
        self._with_pipeline(emit, lambda p: p.build_and_import())

    def deploy_app(self, replicas: int, emit: Emit) -> str:
        self._replicas = replicas
        return str(self._with_pipeline(emit, lambda p: p.deploy_app(replicas)))

    def probe(self, ip: str, emit: Emit) -> str:
        return str(self._with_pipeline(emit, lambda p: p.probe(ip)))

    def reachability(self) -> Reachability:
        result: Reachability = self._provider.reachability()
        return result

    # -- live ------------------------------------------------------------------------
    def live_start(self, on_change: Callable[[ClusterSnapshot], None]) -> None:
        from k3dtui.core.live import LiveCluster

        self.live_stop()
        kubeconfig = _run(self._provider.kubeconfig())
        self._live = LiveCluster(kubeconfig, context=self._provider.context)
        self._live.start(on_change)

    def live_stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _need_live(self) -> Any:
        if self._live is None:
            raise K3dtuiError("the live view is not connected", "wait for it to connect")
        return self._live

    def kill(self, pod: str, *, force: bool) -> Outcome:
        r = self._need_live().kill(pod, force=force)
        return Outcome(bool(r.ok), str(r.message))

    def kill_random(self, *, force: bool) -> Outcome:
        r = self._need_live().kill_random(force=force)
        return Outcome(bool(r.ok), str(r.message))

    def scale_to(self, replicas: int) -> Outcome:
        r = self._need_live().scale_to(replicas)
        return Outcome(bool(r.ok), str(r.message))

    def scale_by(self, delta: int) -> Outcome:
        r = self._need_live().scale_by(delta)
        return Outcome(bool(r.ok), str(r.message))

    # -- load ------------------------------------------------------------------------
    # The generator's own lock is held while a run stops (up to its grace period), so the
    # UI never calls ``latest()`` itself: a poller thread keeps the newest snapshot here.
    def load_start(self, settings: LoadSettings, service: ServiceView) -> str | None:
        from k3dtui.core.loadplan import make_generator, plan_load

        if not service.external_ip:
            raise UsageError(
                "the service has no external IP yet", "wait until MetalLB assigns one"
            )
        host, port = self._provider.dial(service.external_ip, service.port)
        settings = replace(settings, url=f"http://{host}:{port}/")
        # reachability first: straight from this host, or from a container in the cluster's
        # network when the address is not routable here (k3dtui.core.loadplan)
        plan = plan_load(self._provider)
        if self._load is None or self._load_where != plan.where:
            if self._load is not None:
                self._load.close()
            self._load = make_generator(plan, settings)
            self._load_where = plan.where
        else:
            self._load.stop()
            fields = ("url", "mode", "concurrency", "rate", "duration", "requests", "timeout")
            self._load.update(**{k: getattr(settings, k) for k in fields})
        self._load.start()  # copes with the TUI's stderr (no file descriptor) itself
        self._ensure_poller()
        return plan.says

    def _ensure_poller(self) -> None:
        if self._poller is not None and self._poller.is_alive():
            return
        self._poller = threading.Thread(target=self._poll_loop, name="k3dtui-load-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closing.wait(0.1):
            load = self._load
            if load is not None:
                self._latest = load.latest()

    def load_stop(self) -> None:
        if self._load is not None:
            self._load.stop()

    def load_update(self, **changes: Any) -> None:
        if self._load is not None:
            self._load.update(**changes)

    def load_reset(self) -> None:
        if self._load is not None:
            self._load.reset()

    def load_latest(self) -> LoadSnapshot | None:
        return self._latest

    def load_mark_gone(self, pods: Iterable[str]) -> None:
        if self._load is not None:
            self._load.mark_gone(list(pods))

    def close(self) -> None:
        self._closing.set()
        self.live_stop()
        load, self._load = self._load, None
        if load is not None:
            load.close()
