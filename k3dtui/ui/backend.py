"""The one narrow door between the TUI and k3dtui's core.

Screens and widgets never import core modules that talk to k3d, Docker or Kubernetes;
they call a :class:`Backend`, and read core's own models (``PipelineEvent``,
``PoolChoice``, ``Check``, ``ActionResult``, the snapshots). Every method that does I/O is
*blocking* and is only ever called from a thread worker; callbacks (``emit``,
``on_change``, ``on_load``) are called from other threads, and the UI turns them into
Messages.

:class:`CoreBackend` wires the real core parts: one :class:`SetupSession` whose step
objects the setup screens run one at a time (the same objects ``k3dtui up`` runs), the
live cluster and the load generator. Tests and the screenshot script pass a backend with
fixed data instead (``tests/ui/fixed.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from k3dtui.core.actions import ActionResult
from k3dtui.core.doctor import Check
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.models import ClusterSnapshot, LoadSettings, LoadSnapshot, ServiceView
from k3dtui.core.network import NetworkInfo
from k3dtui.core.pool import PoolChoice
from k3dtui.core.provider import ClusterInfo, Reachability
from k3dtui.core.session import PipelineEvent, SetupSession
from k3dtui.core.steps import ProbeResult, SetupStep

Emit = Callable[[PipelineEvent], None]
OnLoad = Callable[[LoadSnapshot], None]


@dataclass(frozen=True)
class HeaderInfo:
    """What the header always shows: which provider, which cluster, which kube context."""

    provider: str  # "k3d" or "sim" ("attached": another cluster's app, ``k3dtui attach``)
    name: str
    context: str
    reason: str = ""  # why this provider was chosen
    attached: bool = False
    namespace: str = ""
    app_text: str = ""  # attached: ``deployment/web (app=web) svc/web``


class Backend(Protocol):
    read_only: bool

    def header(self) -> HeaderInfo: ...
    def now(self) -> float: ...
    def use_name(self, name: str) -> HeaderInfo: ...

    # validation (pure, cheap: may be called on every keystroke)
    def validate_name(self, name: str) -> None: ...
    def validate_counts(self, servers: int, agents: int) -> None: ...
    def validate_replicas(self, replicas: int) -> None: ...
    def suggest_range(self, network: NetworkInfo) -> PoolChoice: ...
    def validate_range(self, text: str, network: NetworkInfo) -> PoolChoice: ...

    # setup (blocking; thread workers only). The steps, in the order ``k3dtui up`` runs them.
    def doctor(self) -> list[Check]: ...
    def detect_stage(self) -> str: ...
    def find(self) -> ClusterInfo | None: ...
    def cluster_gone(self) -> str:
        """Why the cluster the live view watches is gone ("" while it exists); blocking."""
        ...
    def list_clusters(self) -> list[ClusterInfo]: ...
    def delete_cluster(self, emit: Emit) -> None: ...
    def inspect_network(self, emit: Emit) -> NetworkInfo: ...
    def create_cluster(self, servers: int, agents: int, emit: Emit, *, reuse: bool) -> None: ...
    def choose_pool(self, pool_range: str, emit: Emit) -> str: ...
    def install_metallb(self, emit: Emit) -> None: ...
    def apply_pool(self, pool_range: str, emit: Emit) -> None: ...
    def build_and_import(self, emit: Emit) -> None: ...
    def deploy_app(self, replicas: int, emit: Emit) -> int: ...
    def wait_external_ip(self, emit: Emit) -> str: ...
    def probe(self, emit: Emit) -> ProbeResult: ...
    def reachability(self) -> Reachability: ...
    def kubeconfig_path(self) -> str:
        """The kubeconfig k3dtui keeps for this cluster ("" when there is none yet)."""
        ...

    # live cluster
    def live_start(self, on_change: Callable[[ClusterSnapshot], None]) -> None: ...
    def live_stop(self) -> None: ...
    def kill(self, pod: str, *, force: bool) -> ActionResult: ...
    def kill_random(self, *, force: bool) -> ActionResult: ...
    def scale_to(self, replicas: int) -> ActionResult: ...
    def scale_by(self, delta: int) -> ActionResult: ...
    def node_action(self, node: str, action: str) -> ActionResult:
        """cordon, uncordon, drain, stop or start ``node`` (k3dtui.core.nodes)."""
        ...
    def set_traffic_policy(self, policy: str) -> ActionResult: ...

    # load generator: snapshots arrive through ``on_load`` (another thread)
    def load_start(self, settings: LoadSettings, service: ServiceView, on_load: OnLoad) -> str | None:
        """Start (or restart) a load run; what it will do, in one line (None: nothing to say)."""
        ...
    def load_stop(self) -> None: ...
    def load_place(self, in_cluster: bool, workers: int = 2) -> None:
        """Where the next ``load_start`` runs: this machine, or (``in_cluster``) a Job of
        ``workers`` pods in the app's namespace (a change: refused read-only); blocking (ends
        a run under way, deleting its Job)."""
        ...
    def load_update(self, **changes: Any) -> None: ...
    def load_reset(self) -> None: ...
    def load_mark_gone(self, pods: Iterable[str]) -> None: ...

    def close(self) -> None: ...


def problem_text(exc: BaseException) -> tuple[str, str]:
    """(what failed, what to do) for any exception a worker raised."""
    if isinstance(exc, K3dtuiError):
        return exc.message, exc.hint
    return f"{type(exc).__name__}: {exc}", "see the log above; fix the cause and try again"


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

    def suggest_range(self, network: NetworkInfo) -> PoolChoice:
        from k3dtui.core import pool

        return pool.suggest_range(network.subnet, network.used)

    def validate_range(self, text: str, network: NetworkInfo) -> PoolChoice:
        from k3dtui.core import pool

        return pool.validate_range(text, network.subnet, network.used)


class _Relay:
    """The session's event sink: hands each event to the screen that runs the current step."""

    def __init__(self) -> None:
        self.target: Emit | None = None

    def __call__(self, event: PipelineEvent) -> None:
        target = self.target
        if target is not None:
            target(event)


