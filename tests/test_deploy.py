"""The app's manifests as k3dtui applies them, and the readiness helpers."""

from __future__ import annotations

import dataclasses

from k3dtui.core import deploy
from k3dtui.core.identity import APP


def test_first_apply_sets_replicas_from_spec() -> None:
    docs = deploy.app_documents(5)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["metadata"]["name"] == "fastapi-app"  # the workflow's name
    assert dep["spec"]["replicas"] == 5
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "fastapi-random:latest" == APP.image
    assert container["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "NODE_NAME": "spec.nodeName"}
    svc = next(d for d in docs if d["kind"] == "Service")
    assert svc["metadata"]["name"] == "fastapi-service" and svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 3000


def test_every_name_label_and_port_comes_from_the_identity() -> None:
    other = dataclasses.replace(
        APP, namespace="demo", app="web", deployment="web-app", container="web", service="web-svc",
        service_port=8080, container_port=9000, image="web:1",
    )
    dep, pdb, svc = sorted(deploy.app_documents(2, other), key=lambda d: d["kind"])
    assert pdb["metadata"]["name"] == "web-app" and pdb["metadata"]["namespace"] == "demo"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    assert dep["metadata"]["name"] == "web-app" and dep["metadata"]["namespace"] == "demo"
    assert dep["metadata"]["labels"]["app"] == "web"
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["spec"]["topologySpreadConstraints"][0]["labelSelector"] == {"matchLabels": {"app": "web"}}
    container = pod["spec"]["containers"][0]
    assert (container["name"], container["image"], container["ports"][0]["containerPort"]) == ("web", "web:1", 9000)
    assert svc["metadata"]["name"] == "web-svc" and svc["metadata"]["namespace"] == "demo"
    assert svc["spec"]["selector"] == {"app": "web"}
    assert (svc["spec"]["ports"][0]["port"], svc["spec"]["ports"][0]["targetPort"]) == (8080, 9000)
    # the default rendering is not changed by another identity's
    default = next(d for d in deploy.app_documents(2) if d["kind"] == "Deployment")
    assert default["metadata"]["name"] == "fastapi-app"


def test_the_app_tolerates_a_lost_node_for_15_seconds() -> None:
    dep = next(d for d in deploy.app_documents(3) if d["kind"] == "Deployment")
    tolerations = {(t["key"], t["effect"]): t["tolerationSeconds"] for t in dep["spec"]["template"]["spec"]["tolerations"]}
    assert tolerations == {("node.kubernetes.io/not-ready", "NoExecute"): 15,
                           ("node.kubernetes.io/unreachable", "NoExecute"): 15}


def test_replicas_left_out_when_none() -> None:
    dep = next(d for d in deploy.app_documents(None) if d["kind"] == "Deployment")
    assert "replicas" not in dep["spec"]
    # the manifest text itself is not changed by rendering
    again = next(d for d in deploy.app_documents(2) if d["kind"] == "Deployment")
    assert again["spec"]["replicas"] == 2


def test_pod_ready() -> None:
    ready = {
        "metadata": {"name": "p"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert deploy.pod_ready(ready)
    assert not deploy.pod_ready({**ready, "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert not deploy.pod_ready({"metadata": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}})
    assert not deploy.pod_ready({"metadata": {}, "status": {"phase": "Pending"}})


def test_service_ip() -> None:
    assert deploy.service_ip({"status": {"loadBalancer": {}}}) is None
    assert deploy.service_ip(None) is None
    assert deploy.service_ip({"status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200"}]}}}) == "172.18.255.200"
