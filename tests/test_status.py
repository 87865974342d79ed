"""`k3dtui status --json` is built from core.state's views (the ones the live view renders)."""

from __future__ import annotations

import dataclasses
from typing import Any

from k3dtui.core import state as st
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP
from k3dtui.core.status import cluster_status

Obj = dict[str, Any]


def node(name: str, ip: str, *, role: str = "", ready: bool = True) -> Obj:
    labels = {f"node-role.kubernetes.io/{r}": "true" for r in role.split(",") if r}
    return {"kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, node_name: str, *, phase: str = "Running", ready: bool = True, waiting: str = "",
        deleting: bool = False) -> Obj:
    state: Obj = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    meta: Obj = {"name": name, "namespace": "default", "uid": name, "labels": {"app": "fastapi"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    spec: Obj = {"containers": [{"name": "fastapi"}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": phase, "podIP": "10.42.0.5" if node_name else "",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "fastapi", "ready": ready and not waiting,
                                              "restartCount": 0, "state": state}]}}


class Reader:
    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects
        self.selectors: list[str | None] = []

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        self.selectors.append(label_selector)
        return [o for o in self.objects if o["kind"] == kind]

    def try_get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return next((o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def dial(ip: str, port: int) -> tuple[str, int]:
    return "127.0.0.1", 40000 + port


OBJECTS: list[Obj] = [
    node("k3d-demo-agent-0", "172.28.0.3"),
    node("k3d-demo-server-0", "172.28.0.2", role="control-plane,master"),
    node("k3d-demo-agent-1", "172.28.0.4", ready=False),
    pod("fastapi-app-1", "k3d-demo-agent-0"),
    pod("fastapi-app-2", "k3d-demo-agent-0", phase="Pending", ready=False, waiting="ContainerCreating"),
    pod("fastapi-app-3", "k3d-demo-server-0", deleting=True),
    pod("fastapi-app-4", "", phase="Pending", ready=False),
    {"kind": "Deployment", "metadata": {"name": "fastapi-app", "namespace": "default"},
     "spec": {"replicas": 4}, "status": {"readyReplicas": 2}},
    {"kind": "Service", "metadata": {"name": "fastapi-service", "namespace": "default"},
     "spec": {"ports": [{"port": 80}], "externalTrafficPolicy": "Local"},
     "status": {"loadBalancer": {"ingress": [{"ip": "172.28.255.200"}]}}},
    # MetalLB >= 0.14's record of the announcing node (another service's first: not ours)
    {"kind": "ServiceL2Status", "metadata": {"name": "l2-x1", "namespace": "metallb-system"},
     "status": {"node": "k3d-demo-server-0", "serviceName": "traefik", "serviceNamespace": "kube-system"}},
    {"kind": "ServiceL2Status", "metadata": {"name": "l2-x2", "namespace": "metallb-system"},
     "status": {"node": "k3d-demo-agent-0", "serviceName": "fastapi-service", "serviceNamespace": "default"}},
    {"kind": "IPAddressPool", "metadata": {"name": "first-pool"}, "spec": {"addresses": ["172.28.255.200-172.28.255.250"]}},
]


def test_status_from_the_views() -> None:
    reader = Reader(OBJECTS)
    out = cluster_status(reader, APP, dial)
    assert reader.selectors == [None, "app=fastapi", None]
    assert out == {
        "nodes": [
            {"name": "k3d-demo-agent-0", "roles": ["agent"], "ready": True, "ip": "172.28.0.3", "pods": [
                {"name": "fastapi-app-1", "status": "Running", "ip": "10.42.0.5", "ready": True},
                {"name": "fastapi-app-2", "status": "ContainerCreating", "ip": "10.42.0.5", "ready": False},
            ]},
            {"name": "k3d-demo-agent-1", "roles": ["agent"], "ready": False, "ip": "172.28.0.4", "pods": []},
            {"name": "k3d-demo-server-0", "roles": ["control-plane", "master"], "ready": True, "ip": "172.28.0.2",
             "pods": [{"name": "fastapi-app-3", "status": "Terminating", "ip": "10.42.0.5", "ready": False}]},
        ],
        "unscheduled": [{"name": "fastapi-app-4", "status": "Pending", "ip": "", "ready": False}],
        "deployment": {"name": "fastapi-app", "replicas": 4, "ready": 2},
        "service": {"name": "fastapi-service", "external_ip": "172.28.255.200", "port": 80,
                    "dial": "127.0.0.1:40080", "url": "http://127.0.0.1:40080/",
                    "announcing_node": "k3d-demo-agent-0", "traffic_policy": "Local"},
        "pool": "172.28.255.200-172.28.255.250",
    }
    # each pod's status is exactly what the live view shows for it
    shown = {p.name: p.status for p in (st.pod_view(o) for o in OBJECTS if o["kind"] == "Pod")}
    rows = [p for n in out["nodes"] for p in n["pods"]] + out["unscheduled"]
    assert {p["name"]: p["status"] for p in rows} == shown


def test_status_reads_the_identitys_objects_and_survives_an_undialable_ip() -> None:
    other = dataclasses.replace(APP, deployment="web", service="web-svc", pool="p2", app="web")
    reader = Reader(OBJECTS)

    def refuse(ip: str, port: int) -> tuple[str, int]:
        raise K3dtuiError("not routable")

    out = cluster_status(reader, other, refuse)
    assert reader.selectors[-1] == "app=web"
    assert "deployment" not in out and "service" not in out and "pool" not in out
    svc_only = cluster_status(Reader(OBJECTS), APP, refuse)
    assert svc_only["service"]["dial"] == "" and svc_only["service"]["url"] is None
    assert svc_only["service"]["external_ip"] == "172.28.255.200"


def test_status_without_servicel2status_says_no_announcer_and_the_default_policy() -> None:
    class Old(Reader):  # MetalLB < 0.14: the kind is not served
        def list(self, api_version: str, kind: str, namespace: str | None = None,
                 label_selector: str | None = None) -> list[Obj]:
            if kind == "ServiceL2Status":
                raise K3dtuiError("the server doesn't have a resource type servicel2statuses")
            return super().list(api_version, kind, namespace, label_selector)

    objects = [o for o in OBJECTS if o["kind"] != "Service"] + [
        {"kind": "Service", "metadata": {"name": "fastapi-service", "namespace": "default"},
         "spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": [{"ip": "172.28.255.200"}]}}},
    ]
    out = cluster_status(Old(objects), APP, dial)
    assert out["service"]["announcing_node"] is None
    assert out["service"]["traffic_policy"] == "Cluster"
