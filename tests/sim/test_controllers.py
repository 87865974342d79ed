"""The simulated cluster's controllers, seen through the Kubernetes API (Python client and kubectl)."""

from __future__ import annotations

import collections
import ipaddress
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, watch

from k3dtui.sim.settings import SimSettings
from tests.simfixtures import SimHandle, install_app, start_sim, stop_sim, wait_for


def core(handle: SimHandle) -> client.CoreV1Api:
    return client.CoreV1Api(handle.api_client())


def apps(handle: SimHandle) -> client.AppsV1Api:
    return client.AppsV1Api(handle.api_client())


def app_pods(api: client.CoreV1Api) -> list[Any]:
    return list(api.list_namespaced_pod("default", label_selector="app=fastapi").items)


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def test_nodes_have_the_shape_of_k3s_nodes(sim_cluster: SimHandle) -> None:
    nodes = {n.metadata.name: n for n in core(sim_cluster).list_node().items}
    name = sim_cluster.name
    assert set(nodes) == {f"k3d-{name}-server-0", f"k3d-{name}-agent-0", f"k3d-{name}-agent-1"}
    net = json.loads((sim_cluster.kubeconfig.parent / "network.json").read_text())
    subnet = ipaddress.ip_network(net["subnet"])
    cidrs = set()
    for node_name, node in nodes.items():
        labels = node.metadata.labels
        assert labels["kubernetes.io/hostname"] == node_name
        assert labels["node.kubernetes.io/instance-type"] == "k3s"
        is_server = "server" in node_name
        assert ("node-role.kubernetes.io/control-plane" in labels) is is_server
        assert ("node-role.kubernetes.io/master" in labels) is is_server
        addrs = {a.type: a.address for a in node.status.addresses}
        assert ipaddress.ip_address(addrs["InternalIP"]) in subnet
        assert addrs["Hostname"] == node_name
        conds = {c.type: c for c in node.status.conditions}
        assert conds["Ready"].status == "True" and conds["Ready"].reason == "KubeletReady"
        assert conds["MemoryPressure"].status == "False"
        info = node.status.node_info
        assert info.os_image.startswith("K3s v1.")
        assert info.container_runtime_version.startswith("containerd://")
        assert all(getattr(info, f) for f in (
            "architecture", "boot_id", "kernel_version", "kube_proxy_version", "kubelet_version",
            "machine_id", "operating_system", "system_uuid",
        ))
        assert node.spec.provider_id == f"k3s://{node_name}"
        assert node.spec.taints is None
        cidrs.add(node.spec.pod_cidr)
        assert node.status.capacity["pods"] == "110"
    assert len(cidrs) == 3 and all(c.startswith("10.42.") for c in cidrs)
    namespaces = {n.metadata.name for n in core(sim_cluster).list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= namespaces


def test_three_replicas_spread_and_serve_their_identity(sim_app: SimHandle) -> None:
    pods = app_pods(core(sim_app))
    assert len(pods) == 3
    by_node = collections.Counter(p.spec.node_name for p in pods)
    assert sorted(by_node.values()) == [1, 1, 1]
    for p in pods:
        assert p.metadata.name.startswith("fastapi-") and p.metadata.generate_name
        suffix = p.metadata.name.rsplit("-", 1)[1]
        assert len(suffix) == 5 and set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")
        assert p.status.phase == "Running" and ready(p)
        assert p.status.pod_ip.startswith("10.42.")
        cs = p.status.container_statuses[0]
        assert cs.ready and cs.started and cs.state.running is not None
        owner = p.metadata.owner_references[0]
        assert owner.kind == "ReplicaSet" and owner.controller
    identity = {p.metadata.name: p.spec.node_name for p in pods}
    ip = pods[0] and core(sim_app).read_namespaced_service("fastapi-service", "default").status.load_balancer.ingress[0].ip
    host, port = sim_app.provider.dial(ip, 80)
    seen: dict[str, str] = {}
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for _ in range(60):
            body = http.get(f"http://{host}:{port}/").json()
            seen[body["pod"]] = body["node"]
            if len(seen) == 3:
                break
    assert seen == identity
    # the Deployment and ReplicaSet roll up
    d = apps(sim_app).read_namespaced_deployment("fastapi-app", "default")
    assert (d.status.ready_replicas, d.status.available_replicas, d.status.updated_replicas) == (3, 3, 3)
    assert d.status.observed_generation == d.metadata.generation
    assert {c.type: c.reason for c in d.status.conditions}["Available"] == "MinimumReplicasAvailable"
    events = core(sim_app).list_namespaced_event("default").items
    reasons = {e.reason for e in events}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Pulled", "Created", "Started"} <= reasons


@pytest.fixture
def slow_exit_app() -> Iterator[SimHandle]:
    """The app on a cluster whose containers take 1 s to exit after SIGTERM (as a server
    draining its connections does), so the order of events does not depend on machine load."""
    handle = start_sim(settings=SimSettings.fast().replace(terminate_delay=1.0))
    try:
        install_app(handle)
        yield handle
    finally:
        stop_sim(handle)


def test_deleted_pod_is_replaced_while_it_terminates(slow_exit_app: SimHandle) -> None:
    sim_app = slow_exit_app
    api = core(sim_app)
    pods = app_pods(api)
    victim = pods[0].metadata.name
    rv = api.list_namespaced_pod("default", label_selector="app=fastapi").metadata.resource_version
    seen: list[tuple[str, str, str]] = []  # (event, what, pod)
    done = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        new_name = ""
        for ev in w.stream(api.list_namespaced_pod, "default", label_selector="app=fastapi",
                           resource_version=rv, timeout_seconds=15):
            pod = ev["object"]
            name = pod.metadata.name
            if name == victim:
                if ev["type"] == "DELETED":
                    seen.append(("DELETED", "old", name))
                elif pod.metadata.deletion_timestamp:
                    seen.append(("MODIFIED", "old-terminating", name))
            elif ev["type"] == "ADDED":
                new_name = name
                seen.append(("ADDED", "new", name))
            elif name == new_name and pod.spec.node_name and ("new-scheduled" not in [s[1] for s in seen]):
                seen.append(("MODIFIED", "new-scheduled", name))
            if name == new_name and ready(pod) and "new-ready" not in [s[1] for s in seen]:
                seen.append(("MODIFIED", "new-ready", name))
            whats = [s[1] for s in seen]
            if "old" in whats and "new-ready" in whats:
                w.stop()
        done.set()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    time.sleep(0.2)
    api.delete_namespaced_pod(victim, "default")
    assert done.wait(20), seen
    order = [s[1] for s in seen]
    first = [o for i, o in enumerate(order) if o not in order[:i]]
    assert first == ["old-terminating", "new", "new-scheduled", "new-ready", "old"], seen
    new_pod = next(s[2] for s in seen if s[1] == "new")
    # the replacement serves HTTP
    ip = api.read_namespaced_service("fastapi-service", "default").status.load_balancer.ingress[0].ip

    def replacement_served() -> bool:
        host, port = sim_app.provider.dial(ip, 80)
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as http:
            return any(http.get(f"http://{host}:{port}/").json()["pod"] == new_pod for _ in range(40))

    assert wait_for(replacement_served, 10, "the replacement to serve")
    reasons = [e.reason for e in api.list_namespaced_event("default").items if e.involved_object.name == victim]
    assert "Killing" in reasons


def test_scale_down_removes_pods_from_crowded_nodes_first(sim_app: SimHandle) -> None:
    api, a = core(sim_app), apps(sim_app)

    def active() -> list[Any]:
        return [p for p in app_pods(api) if not p.metadata.deletion_timestamp]

    def spread() -> list[int]:
        return sorted(collections.Counter(p.spec.node_name for p in active()).values())

    a.patch_namespaced_deployment_scale("fastapi-app", "default", {"spec": {"replicas": 5}})
    wait_for(lambda: sum(1 for p in active() if ready(p)) == 5, 15, "5 ready pods")
    assert spread() == [1, 2, 2]  # the scheduler spreads: fewest matching pods first
    a.patch_namespaced_deployment_scale("fastapi-app", "default", {"spec": {"replicas": 4}})
    wait_for(lambda: len(active()) == 4, 10, "4 active pods")
    assert spread() == [1, 1, 2]  # the victim came from a node running 2
    a.patch_namespaced_deployment_scale("fastapi-app", "default", {"spec": {"replicas": 3}})
    wait_for(lambda: len(active()) == 3, 10, "3 active pods")
    assert spread() == [1, 1, 1]
    terminating = [p for p in app_pods(api) if p.metadata.deletion_timestamp]
    assert terminating, "scaled-down pods are Terminating for a while"
    events = [e.reason for e in api.list_namespaced_event("default").items]
    assert "SuccessfulDelete" in events and "ScalingReplicaSet" in events


def test_unimported_image_cannot_run_until_imported(sim_cluster: SimHandle) -> None:
    api = core(sim_cluster)
    for name, policy in (("never", "Never"), ("ifnp", "IfNotPresent")):
        api.create_namespaced_pod("default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"t": "img"}},
            "spec": {"containers": [{"name": "app", "image": "fastapi-random:latest", "imagePullPolicy": policy}]},
        })

    def reason(name: str) -> str | None:
        cs = api.read_namespaced_pod(name, "default").status.container_statuses
        if not cs or cs[0].state.waiting is None:
            return None
        return str(cs[0].state.waiting.reason)

    wait_for(lambda: reason("never") == "ErrImageNeverPull", 10, "ErrImageNeverPull")
    wait_for(lambda: reason("ifnp") == "ImagePullBackOff", 10, "ImagePullBackOff")
    assert api.read_namespaced_pod("never", "default").status.phase == "Pending"
    out = subprocess.run(sim_cluster.kubectl("get", "pods", "never", "ifnp"), capture_output=True, text=True, timeout=30)
    assert "ErrImageNeverPull" in out.stdout and "ImagePullBackOff" in out.stdout
    import asyncio

    asyncio.run(sim_cluster.provider.import_image("fastapi-random:latest", lambda _l: None))
    for name in ("never", "ifnp"):
        wait_for(lambda name=name: ready(api.read_namespaced_pod(name, "default")), 10, f"{name} Ready")
    # registry images are pulled
    api.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pulled"},
        "spec": {"containers": [{"name": "c", "image": "quay.io/metallb/speaker:v0.15.2"}]},
    })
    wait_for(lambda: ready(api.read_namespaced_pod("pulled", "default")), 10, "pulled Ready")
    msgs = [e.message for e in api.list_namespaced_event("default").items if e.involved_object.name == "pulled"]
    assert any(m.startswith('Successfully pulled image "quay.io/metallb/speaker:v0.15.2"') for m in msgs)


