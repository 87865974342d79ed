"""Plain data the UI and the CLI render: the live cluster picture and load snapshots.

Produced by ``core.state`` (watched cluster state) and ``core.load`` (the load
generator); frozen so a snapshot can be handed across threads safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ConnectionMode = Literal["keep-alive", "new-connection"]


@dataclass(frozen=True)
class PodView:
    uid: str
    name: str
    node: str  # "" while unscheduled
    status: str  # as kubectl prints it: Pending, ContainerCreating, Running, Terminating, Completed, ErrImageNeverPull...
    ready: bool
    ready_text: str  # "1/1"
    ip: str
    restarts: int
    created: float  # epoch seconds (age = now - created)
    deleting: bool  # deletionTimestamp set


@dataclass(frozen=True)
class NodeView:
    name: str
    roles: str  # "control-plane,master" or "<none>"/"agent"
    ip: str
    ready: bool
    unschedulable: bool = False  # cordoned (spec.unschedulable)
    taints: tuple[str, ...] = ()  # "key:Effect"
    ready_since: float = 0.0  # epoch seconds of the Ready condition's last transition (0: unknown)
    tainted_at: float = 0.0  # epoch seconds the unreachable/not-ready NoExecute taint was added (0: none)
    heartbeat: float = 0.0  # epoch seconds of the kubelet's last Lease renewal (0: no Lease seen)


@dataclass(frozen=True)
class ServiceView:
    name: str
    external_ip: str  # "" while pending
    port: int
    announcing_node: str  # from ServiceL2Status, "" when unknown
    traffic_policy: str = "Cluster"  # spec.externalTrafficPolicy ("Cluster" | "Local")


@dataclass(frozen=True)
class DeploymentView:
    name: str
    desired: int
    ready: int
    updated: int
    available: int


@dataclass(frozen=True)
class ClusterEvent:
    """A Kubernetes Event worth showing (Killing, SuccessfulCreate, Scheduled, IPAllocated...)."""

    time: float
    reason: str
    object: str  # "pod/fastapi-...-abcde"
    message: str
    type: str = "Normal"
    resource_version: int = 0  # the Event's metadata.resourceVersion: the order within one second


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: tuple[NodeView, ...] = ()
    pods: tuple[PodView, ...] = ()
    deployment: DeploymentView | None = None
    service: ServiceView | None = None
    events: tuple[ClusterEvent, ...] = ()
    connected: bool = True  # False while the watches are reconnecting
    error: str = ""  # the last connection problem, when not connected
    # how many times the watches moved to a new API server (a restarted cluster: new
    # address, token or CA read from the kubeconfig); the view says "reconnected to a new
    # API server" when it grows, and the picture is the new server's once ``connected``
    server_generation: int = 0

    def pods_on(self, node: str) -> list[PodView]:
        return sorted((p for p in self.pods if p.node == node), key=lambda p: (p.created, p.name))

    @property
    def unscheduled(self) -> list[PodView]:
        return [p for p in self.pods if not p.node]


@dataclass(frozen=True)
class LoadSettings:
    url: str = ""  # http://host:port/ to aim at (the dial address of the Service)
    mode: ConnectionMode = "new-connection"
    concurrency: int = 16
    rate: float | None = None  # requests per second over all workers; None = as fast as possible
    duration: float | None = 30.0  # seconds; at least one of duration/requests is set
    requests: int | None = None
    timeout: float = 2.0
    # where each response names the pod that served it: "" = k3dtui's app headers
    # (X-Pod/X-Node), "header:NAME" or "json:FIELD" (dotted path) for any other app
    identity: str = ""


@dataclass(frozen=True)
class WorkerView:
    """One in-cluster load worker (a pod of the load Job): its own cumulative figures."""

    pod: str
    node: str  # the node the worker pod runs on ("" while unscheduled)
    requests: int = 0
    responses: int = 0
    errors: int = 0
    rps: float = 0.0
    running: bool = True
    finished_reason: str = ""


@dataclass(frozen=True)
class LoadSnapshot:
    """One aggregated tick of the load generator (published ~10 times a second)."""

    running: bool
    mode: ConnectionMode
    concurrency: int
    elapsed: float  # seconds since start
    requests: int  # responses + errors
    responses: int
    rps: float  # over a sliding window
    rps_history: tuple[float, ...] = ()  # one value per tick, oldest first
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50/p95/p99 over the window
    latency_ms_total: dict[str, float] = field(default_factory=dict)  # p50/p95/p99 overall
    status: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # refused / reset / timeout / other
    per_pod: dict[str, int] = field(default_factory=dict)
    per_node: dict[str, int] = field(default_factory=dict)
    gone_pods: frozenset[str] = frozenset()  # pods that died (kept with their counts)
    finished_reason: str = ""  # "duration", "requests", "stopped", or an error
    # the request flow: the node announcing the Service now ("" when unknown), responses per
    # announcing node → serving node (each counted under the announcer of its moment),
    # responses served on a node other than their announcer, and responses per source
    # address the pod saw (the app's X-Client)
    announcing_node: str = ""
    paths: dict[str, dict[str, int]] = field(default_factory=dict)
    cross_node: int = 0
    client_addrs: dict[str, int] = field(default_factory=dict)
    # why there is no per-pod split ("" when there is one): the responses carry no identity
    identity_missing: str = ""
    # in-cluster load: each worker pod → its figures (empty for a local run)
    per_worker: dict[str, WorkerView] = field(default_factory=dict)

    @property
    def cross_node_share(self) -> float | None:
        """Responses served on a node other than the announcing node, divided by responses
        (None before any response, or when no announcer was ever known: ``--url``)."""
        if not self.responses or not any(a for a in self.paths):
            return None
        return self.cross_node / self.responses
