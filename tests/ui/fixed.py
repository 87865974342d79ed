"""A backend with fixed data: snapshot tests, the screenshot script, and UI work without a cluster.

It speaks core's own models (``PipelineEvent``, ``Check``, ``ActionResult``, ``ProbeResult``)
exactly as ``k3dtui.ui.backend.CoreBackend`` does; it lives with the tests, not in the package.

It behaves like a tiny cluster (kill marks a pod Terminating and adds a replacement,
scale adds or removes pods, load produces counts) but everything is deterministic: the
clock is frozen, names come from a fixed list, and the pipeline steps emit scripted
events. ``hold`` makes a step wait (until ``release()`` or ``close()``) so a screen can be
captured mid-step; ``fail`` makes a step raise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from k3dtui.core.actions import ActionResult
from k3dtui.core.doctor import Check
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.models import (
    ClusterEvent,
    ClusterSnapshot,
    DeploymentView,
    LoadSettings,
    LoadSnapshot,
    NodeView,
    PodView,
    ServiceView,
)
from k3dtui.core.network import Member, NetworkInfo
from k3dtui.core.provider import ClusterInfo, Reachability
from k3dtui.core.session import PipelineEvent
from k3dtui.core.steps import ProbeResult
from k3dtui.ui.backend import CoreValidation, Emit, HeaderInfo, OnLoad

NOW = 1_780_000_000.0  # a frozen clock: ages and elapsed times are the same in every run
_SUFFIXES = ["x2k9p", "m4q7z", "c8wln", "t5vbr", "h9jxd", "q2nfs", "w7kzc", "b3mpl", "r6dgy", "n8shv"]


def _node(cluster: str, role: str, index: int) -> str:
    return f"k3d-{cluster}-{role}-{index}"


@dataclass
class FixedBackend(CoreValidation):
    name: str = "simple-app-cluster"
    provider: str = "sim"
    read_only: bool = False
    stage: str = "absent"
    existing: ClusterInfo | None = None
    clusters: list[ClusterInfo] = field(default_factory=list)
    routable: bool = True
    agents: int = 2  # agent nodes (plus one server)
    connected: bool = True
    hold: set[str] = field(default_factory=set)
    fail: dict[str, Exception] = field(default_factory=dict)
    doctor_findings: list[Check] | None = None
    load_running: bool = False
    load_started: bool = False  # a run was started (a stopped run still has its counts)
    clock: float = NOW
    calls: list[str] = field(default_factory=list)
    removed: str = ""  # why the cluster is gone (set by tests): what cluster_gone() says

    def __post_init__(self) -> None:
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._on_change: Callable[[ClusterSnapshot], None] | None = None
        self._on_load: OnLoad | None = None
        self._next = 3
        self._events: list[ClusterEvent] = []
        n = self.name
        self.nodes = (
            NodeView(_node(n, "server", 0), "control-plane,master", "172.20.0.2", True),
            *(NodeView(_node(n, "agent", a), "<none>", f"172.20.0.{3 + a}", True) for a in range(self.agents)),
        )
        self.pods: list[PodView] = [
            self._pod(0, self.nodes[1].name, "10.42.1.3", age=185),
            self._pod(1, self.nodes[2].name, "10.42.2.3", age=184),
            self._pod(2, self.nodes[0].name, "10.42.0.9", age=183),
        ]
        self.desired = 3
        self.service = ServiceView("fastapi-service", "172.20.255.201", 80, self.nodes[1].name)
        self._events = [
            ClusterEvent(self.clock - 186, "ScalingReplicaSet", "deployment/fastapi-app", "Scaled up replica set fastapi-app-7d4b9c8f5d to 3"),
            ClusterEvent(self.clock - 185, "Scheduled", f"pod/{self.pods[0].name}", f"Successfully assigned default/{self.pods[0].name} to {self.nodes[1].name}"),
            ClusterEvent(self.clock - 180, "IPAllocated", "service/fastapi-service", 'Assigned IP ["172.20.255.201"]'),
        ]
        self._load_settings = LoadSettings()
        self._load_elapsed = 12.4
        self._gone: set[str] = set()

    def _pod(self, i: int, node: str, ip: str, *, age: float, status: str = "Running") -> PodView:
        suffix = _SUFFIXES[i] if i < len(_SUFFIXES) else f"{_SUFFIXES[i % len(_SUFFIXES)][:3]}{i % 100:02d}"
        ready = status == "Running"
        return PodView(
            uid=f"uid-{i}",
            name=f"fastapi-app-7d4b9c8f5d-{suffix}",
            node=node,
            status=status,
            ready=ready,
            ready_text="1/1" if ready else "0/1",
            ip=ip,
            restarts=0,
            created=self.clock - age,
            deleting=False,
        )

    # -- header, clock, validation -----------------------------------------------------
    def header(self) -> HeaderInfo:
        return HeaderInfo(self.provider, self.name, f"k3d-{self.name}", "fixed data")

    def now(self) -> float:
        return self.clock

    def use_name(self, name: str) -> HeaderInfo:
        self.name = name
        return self.header()

    # -- scripted pipeline -------------------------------------------------------------
    def release(self) -> None:
        self._released.set()

    def _step(self, step: str, emit: Emit, lines: Iterable[str], done: str) -> None:
        self.calls.append(step)
        emit(PipelineEvent(step, "start", f"{step}: starting", 0.0))
        for i, line in enumerate(lines):
            emit(PipelineEvent(step, "log", line, 0.4 * (i + 1)))
        if step in self.hold:
            emit(PipelineEvent(step, "progress", f"{step}: waiting", 2.0))
            self._released.wait(30)
        if step in self.fail:
            emit(PipelineEvent(step, "failed", str(self.fail[step]), 3.0))
            raise self.fail[step]
        emit(PipelineEvent(step, "done", done, 3.0))

    def doctor(self) -> list[Check]:
        if self.doctor_findings is not None:
            return list(self.doctor_findings)
        return [
            Check("docker engine", True, "engine 27.3.1 answers on /var/run/docker.sock", "", True),
            Check("k3d", False, "k3d not found on PATH", "install k3d v5 (https://k3d.io) or run with --sim", True),
            Check("routability", True, "Linux: MetalLB addresses are reachable from this host", "", False),
        ]

    def detect_stage(self) -> str:
        return self.stage

    def find(self) -> ClusterInfo | None:
        for info in self.clusters:
            if info.name == self.name:
                return info
        return self.existing if self.existing is not None and self.existing.name == self.name else None

    def cluster_gone(self) -> str:
        return self.removed

    def list_clusters(self) -> list[ClusterInfo]:
        self.calls.append("list")
        return list(self.clusters)

    def create_cluster(self, servers: int, agents: int, emit: Emit, *, reuse: bool) -> None:
        n = self.name
        lines = [
            f"INFO[0000] Prep: Network — created network 'k3d-{n}'",
            f"INFO[0000] Created image volume k3d-{n}-images",
            f"INFO[0001] Creating node 'k3d-{n}-server-0'",
            *(f"INFO[0002] Creating node 'k3d-{n}-agent-{i}'" for i in range(agents)),
            "INFO[0003] Starting cluster — waiting for the servers to be ready",
        ]
        self._step("cluster", emit, lines, f"cluster {n} is running ({servers} server, {agents} agents)")
        self.existing = ClusterInfo(n, servers, agents, servers, agents)
        if all(c.name != n for c in self.clusters):
            self.clusters.append(self.existing)

    def delete_cluster(self, emit: Emit) -> None:
        self.calls.append(f"delete {self.name}")
        self._step("cluster", emit, [f"INFO[0000] Deleting cluster '{self.name}'"], f"cluster {self.name} deleted")
        self.existing = None
        self.clusters = [c for c in self.clusters if c.name != self.name]
        self.stage = "absent"

    def inspect_network(self, emit: Emit) -> NetworkInfo:
        self.calls.append("network")
        n = self.name
        return NetworkInfo(
            name=f"k3d-{n}",
            subnet="172.20.0.0/16",
            gateway="172.20.0.1",
            members=(
                Member(f"k3d-{n}-server-0", "172.20.0.2"),
                Member(f"k3d-{n}-agent-0", "172.20.0.3"),
                Member(f"k3d-{n}-agent-1", "172.20.0.4"),
                Member(f"k3d-{n}-serverlb", "172.20.0.5"),
            ),
        )

    def choose_pool(self, pool_range: str, emit: Emit) -> str:
        self.calls.append("pool_choice")
        emit(PipelineEvent("pool", "start", "choosing the MetalLB address pool", 0.0))
        emit(PipelineEvent("pool", "progress", f"using the given range {pool_range}", 0.2))
        emit(PipelineEvent("pool", "done", "pool done in 0.20s", 0.2))
        return pool_range

    def install_metallb(self, emit: Emit) -> None:
        lines = [
            "applied namespace/metallb-system",
            "applied customresourcedefinition/ipaddresspools.metallb.io",
            "applied deployment/controller",
            "applied daemonset/speaker",
            "waiting for pods app=metallb to be Ready (timeout 90s)",
        ]
        self._step("metallb", emit, lines, "MetalLB v0.15.2 is ready")

    def apply_pool(self, pool_range: str, emit: Emit) -> None:
        lines = [
            "webhook not serving yet (connection refused); retrying in 1s",
            f"applied ipaddresspool/first-pool {pool_range}",
            "applied l2advertisement/example",
        ]
        self._step("pool", emit, lines, f"pool {pool_range} applied")

    def build_and_import(self, emit: Emit) -> None:
        lines = [
            "Step 1/6 : FROM python:3.12-slim",
            "Step 4/6 : RUN pip install --no-cache-dir -r requirements.txt",
            "Successfully tagged fastapi-random:latest",
            f"INFO[0000] Importing image(s) into cluster '{self.name}'",
        ]
        self._step("image", emit, lines, "image fastapi-random:latest imported")

    def deploy_app(self, replicas: int, emit: Emit) -> int:
        self.calls.append("deploy")
        emit(PipelineEvent("deploy", "start", "applying deployment/fastapi-app and service/fastapi-service", 0.0))
        for i in range(replicas):
            pod = self._pod(i, self.nodes[(i + 1) % 3].name, "", age=0).name
            emit(PipelineEvent("deploy", "log", f"pod {pod}: ContainerCreating", 1.0, {"pod": pod}))
        for ready in range(1, replicas + 1):
            pod = self._pod(ready - 1, self.nodes[ready % 3].name, "", age=0).name
            if "deploy" in self.hold and ready == replicas:
                break
            emit(PipelineEvent("deploy", "progress", f"pod {pod} Ready ({ready}/{replicas})", 1.0 + ready,
                         {"pod": pod, "node": self.nodes[ready % 3].name, "ready": ready, "want": replicas}))
        if "deploy" in self.hold:
            emit(PipelineEvent("deploy", "progress", "waiting for the external IP", 5.0))
            self._released.wait(30)
        if "deploy" in self.fail:
            raise self.fail["deploy"]
        self.desired = replicas
        return replicas

    def wait_external_ip(self, emit: Emit) -> str:
        self.calls.append("external_ip")
        emit(PipelineEvent("deploy", "done", "external IP 172.20.255.201", 6.0, {"ip": "172.20.255.201"}))
        self.stage = "deployed"
        return "172.20.255.201"

    def probe(self, emit: Emit) -> ProbeResult:
        ip = self.service.external_ip
        if self.desired == 0:
            note = "the Deployment has 0 replicas: nothing can answer; scale it up"
            emit(PipelineEvent("probe", "start", "probing skipped", 0.0))
            emit(PipelineEvent("probe", "warning", note, 0.0))
            emit(PipelineEvent("probe", "done", "probe done in 0.00s", 0.0))
            return ProbeResult("", "", answered=False, note=note)
        reach = self.reachability()
        if not reach.routable:
            emit(PipelineEvent("probe", "start", f"probing http://{ip}/", 0.0))
            emit(PipelineEvent("probe", "warning", f"not probing from this machine: {reach.explanation}", 0.0))
            emit(PipelineEvent("probe", "done", "probe done in 0.00s", 0.0))
            return ProbeResult(f"http://{ip}/", f"{ip}:80", answered=False, note=reach.explanation)
        # the simulated cluster's load balancer listens on 127.0.0.1 (the dial address)
        dial = "127.0.0.1:40080" if self.provider == "sim" else f"{ip}:80"
        self._step("probe", emit, [f"GET http://{dial}/ → 200 from fastapi-app-7d4b9c8f5d-x2k9p"], f"http://{dial}/ answered")
        return ProbeResult(f"http://{dial}/", dial, answered=True)

    def kubeconfig_path(self) -> str:
        return f"/home/you/.local/state/k3dtui/{self.provider}/{self.name}/kubeconfig.yaml"

    def reachability(self) -> Reachability:
        if self.routable:
            return Reachability(True, "the external IP is routable from this host")
        return Reachability(
            False,
            "Docker Desktop keeps the cluster network inside its VM: 172.20.255.201 is not reachable "
            "from this host. Use `kubectl port-forward svc/fastapi-service 8080:80`, or run k3dtui on Linux.",
        )

    # -- live --------------------------------------------------------------------------
    def snapshot(self) -> ClusterSnapshot:
        ready = sum(1 for p in self.pods if p.ready and not p.deleting)
        return ClusterSnapshot(
            nodes=self.nodes,
            pods=tuple(self.pods),
            deployment=DeploymentView("fastapi-app", self.desired, ready, self.desired, ready),
            service=self.service,
            events=tuple(self._events),
            connected=self.connected,
            error="" if self.connected else "connection refused (127.0.0.1:6443)",
        )

    def push(self) -> None:
        if self._on_change is not None:
            self._on_change(self.snapshot())
        if self.load_running:
            self.push_load()  # a running generator ticks on: the counts follow the pods

    def push_load(self) -> None:
        snap = self.load_latest()
        if self._on_load is not None and snap is not None:
            self._on_load(snap)

    def live_start(self, on_change: Callable[[ClusterSnapshot], None]) -> None:
        self.calls.append("live")
        self._on_change = on_change
        self.push()

    def live_stop(self) -> None:
        self._on_change = None

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.push()

    def _event(self, reason: str, obj: str, message: str) -> None:
        self._events.append(ClusterEvent(self.clock, reason, obj, message))

    def _add_pod(self) -> PodView:
        i = self._next
        self._next += 1
        node = self.nodes[i % len(self.nodes)].name
        pod = self._pod(i, node, f"10.42.{i % 3}.{10 + i}", age=0, status="ContainerCreating")
        self.pods.append(pod)
        self._event("SuccessfulCreate", "replicaset/fastapi-app-7d4b9c8f5d", f"Created pod: {pod.name}")
        self._event("Scheduled", f"pod/{pod.name}", f"Successfully assigned default/{pod.name} to {node}")
        return pod

    def kill(self, pod: str, *, force: bool) -> ActionResult:
        if "kill" in self.fail:
            raise self.fail["kill"]
        with self._lock:
            for i, p in enumerate(self.pods):
                if p.name == pod and not p.deleting:
                    if force:
                        del self.pods[i]
                    else:
                        self.pods[i] = replace(p, status="Terminating", deleting=True, ready=False, ready_text="0/1")
                    self._event("Killing", f"pod/{pod}", "Stopping container fastapi")
                    self._add_pod()
                    break
            else:
                return ActionResult(False, f"pod {pod} not found")
        self.push()
        return ActionResult(True, f"deleted pod {pod}" + (" (grace 0)" if force else ""))

    def kill_random(self, *, force: bool) -> ActionResult:
        alive = [p for p in self.pods if not p.deleting]
        if not alive:
            return ActionResult(False, "no pod to kill")
        return self.kill(alive[0].name, force=force)

    def scale_to(self, replicas: int) -> ActionResult:
        self.validate_replicas(replicas)
        with self._lock:
            alive = [p for p in self.pods if not p.deleting]
            while len(alive) < replicas:
                alive.append(self._add_pod())
            for p in alive[replicas:]:
                idx = self.pods.index(p)
                self.pods[idx] = replace(p, status="Terminating", deleting=True, ready=False, ready_text="0/1")
            self.desired = replicas
            self._event("ScalingReplicaSet", "deployment/fastapi-app", f"Scaled replica set fastapi-app-7d4b9c8f5d to {replicas}")
        self.push()
        return ActionResult(True, f"scaled deployment/fastapi-app to {replicas}")

    def scale_by(self, delta: int) -> ActionResult:
        return self.scale_to(max(0, self.desired + delta))

    def node_action(self, node: str, action: str) -> ActionResult:
        """Records the call; a started node is Ready again (a stopped one stays Ready until the
        grace period ends: ``node_fails``)."""
        self.calls.append(f"node {action} {node}")
        if action == "start":
            with self._lock:
                self.nodes = tuple(replace(n, ready=True, taints=(), tainted_at=0.0) if n.name == node else n
                                   for n in self.nodes)
            self.push()
        return ActionResult(True, f"node {node} {action} done")

    def node_fails(self, node: str, *, ago: float = 0.0) -> None:
        """The grace period ended ``ago`` seconds ago: NotReady, the unreachable taints, pods not ready."""
        with self._lock:
            self.nodes = tuple(
                replace(n, ready=False, ready_since=self.clock - ago, tainted_at=self.clock - ago,
                        taints=("node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"))
                if n.name == node else n for n in self.nodes)
            self.pods = [replace(p, ready=False, ready_text="0/1") if p.node == node else p for p in self.pods]
            self._event("NodeNotReady", f"node/{node}", f"Node {node} status is now: NodeNotReady")
        self.push()

    def evict_from(self, node: str) -> None:
        """The tolerations ran out: the node's pods are Terminating and replaced elsewhere."""
        with self._lock:
            for i, p in enumerate(self.pods):
                if p.node == node and not p.deleting:
                    self.pods[i] = replace(p, status="Terminating", deleting=True)
                    self._event("TaintManagerEviction", f"pod/{p.name}", f"Marking for deletion Pod default/{p.name}")
                    others = [n.name for n in self.nodes if n.name != node]
                    new = self._add_pod()
                    idx = self.pods.index(new)
                    self.pods[idx] = replace(new, node=others[i % len(others)])
        self.push()

    def set_traffic_policy(self, policy: str) -> ActionResult:
        self.calls.append(f"policy {policy}")
        with self._lock:
            before = self.service.traffic_policy
            self.service = replace(self.service, traffic_policy=policy)
        self.push()
        return ActionResult(True, f"service fastapi-service: externalTrafficPolicy {before} -> {policy}")

    def finish_pending(self) -> None:
        """Terminating pods go away, new ones become Running (what the cluster would do next)."""
        with self._lock:
            self._gone |= {p.name for p in self.pods if p.deleting}
            self.pods = [
                replace(p, status="Running", ready=True, ready_text="1/1") if p.status != "Running" else p
                for p in self.pods
                if not p.deleting
            ]
        self.push()

    # -- load --------------------------------------------------------------------------
    def load_start(self, settings: LoadSettings, service: ServiceView, on_load: OnLoad) -> None:
        if "load" in self.fail:
            raise self.fail["load"]
        if not service.external_ip:
            raise UsageError("the service has no external IP yet", "wait until MetalLB assigns one")
        self._load_settings = settings
        self._on_load = on_load
        self.load_running = self.load_started = True
        self.push_load()

    def load_stop(self) -> None:
        self.load_running = False
        self.push_load()

    def load_place(self, in_cluster: bool, workers: int = 2) -> None:
        self.calls.append(f"load place {'in-cluster' if in_cluster else 'local'} {workers}")

    def load_update(self, **changes: Any) -> None:
        self._load_settings = replace(self._load_settings, **changes)
        self.push_load()

    def load_reset(self) -> None:
        self.calls.append("load reset")
        self._load_elapsed = 0.0
        self.push_load()

    def load_advance(self, seconds: float) -> None:
        """The run goes on for ``seconds`` (the counts grow with it)."""
        self._load_elapsed += seconds
        self.push_load()

    def load_mark_gone(self, pods: Iterable[str]) -> None:
        self._gone |= set(pods)
        self.push_load()

    def load_latest(self) -> LoadSnapshot | None:
        if not self.load_started:
            return None  # no run yet
        scale = self._load_elapsed / 12.4
        announcer = self.service.announcing_node
        local = self.service.traffic_policy == "Local"
        names = [p.name for p in self.pods if not local or p.node == announcer]
        per_pod: dict[str, int] = {}
        weights = [1796, 1702, 1655, 880, 640, 320, 200, 100, 90, 80]
        for i, pod in enumerate(names):
            per_pod[pod] = int(weights[i % len(weights)] * scale)
        for gone in sorted(self._gone):
            per_pod.setdefault(gone, int(412 * scale))
        per_node: dict[str, int] = {}
        for p in self.pods:
            if p.name in per_pod:
                per_node[p.node] = per_node.get(p.node, 0) + per_pod.get(p.name, 0)
        total = sum(per_pod.values())
        here = per_node.get(announcer, 0)
        # under Cluster the pods see the announcing node's cni0 (same node) or flannel.1 address
        clients = {"172.20.0.1": total} if local else {"10.42.1.1": here, "10.42.1.0": total - here}
        history = tuple(380.0 + 40 * ((i * 7) % 5) for i in range(60))
        s = self._load_settings
        return LoadSnapshot(
            running=self.load_running,
            mode=s.mode,
            concurrency=s.concurrency,
            elapsed=self._load_elapsed,
            requests=total + (3 if total else 0),
            responses=total,
            rps=431.0 if self.load_running else 0.0,
            rps_history=history if total else (),
            latency_ms={"p50": 2.1, "p95": 5.3, "p99": 9.8} if total else {},
            latency_ms_total={"p50": 2.2, "p95": 5.6, "p99": 11.0} if total else {},
            status={200: total} if total else {},
            errors={"refused": 2, "reset": 1} if total else {},
            per_pod=per_pod,
            per_node=per_node,
            gone_pods=frozenset(self._gone),
            finished_reason="" if self.load_running else "stopped",
            announcing_node=announcer,
            paths={announcer: dict(per_node)} if total else {},
            cross_node=total - here,
            client_addrs={a: n for a, n in clients.items() if n},
        )

    def close(self) -> None:
        self._released.set()
        self._on_change = None
        self._on_load = None


def fixed_error(message: str, hint: str) -> K3dtuiError:
    return K3dtuiError(message, hint)
