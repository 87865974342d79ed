"""The simulated API server driven by the official ``kubernetes`` Python client."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from k3dtui.core.kube import make_api_client
from k3dtui.sim import gvrs
from k3dtui.sim.store import Store
from k3dtui.sim.testing import ApiThread, run_api_in_thread

DEPLOY: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
        },
    },
}


def pod_body(name: str, labels: dict[str, str] | None = None, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    with run_api_in_thread(tmp_path) as a:
        yield a


@pytest.fixture
def kc(api: ApiThread) -> Iterator[client.ApiClient]:
    c = make_api_client(api.kubeconfig)
    yield c
    c.close()


def raw(api: ApiThread, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
        token: str | None = None, accept: str = "application/json") -> httpx.Response:
    """One request with httpx (no client library in between)."""
    ca = Path(api.kubeconfig).parent / "ca.pem"
    if api.server.ca_pem and not ca.exists():
        ca.write_text(api.server.ca_pem)
    headers = {"Accept": accept}
    if token != "":
        headers["Authorization"] = f"Bearer {api.token if token is None else token}"
    content: bytes | None = None
    if body is not None:
        headers["Content-Type"] = content_type
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if api.server.ca_pem else False
    with httpx.Client(verify=verify, timeout=10) as h:
        return h.request(method, api.url + path, headers=headers, content=content)


def roundtrip(kc: client.ApiClient, obj: Any, model: str) -> Any:
    """Serialize what the server sent and deserialize it into the client's model (strict)."""
    data = obj if isinstance(obj, dict) else kc.sanitize_for_serialization(obj)
    return kc.deserialize(json.dumps(data), model, "application/json")


def test_version_and_namespaces(kc: client.ApiClient) -> None:
    assert client.VersionApi(kc).get_code().git_version == "v1.31.5+k3s1"
    names = {n.metadata.name for n in client.CoreV1Api(kc).list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_deployment_crud_scale_and_generation(kc: client.ApiClient) -> None:
    apps = client.AppsV1Api(kc)
    created = apps.create_namespaced_deployment("default", DEPLOY)
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert created.spec.template.spec.dns_policy == "ClusterFirst"

    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    patched = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    after = apps.read_namespaced_deployment("web", "default")
    assert after.spec.replicas == 5
    assert after.metadata.generation == 2
    assert int(after.metadata.resource_version) > int(created.metadata.resource_version)

    # status writes keep spec and do not bump generation; main writes keep status
    apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 5, "readyReplicas": 3}})
    st = apps.read_namespaced_deployment("web", "default")
    assert st.status.ready_replicas == 3 and st.metadata.generation == 2 and st.spec.replicas == 5
    apps.patch_namespaced_deployment("web", "default", {"status": {"readyReplicas": 0}, "metadata": {"labels": {"x": "y"}}})
    st2 = apps.read_namespaced_deployment("web", "default")
    assert st2.status.ready_replicas == 3 and st2.metadata.labels["x"] == "y"
    assert st2.metadata.generation == 2

    # strategic merge: containers merge by name
    apps.patch_namespaced_deployment(
        "web", "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:1.36"}]}}}},
    )
    names = [c.name for c in apps.read_namespaced_deployment("web", "default").spec.template.spec.containers]
    assert names == ["web", "side"]

    # JSON patch (a list body)
    apps.patch_namespaced_deployment("web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 1}])
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1

    # replace (PUT) with the current resourceVersion
    current = apps.read_namespaced_deployment("web", "default")
    current.spec.replicas = 4
    replaced = apps.replace_namespaced_deployment("web", "default", current)
    assert replaced.spec.replicas == 4

    status = apps.delete_namespaced_deployment("web", "default")
    status = status if isinstance(status, dict) else kc.sanitize_for_serialization(status)
    assert status["status"] == "Success" and status["details"]["name"] == "web"
    roundtrip(kc, status, "V1Status")
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "default")
    assert exc.value.status == 404
    body = json.loads(exc.value.body)
    assert body["reason"] == "NotFound" and body["message"] == 'deployments.apps "web" not found'


