"""The simulated cluster's timings and fault-injection knobs.

Every delay is in seconds. The defaults feel like a small k3d cluster on a laptop: a
replacement pod is Ready about a second after its predecessor is deleted. ``fast()``
shrinks everything for tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimSettings:
    # scheduler: a new pod is bound this long after it appears
    schedule_delay: float = 0.02
    # kubelet: bound → accepted (Pending, ContainerCreating, hostIP, startTime)
    accept_delay: float = 0.1
    # kubelet: accepted → sandbox ready (podIP, PodReadyToStartContainers)
    sandbox_delay: float = 0.35
    # kubelet: pulling an image that is in a registry (not imported)
    pull_delay: float = 0.5
    # kubelet: sandbox → container started (Running)
    start_delay: float = 0.25
    # kubelet: running → Ready when the container has a readiness probe
    ready_delay: float = 0.25
    # kubelet: SIGTERM → container exited (a server that handles SIGTERM drains its
    # connections first; the replacement is usually Ready before the old pod is gone)
    terminate_delay: float = 1.5
    # kubelet: container exited → pod object removed
    remove_delay: float = 0.1
    # kubelet: ErrImagePull → ImagePullBackOff
    backoff_delay: float = 1.0
    # Job controller: a failed pod's replacement waits this long, doubled per failure up to
    # 6 minutes (pkg/controller/job: DefaultJobPodFailureBackOff 10 s, MaxJobPodFailureBackOff)
    job_backoff: float = 10.0
    # MetalLB controller: a Service (or pool) change → the IP allocation
    metallb_delay: float = 0.05
    # MetalLB: pools are refused this long after the controller turns Ready (the webhook
    # server and its certificate are not serving yet); long enough to be seen retried
    webhook_race: float = 2.0
    # API: watch bookmarks period
    bookmark_interval: float = 60.0
    # kubelet: how often each node renews its Lease in kube-node-lease
    lease_renew_interval: float = 10.0
    # node lifecycle controller (kube-controller-manager flags, Kubernetes 1.31):
    # --node-monitor-period 5 s, how often node health is checked;
    # --node-monitor-grace-period 40 s up to 1.31 (50 s from 1.32, kubernetes/kubernetes PR
    # 126287): no Lease renewal for this long and the node is Unknown (NotReady)
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 40.0
    # at most this many Event objects are kept (oldest removed first)
    event_limit: int = 1000
    # controllers: the most keys one controller reconciles in one turn of the event loop, and
    # the most pods a ReplicaSet creates or deletes (or the scheduler binds) per turn; between
    # turns the loop answers the API (/healthz, lists, watches). A large scale proceeds in
    # batches of at most this many (base.Controller, workloads.ReplicaSetController)
    tick_bound: int = 100
    # fault injection
    ignore_sigterm: bool = False  # containers ignore SIGTERM: killed (137) at the end of grace
    crash_images: list[str] = field(default_factory=list)  # images whose containers crash on start
    api_delay: float = 0.0  # added to controller reactions (simulates a slow control plane)

    @classmethod
    def fast(cls) -> SimSettings:
        """Settings for tests: every delay near zero, no webhook race."""
        return cls(
            schedule_delay=0.0,
            accept_delay=0.005,
            sandbox_delay=0.01,
            pull_delay=0.01,
            start_delay=0.01,
            ready_delay=0.01,
            terminate_delay=0.3,
            remove_delay=0.01,
            backoff_delay=0.05,
            job_backoff=0.05,
            metallb_delay=0.0,
            webhook_race=0.0,
            bookmark_interval=5.0,
        )

    def replace(self, **changes: Any) -> SimSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SimSettings:
        data = json.loads(text) if text else {}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