class LoadReader:
    """Reads the load generator's snapshots on a thread of its own and hands each new one
    to ``on_load`` (the generator's lock can be held while a run stops: the UI never waits
    for it). Ends when ``stop()`` is called."""

    PERIOD = 0.1  # the generator's tick

    def __init__(self, load: Any, on_load: OnLoad) -> None:
        self.load = load
        self.on_load = on_load
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="k3dtui-load-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: LoadSnapshot | None = None
        while not self._stop.wait(self.PERIOD):
            snap: LoadSnapshot = self.load.latest()
            if snap is not last:
                last = snap
                self.on_load(snap)

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(2.0)


class CoreBackend(CoreValidation):
    """The real wiring: provider + one setup session + live cluster + load generator."""

    def __init__(
        self, name: str, *, force_sim: bool, read_only: bool = False, provider: Any = None
    ) -> None:
        self._init_state(read_only=read_only, force_sim=force_sim)
        if provider is not None:
            self._provider, self._reason = provider, f"{provider.kind}: given"
        else:
            self._select(name)

    def _init_state(self, *, read_only: bool, force_sim: bool) -> None:
        """What every backend starts with: no live cluster, no load, no session yet."""
        self.read_only = read_only
        self._force_sim = force_sim
        self._live: Any = None
        self._load: Any = None
        self._reader: LoadReader | None = None
        self._relay = _Relay()
        self._session: SetupSession | None = None
        self._steps_lock = threading.Lock()
        self._load_where = ""
        self._in_cluster = False
        self._workers = 2

    def _select(self, name: str) -> None:
        from k3dtui.providers import select_provider

        self._provider, self._reason = select_provider(name, self._force_sim)

    # -- header, clock ---------------------------------------------------------------
    def header(self) -> HeaderInfo:
        p = self._provider
        return HeaderInfo(provider=p.kind, name=p.name, context=p.context, reason=self._reason)

    def now(self) -> float:
        return time.time()

    def use_name(self, name: str) -> HeaderInfo:
        if name != self._provider.name:
            with self._steps_lock:  # a step under way ends on the session it started on
                self._close_session()
                self._select(name)
        return self.header()

    # -- the setup session -------------------------------------------------------------
    @property
    def session(self) -> SetupSession:
        """The setup session of the current cluster (made on first use)."""
        if self._session is None:
            from k3dtui.core.spec import ClusterSpec

            self._session = SetupSession(self._provider, ClusterSpec(name=self._provider.name), self._relay)
        return self._session

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def run_step(self, name: str, emit: Emit | None = None, **args: Any) -> Any:
        """Run the setup step ``name`` (``core.steps.SETUP_STEPS``) over the session; blocks."""
        from k3dtui.core.steps import make_step

        return self._run(make_step(name, **args), emit)

    def _run(self, step: SetupStep[Any], emit: Emit | None) -> Any:
        session = self.session
        with self._steps_lock:  # one step at a time: events go to the screen that asked
            self._relay.target = emit
            try:
                return session.call(step)
            finally:
                self._relay.target = None

    # -- setup -----------------------------------------------------------------------
    def doctor(self) -> list[Check]:
        from k3dtui.core.doctor import run_checks

        return list(run_checks())

    def detect_stage(self) -> str:
        session = self.session
        return str(session.call_soon(session.detect_stage()))

    def find(self) -> ClusterInfo | None:
        result: ClusterInfo | None = self.session.call_soon(self._provider.find())
        return result

    def cluster_gone(self) -> str:
        p = self._provider
        try:
            info: ClusterInfo | None = self.session.call_soon(p.find())
        except K3dtuiError:
            return ""  # cannot tell: the live view keeps reconnecting
        if info is None:
            what = "simulated cluster" if p.kind == "sim" else "k3d cluster"
            return f"the {what} '{p.name}' no longer exists (deleted or its process stopped)"
        if not info.running:
            return f"the cluster '{p.name}' is stopped ({info.servers_running}/{info.servers} servers, {info.agents_running}/{info.agents} agents run)"
        return ""

    def list_clusters(self) -> list[ClusterInfo]:
        """Every cluster of this provider on this host (to reuse or delete)."""
        from k3dtui.providers import list_clusters

        return list_clusters(force_sim=self._provider.kind == "sim")

    def delete_cluster(self, emit: Emit) -> None:
        self.live_stop()
        self.load_stop()
        session = self.session
        with self._steps_lock:
            self._relay.target = emit
            try:
                session.call_soon(session.down())
            finally:
                self._relay.target = None

    def inspect_network(self, emit: Emit) -> NetworkInfo:
        session = self.session
        result: NetworkInfo = session.call_soon(session.inspect_network())
        return result

    def create_cluster(self, servers: int, agents: int, emit: Emit, *, reuse: bool) -> None:
        self.run_step("cluster", emit, servers=servers, agents=agents, reuse=reuse)

    def choose_pool(self, pool_range: str, emit: Emit) -> str:
        return str(self.run_step("pool_choice", emit, wanted=pool_range))

    def install_metallb(self, emit: Emit) -> None:
        self.run_step("metallb", emit)

    def apply_pool(self, pool_range: str, emit: Emit) -> None:
        self.run_step("pool_apply", emit, pool_range=pool_range)

    def build_and_import(self, emit: Emit) -> None:
        self.run_step("image", emit)

    def deploy_app(self, replicas: int, emit: Emit) -> int:
        return int(self.run_step("deploy", emit, replicas=replicas))

    def wait_external_ip(self, emit: Emit) -> str:
        return str(self.run_step("external_ip", emit))

    def probe(self, emit: Emit) -> ProbeResult:
        result: ProbeResult = self.run_step("probe", emit)
        return result

    def reachability(self) -> Reachability:
        result: Reachability = self._provider.reachability()
        return result

    def kubeconfig_path(self) -> str:
        try:
            return str(self.session.call_soon(self._provider.kubeconfig()))
        except K3dtuiError:
            return ""

    # -- live ------------------------------------------------------------------------
    def live_start(self, on_change: Callable[[ClusterSnapshot], None]) -> None:
        from k3dtui.core.live import LiveCluster

        self.live_stop()
        kubeconfig = self.session.call_soon(self._provider.kubeconfig())
        self._live = LiveCluster(kubeconfig, context=self._provider.context)

        def changed(snap: ClusterSnapshot) -> None:
            # the load generator attributes each response to the announcer of its moment
            load = self._load
            if load is not None and snap.service is not None and snap.service.announcing_node:
                load.set_announcer(snap.service.announcing_node)
            on_change(snap)

        self._live.start(changed)

    def live_stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _need_live(self) -> Any:
        if self._live is None:
            raise K3dtuiError("the live view is not connected", "wait for it to connect")
        return self._live

    def kill(self, pod: str, *, force: bool) -> ActionResult:
        result: ActionResult = self._need_live().kill(pod, force=force)
        return result

    def kill_random(self, *, force: bool) -> ActionResult:
        result: ActionResult = self._need_live().kill_random(force=force)
        return result

    def scale_to(self, replicas: int) -> ActionResult:
        result: ActionResult = self._need_live().scale_to(replicas)
        return result

    def scale_by(self, delta: int) -> ActionResult:
        result: ActionResult = self._need_live().scale_by(delta)
        return result

    def node_action(self, node: str, action: str) -> ActionResult:
        from k3dtui.core import nodes
        from k3dtui.core.kube import make_api_client

        name = self.header().name
        refusal = nodes.check_node_name(name, node)
        if refusal:
            return ActionResult(False, f"refused: {refusal}")
        provider = self._provider
        if action in ("stop", "start"):
            try:
                if action == "stop":
                    self.session.call_soon(provider.stop_node(node, lambda _line: None))
                    return ActionResult(True, f"node {node} stopped: NotReady after the grace period, then its pods move")
                self.session.call_soon(provider.start_node(node, lambda _line: None))
                return ActionResult(True, f"node {node} started")
            except K3dtuiError as exc:
                return ActionResult(False, f"could not {action} node {node}: {exc.message}")
        kubeconfig = self.session.call_soon(provider.kubeconfig())
        actions = nodes.NodeActions(lambda: make_api_client(kubeconfig, provider.context), name)
        if action == "drain":
            return actions.drain(node)
        return actions.cordon(node, action == "cordon")
    def set_traffic_policy(self, policy: str) -> ActionResult:
        result: ActionResult = self._need_live().set_traffic_policy(policy)
        return result

    # -- load ------------------------------------------------------------------------
    def load_place(self, in_cluster: bool, workers: int = 2) -> None:
        if in_cluster and self.read_only:
            raise UsageError("in-cluster load creates a Job in the cluster: refused in read-only mode",
                             "start k3dtui without --read-only to run the load inside the cluster")
        if (in_cluster, workers) == (self._in_cluster, self._workers):
            return
        self._in_cluster, self._workers = in_cluster, workers
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        load, self._load = self._load, None
        self._load_where = ""
        if load is not None:
            load.close()

    def _job_target(self) -> tuple[Any, str | None, Any]:
        """(kubeconfig, context, app) of the in-cluster load's Job: k3dtui's own cluster and app."""
        from k3dtui.core.identity import APP

        return self.session.call_soon(self._provider.kubeconfig()), self._provider.context, APP

    def _start_in_cluster(self, settings: LoadSettings, on_load: OnLoad) -> str:
        from k3dtui.core.incluster import InClusterLoad

        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._load is not None:
            self._load.close()  # each in-cluster run is a Job of its own
            self._load = None
        kubeconfig, context, app = self._job_target()
        load = InClusterLoad(replace(settings, url=""), kubeconfig=kubeconfig, context=context, app=app,
                             workers=self._workers, allow_changes=not self.read_only)
        self._load, self._load_where = load, "in-cluster"
        load.start()
        self._reader = LoadReader(load, on_load)
        return f"load runs inside the cluster: Job {load.job_name}, {self._workers} worker pods → {load.settings.url}"

    def load_start(self, settings: LoadSettings, service: ServiceView, on_load: OnLoad) -> str | None:
        from k3dtui.core.loadplan import make_generator, plan_load

        if self._in_cluster:
            return self._start_in_cluster(settings, on_load)
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
        if service.announcing_node:
            self._load.set_announcer(service.announcing_node)
        self._load.start()  # copes with the TUI's stderr (no file descriptor) itself
        if self._reader is not None:
            self._reader.stop()
        self._reader = LoadReader(self._load, on_load)
        return plan.says

    def load_stop(self) -> None:
        if self._load is not None:
            self._load.stop()

    def load_update(self, **changes: Any) -> None:
        if self._load is not None:
            self._load.update(**changes)

    def load_reset(self) -> None:
        if self._load is not None:
            self._load.reset()

    def load_mark_gone(self, pods: Iterable[str]) -> None:
        if self._load is not None:
            self._load.mark_gone(list(pods))

    def close(self) -> None:
        self.live_stop()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        load, self._load = self._load, None
        if load is not None:
            load.close()
        self._close_session()


