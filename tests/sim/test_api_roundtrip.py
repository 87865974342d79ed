"""Every object and List the server emits deserializes into the client's strict models (§8)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k3dtui.core.kube import make_api_client
from k3dtui.sim.testing import ApiThread, run_api_in_thread
from tests.sim.test_api_client import DEPLOY, raw
from tests.sim.test_api_kubectl import node, running_pod

TEMPLATE = DEPLOY["spec"]["template"]
SELECTOR = DEPLOY["spec"]["selector"]

# (path of the collection, body, model of one object, model of the List)
OBJECTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("/api/v1/nodes", node("k3d-sim-server-0", "172.18.0.2", True), "V1Node", "V1NodeList"),
    ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}, "V1Namespace", "V1NamespaceList"),
    ("/api/v1/namespaces/default/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
     "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}},
     "V1Pod", "V1PodList"),
    ("/api/v1/namespaces/default/services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
     "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
     "V1Service", "V1ServiceList"),
    ("/api/v1/namespaces/default/endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s"},
     "subsets": [{"addresses": [{"ip": "10.42.1.5", "nodeName": "n", "targetRef": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u"}}],
                  "ports": [{"name": "http", "port": 3000, "protocol": "TCP"}]}]}, "V1Endpoints", "V1EndpointsList"),
    ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"generateName": "s-", "labels": {"kubernetes.io/service-name": "s"}}, "addressType": "IPv4",
     "ports": [{"name": "", "port": 3000, "protocol": "TCP"}],
     "endpoints": [{"addresses": ["10.42.1.5"], "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": "n", "targetRef": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u"}}]},
     "V1EndpointSlice", "V1EndpointSliceList"),
    ("/api/v1/namespaces/default/events", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"},
     "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u", "apiVersion": "v1"},
     "reason": "Scheduled", "message": "Successfully assigned default/p to n", "type": "Normal", "count": 1,
     "source": {"component": "default-scheduler"}, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"},
     "CoreV1Event", "CoreV1EventList"),
    ("/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}},
     "V1ConfigMap", "V1ConfigMapList"),
    ("/api/v1/namespaces/default/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "data": {"a": "Yg=="}},
     "V1Secret", "V1SecretList"),
    ("/api/v1/namespaces/default/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
     "V1ServiceAccount", "V1ServiceAccountList"),
    ("/apis/apps/v1/namespaces/default/deployments", DEPLOY, "V1Deployment", "V1DeploymentList"),
    ("/apis/apps/v1/namespaces/default/replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-abc"},
     "spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}}, "V1ReplicaSet", "V1ReplicaSetList"),
    ("/apis/apps/v1/namespaces/default/daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
     "spec": {"selector": SELECTOR, "template": TEMPLATE}}, "V1DaemonSet", "V1DaemonSetList"),
    ("/apis/apps/v1/namespaces/default/statefulsets", {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"},
     "spec": {"serviceName": "s", "selector": SELECTOR, "template": TEMPLATE}}, "V1StatefulSet", "V1StatefulSetList"),
    ("/apis/batch/v1/namespaces/default/jobs", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
     "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}},
     "V1Job", "V1JobList"),
    ("/apis/policy/v1/namespaces/default/poddisruptionbudgets", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
     "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": SELECTOR}}, "V1PodDisruptionBudget", "V1PodDisruptionBudgetList"),
    ("/apis/coordination.k8s.io/v1/namespaces/default/leases", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
     "metadata": {"name": "l"}, "spec": {"holderIdentity": "x"}}, "V1Lease", "V1LeaseList"),
    ("/apis/rbac.authorization.k8s.io/v1/clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "cr"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}, "V1ClusterRole", "V1ClusterRoleList"),
]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    with run_api_in_thread(tmp_path) as a:
        yield a


def test_every_kind_and_list_deserializes(api: ApiThread) -> None:
    kc = make_api_client(api.kubeconfig)
    rv0 = raw(api, "GET", "/api/v1/namespaces").json()["metadata"]["resourceVersion"]
    for path, body, model, list_model in OBJECTS:
        resp = raw(api, "POST", path, copy.deepcopy(body))
        assert resp.status_code == 201, f"{model}: {resp.text}"
        created = resp.json()
        kc.deserialize(resp.text, model, "application/json")
        name = created["metadata"]["name"]
        got = raw(api, "GET", f"{path}/{name}")
        obj = kc.deserialize(got.text, model, "application/json")
        assert obj.metadata.name == name and obj.metadata.uid == created["metadata"]["uid"]
        listed = raw(api, "GET", path)
        lst = kc.deserialize(listed.text, list_model, "application/json")
        assert name in [i.metadata.name for i in lst.items]
        assert lst.metadata.resource_version
    # scale and status answers
    scale = raw(api, "GET", "/apis/apps/v1/namespaces/default/deployments/web/scale")
    assert kc.deserialize(scale.text, "V1Scale", "application/json").spec.replicas == 2
    nf = raw(api, "GET", "/api/v1/namespaces/default/pods/missing")
    st = kc.deserialize(nf.text, "V1Status", "application/json")
    assert st.code == 404 and st.reason == "NotFound"
    # every watch event (ADDED for each kind from the first RV) deserializes too
    for path, _body, model, _list in OBJECTS:
        resp = raw(api, "GET", f"{path}?watch=1&resourceVersion={rv0}&timeoutSeconds=0.1")  # the server takes fractions
        lines = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
        assert lines, f"no events for {model}"
        for ev in lines:
            assert ev["type"] in ("ADDED", "MODIFIED", "DELETED")
            kc.deserialize(json.dumps(ev["object"]), model, "application/json")
    kc.close()


def test_pod_lifecycle_shapes_deserialize(api: ApiThread) -> None:
    """A running pod with full status, graceful deletion, and its Table row."""
    kc = make_api_client(api.kubeconfig)
    body = running_pod("web-1", "n1", "10.42.1.5", {"app": "web"})
    for f in ("uid", "creationTimestamp"):
        del body["metadata"][f]
    resp = raw(api, "POST", "/api/v1/namespaces/default/pods", body)
    assert resp.status_code == 201
    # the create reset status to Pending (status is the kubelet's); put it back through /status
    pod = resp.json()
    pod["status"] = body["status"]
    resp = raw(api, "PUT", "/api/v1/namespaces/default/pods/web-1/status", pod)
    assert resp.status_code == 200, resp.text
    p = kc.deserialize(resp.text, "V1Pod", "application/json")
    assert p.status.container_statuses[0].restart_count == 0 and p.status.phase == "Running"
    resp = raw(api, "DELETE", "/api/v1/namespaces/default/pods/web-1", {"propagationPolicy": "Background"})
    deleted = kc.deserialize(resp.text, "V1Pod", "application/json")
    assert deleted.metadata.deletion_timestamp is not None
    table = raw(api, "GET", "/api/v1/namespaces/default/pods",
                accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json").json()
    assert table["rows"][0]["cells"][:3] == ["web-1", "1/1", "Terminating"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    meta = kc.deserialize(json.dumps(table["rows"][0]["object"]["metadata"]), "V1ObjectMeta", "application/json")
    assert meta.name == "web-1"
    api_client = client.CoreV1Api(kc)
    assert api_client.read_namespaced_pod("web-1", "default").metadata.deletion_grace_period_seconds == 30
    kc.close()


def _model(kc: client.ApiClient, api_version: str, kind: str) -> str | None:
    """The typed model for a kind (``V1Pod``, ``CoreV1Event`` ...), or None for custom kinds."""
    from kubernetes.client import models

    version = api_version.rsplit("/", 1)[-1]
    candidates = [f"{version[0].upper()}{version[1:]}{kind}"]
    if kind == "Event" and api_version == "v1":
        candidates.insert(0, "CoreV1Event")
    for name in candidates:
        if hasattr(models, name):
            return name
    return None


def test_everything_a_running_simulated_cluster_emits_deserializes(sim_app: Any) -> None:
    """Every List of every listable kind in discovery (nodes, pods, endpointslices, events,
    MetalLB objects ...) as the simulated cluster's controllers wrote them, and a pod watch."""
    kc = sim_app.api_client()
    checked: list[str] = []
    with sim_app.http() as h:
        groups = [("", "v1")] + [
            (g["name"], v["version"]) for g in h.get("/apis").json()["groups"] for v in g["versions"]
        ]
        for group, version in groups:
            base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            for res in h.get(base).json()["resources"]:
                if "/" in res["name"] or "list" not in res["verbs"]:
                    continue
                listed = h.get(f"{base}/{res['name']}")
                assert listed.status_code == 200, listed.text
                body = listed.json()
                api_version = f"{group}/{version}" if group else version
                model = _model(kc, api_version, res["kind"])
                if model is None and group == "metrics.k8s.io":
                    # metrics are not stored objects: no uid, as metrics-server serves them
                    assert all(i["metadata"]["name"] and i["timestamp"] for i in body["items"])
                    continue
                if model is None:
                    assert all(i["metadata"]["uid"] for i in body["items"])
                    continue
                lst = kc.deserialize(listed.text, f"{model}List", "application/json")
                for item in body["items"]:
                    kc.deserialize(json.dumps(item), model, "application/json")
                if lst.items:
                    checked.append(res["kind"])
        # a watch from "0": every pod as ADDED, each deserializes
        lines = h.get("/api/v1/pods?watch=1&resourceVersion=0&timeoutSeconds=0.3").text.splitlines()
        for line in lines:
            kc.deserialize(json.dumps(json.loads(line)["object"]), "V1Pod", "application/json")
        assert len(lines) >= 3
    assert {"Node", "Pod", "Service", "Deployment", "ReplicaSet", "EndpointSlice", "Namespace"} <= set(checked)
    kc.close()