def test_service_defaults_cluster_ip_and_node_port(kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    ips, ports = set(), set()
    for i in range(5):
        svc = core.create_namespaced_service("default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 3000}]},
        })
        assert svc.spec.cluster_ip.startswith("10.43.")
        assert svc.spec.cluster_ips == [svc.spec.cluster_ip]
        assert svc.spec.ip_families == ["IPv4"] and svc.spec.ip_family_policy == "SingleStack"
        assert svc.spec.external_traffic_policy == "Cluster"
        assert svc.spec.allocate_load_balancer_node_ports is True
        port = svc.spec.ports[0]
        assert 30000 <= port.node_port <= 32767 and port.protocol == "TCP"
        assert port.target_port == 3000
        ips.add(svc.spec.cluster_ip)
        ports.add(port.node_port)
    assert len(ips) == 5 and len(ports) == 5
    # a main-resource update keeps the allocated clusterIP and nodePort
    patched = core.patch_namespaced_service("s0", "default", {"metadata": {"labels": {"a": "b"}}})
    assert patched.spec.cluster_ip in ips and patched.spec.ports[0].node_port in ports
    assert patched.status.load_balancer is not None


def test_pod_defaults_generate_name_and_delete_semantics(api: ApiThread, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    pod = core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-7d4b9c8f5d-", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "fastapi-random:latest"}]},
    })
    name = pod.metadata.name
    assert name.startswith("web-7d4b9c8f5d-") and len(name) == len("web-7d4b9c8f5d-") + 5
    assert all(ch in "bcdfghjklmnpqrstvwxz2456789" for ch in name[-5:])
    spec = pod.spec
    assert spec.restart_policy == "Always" and spec.termination_grace_period_seconds == 30
    assert spec.scheduler_name == "default-scheduler" and spec.service_account_name == "default"
    assert spec.containers[0].image_pull_policy == "Always"  # :latest
    assert spec.containers[0].termination_message_policy == "File"
    assert {t.key for t in spec.tolerations} == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    assert pod.status.phase == "Pending" and pod.status.qos_class == "BestEffort"

    # unscheduled: removed at once
    core.delete_namespaced_pod(name, "default")
    assert core.list_namespaced_pod("default").items == []

    # scheduled: graceful (deletionTimestamp), then a shorter grace, then grace 0 removes it
    core.create_namespaced_pod("default", pod_body("p1", node="k3d-sim-agent-0"))
    before = core.read_namespaced_pod("p1", "default")
    out = core.delete_namespaced_pod("p1", "default", grace_period_seconds=20)
    assert out.metadata.deletion_timestamp is not None
    assert out.metadata.deletion_grace_period_seconds == 20
    assert out.metadata.generation == before.metadata.generation + 1
    again = core.delete_namespaced_pod("p1", "default", grace_period_seconds=60)  # may only shorten
    assert again.metadata.deletion_grace_period_seconds == 20
    shorter = core.delete_namespaced_pod("p1", "default", grace_period_seconds=5)
    assert shorter.metadata.deletion_grace_period_seconds == 5
    core.delete_namespaced_pod("p1", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("p1", "default")
    assert exc.value.status == 404

    # binding subresource sets the node
    core.create_namespaced_pod("default", pod_body("p2"))
    core.create_namespaced_pod_binding(
        "p2", "default", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p2"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False,
    )
    assert core.read_namespaced_pod("p2", "default").spec.node_name == "n1"


def test_selectors_on_list(kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    core.create_namespaced_pod("default", pod_body("a", {"app": "web", "tier": "front"}, node="n1"))
    core.create_namespaced_pod("default", pod_body("b", {"app": "web", "tier": "back"}))
    core.create_namespaced_pod("default", pod_body("c", {"app": "db"}))

    def names(**kw: Any) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod("default", **kw).items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app==web,tier!=front") == ["b"]
    assert names(label_selector="tier in (front,back)") == ["a", "b"]
    assert names(label_selector="app notin (web)") == ["c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="spec.nodeName=n1") == ["a"]
    assert names(field_selector="status.phase=Pending,metadata.name!=a") == ["b", "c"]
    assert sorted(p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector="app=web").items) == ["a", "b"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert exc.value.status == 400 and "field label not supported: spec.bogus" in exc.value.body


def test_watch_without_and_with_resource_version(api: ApiThread, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})
    core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}})
    # no resourceVersion: synthetic ADDED for what exists
    seen = [(e["type"], e["object"].metadata.name)
            for e in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert seen == [("ADDED", "one"), ("ADDED", "two")]

    listed = core.list_namespaced_config_map("default")
    rv = listed.metadata.resource_version

    def writer() -> None:
        time.sleep(0.3)
        core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "three"}})
        core.patch_namespaced_config_map("three", "default", {"data": {"k": "v"}})
        core.delete_namespaced_config_map("one", "default")

    t = threading.Thread(target=writer)
    t.start()
    events: list[tuple[str, str]] = []
    started = time.monotonic()
    w = watch.Watch()
    for e in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=3):
        events.append((e["type"], e["object"].metadata.name))
        if len(events) == 3:
            w.stop()
    t.join()
    assert events == [("ADDED", "three"), ("MODIFIED", "three"), ("DELETED", "one")]
    assert time.monotonic() - started < 3

    # replay from the old RV gives the same three events, in order, without waiting
    replay = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)]
    assert replay == events


