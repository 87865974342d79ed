"""What a person can do to the cluster's nodes: list, stop and start (the node's container),
cordon and uncordon, drain.

- stop/start go through the provider: ``k3d node stop|start k3d-<name>-<role>-<n>`` on k3d,
  the simulated cluster's own node container otherwise.
- cordon sets ``spec.unschedulable`` (the node lifecycle controller adds the
  ``node.kubernetes.io/unschedulable:NoSchedule`` taint), uncordon clears it.
- drain cordons, then evicts the app's pods on the node through the Eviction API
  (``policy/v1``), as ``kubectl drain --ignore-daemonsets`` does: DaemonSet pods are skipped,
  an eviction a PodDisruptionBudget forbids (429) is retried every ``retry`` seconds until
  ``timeout``, and the drain waits for the evicted pods to be gone. Pods that are not the
  app's are left where they are and named.

Every action returns an ``ActionResult``; none raises for a cluster-side problem.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client

from k3dtui.core.actions import REQUEST_TIMEOUT, ActionResult, failure
from k3dtui.core.clock import MONOTONIC, Clock
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeerrors import is_status, translate

Obj = dict[str, Any]
LineSink = Callable[[str], None]

# kubectl drain retries a refused eviction every 5 s (staging/src/k8s.io/kubectl/pkg/drain/drain.go)
EVICTION_RETRY = 5.0
DRAIN_TIMEOUT = 120.0
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
# kube-controller-manager --node-monitor-grace-period: 40 s up to Kubernetes 1.31 (k3s v1.31),
# 50 s from 1.32 (kubernetes/kubernetes PR 126287)
NODE_MONITOR_GRACE_PERIOD = 40.0
# the app's tolerationSeconds for not-ready and unreachable (manifests/app.yaml)
APP_TOLERATION_SECONDS = 15.0
# A kubelet renews its Lease every 10 s (nodeLeaseDurationSeconds 40 / 4); two missed renewals
# mean it is not just late (kubernetes.io/docs/concepts/architecture/leases).
HEARTBEAT_LATE = 20.0


def node_story(view: Any, now: float, stopped_at: float | None) -> str:
    """One line on where a node is in its failure: stopped and when it goes NotReady, NotReady
    for how long and when its pods are evicted, cordoned; "" for a healthy node. ``view`` is a
    ``core.models.NodeView``; ``stopped_at`` when this k3dtui stopped it."""
    parts: list[str] = []
    silent = now - view.heartbeat if view.heartbeat else 0.0
    if view.ready and view.heartbeat and silent > HEARTBEAT_LATE:
        # no Lease renewal for a while, wherever the node was stopped from
        left = view.heartbeat + NODE_MONITOR_GRACE_PERIOD - now
        parts.append(f"no heartbeat for {silent:.0f}s · "
                     + (f"NotReady in ~{left:.0f}s" if left > 0 else "NotReady any moment"))
    elif view.ready:
        if stopped_at is not None:
            left = stopped_at + NODE_MONITOR_GRACE_PERIOD - now
            parts.append(f"stopped {max(0.0, now - stopped_at):.0f}s ago, no heartbeat · "
                         + (f"NotReady in ~{left:.0f}s" if left > 0 else "NotReady any moment"))
    else:
        since = f" {max(0.0, now - view.ready_since):.0f}s" if view.ready_since else ""
        parts.append(f"NotReady{since}" + (f", last heartbeat {silent:.0f}s ago" if view.heartbeat else ""))
        if view.tainted_at:
            left = view.tainted_at + APP_TOLERATION_SECONDS - now
            parts.append(f"pods unreachable, evicted in {left:.0f}s" if left > 0 else "pods evicted, moving")
    if view.unschedulable:
        parts.append("cordoned")
    return " · ".join(parts)


class NodePower(Protocol):
    """A provider that can stop and start a node's container."""

    async def stop_node(self, node: str, log: LineSink) -> None: ...

    async def start_node(self, node: str, log: LineSink) -> None: ...


def node_name_pattern(cluster: str) -> re.Pattern[str]:
    """k3d's node names: ``k3d-<cluster>-server-<n>`` and ``k3d-<cluster>-agent-<n>``."""
    return re.compile(rf"^k3d-{re.escape(cluster)}-(server|agent)-(\d+)$")


_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def valid_node_name(node: str) -> bool:
    """A Kubernetes object name (DNS-1123 subdomain, at most 253 characters)."""
    return 0 < len(node) <= 253 and bool(_NODE_NAME.match(node))