class AttachedBackend(CoreBackend):
    """``k3dtui attach``: the live view on another cluster's app (``core.target.Attached``).
    No provider, no setup: the cluster is not k3dtui's. Read-only unless the target allows
    changes (and never with ``--read-only``); node stop/start and cluster delete never."""

    def __init__(self, attached: Any, *, read_only: bool = False, identity: str = "") -> None:
        self.attached = attached
        self.identity = identity  # --identity: where the app's responses name their pod ("" = X-Pod)
        self._init_state(read_only=read_only or not attached.allow_changes, force_sim=False)
        self._provider, self._reason = None, "attached"

    def header(self) -> HeaderInfo:
        a = self.attached
        return HeaderInfo(provider="attached", name=a.context, context=a.context, reason="attached",
                          attached=True, namespace=a.namespace, app_text=a.app_text)

    def use_name(self, name: str) -> HeaderInfo:
        return self.header()

    @property
    def session(self) -> SetupSession:
        raise UsageError("an attached cluster has no setup: it is not k3dtui's",
                         "quit and run k3dtui without attach for its own cluster")

    def detect_stage(self) -> str:
        return "deployed"  # straight to the live view

    def find(self) -> ClusterInfo | None:
        return None

    def cluster_gone(self) -> str:
        return ""  # not k3dtui's cluster: the live view keeps reconnecting

    def list_clusters(self) -> list[ClusterInfo]:
        return []

    def delete_cluster(self, emit: Emit) -> None:
        raise UsageError("refused: k3dtui never deletes an attached cluster")

    def kubeconfig_path(self) -> str:
        return str(self.attached.kubeconfig)

    def live_start(self, on_change: Callable[[ClusterSnapshot], None]) -> None:
        from k3dtui.core.live import LiveCluster

        self.live_stop()
        a = self.attached
        self._live = LiveCluster(a.kubeconfig, context=a.context, identity=a.identity)
        self._live.start(on_change)

    def _refused(self, what: str) -> ActionResult | None:
        if self.read_only:
            return ActionResult(False, f"refused: {what} changes the cluster; attached read-only "
                                       "(attach with --allow-changes to allow it)")
        return None

    def kill(self, pod: str, *, force: bool) -> ActionResult:
        return self._refused("kill") or super().kill(pod, force=force)

    def kill_random(self, *, force: bool) -> ActionResult:
        return self._refused("kill") or super().kill_random(force=force)

    def scale_to(self, replicas: int) -> ActionResult:
        return self._refused("scale") or super().scale_to(replicas)

    def scale_by(self, delta: int) -> ActionResult:
        return self._refused("scale") or super().scale_by(delta)

    def set_traffic_policy(self, policy: str) -> ActionResult:
        return self._refused("switching externalTrafficPolicy") or super().set_traffic_policy(policy)

    def node_action(self, node: str, action: str) -> ActionResult:
        from k3dtui.core import nodes
        from k3dtui.core.kube import make_api_client

        if action in ("stop", "start"):
            return ActionResult(False, f"refused: node {action} is for k3dtui's own k3d or simulated cluster only")
        refused = self._refused(f"node {action}")
        if refused is not None:
            return refused
        a = self.attached
        actions = nodes.NodeActions(lambda: make_api_client(a.kubeconfig, a.context), "", a.identity)
        if action == "drain":
            return actions.drain(node)
        return actions.cordon(node, action == "cordon")

    def _job_target(self) -> tuple[Any, str | None, Any]:
        a = self.attached  # the attached app's namespace and Service, with the attached credentials
        return a.kubeconfig, a.context, a.identity

    def load_start(self, settings: LoadSettings, service: ServiceView, on_load: OnLoad) -> str | None:
        from k3dtui.core.load import LoadGenerator

        if self.identity:
            settings = replace(settings, identity=self.identity)
        if self._in_cluster:
            return self._start_in_cluster(settings, on_load)
        from k3dtui.core.load import preflight
        from k3dtui.core.target import service_url
        from k3dtui.providers import sim_dial_for

        url = service_url(self.attached, sim_dial_for(self.attached.server))  # its LoadBalancer address
        try:
            preflight(url, 2.0)
        except K3dtuiError as exc:
            raise UsageError(exc.message, "press w to run the load inside the cluster (with --allow-changes)") from None
        settings = replace(settings, url=url)
        if self._load is not None:
            self._load.close()
        self._load = LoadGenerator(settings)
        self._load.start()
        if self._reader is not None:
            self._reader.stop()
        self._reader = LoadReader(self._load, on_load)
        return f"load from this machine to {url}"