def test_watch_timeout_closes_cleanly(kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version="1", timeout_seconds=1))
    elapsed = time.monotonic() - started
    assert events == []
    assert 0.8 < elapsed < 3


def test_watch_selector_transitions(api: ApiThread, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod_body("p", {"app": "other"}))
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "web"}}})
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"version": "2"}}})
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "other"}}})
    events = [(e["type"], e["object"].metadata.labels["app"])
              for e in watch.Watch().stream(core.list_namespaced_pod, "default", label_selector="app=web",
                                            resource_version=rv, timeout_seconds=1)]
    assert events == [("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "other")]


def test_watch_bookmarks(api: ApiThread, kc: client.ApiClient) -> None:
    api.server.bookmark_interval = 0.2
    core = client.CoreV1Api(kc)
    rv = core.list_namespaced_pod("default").metadata.resource_version
    types = [e["type"] for e in watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv,
                                                     allow_watch_bookmarks=True, timeout_seconds=1)]
    assert types and set(types) == {"BOOKMARK"} and len(types) >= 2
    # without allowWatchBookmarks there are none
    none = list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1))
    assert none == []


def test_watch_410_expired(tmp_path: Path) -> None:
    with run_api_in_thread(tmp_path, store=Store(window=5)) as api:
        kc = make_api_client(api.kubeconfig)
        core = client.CoreV1Api(kc)
        for i in range(12):
            core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
        # with timeout_seconds: no retry, 410 at once
        with pytest.raises(ApiException) as exc:
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="2", timeout_seconds=5))
        assert exc.value.status == 410 and "too old resource version" in str(exc.value.reason)
        # without: one retry from the same RV, then 410
        started = time.monotonic()
        with pytest.raises(ApiException) as exc2:
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="2"))
        assert exc2.value.status == 410
        assert time.monotonic() - started < 5
        # a fresh list's RV is fine
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        assert list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)) == []
        kc.close()


def test_restart_drops_watches_and_keeps_port(api: ApiThread, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    rv = core.list_namespaced_pod("default").metadata.resource_version
    done = threading.Event()
    result: list[Any] = []

    def watcher() -> None:
        result.extend(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=20))
        done.set()

    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.3)
    port = api.port
    api.restart()
    assert done.wait(5), "the watch did not end when the server restarted"
    t.join()
    assert api.server.port == port
    assert client.CoreV1Api(kc).list_namespaced_pod("default").items == []