def check_node_name(cluster: str, node: str) -> str:
    """Why ``node`` cannot be one of the cluster's nodes ("" when it can). ``cluster`` ""
    (an attached cluster, whose nodes k3dtui did not name): any valid object name."""
    if not cluster:
        return "" if valid_node_name(node) else f"{node!r} is not a valid node name"
    if node_name_pattern(cluster).match(node):
        return ""
    return (f"{node!r} is not a node of cluster {cluster!r}: its nodes are named "
            f"k3d-{cluster}-server-N and k3d-{cluster}-agent-N (see `k3dtui node list`)")


def is_server(node: str) -> bool:
    return "-server-" in node


@dataclass(frozen=True)
class NodeView:
    name: str
    role: str  # "server" | "agent"
    ready: str  # the Ready condition's status: "True", "False", "Unknown"
    unschedulable: bool
    taints: tuple[str, ...]  # "key:Effect"
    heartbeat_age: float | None  # seconds since the Lease in kube-node-lease was renewed
    app_pods: int

    @property
    def state(self) -> str:
        text = "Ready" if self.ready == "True" else "NotReady"
        return f"{text},SchedulingDisabled" if self.unschedulable else text

    def to_json(self) -> Obj:
        return {"name": self.name, "role": self.role, "ready": self.ready == "True", "status": self.state,
                "unschedulable": self.unschedulable, "taints": list(self.taints),
                "heartbeat_age": None if self.heartbeat_age is None else round(self.heartbeat_age, 1),
                "app_pods": self.app_pods}


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def node_view(node: Obj, lease: Obj | None, app_pods: int = 0, *, now: float | None = None) -> NodeView:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name", ""))
    role = "server" if "node-role.kubernetes.io/control-plane" in labels or is_server(name) else "agent"
    ready = "Unknown"
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ready = str(c.get("status", "Unknown"))
    spec = node.get("spec") or {}
    taints = tuple(f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or [])
    age = None
    renew = _parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
    if renew is not None:
        current = dt.datetime.now(dt.UTC).timestamp() if now is None else now
        age = max(0.0, current - renew)
    return NodeView(name, role, ready, bool(spec.get("unschedulable")), taints, age, app_pods)


def _body(resp: Any) -> Obj:
    data = json.loads(resp.data)
    return data if isinstance(data, dict) else {}


def _status_message(exc: BaseException) -> str:
    """The API's Status message of a refusal, with its causes."""
    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    if not isinstance(data, dict):
        return str(exc)
    text = str(data.get("message") or exc)
    causes = [str(c.get("message")) for c in (data.get("details") or {}).get("causes") or []
              if isinstance(c, dict) and c.get("message")]
    return f"{text} ({'; '.join(causes)})" if causes else text


