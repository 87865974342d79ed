"""What `k3dtui status --json` prints about a running cluster, built from the same views the
live state uses (``core.state``: ``pod_view``, ``node_view``, ``deployment_view``,
``service_view``), so the CLI and the TUI never disagree about a pod's status or readiness.

The shape (stable, documented in the README), after ``cluster``, ``provider``, ``context``
and ``stage`` (``absent``, ``stopped``, ``cluster``, ``metallb``, ``deployed``; a stopped
cluster adds ``fix``, how to start it again; a simulated cluster whose daemon crashed with its
state kept is ``stopped``, not ``absent``):

``nodes``: ``[{name, roles: [..], ready, ip, pods: [{name, status, ip, ready}]}]`` sorted by
name; ``unscheduled``: pods on no node (only when there are some); ``deployment``:
``{name, replicas, ready}`` or None; ``service``: ``{name, external_ip, port, dial, url,
announcing_node, traffic_policy}`` or None (``announcing_node``: the node MetalLB's
ServiceL2Status names, null while none announces); ``pool``: the IPAddressPool's addresses joined by ``,`` (only when it exists).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from k3dtui.core import state as st
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import AppIdentity
from k3dtui.core.kubeerrors import ApiRefused
from k3dtui.core.models import DeploymentView, NodeView, PodView, ServiceView

Obj = dict[str, Any]
Dial = Callable[[str, int], tuple[str, int]]


class Reader(Protocol):
    """The reads status needs (``core.kubeapply.Kube`` has them)."""

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]: ...

    def try_get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None: ...


def pod_row(view: PodView) -> dict[str, Any]:
    # a pod being deleted is no longer ready to serve, whatever its last condition said
    return {"name": view.name, "status": view.status, "ip": view.ip, "ready": view.ready and not view.deleting}


def node_row(view: NodeView, pods: Sequence[PodView]) -> dict[str, Any]:
    roles = [] if view.roles == "<none>" else view.roles.split(",")
    return {
        "name": view.name,
        "roles": roles or ["agent"],
        "ready": view.ready,
        "ip": view.ip,
        "pods": [pod_row(p) for p in pods],
    }


def deployment_row(view: DeploymentView) -> dict[str, Any]:
    return {"name": view.name, "replicas": view.desired, "ready": view.ready}


def service_row(view: ServiceView, dial: Dial) -> dict[str, Any]:
    where = ""
    if view.external_ip:
        try:
            host, port = dial(view.external_ip, view.port)
            where = f"{host}:{port}"
        except (K3dtuiError, OSError):
            where = ""
    return {
        "name": view.name,
        "external_ip": view.external_ip or None,
        "port": view.port,
        "dial": where,
        "url": f"http://{where}/" if where else None,
        "announcing_node": view.announcing_node or None,
        "traffic_policy": view.traffic_policy,
    }


def l2_statuses(kube: Reader, namespace: str) -> list[Obj]:
    """MetalLB's ServiceL2Status objects (MetalLB >= 0.14; ``metallb.io/v1beta1``, their
    ``status.node`` is the announcing node: metallb/metallb api/v1beta1/servicel2status_types.go);
    none when MetalLB is older or not installed."""
    try:
        return kube.list("metallb.io/v1beta1", "ServiceL2Status", namespace)
    except K3dtuiError:  # the kind is not served: no announcement known
        return []


def cluster_status(kube: Reader, identity: AppIdentity, dial: Dial) -> dict[str, Any]:
    """The ``nodes``/``unscheduled``/``deployment``/``service``/``pool`` part of the status.

    Synchronous (it reads through ``kube``); run it in a worker thread.
    """
    app = identity
    from_pods = False
    try:
        nodes = sorted((st.node_view(n) for n in kube.list("v1", "Node")), key=lambda n: n.name)
    except ApiRefused as exc:
        if exc.status != 403:
            raise
        nodes, from_pods = [], True  # no permission to list nodes: the pods name theirs
    pod_objects = kube.list("v1", "Pod", app.namespace, app.label_selector)
    if from_pods:
        nodes = st.nodes_from_pods(pod_objects)
    pods = sorted((st.pod_view(p) for p in pod_objects), key=lambda p: p.name)
    by_node: dict[str, list[PodView]] = {}
    for pod in pods:
        by_node.setdefault(pod.node, []).append(pod)
    result: dict[str, Any] = {"nodes": [node_row(n, by_node.pop(n.name, [])) for n in nodes]}
    if from_pods:
        result["nodes_from_pods"] = True
    unscheduled = [pod_row(p) for rest in by_node.values() for p in rest]
    if unscheduled:
        result["unscheduled"] = unscheduled
    dep = kube.try_get("apps/v1", "Deployment", app.deployment, app.namespace)
    if dep is not None:
        result["deployment"] = deployment_row(st.deployment_view(dep))
    svc = kube.try_get("v1", "Service", app.service, app.namespace) if app.service else None
    if svc is not None:
        view = st.service_view(svc, l2_statuses(kube, app.metallb_namespace))
        result["service"] = service_row(view, dial)
    if app.attached:
        return result  # another cluster's MetalLB pool (if any) is not the app's
    pool = kube.try_get("metallb.io/v1beta1", "IPAddressPool", app.pool, app.metallb_namespace)
    if pool is not None:
        result["pool"] = ",".join((pool.get("spec") or {}).get("addresses") or [])
    return result


def attached_status(attached: Any) -> dict[str, Any]:
    """``status --json`` of an attached app (``core.target.Attached``): ``attached: true``,
    ``context``, ``server``, ``namespace``, ``app`` (its header text), ``allow_changes``, then
    the same ``nodes``/``unscheduled``/``deployment``/``service`` as k3dtui's own cluster
    (``nodes_from_pods: true`` when the credentials may not list nodes). The Service's
    ``dial`` is its external address as it is (nothing maps it)."""
    from k3dtui.core.kubeapply import Kube

    kube = Kube(attached.kubeconfig, attached.context)
    try:
        body = cluster_status(kube, attached.identity, lambda host, port: (host, port))
    finally:
        kube.close()
    return {"attached": True, "context": attached.context, "server": attached.server,
            "namespace": attached.namespace, "app": attached.app_text, "allow_changes": attached.allow_changes,
            **body}