def test_dynamic_client_crd_and_server_side_apply(api: ApiThread, kc: client.ApiClient) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "ipaddresspools.metallb.io"},
        "spec": {
            "group": "metallb.io",
            "names": {"kind": "IPAddressPool", "listKind": "IPAddressPoolList", "plural": "ipaddresspools", "singular": "ipaddresspool"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1beta1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"}],
            }],
        },
    }
    created = client.ApiextensionsV1Api(kc).create_custom_resource_definition(crd)
    assert any(c.type == "Established" and c.status == "True" for c in created.status.conditions)
    client.CoreV1Api(kc).create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}})

    dyn = DynamicClient(kc)
    pools = dyn.resources.get(api_version="metallb.io/v1beta1", kind="IPAddressPool")
    assert pools.namespaced
    body = {
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "pool", "namespace": "metallb-system"},
        "spec": {"addresses": ["172.18.255.200-172.18.255.250"]},
    }
    first = pools.server_side_apply(body=body, name="pool", namespace="metallb-system", field_manager="k3dtui", force_conflicts=True)
    assert first.metadata.uid and first.spec.addresses == ["172.18.255.200-172.18.255.250"]
    body["spec"]["autoAssign"] = False
    second = pools.server_side_apply(body=body, name="pool", namespace="metallb-system", field_manager="k3dtui", force_conflicts=True)
    assert second.metadata.uid == first.metadata.uid and second.spec.autoAssign is False
    got = pools.get(name="pool", namespace="metallb-system")
    assert got.spec.autoAssign is False
    # CRDs answer strategic merge with 415, merge patch works
    with pytest.raises(ApiException) as exc:
        pools.patch(name="pool", namespace="metallb-system", body={"spec": {"autoAssign": True}})
    assert exc.value.status == 415
    merged = pools.patch(name="pool", namespace="metallb-system", body={"spec": {"autoAssign": True}},
                         content_type="application/merge-patch+json")
    assert merged.spec.autoAssign is True
    # field manager is required for apply
    resp = raw(api, "PATCH", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/pool",
               body, content_type="application/apply-patch+yaml")
    assert resp.status_code == 400 and "fieldManager" in resp.json()["message"]
    # deleting the CRD removes its kind from discovery
    client.ApiextensionsV1Api(kc).delete_custom_resource_definition("ipaddresspools.metallb.io")
    assert api.call(lambda: api.registry.by_kind("metallb.io/v1beta1", "IPAddressPool")) is None
    assert api.call(lambda: list(api.store.iter(gvrs.IPADDRESSPOOLS))) == []


def test_dynamic_client_ssa_deployment_and_delete(api: ApiThread, kc: client.ApiClient) -> None:
    dyn = DynamicClient(kc)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    res = deployments.server_side_apply(body=DEPLOY, name="web", namespace="default", field_manager="k3dtui", force_conflicts=True)
    assert res.spec.replicas == 2
    # re-apply without replicas keeps the current count
    body = json.loads(json.dumps(DEPLOY))
    del body["spec"]["replicas"]
    client.AppsV1Api(kc).patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    res2 = deployments.server_side_apply(body=body, name="web", namespace="default", field_manager="k3dtui", force_conflicts=True)
    assert res2.spec.replicas == 4
    deployments.delete(name="web", namespace="default")
    assert client.AppsV1Api(kc).list_namespaced_deployment("default").items == []


