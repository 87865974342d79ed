"""The app's manifests as k3dtui applies them, and the readiness helpers."""

from __future__ import annotations

from k3dtui.core import deploy


def test_first_apply_sets_replicas_from_spec() -> None:
    docs = deploy.app_documents(5)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 5
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == deploy.IMAGE_TAG
    assert container["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "NODE_NAME": "spec.nodeName"}
    svc = next(d for d in docs if d["kind"] == "Service")
    assert svc["metadata"]["name"] == deploy.SERVICE and svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 3000


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
