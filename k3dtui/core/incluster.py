"""In-cluster load: the load generator run by Kubernetes itself, as an Indexed Job.

``InClusterLoad`` has the calls of ``LoadGenerator`` (``start``, ``latest``, ``wait``,
``stop``, ``close``...) and gives the same ``LoadSnapshot``, plus ``per_worker``. A run:

1. deletes what earlier runs left in the app's namespace, when their k3dtui is gone (only
   objects labelled ``app.kubernetes.io/managed-by=k3dtui,app.kubernetes.io/component=
   load-generator``; see ``cleanup_leftovers``);
2. creates the ConfigMap ``k3dtui-load-RUN`` with the worker's code (``worker.py``, from
   ``core/incluster_worker.py``, and ``loadworker.py``: standard library only);
3. creates the Job ``k3dtui-load-RUN`` (``parallelism = completions = workers``, Indexed,
   ``backoffLimit: 0``, ``activeDeadlineSeconds`` = the run's duration + 60,
   ``ttlSecondsAfterFinished: 60``) and makes the ConfigMap owned by it (the garbage
   collector removes it with the Job);
4. waits for the worker pods (bounded; ImagePullBackOff and unschedulable pods are said in
   one line), then follows each worker's log through the API, a thread per pod (the lines
   are cumulative: a dropped stream is resumed with ``tailLines=1`` and duplicates are
   dropped by their ``seq``);
5. merges the workers' latest lines: counts summed, latency percentiles from the summed
   histograms, each answering pod's node from its ``spec.nodeName`` (read through the API);
6. at the end, on ``stop()`` (ctrl+c) and on failure, deletes the Job (propagation
   ``Background``: its pods go with it) and the ConfigMap.

While a run lives, its Job carries the host and pid of the k3dtui that made it and a
heartbeat annotation renewed every few seconds; a later start deletes only runs whose k3dtui
is gone (same host and a dead pid, or a heartbeat older than ``STALE_AFTER``).

In-cluster load changes the cluster: ``InClusterLoad(..., allow_changes=False)`` refuses
(``UsageError``), so an attached, read-only k3dtui cannot start one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.load import validate_settings
from k3dtui.core.loadworker import ERROR_KINDS, identity_missing, percentiles
from k3dtui.core.models import LoadSettings, LoadSnapshot, WorkerView
from k3dtui.core.process import pid_alive

DEFAULT_WORKER_IMAGE = "python:3.13-slim"
MIN_WORKERS = 1
MAX_WORKERS = 50
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
RUN_LABEL = "k3dtui/load-run"
LEFTOVER_SELECTOR = f"{MANAGED_BY}=k3dtui,{COMPONENT}=load-generator"
ANN_HOST = "k3dtui/host"
ANN_PID = "k3dtui/pid"
ANN_HEARTBEAT = "k3dtui/heartbeat"  # epoch seconds, renewed while the run lives
HEARTBEAT_EVERY = 5.0  # s
STALE_AFTER = 30.0  # s without a heartbeat: the run's k3dtui is gone
DEADLINE_MARGIN = 60  # s added to the run's duration for activeDeadlineSeconds
TTL_AFTER_FINISHED = 60  # s
REQUESTS_ONLY_CAP = 600.0  # s: a run bounded by a request count still ends by then
START_TIMEOUT = 120.0  # s for the worker pods to start (an image pull included)
CODE_DIR = "/opt/k3dtui-load"
CONTAINER = "worker"
SETTINGS_ENV = "K3DTUI_LOAD"
STUCK_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CreateContainerError", "RunContainerError")
POD_NODES_EVERY = 2.0  # s between reads of the app's pods (their nodes)
FOLLOW_RETRY = 0.5  # s before a dropped log stream is resumed
DELETE_WAIT = 15.0  # s ``stop`` waits for the worker pods to be gone


# --- the objects ---------------------------------------------------------------------
def new_run_id() -> str:
    """8 lowercase hex characters."""
    return secrets.token_hex(4)


def run_name(run: str) -> str:
    return f"k3dtui-load-{run}"


def run_labels(run: str) -> dict[str, str]:
    return {MANAGED_BY: "k3dtui", COMPONENT: "load-generator", RUN_LABEL: run}


def service_url(app: AppIdentity, port: int | None = None) -> str:
    """The Service's cluster DNS name: ``http://<svc>.<ns>.svc.cluster.local:<port>/``."""
    return f"http://{app.service}.{app.namespace}.svc.cluster.local:{port or app.service_port}/"