def test_kubectl_workflow(sim_app: SimHandle, tmp_path: Any) -> None:
    def k(*args: str, timeout: float = 30) -> str:
        out = subprocess.run(sim_app.kubectl("--cache-dir", str(tmp_path / "kc"), *args),
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, (args, out.stderr)
        return out.stdout

    wide = k("get", "pods", "-o", "wide")
    header = wide.splitlines()[0].split()
    assert header[:3] == ["NAME", "READY", "STATUS"] and "IP" in header and "NODE" in header
    rows = [r.split() for r in wide.splitlines()[1:]]
    assert len(rows) == 3 and all(r[2] == "Running" and r[5].startswith("10.42.") for r in rows)
    svc = k("get", "svc", "fastapi-service")
    assert "<pending>" not in svc and "LoadBalancer" in svc
    k("scale", "deploy/fastapi-app", "--replicas=4")
    k("wait", "--for=condition=ready", "pod", "-l", "app=fastapi", "--timeout=20s")
    api = core(sim_app)
    wait_for(lambda: sum(1 for p in app_pods(api) if ready(p)) == 4, 10, "4 ready pods")
    victim = app_pods(api)[0].metadata.name
    start = time.monotonic()
    k("delete", "pod", victim)
    assert time.monotonic() - start < 15
    names = {p.metadata.name for p in app_pods(api)}
    assert victim not in names


def test_endpoint_slices_follow_pods(sim_app: SimHandle) -> None:
    disc = client.DiscoveryV1Api(sim_app.api_client())
    slices = disc.list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=fastapi-service").items
    assert len(slices) == 1
    es = slices[0]
    assert es.address_type == "IPv4" and es.ports[0].port == 3000
    assert es.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert es.metadata.owner_references[0].kind == "Service"
    pods = {p.metadata.uid: p for p in app_pods(core(sim_app))}
    assert {e.target_ref.uid for e in es.endpoints} == set(pods)
    assert all(e.conditions.ready and e.addresses == [pods[e.target_ref.uid].status.pod_ip] for e in es.endpoints)
    ep = core(sim_app).read_namespaced_endpoints("fastapi-service", "default")
    assert len(ep.subsets[0].addresses) == 3
    # deleting the Deployment takes ReplicaSets and pods with it
    a, api = apps(sim_app), core(sim_app)
    a.delete_namespaced_deployment("fastapi-app", "default")
    wait_for(lambda: not a.list_namespaced_replica_set("default").items, 10, "ReplicaSet gone")
    wait_for(lambda: not app_pods(api), 10, "pods gone")


def test_every_emitted_object_deserializes(sim_app: SimHandle) -> None:
    api_client = sim_app.api_client()
    paths = [
        ("/api/v1/pods", "V1PodList"),
        ("/api/v1/events", "CoreV1EventList"),
        ("/api/v1/nodes", "V1NodeList"),
        ("/api/v1/namespaces", "V1NamespaceList"),
        ("/api/v1/endpoints", "V1EndpointsList"),
        ("/apis/discovery.k8s.io/v1/endpointslices", "V1EndpointSliceList"),
        ("/apis/apps/v1/replicasets", "V1ReplicaSetList"),
        ("/apis/apps/v1/deployments", "V1DeploymentList"),
        ("/apis/apps/v1/daemonsets", "V1DaemonSetList"),
        ("/api/v1/services", "V1ServiceList"),
    ]
    with sim_app.http() as http:
        for path, model in paths:
            text = http.get(path).text
            out = api_client.deserialize(text, model, "application/json")
            assert out.items, path
            for item in json.loads(text)["items"]:
                single = api_client.deserialize(json.dumps(item), model[:-4] if model.endswith("List") else model,
                                                "application/json")
                assert single.metadata.name