def test_foreground_and_orphan_deletion(api: ApiThread, kc: client.ApiClient) -> None:
    apps = client.AppsV1Api(kc)
    dep = apps.create_namespaced_deployment("default", DEPLOY)
    rs_body = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": dep.metadata.uid, "controller": True, "blockOwnerDeletion": True}]},
        "spec": DEPLOY["spec"],
    }
    apps.create_namespaced_replica_set("default", rs_body)
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Orphan")
    rs = apps.read_namespaced_replica_set("web-abc", "default")
    assert not rs.metadata.owner_references
    # foreground: deletionTimestamp + finalizer while a dependent remains
    core = client.CoreV1Api(kc)
    dep2 = apps.create_namespaced_deployment("default", DEPLOY)
    rs_body["metadata"]["ownerReferences"][0]["uid"] = dep2.metadata.uid
    rs_body["metadata"]["name"] = "web-def"
    rs2 = apps.create_namespaced_replica_set("default", rs_body)
    pod = pod_body("web-def-x", node="n1")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-def",
                                           "uid": rs2.metadata.uid, "controller": True, "blockOwnerDeletion": True}]
    core.create_namespaced_pod("default", pod)
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    pending = apps.read_namespaced_deployment("web", "default")
    assert pending.metadata.deletion_timestamp is not None
    assert pending.metadata.finalizers == ["foregroundDeletion"]
    time.sleep(0.3)
    # the scheduled pod is terminating (graceful), so its ReplicaSet and the Deployment wait
    assert core.read_namespaced_pod("web-def-x", "default").metadata.deletion_timestamp is not None
    assert apps.read_namespaced_replica_set("web-def", "default").metadata.finalizers == ["foregroundDeletion"]
    assert apps.read_namespaced_deployment("web", "default").metadata.deletion_timestamp is not None
    # the kubelet finishes the pod: then the ReplicaSet goes, then the Deployment
    core.delete_namespaced_pod("web-def-x", "default", grace_period_seconds=0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and apps.list_namespaced_deployment("default").items:
        time.sleep(0.05)
    assert apps.list_namespaced_deployment("default").items == []
    assert [r.metadata.name for r in apps.list_namespaced_replica_set("default").items] == ["web-abc"]
    # removing the finalizer by hand also finishes a deletion
    apps.create_namespaced_deployment("default", DEPLOY)
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"finalizers": ["example.com/hold"]}})
    apps.delete_namespaced_deployment("web", "default")
    assert apps.read_namespaced_deployment("web", "default").metadata.deletion_timestamp is not None
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json")
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "default")
    assert exc.value.status == 404


def test_server_side_apply_field_ownership(api: ApiThread, kc: client.ApiClient) -> None:
    """Re-applying without a field removes it only when this manager alone set it (as a real server)."""
    dyn = DynamicClient(kc)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    apps = client.AppsV1Api(kc)

    def apply(body: dict[str, Any]) -> Any:
        return deployments.server_side_apply(body=body, name="web", namespace="default", field_manager="k3dtui", force_conflicts=True)

    body = json.loads(json.dumps(DEPLOY))
    body["spec"]["replicas"] = 3
    body["metadata"]["labels"]["extra"] = "1"
    first = apply(body)
    entry = first.to_dict()["metadata"]["managedFields"][0]
    assert entry["manager"] == "k3dtui" and entry["operation"] == "Apply"
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    # someone else labels it (a non-apply write)
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"team": "blue"}}})
    # re-apply without replicas and without the extra label: both were ours alone, so both go;
    # replicas falls back to its default, the other writer's label stays
    body2 = json.loads(json.dumps(DEPLOY))
    del body2["spec"]["replicas"]
    second = apply(body2)
    assert second.spec.replicas == 1
    assert second.to_dict()["metadata"]["labels"] == {"app": "web", "team": "blue"}
    # after a scale (the scale subresource takes spec.replicas), re-applying without it keeps the count
    apply(body)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 6}})
    third = apply(body2)
    assert third.spec.replicas == 6
    # an unchanged re-apply writes nothing
    rv = third.metadata.resourceVersion
    assert apply(body2).metadata.resourceVersion == rv