def worker_code() -> dict[str, str]:
    """The ConfigMap's data: the entry point and the worker it imports (standard library)."""
    here = Path(__file__).parent
    return {
        "worker.py": (here / "incluster_worker.py").read_text(encoding="utf-8"),
        "loadworker.py": (here / "loadworker.py").read_text(encoding="utf-8"),
    }


def owner_annotations(now: float | None = None) -> dict[str, str]:
    """Who runs this load run: the host, the pid and the heartbeat of the moment."""
    return {ANN_HOST: socket.gethostname(), ANN_PID: str(os.getpid()),
            ANN_HEARTBEAT: str(int(time.time() if now is None else now))}


def run_duration(settings: LoadSettings) -> float:
    """Seconds the workers run at most (a request-bounded run gets ``REQUESTS_ONLY_CAP``)."""
    return float(settings.duration) if settings.duration is not None else REQUESTS_ONLY_CAP


def worker_settings(settings: LoadSettings, workers: int) -> dict[str, Any]:
    """``K3DTUI_LOAD``: the run's totals; each worker takes its share by its index."""
    return {
        "url": settings.url, "mode": settings.mode, "concurrency": settings.concurrency,
        "rate": settings.rate, "duration": run_duration(settings), "requests": settings.requests,
        "timeout": settings.timeout, "identity": settings.identity, "workers": workers,
    }


def config_map(run: str, namespace: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": run_name(run), "namespace": namespace, "labels": run_labels(run),
                     "annotations": dict(annotations or {})},
        "data": worker_code(),
    }


def job(run: str, namespace: str, settings: LoadSettings, *, workers: int, image: str = DEFAULT_WORKER_IMAGE,
        annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The load Job, as the contract (notes: incluster-contract) gives it."""
    labels = run_labels(run)
    env: list[dict[str, Any]] = [
        {"name": SETTINGS_ENV, "value": json.dumps(worker_settings(settings, workers), separators=(",", ":"))},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run_name(run), "namespace": namespace, "labels": labels,
                     "annotations": dict(annotations or {})},
        "spec": {
            "parallelism": workers,
            "completions": workers,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(run_duration(settings)) + DEADLINE_MARGIN,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 2,
                    "enableServiceLinks": False,
                    "containers": [{
                        "name": CONTAINER,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-u", f"{CODE_DIR}/worker.py"],
                        "env": env,
                        "volumeMounts": [{"name": "code", "mountPath": CODE_DIR, "readOnly": True}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                    }],
                    "volumes": [{"name": "code", "configMap": {"name": run_name(run)}}],
                },
            },
        },
    }


def owner_patch(job_obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ConfigMap's patch that makes the Job its owner."""
    meta = job_obj["metadata"]
    return {"metadata": {"ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
        "blockOwnerDeletion": False,
    }]}}


def validate_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise UsageError(f"--workers must be a whole number, not {workers!r}: e.g. --workers 2")
    if not MIN_WORKERS <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between {MIN_WORKERS} and {MAX_WORKERS}, not {workers}: e.g. --workers 2")
    return workers


def validate_image(image: str) -> str:
    if not image or any(c.isspace() for c in image) or image != image.strip():
        raise UsageError(f"--worker-image must be an image reference, not {image!r}: "
                         f"e.g. --worker-image {DEFAULT_WORKER_IMAGE}")
    return image


# --- the workers' lines, merged ------------------------------------------------------
def parse_line(text: str) -> dict[str, Any] | None:
    """A worker's JSON line (None for anything else on its log)."""
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "seq" in obj else None