class NodeActions:
    """The cluster's nodes through the API (one ``ApiClient`` from ``api``); drain is confined
    to the app named by ``identity``."""

    def __init__(self, api: Callable[[], client.ApiClient], cluster: str, identity: AppIdentity = APP,
                 *, clock: Clock = MONOTONIC, retry: float = EVICTION_RETRY) -> None:
        self._api = api
        self.cluster = cluster
        self.identity = identity
        self.clock = clock
        self.retry = retry
        self.cancelled = threading.Event()

    # -- reading ---------------------------------------------------------------------------
    def list(self) -> list[NodeView]:
        """Every node with its Lease's age and how many of the app's pods it runs (raises a
        ``K3dtuiError`` when the API cannot be read)."""
        try:
            core = client.CoreV1Api(self._api())
            nodes = _body(core.list_node(_preload_content=False, _request_timeout=REQUEST_TIMEOUT))
            leases = _body(client.CoordinationV1Api(self._api()).list_namespaced_lease(
                "kube-node-lease", _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
            pods = _body(core.list_namespaced_pod(
                self.identity.namespace, label_selector=self.identity.label_selector,
                _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        except Exception as exc:
            raise translate(exc, "list the nodes") from None
        by_name = {str((le.get("metadata") or {}).get("name")): le for le in leases.get("items") or []}
        counts: dict[str, int] = {}
        for p in pods.get("items") or []:
            if (p.get("metadata") or {}).get("deletionTimestamp"):
                continue
            node = (p.get("spec") or {}).get("nodeName")
            if node:
                counts[str(node)] = counts.get(str(node), 0) + 1
        out = [node_view(n, by_name.get(str(n["metadata"]["name"])), counts.get(str(n["metadata"]["name"]), 0))
               for n in nodes.get("items") or []]
        return sorted(out, key=lambda v: (v.role != "server", v.name))

    # -- cordon ------------------------------------------------------------------------------
    def cordon(self, node: str, on: bool = True) -> ActionResult:
        refusal = check_node_name(self.cluster, node)
        if refusal:
            return ActionResult(False, f"refused: {refusal}")
        what = "cordon" if on else "uncordon"
        try:
            core = client.CoreV1Api(self._api())
            try:
                current = _body(core.read_node(node, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
            except Exception as exc:
                if is_status(exc, 404):
                    return ActionResult(False, f"no node {node} in the cluster (see `k3dtui node list`)")
                raise
            if bool((current.get("spec") or {}).get("unschedulable")) == on:
                return ActionResult(True, f"node {node} already {'cordoned' if on else 'uncordoned'}")
            core.patch_node(node, {"spec": {"unschedulable": True if on else None}},
                            _content_type="application/merge-patch+json",
                            _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            return self._failure(exc, f"{what} node {node}")
        return ActionResult(True, f"node {node} {'cordoned' if on else 'uncordoned'}")

    # -- drain -------------------------------------------------------------------------------
    def drain(self, node: str, *, timeout: float = DRAIN_TIMEOUT, log: LineSink | None = None) -> ActionResult:
        say = log or (lambda _line: None)
        cordoned = self.cordon(node, True)
        if not cordoned.ok:
            return cordoned
        say(cordoned.message)
        deadline = self.clock.now() + timeout
        try:
            core = client.CoreV1Api(self._api())
            listing = _body(core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={node}", _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        except Exception as exc:
            return self._failure(exc, f"list the pods on node {node}")
        evict: list[Obj] = []
        daemons: list[str] = []
        others: list[str] = []
        for p in listing.get("items") or []:
            meta = p.get("metadata") or {}
            label = f"{meta.get('namespace')}/{meta.get('name')}"
            if any(ref.get("kind") == "DaemonSet" for ref in meta.get("ownerReferences") or []):
                daemons.append(label)
            elif (meta.get("namespace") == self.identity.namespace
                  and self.identity.matches(meta.get("labels") or {})):
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    evict.append(p)
            else:
                others.append(label)
        if daemons:
            say(f"Warning: ignoring DaemonSet-managed Pods: {', '.join(sorted(daemons))}")
        pending = list(evict)
        evicted: list[Obj] = []
        while pending:
            if self.cancelled.is_set():
                return ActionResult(False, f"drain of node {node} cancelled; the node stays cordoned")
            refused: list[tuple[Obj, str]] = []
            for p in pending:
                name, ns = str(p["metadata"]["name"]), str(p["metadata"]["namespace"])
                body: Any = {"apiVersion": "policy/v1", "kind": "Eviction",
                             "metadata": {"name": name, "namespace": ns}}
                try:
                    core.create_namespaced_pod_eviction(
                        name, ns, body,
                        _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
                except Exception as exc:
                    if is_status(exc, 404):
                        continue  # already gone
                    if is_status(exc, 429):
                        refused.append((p, _status_message(exc)))
                        continue
                    return self._failure(exc, f"evict pod {ns}/{name}")
                say(f"evicting pod {ns}/{name}")
                evicted.append(p)
            pending = [p for p, _ in refused]
            if not pending:
                break
            left = deadline - self.clock.now()
            for p, why in refused:
                say(f"error when evicting pods/{p['metadata']['name']} -n {p['metadata']['namespace']} "
                    f"(will retry after {self.retry:g}s): {why}")
            if left <= 0:
                first, why = refused[0]
                return ActionResult(False, (
                    f"drain of node {node} timed out after {timeout:g}s: pod {first['metadata']['name']} "
                    f"could not be evicted: {why}; the node stays cordoned "
                    f"(`k3dtui node uncordon {node}` undoes it)"))
            self.clock.wait(self.cancelled, min(self.retry, left))
        # wait for the evicted pods to be gone, as kubectl drain does
        for p in evicted:
            name, ns, uid = str(p["metadata"]["name"]), str(p["metadata"]["namespace"]), p["metadata"].get("uid")
            while True:
                try:
                    current = _body(core.read_namespaced_pod(name, ns, _preload_content=False,
                                                             _request_timeout=REQUEST_TIMEOUT))
                except Exception as exc:
                    if is_status(exc, 404):
                        break
                    return self._failure(exc, f"wait for pod {ns}/{name}")
                if (current.get("metadata") or {}).get("uid") != uid:
                    break
                if self.clock.now() >= deadline:
                    return ActionResult(False, f"drain of node {node} timed out after {timeout:g}s waiting for "
                                               f"pod {ns}/{name} to be deleted; the node stays cordoned")
                self.clock.wait(self.cancelled, 0.2)
            say(f"pod/{name} evicted")
        parts = [f"node {node} drained: {len(evicted)} pod(s) of the app evicted"]
        if daemons:
            parts.append(f"{len(daemons)} DaemonSet pod(s) ignored")
        if others:
            parts.append(f"{len(others)} other pod(s) left (not the app's): {', '.join(sorted(others))}")
        return ActionResult(True, "; ".join(parts))

    def _failure(self, exc: BaseException, what: str) -> ActionResult:
        return failure(self._api, exc, what)