def test_misc_paths_dry_run_collection_delete_eviction_namespace(api: ApiThread, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    # dryRun=All answers as a create would and stores nothing
    resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All",
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}})
    assert resp.status_code == 201 and resp.json()["metadata"]["name"] == "dry"
    assert core.list_namespaced_config_map("default").items == []
    # the legacy /watch/ prefix
    for i in range(3):
        core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": f"c{i}", "labels": {"n": str(i)}}})
    lines = raw(api, "GET", "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=0.2").text.splitlines()
    assert [json.loads(x)["object"]["metadata"]["name"] for x in lines] == ["c0", "c1", "c2"]
    # delete a collection by label
    core.delete_collection_namespaced_config_map("default", label_selector="n in (0,1)")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c2"]
    # eviction deletes the pod (unscheduled: at once)
    core.create_namespaced_pod("default", pod_body("ev"))
    core.create_namespaced_pod_eviction("ev", "default", {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev"}},
                                        _preload_content=False)
    assert core.list_namespaced_pod("default").items == []
    # aggregated discovery of the core group and the legacy forms
    agg = raw(api, "GET", "/api", accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json").json()
    assert agg["kind"] == "APIGroupDiscoveryList"
    res = {r["resource"]: r for r in agg["items"][0]["versions"][0]["resources"]}
    assert res["pods"]["scope"] == "Namespaced" and res["pods"]["shortNames"] == ["po"]
    assert {s["subresource"] for s in res["pods"]["subresources"]} >= {"status", "binding", "eviction", "log"}
    legacy = raw(api, "GET", "/api").json()
    assert legacy["kind"] == "APIVersions" and legacy["versions"] == ["v1"]
    group = raw(api, "GET", "/apis/apps").json()
    assert group["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    rl = raw(api, "GET", "/apis/apps/v1").json()
    scale = next(r for r in rl["resources"] if r["name"] == "deployments/scale")
    assert scale["group"] == "autoscaling" and scale["kind"] == "Scale"
    oa = raw(api, "GET", "/openapi/v3").json()
    url = oa["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = raw(api, "GET", url).json()
    path = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert path["patch"]["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert raw(api, "GET", "/openapi/v2").json()["swagger"] == "2.0"
    # deleting a namespace: without a namespace controller (a bare API server) it stays
    # Terminating; tests/sim/test_semantics.py covers the whole deletion
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}})
    core.create_namespaced_config_map("tmp", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    core.delete_namespace("tmp")
    tmp = core.read_namespace("tmp")
    assert tmp.status.phase == "Terminating" and tmp.metadata.deletion_timestamp is not None
    # metadata-only answers (what metadata informers ask for)
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    meta_list = raw(api, "GET", "/api/v1/namespaces/default/configmaps", accept=accept).json()
    assert meta_list["kind"] == "PartialObjectMetadataList"
    assert [i["metadata"]["name"] for i in meta_list["items"]] == ["c2"] and "data" not in meta_list["items"][0]
    one = raw(api, "GET", "/api/v1/namespaces/default/configmaps/c2",
              accept="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json").json()
    assert one["kind"] == "PartialObjectMetadata" and one["metadata"]["name"] == "c2"
    # pod logs come from the log provider, as text
    api.server.log_provider = lambda ns, name, container: f"hello from {ns}/{name}\n"
    core.create_namespaced_pod("default", pod_body("logger"))
    assert core.read_namespaced_pod_log("logger", "default") == "hello from default/logger\n"


def test_server_side_apply_conflict_without_force(api: ApiThread, kc: client.ApiClient) -> None:
    dyn = DynamicClient(kc)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(body=DEPLOY, name="web", namespace="default", field_manager="k3dtui")
    client.AppsV1Api(kc).patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    body = json.loads(json.dumps(DEPLOY))
    body["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    with pytest.raises(ApiException) as exc:
        deployments.server_side_apply(body=body, name="web", namespace="default", field_manager="k3dtui")
    assert exc.value.status == 409
    status = json.loads(exc.value.body)
    assert status["reason"] == "Conflict" and status["message"].startswith("Apply failed with 1 conflict: conflict with")
    assert status["details"]["causes"][0]["field"] == ".spec.replicas"
    assert client.AppsV1Api(kc).read_namespaced_deployment("web", "default").spec.replicas == 4
    out = deployments.server_side_apply(body=body, name="web", namespace="default", field_manager="k3dtui", force_conflicts=True)
    assert out.spec.replicas == 2 and out.spec.template.metadata.labels["v"] == "2"


def test_server_side_apply_drops_list_items_it_no_longer_applies(api: ApiThread, kc: client.ApiClient) -> None:
    dyn = DynamicClient(kc)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = json.loads(json.dumps(DEPLOY))
    body["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
    deployments.server_side_apply(body=body, name="web", namespace="default", field_manager="k3dtui")
    out = deployments.server_side_apply(body=DEPLOY, name="web", namespace="default", field_manager="k3dtui")
    containers = out.to_dict()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web"]
    assert containers[0]["imagePullPolicy"] == "IfNotPresent"  # defaults filled in again