def minus(line: Mapping[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
    """A worker's cumulative line counted from ``base`` (its line at a reset) on."""
    out = dict(line)
    if not base:
        return out
    for key in ("requests", "responses", "elapsed"):
        out[key] = max(0, line.get(key, 0) - base.get(key, 0))
    for key in ("status", "errors", "per_pod", "client_addrs", "hist"):
        now, then = dict(line.get(key) or {}), dict(base.get(key) or {})
        out[key] = {k: int(v) - int(then.get(k, 0)) for k, v in now.items() if int(v) - int(then.get(k, 0)) > 0}
    return out


def _add(into: dict[Any, int], more: Mapping[Any, Any]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + int(value)


def merge_lines(
    lines: Mapping[str, Mapping[str, Any]],
    *,
    settings: LoadSettings,
    pod_nodes: Mapping[str, str] | None = None,
    worker_nodes: Mapping[str, str] | None = None,
    running: bool = True,
    finished_reason: str = "",
    rps_history: tuple[float, ...] = (),
    gone: Iterable[str] = (),
) -> LoadSnapshot:
    """The workers' latest lines (worker pod → line) → one ``LoadSnapshot``.

    Each answering pod's node is ``pod_nodes`` (from the API) first, else what the workers
    read in its X-Node header, else "unknown". ``worker_nodes``: worker pod → its node."""
    requests = responses = 0
    rps = elapsed = 0.0
    status: dict[int, int] = {}
    errors: dict[str, int] = {}
    per_pod: dict[str, int] = {}
    client_addrs: dict[str, int] = {}
    hist: dict[int, int] = {}
    window: dict[int, int] = {}
    header_nodes: dict[str, str] = {}
    per_worker: dict[str, WorkerView] = {}
    for pod, line in sorted(lines.items()):
        n_errors = sum(int(v) for v in (line.get("errors") or {}).values())
        worker_node = str((worker_nodes or {}).get(pod) or line.get("node") or "")
        failed = str(line.get("failed") or "")
        per_worker[pod] = WorkerView(
            pod=pod, node=worker_node, requests=int(line.get("requests", 0)),
            responses=int(line.get("responses", 0)), errors=n_errors, rps=float(line.get("rps", 0.0)),
            running=not line.get("final"),
            finished_reason=f"error: {failed}" if failed else str(line.get("finished_reason") or ""),
        )
        requests += int(line.get("requests", 0))
        responses += int(line.get("responses", 0))
        rps += float(line.get("rps", 0.0))
        elapsed = max(elapsed, float(line.get("elapsed", 0.0)))
        _add(status, {int(k): v for k, v in (line.get("status") or {}).items()})
        _add(errors, line.get("errors") or {})
        _add(per_pod, line.get("per_pod") or {})
        _add(client_addrs, line.get("client_addrs") or {})
        _add(hist, {int(k): v for k, v in (line.get("hist") or {}).items()})
        _add(window, {int(k): v for k, v in (line.get("window_hist") or {}).items()})
        header_nodes.update({str(k): str(v) for k, v in (line.get("pod_nodes") or {}).items()})
    per_node: dict[str, int] = {}
    for pod, count in per_pod.items():
        node = (pod_nodes or {}).get(pod) or header_nodes.get(pod) or "unknown"
        per_node[node] = per_node.get(node, 0) + count
    # the paths: each worker's node (where its connections enter kube-proxy) → serving node,
    # and how many were served on another node than the asking worker's (kube-proxy's ClusterIP
    # rules pick any ready endpoint: with pods on k nodes about (k-1)/k cross); counted where
    # both nodes are known
    crossed = 0
    paths: dict[str, dict[str, int]] = {}
    for pod, line in lines.items():
        worker_node = per_worker[pod].node
        for served_by, count in (line.get("per_pod") or {}).items():
            node = (pod_nodes or {}).get(served_by) or header_nodes.get(served_by) or ""
            if worker_node and node:
                row = paths.setdefault(worker_node, {})
                row[node] = row.get(node, 0) + int(count)
                crossed += int(count) if node != worker_node else 0
    return LoadSnapshot(
        running=running,
        mode=settings.mode,
        concurrency=settings.concurrency,
        elapsed=elapsed,
        requests=requests,
        responses=responses,
        rps=round(rps, 1),
        rps_history=rps_history,
        latency_ms=percentiles(window, sum(window.values())),
        latency_ms_total=percentiles(hist, responses),
        status=status,
        errors={k: v for k, v in errors.items() if k in ERROR_KINDS or v},
        per_pod=per_pod,
        per_node=per_node,
        gone_pods=frozenset(gone),
        finished_reason=finished_reason,
        client_addrs=client_addrs,
        paths=paths,
        cross_node=crossed,
        identity_missing=identity_missing(settings.identity, per_pod, responses),
        per_worker=per_worker,
    )


# --- leftovers -------------------------------------------------------------------------
def run_alive(meta: Any, *, now: float, host: str | None = None,
              pid_alive: Callable[[int], bool] = pid_alive) -> bool:
    """Whether the k3dtui that made an object (its metadata) still runs: same host and a
    live pid, else a heartbeat younger than ``STALE_AFTER``. ``now``: epoch seconds."""
    annotations = dict(getattr(meta, "annotations", None) or {})
    here = socket.gethostname() if host is None else host
    if annotations.get(ANN_HOST) == here:
        try:
            return pid_alive(int(annotations.get(ANN_PID, "")))
        except ValueError:
            pass
    try:
        beat = float(annotations.get(ANN_HEARTBEAT, ""))
    except ValueError:
        return False
    return now - beat < STALE_AFTER


def _has_our_labels(meta: Any) -> bool:
    labels = dict(getattr(meta, "labels", None) or {})
    return labels.get(MANAGED_BY) == "k3dtui" and labels.get(COMPONENT) == "load-generator"


def cleanup_leftovers(batch: Any, core: Any, namespace: str, *, now: float | None = None,
                      host: str | None = None, pid_alive: Callable[[int], bool] = pid_alive,
                      keep: str = "") -> list[str]:
    """Delete the load Jobs and ConfigMaps of runs whose k3dtui is gone, in ``namespace``
    (only objects with both of k3dtui's load labels; ``keep``: a run id never to delete).
    Returns what it deleted (``job/NAME``, ``configmap/NAME``). ``now``: epoch seconds."""
    now = time.time() if now is None else now
    jobs = batch.list_namespaced_job(namespace, label_selector=LEFTOVER_SELECTOR).items
    alive_runs: set[str] = set()
    dead_jobs: list[str] = []
    for obj in jobs:
        meta = obj.metadata
        run = dict(meta.labels or {}).get(RUN_LABEL, "")
        if not _has_our_labels(meta):
            continue
        if run == keep or run_alive(meta, now=now, host=host, pid_alive=pid_alive):
            alive_runs.add(run)
        else:
            dead_jobs.append(str(meta.name))
    # the ConfigMaps first: a dead run's goes with its Job anyway (owner), so it is named
    # here before the garbage collector takes it
    deleted_cms: list[str] = []
    for obj in core.list_namespaced_config_map(namespace, label_selector=LEFTOVER_SELECTOR).items:
        meta = obj.metadata
        run = dict(meta.labels or {}).get(RUN_LABEL, "")
        if not _has_our_labels(meta) or run == keep or run in alive_runs:
            continue
        if run_alive(meta, now=now, host=host, pid_alive=pid_alive):
            continue
        with contextlib.suppress(Exception):
            core.delete_namespaced_config_map(meta.name, namespace)
            deleted_cms.append(f"configmap/{meta.name}")
    deleted: list[str] = []
    for name in dead_jobs:
        with contextlib.suppress(Exception):
            _delete_job(batch, name, namespace)
            deleted.append(f"job/{name}")
    return deleted + deleted_cms


def _delete_job(batch: Any, name: str, namespace: str) -> None:
    from kubernetes import client

    try:
        batch.delete_namespaced_job(name, namespace, body=client.V1DeleteOptions(propagation_policy="Background"))
    except Exception as exc:
        from k3dtui.core.kubeerrors import is_status

        if not is_status(exc, 404):
            raise


# --- the run ---------------------------------------------------------------------------
def _container_problem(pod: Any) -> tuple[str, str] | None:
    """(reason, message) when the pod's worker container cannot start."""
    for cs in (getattr(pod.status, "container_statuses", None) or []):
        waiting = getattr(getattr(cs, "state", None), "waiting", None)
        if waiting is not None and waiting.reason in STUCK_REASONS:
            return str(waiting.reason), str(waiting.message or "")
    return None


def _unschedulable(pod: Any) -> str:
    for cond in (getattr(pod.status, "conditions", None) or []):
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"{cond.reason or 'not scheduled'}: {cond.message or ''}".rstrip(": ")
    return ""


class InClusterLoad:
    """One in-cluster load run at a time, with ``LoadGenerator``'s calls."""

    def __init__(
        self,
        settings: LoadSettings,
        *,
        kubeconfig: Path | str,
        context: str | None = None,
        app: AppIdentity = APP,
        workers: int = 2,
        image: str = DEFAULT_WORKER_IMAGE,
        url: str | None = None,
        allow_changes: bool = True,
        start_timeout: float = START_TIMEOUT,
        api_client: Callable[[], Any] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        if not allow_changes:
            raise UsageError(
                f"in-cluster load creates a Job and a ConfigMap in namespace {app.namespace}: that changes the cluster",
                "give --allow-changes to allow it, or run the load from this machine (without --in-cluster)",
            )
        self.app = app
        self.workers = validate_workers(workers)
        self.image = validate_image(image)
        self.url = url or ""
        self.settings = self._with_url(settings)
        validate_settings(self.settings)
        if self.settings.requests is not None and self.settings.requests < self.workers:
            raise UsageError(f"--requests ({self.settings.requests}) must be at least --workers ({self.workers}): "
                             "each worker sends at least one request")
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.start_timeout = start_timeout
        self._api_client = api_client
        self.on_status = on_status or (lambda _text: None)
        self.running = False
        self.run = ""
        self.deleted: list[str] = []  # leftovers the last start deleted
        self.cleanup_problem = ""  # what could not be deleted at the end ("" when all went)
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lines: dict[str, dict[str, Any]] = {}
        self._baseline: dict[str, dict[str, Any]] = {}  # each worker's line at the last reset()
        self._worker_nodes: dict[str, str] = {}
        self._pod_nodes: dict[str, str] = {}
        self._gone: set[str] = set()
        self._history: list[float] = []
        self._last = self._empty()
        self._job_uid = ""
        self._failure = ""
        self._cleaned = True
        self._started_at = 0.0

    def _with_url(self, settings: LoadSettings) -> LoadSettings:
        return dataclasses.replace(settings, url=self.url or service_url(self.app))

    @property
    def worker_pid(self) -> int | None:
        return None

    @property
    def job_name(self) -> str:
        return run_name(self.run) if self.run else ""

    def _client(self) -> Any:
        if self._api_client is not None:
            return self._api_client()
        from k3dtui.core.kube import make_api_client

        return make_api_client(self.kubeconfig, self.context)

    def _empty(self, running: bool = False, reason: str = "") -> LoadSnapshot:
        s = self.settings
        return LoadSnapshot(running=running, mode=s.mode, concurrency=s.concurrency, elapsed=0.0,
                            requests=0, responses=0, rps=0.0, finished_reason=reason)

    # --- lifecycle ---
    def start(self) -> None:
        """Create the run's ConfigMap and Job, wait for the worker pods and follow them.

        Blocks until the workers run (at most ``start_timeout``); on any failure, and on
        KeyboardInterrupt, deletes what it created before raising."""
        from kubernetes import client

        from k3dtui.core.kubeerrors import translate

        with self._lock:
            if self.running:
                return
            self._stop_threads()
            self._reset_run()
            ns = self.app.namespace
            api = self._client()
            batch: Any = client.BatchV1Api(api)
            core: Any = client.CoreV1Api(api)
            self.run = new_run_id()
            self._cleaned = False
            try:
                self.deleted = cleanup_leftovers(batch, core, ns, keep=self.run)
                annotations = owner_annotations()
                self.on_status(f"creating Job {self.job_name} ({self.workers} workers, {self.image}) in {ns}")
                core.create_namespaced_config_map(ns, config_map(self.run, ns, annotations))
                made = batch.create_namespaced_job(
                    ns, job(self.run, ns, self.settings, workers=self.workers, image=self.image,
                            annotations=annotations))
                self._job_uid = str(made.metadata.uid)
                core.patch_namespaced_config_map(
                    run_name(self.run), ns, owner_patch({"metadata": {"name": self.job_name, "uid": self._job_uid}}))
                pods = self._wait_for_pods(core, batch)
                self._read_pod_nodes(core)
            except BaseException as exc:
                self._delete_run(api)
                if isinstance(exc, K3dtuiError | KeyboardInterrupt):
                    raise
                if isinstance(exc, Exception):
                    raise translate(exc, "in-cluster load") from None
                raise
            finally:
                with contextlib.suppress(Exception):
                    api.close()
            self.running = True
            self._started_at = time.monotonic()
            self._last = self._empty(running=True)
            for pod in pods:
                self._spawn(self._follow, pod, name=f"k3dtui-load-log-{pod}")
            self._spawn(self._keeper, name="k3dtui-load-keeper")

    def _reset_run(self) -> None:
        self._halt = threading.Event()
        self._threads = []
        self._lines = {}
        self._worker_nodes = {}
        self._history = []
        self._baseline = {}
        self._failure = ""

    def _spawn(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _wait_for_pods(self, core: Any, batch: Any) -> list[str]:
        """The worker pods' names once each has started (bounded by ``start_timeout``)."""
        ns = self.app.namespace
        deadline = time.monotonic() + self.start_timeout
        why = "the Job has not made its pods yet"
        said = ""
        while True:
            pods = core.list_namespaced_pod(ns, label_selector=f"{RUN_LABEL}={self.run}").items
            started: list[str] = []
            pending: list[str] = []
            for pod in pods:
                name = str(pod.metadata.name)
                if pod.spec.node_name:
                    self._worker_nodes[name] = str(pod.spec.node_name)
                problem = _container_problem(pod)
                if problem is not None:
                    reason, message = problem
                    raise K3dtuiError(
                        f"in-cluster load: worker pod {name} cannot start its container "
                        f"({reason}{': ' + message if message else ''})",
                        f"check that the cluster can pull {self.image}, or give --worker-image with an image it can pull",
                    )
                if pod.status.phase in ("Running", "Succeeded", "Failed"):
                    started.append(name)
                else:
                    pending.append(name)
                    unsched = _unschedulable(pod)
                    why = f"pod {name} is {pod.status.phase}" + (f" ({unsched})" if unsched else "")
            if len(started) >= self.workers:
                return sorted(started)[: self.workers]
            if len(pods) < self.workers and not pending:
                why = f"the Job made {len(pods)} of {self.workers} pods"
            status = batch.read_namespaced_job_status(self.job_name, ns).status
            for cond in (getattr(status, "conditions", None) or []):
                if cond.type == "Failed" and cond.status == "True":
                    raise K3dtuiError(f"in-cluster load: the Job {self.job_name} failed ({cond.reason}: {cond.message})",
                                      "see `kubectl describe job` in the namespace")
            text = f"waiting for {self.workers} worker pods: {len(started)} started; {why}"
            if text != said:
                self.on_status(text)
                said = text
            if time.monotonic() >= deadline:
                raise K3dtuiError(
                    f"in-cluster load: the worker pods did not start within {self.start_timeout:g} s ({why})",
                    f"each worker requests 100m CPU and 64Mi: give fewer --workers, or check that the "
                    f"cluster can pull {self.image} (--worker-image)",
                )
            if self._halt.wait(0.25):
                raise K3dtuiError("in-cluster load: stopped before its workers started")

    def _follow(self, pod: str) -> None:
        """Follow one worker's log (a thread of its own, with its own client)."""
        from kubernetes import client

        api = self._client()
        try:
            self.follow_log(client.CoreV1Api(api), pod)
        finally:
            with contextlib.suppress(Exception):
                api.close()

    def follow_log(self, core: Any, pod: str) -> None:
        """Read one worker's lines until its final one. The lines are cumulative: a stream
        that drops is resumed with ``tailLines=1`` (the newest line is all that matters), and a
        line seen before (its ``seq``) is skipped."""
        from k3dtui.core.kubeerrors import is_status

        ns = self.app.namespace
        last_seq = -1
        first = True
        while not self._halt.is_set():
            resp: Any = None
            try:
                kwargs: dict[str, Any] = {} if first else {"tail_lines": 1}
                resp = core.read_namespaced_pod_log(
                    pod, ns, container=CONTAINER, follow=True, _preload_content=False,
                    _request_timeout=(10, 60), **kwargs)
                first = False
                buf = b""
                for chunk in resp.stream(4096, decode_content=True):
                    if self._halt.is_set():
                        break
                    buf += chunk
                    while b"\n" in buf:
                        raw, _, buf = buf.partition(b"\n")
                        line = parse_line(raw.decode("utf-8", "replace"))
                        if line is not None and int(line["seq"]) > last_seq:
                            last_seq = int(line["seq"])
                            self._accept(pod, line)
                if buf:
                    line = parse_line(buf.decode("utf-8", "replace"))
                    if line is not None and int(line["seq"]) > last_seq:
                        last_seq = int(line["seq"])
                        self._accept(pod, line)
            except Exception as exc:
                if is_status(exc, 404):
                    self._worker_gone(pod, "its pod was deleted")
                    return
            finally:
                if resp is not None:
                    with contextlib.suppress(Exception):
                        resp.release_conn()
            line_now = self._lines.get(pod)
            if line_now is not None and line_now.get("final"):
                return
            # the stream ended without the final line: the pod may have ended, or the
            # stream dropped
            try:
                phase = core.read_namespaced_pod(pod, ns).status.phase
            except Exception as exc:
                if is_status(exc, 404):
                    self._worker_gone(pod, "its pod was deleted")
                    return
                phase = ""
            if phase in ("Succeeded", "Failed") and not first:
                if self._halt.wait(FOLLOW_RETRY):
                    return
                self._read_rest(core, pod, last_seq, phase)
                return
            self._halt.wait(FOLLOW_RETRY)

    def _read_rest(self, core: Any, pod: str, last_seq: int, phase: str) -> None:
        """An ended worker's last line, read once (it ended while the stream was down)."""
        try:
            text = core.read_namespaced_pod_log(pod, self.app.namespace, container=CONTAINER, tail_lines=5)
        except Exception:
            text = ""
        for raw in str(text).splitlines():
            line = parse_line(raw)
            if line is not None and int(line["seq"]) > last_seq:
                last_seq = int(line["seq"])
                self._accept(pod, line)
        if not (self._lines.get(pod) or {}).get("final"):
            self._worker_gone(pod, f"it ended ({phase}) without its final figures")

    def _worker_gone(self, pod: str, why: str) -> None:
        with self._lock:
            line = dict(self._lines.get(pod) or {"seq": -1})
            line["final"] = True
            line.setdefault("failed", f"worker {pod}: {why}")
            self._lines[pod] = line
            self._merge()

    def _accept(self, pod: str, line: dict[str, Any]) -> None:
        with self._lock:
            if line.get("node"):
                self._worker_nodes.setdefault(pod, str(line["node"]))
            self._lines[pod] = line
            self._merge()

    def _merge(self) -> None:
        lines = {pod: minus(line, self._baseline.get(pod)) for pod, line in self._lines.items()}
        done = len(lines) >= self.workers and all(line.get("final") for line in lines.values())
        reason = ""
        if done:
            failures = [str(line["failed"]) for line in lines.values() if line.get("failed")]
            reasons = {str(line.get("finished_reason") or "") for line in lines.values()} - {""}
            reason = f"error: {failures[0]}" if failures else (
                "stopped" if "stopped" in reasons else (sorted(reasons)[0] if reasons else "duration"))
        snap = merge_lines(lines, settings=self.settings, pod_nodes=self._pod_nodes,
                           worker_nodes=self._worker_nodes, running=self.running and not done,
                           finished_reason=reason, gone=self._gone)
        if not self._history or snap.elapsed >= len(self._history) * 0.5:
            self._history.append(snap.rps)
            del self._history[:-300]
        self._last = dataclasses.replace(snap, rps_history=tuple(self._history))
        if done:
            self.running = False

    def _keeper(self) -> None:
        """Renew the heartbeat and read the app's pods' nodes while the run lives."""
        from kubernetes import client

        ns = self.app.namespace
        api = self._client()
        batch: Any = client.BatchV1Api(api)
        core: Any = client.CoreV1Api(api)
        beat = 0.0
        try:
            while self.running and not self._halt.is_set():
                now = time.monotonic()
                if now - beat >= HEARTBEAT_EVERY:
                    beat = now
                    with contextlib.suppress(Exception):
                        batch.patch_namespaced_job(self.job_name, ns, {"metadata": {"annotations": {
                            ANN_HEARTBEAT: str(int(time.time()))}}})
                self._read_pod_nodes(core)
                self._halt.wait(POD_NODES_EVERY)
        finally:
            with contextlib.suppress(Exception):
                api.close()

    def _read_pod_nodes(self, core: Any) -> None:
        """The app's pods' nodes (``spec.nodeName``): where each answering pod runs."""
        with contextlib.suppress(Exception):
            pods = core.list_namespaced_pod(self.app.namespace, label_selector=self.app.label_selector).items
            nodes = {str(p.metadata.name): str(p.spec.node_name) for p in pods if p.spec.node_name}
            with self._lock:
                self._pod_nodes.update(nodes)

    def stop(self) -> None:
        """End the run now (delete its Job and ConfigMap); the last figures stay readable."""
        self._halt.set()  # first: a start() under way gives up (and deletes what it made)
        with self._lock:
            was = self.running
            self.running = False
            if was:
                self._last = dataclasses.replace(self._last, running=False,
                                                 finished_reason=self._last.finished_reason or "stopped")
        self._stop_threads()
        self._cleanup()

    def _stop_threads(self) -> None:
        self._halt.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(3.0)

    def _cleanup(self, wait: float = DELETE_WAIT) -> None:
        if self._cleaned or not self.run:
            return
        try:
            api = self._client()
        except K3dtuiError:
            return
        try:
            self._delete_run(api, wait=wait)
        finally:
            with contextlib.suppress(Exception):
                api.close()

    def _delete_run(self, api: Any, wait: float = DELETE_WAIT) -> None:
        """Delete the run's Job (Background propagation) and ConfigMap; wait (bounded) for its
        pods to go, and delete any the garbage collector left."""
        from kubernetes import client

        from k3dtui.core.kubeerrors import describe, is_status

        ns = self.app.namespace
        batch: Any = client.BatchV1Api(api)
        core: Any = client.CoreV1Api(api)
        problems: list[str] = []
        try:
            _delete_job(batch, self.job_name, ns)
        except Exception as exc:
            problems.append(f"job/{self.job_name}: {describe(exc)}")
        try:
            core.delete_namespaced_config_map(run_name(self.run), ns)
        except Exception as exc:
            if not is_status(exc, 404):
                problems.append(f"configmap/{run_name(self.run)}: {describe(exc)}")
        if problems:  # the Job's deadline and TTL still end it; the next start deletes it
            self.cleanup_problem = (f"could not delete {'; '.join(problems)} (delete them with "
                                    f"`kubectl delete job,configmap -n {ns} -l {RUN_LABEL}={self.run}`)")
        selector = f"{RUN_LABEL}={self.run},{LEFTOVER_SELECTOR}"
        deadline = time.monotonic() + wait
        while True:
            try:
                left = core.list_namespaced_pod(ns, label_selector=selector).items
            except Exception:
                break
            if not left:
                break
            if time.monotonic() >= deadline:
                for pod in left:  # ours (the run's labels): the garbage collector was slow
                    with contextlib.suppress(Exception):
                        core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=0)
                break
            time.sleep(0.25)
        self._cleaned = True

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> InClusterLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- changes ---
    def update(self, **changes: Any) -> None:
        """Change settings for the next run (an in-cluster run keeps its settings)."""
        with self._lock:
            try:
                new = dataclasses.replace(self.settings, **changes)
            except TypeError as exc:
                raise UsageError(f"unknown load setting: {exc}") from None
            new = self._with_url(new) if "url" not in changes or not changes["url"] else new
            validate_settings(new)
            self.settings = new

    def reset(self) -> None:
        """Zero the counts (the workers go on): figures from now on are counted from each
        worker's line of this moment."""
        with self._lock:
            self._baseline = {pod: dict(line) for pod, line in self._lines.items()}
            self._history = []
            self._merge()

    def set_announcer(self, node: str) -> None:
        """In-cluster traffic enters through the Service's ClusterIP: no announcing node."""

    def mark_gone(self, pods: Iterable[str]) -> None:
        with self._lock:
            self._gone.update(pods)
            self._last = dataclasses.replace(self._last, gone_pods=frozenset(self._gone))

    # --- reading ---
    def latest(self) -> LoadSnapshot:
        return self._last

    def wait(self, timeout: float | None = None) -> LoadSnapshot:
        """Block until every worker has given its final figures (or ``timeout`` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        limit = run_duration(self.settings) + DEADLINE_MARGIN
        while self.running:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if time.monotonic() - self._started_at > limit:  # the Job's deadline passed
                with self._lock:
                    self.running = False
                    self._last = dataclasses.replace(self._last, running=False,
                                                     finished_reason="error: the workers stopped reporting")
                break
            self._halt.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic())))
        if not self.running:
            self.stop()
        return self._last
