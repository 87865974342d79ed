"""The simulated API server driven by stock kubectl (/usr/bin/kubectl)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3dtui.resources import manifest_text
from k3dtui.sim import gvrs
from k3dtui.sim.store import now_rfc3339
from k3dtui.sim.testing import ApiThread, run_api_in_thread
from tests.upstream import FIXTURE

KUBECTL = shutil.which("kubectl") or "kubectl"
pytestmark = pytest.mark.kubectl


class Kubectl:
    def __init__(self, api: ApiThread, home: Path) -> None:
        self.api = api
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return [KUBECTL, "--kubeconfig", str(self.api.kubeconfig), "--cache-dir", str(self.home / "cache"), *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "KUBECONFIG": str(self.api.kubeconfig)}

    def run(self, *args: str, ok: bool = True, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, input=stdin,
                              env=self.env(), timeout=timeout, check=False)
        if ok:
            assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
        return proc

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    with run_api_in_thread(tmp_path / "api") as a:
        yield a


@pytest.fixture
def k(api: ApiThread, tmp_path: Path) -> Kubectl:
    return Kubectl(api, tmp_path / "home")


def node(name: str, ip: str, server: bool) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if server:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    now = now_rfc3339()
    conds = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": "ok",
              "lastHeartbeatTime": now, "lastTransitionTime": now}
             for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"), ("PIDPressure", "SufficientPID"))]
    conds.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                  "lastHeartbeatTime": now, "lastTransitionTime": now})
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": f"k3s://{name}"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": conds,
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.31.5+k3s1", "kubeletVersion": "v1.31.5+k3s1",
                "machineID": "m", "operatingSystem": "linux", "osImage": "K3s v1.31.5+k3s1", "systemUUID": "s",
            },
        },
    }


def running_pod(name: str, node_name: str, ip: str, labels: dict[str, str]) -> dict[str, Any]:
    now = now_rfc3339()
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels, "uid": f"uid-{name}",
                     "creationTimestamp": now},
        "spec": {"nodeName": node_name, "containers": [{"name": "app", "image": "fastapi-random:latest"}],
                 "terminationGracePeriodSeconds": 30},
        "status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "172.18.0.3", "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": "app", "image": "fastapi-random:latest", "imageID": "", "ready": True,
                                   "started": True, "restartCount": 0, "containerID": "containerd://abc",
                                   "state": {"running": {"startedAt": now}}}],
        },
    }


def seed_cluster(api: ApiThread) -> None:
    def do() -> None:
        api.store.create(gvrs.NODES, node("k3d-sim-server-0", "172.18.0.2", True))
        api.store.create(gvrs.NODES, node("k3d-sim-agent-0", "172.18.0.3", False))
        api.store.create(gvrs.PODS, running_pod("web-1", "k3d-sim-agent-0", "10.42.1.5", {"app": "web"}))

    api.call(do)


def test_version_and_get_nodes_wide(api: ApiThread, k: Kubectl) -> None:
    out = k("version", "-o", "json")
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.31.5+k3s1"
    seed_cluster(api)
    lines = k("get", "nodes", "-o", "wide").splitlines()
    header = lines[0].split()
    assert header[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert "INTERNAL-IP" in header and "CONTAINER-RUNTIME" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["k3d-sim-server-0"][1:3] == ["Ready", "control-plane,master"]
    assert rows["k3d-sim-agent-0"][1:3] == ["Ready", "<none>"]
    assert "172.18.0.2" in rows["k3d-sim-server-0"] and "v1.31.5+k3s1" in rows["k3d-sim-server-0"]
    assert k("get", "nodes", "-o", "name").split() == ["node/k3d-sim-agent-0", "node/k3d-sim-server-0"]


def test_get_pods_wide_yaml_labels_sort(api: ApiThread, k: Kubectl) -> None:
    seed_cluster(api)
    lines = k("get", "pods", "-o", "wide").splitlines()
    assert lines[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "IP" in lines[0].split() and "NODE" in lines[0].split()
    row = lines[1].split()
    assert row[:4] == ["web-1", "1/1", "Running", "0"]
    assert "10.42.1.5" in row and "k3d-sim-agent-0" in row
    assert "app: web" in k("get", "pod", "web-1", "-o", "yaml")
    assert "app=web" in k("get", "pods", "--show-labels")
    assert k("get", "pods", "-L", "app").splitlines()[0].split()[-1] == "APP"
    assert "web-1" in k("get", "pods", "--sort-by=.metadata.creationTimestamp")
    # terminating shows as such
    api.call(lambda: api.store.mutate(gvrs.PODS, "default", "web-1",
                                      lambda p: p["metadata"].update(deletionTimestamp=now_rfc3339())))
    assert k("get", "pods").splitlines()[1].split()[2] == "Terminating"


def test_apply_server_side_client_side_scale_label_patch(api: ApiThread, k: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(manifest_text("app.yaml"))
    out = k("apply", "--server-side", "-f", str(manifest))
    assert "deployment.apps/fastapi-app serverside-applied" in out and "service/fastapi-service serverside-applied" in out
    out = k("apply", "--server-side", "-f", str(manifest))
    assert "serverside-applied" in out
    out = k("apply", "-f", str(manifest))
    assert "deployment.apps/fastapi-app" in out
    assert "deployment.apps/fastapi-app scaled" in k("scale", "deploy/fastapi-app", "--replicas=5")
    dep = json.loads(k("get", "deploy", "fastapi-app", "-o", "json"))
    assert dep["spec"]["replicas"] == 5
    lines = k("get", "deploy", "-o", "wide").splitlines()
    assert lines[0].split()[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:2] == ["fastapi-app", "0/5"] and "app=fastapi" in lines[1]
    k("label", "deploy", "fastapi-app", "tier=web")
    k("annotate", "deploy", "fastapi-app", "note=hello")
    k("patch", "deploy", "fastapi-app", "--type=merge", "-p", '{"spec":{"revisionHistoryLimit":3}}')
    k("patch", "deploy", "fastapi-app", "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"fastapi","image":"fastapi-random:v2"}]}}}}')
    dep = json.loads(k("get", "deploy", "fastapi-app", "-o", "json"))
    assert dep["metadata"]["labels"]["tier"] == "web"
    assert dep["metadata"]["annotations"]["note"] == "hello"
    assert dep["spec"]["revisionHistoryLimit"] == 3
    c = dep["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "fastapi-random:v2" and c[0]["ports"][0]["containerPort"] == 3000
    svc_line = k("get", "svc", "fastapi-service").splitlines()
    assert svc_line[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc_line[1].split()[3] == "<pending>" and svc_line[1].split()[4].startswith("80:")
    api.call(lambda: api.store.mutate(gvrs.SERVICES, "default", "fastapi-service", lambda s: s.update(
        status={"loadBalancer": {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}})))
    assert k("get", "svc", "fastapi-service").splitlines()[1].split()[3] == "172.18.255.200"
    out = k("get", "all")
    assert "deployment.apps/fastapi-app" in out and "service/fastapi-service" in out
    out = k("delete", "-f", str(manifest))
    assert 'deployment.apps "fastapi-app" deleted' in out
    proc = k.run("get", "deploy")
    assert proc.stdout.strip() == "" and "No resources found in default namespace." in proc.stderr


def test_delete_pod_waits_until_gone(api: ApiThread, k: Kubectl) -> None:
    seed_cluster(api)

    def kubelet() -> None:
        # what the kubelet does: finish the graceful delete a moment later
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pod = api.call(lambda: api.store.get(gvrs.PODS, "default", "web-1"))
            if pod is not None and pod["metadata"].get("deletionTimestamp"):
                time.sleep(0.3)
                api.call(lambda: api.store.delete(gvrs.PODS, "default", "web-1"))
                return
            time.sleep(0.05)

    t = threading.Thread(target=kubelet)
    t.start()
    started = time.monotonic()
    out = k("delete", "pod", "web-1")
    t.join()
    assert 'pod "web-1" deleted' in out
    assert time.monotonic() - started < 10
    assert api.call(lambda: api.store.get(gvrs.PODS, "default", "web-1")) is None
    # forced: gone at once
    api.call(lambda: api.store.create(gvrs.PODS, running_pod("web-2", "k3d-sim-agent-0", "10.42.1.6", {"app": "web"})))
    out = k("delete", "pod", "web-2", "--grace-period=0", "--force")
    assert "web-2" in out
    assert api.call(lambda: api.store.get(gvrs.PODS, "default", "web-2")) is None


def test_get_watch_streams_changes(api: ApiThread, k: Kubectl) -> None:
    seed_cluster(api)
    k("get", "pods")  # warm the discovery cache
    proc = subprocess.Popen(k.argv("get", "pods", "-w", "--request-timeout=0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=k.env())
    try:
        time.sleep(1.5)
        api.call(lambda: api.store.create(gvrs.PODS, running_pod("web-9", "k3d-sim-agent-0", "10.42.1.9", {"app": "web"})))
        time.sleep(1.0)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]
    assert any(line.startswith("web-1") for line in lines)
    assert any(line.startswith("web-9") and "Running" in line for line in lines)


def test_wait_for_ready_and_api_resources(api: ApiThread, k: Kubectl) -> None:
    seed_cluster(api)
    out = k("wait", "--for=condition=ready", "pod", "-l", "app=web", "--timeout=10s")
    assert "pod/web-1 condition met" in out
    res = k("api-resources")
    assert "deployments" in res and "ipaddresspools" not in res
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "l2advertisements.metallb.io"},
        "spec": {"group": "metallb.io", "scope": "Namespaced",
                 "names": {"kind": "L2Advertisement", "plural": "l2advertisements", "singular": "l2advertisement"},
                 "versions": [{"name": "v1beta1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    k("apply", "--server-side", "-f", "-", stdin=json.dumps(crd))
    assert "l2advertisements" in k("api-resources", "--api-group=metallb.io")
    k("create", "namespace", "metallb-system", "--dry-run=client", "-o", "json")  # client only
    k("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}}))
    l2 = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
          "metadata": {"name": "l2", "namespace": "metallb-system"}, "spec": {"ipAddressPools": ["p"]}}
    k("apply", "--server-side", "-f", "-", stdin=json.dumps(l2))
    out = k("get", "-n", "metallb-system", "l2advertisements")
    assert out.splitlines()[0].split() == ["NAME", "AGE"] and "l2" in out


def test_errors_as_kubectl_prints_them(api: ApiThread, k: Kubectl) -> None:
    proc = k.run("get", "pod", "nope", ok=False)
    assert proc.returncode != 0
    assert 'Error from server (NotFound): pods "nope" not found' in proc.stderr
    proc = k.run("scale", "deploy/nope", "--replicas=2", ok=False)
    assert proc.returncode != 0 and "no objects passed to scale" in proc.stderr  # as against a real cluster
    proc = k.run("delete", "deploy", "nope", ok=False)
    assert 'Error from server (NotFound): deployments.apps "nope" not found' in proc.stderr
    proc = k.run("get", "--raw", "/readyz")
    assert proc.stdout.strip() == "ok"
    # the kubectl picked for this server version sends JSON for create deployment
    assert "deployment.apps/x created" in k("create", "deployment", "x", "--image=nginx:1.27")
    dep = json.loads(k("get", "deploy", "x", "-o", "json"))
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["selector"] == {"matchLabels": {"app": "x"}}


def test_describe_rollout_expose_create_logs(api: ApiThread, k: Kubectl, tmp_path: Path) -> None:
    seed_cluster(api)
    api.call(lambda: api.store.create(gvrs.EVENTS, {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-1.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "uid-web-1", "apiVersion": "v1"},
        "reason": "Scheduled", "message": "Successfully assigned default/web-1 to k3d-sim-agent-0", "type": "Normal",
        "count": 1, "source": {"component": "default-scheduler"},
        "firstTimestamp": now_rfc3339(), "lastTimestamp": now_rfc3339(),
    }))
    out = k("describe", "pod", "web-1")
    assert "Name:" in out and "web-1" in out and "k3d-sim-agent-0" in out
    assert "Scheduled" in out and "Successfully assigned" in out
    manifest = tmp_path / "dep.yaml"
    manifest.write_text(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}},
    }))
    assert "deployment.apps/web created" in k("create", "-f", str(manifest))
    assert "deployment.apps/web restarted" in k("rollout", "restart", "deploy/web")
    dep = json.loads(k("get", "deploy", "web", "-o", "json"))
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    # what the deployment controller reports once done; rollout status then passes
    gen = dep["metadata"]["generation"]
    api.call(lambda: api.store.mutate(gvrs.DEPLOYMENTS, "default", "web", lambda d: d.update(status={
        "observedGeneration": gen, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})))
    assert "successfully rolled out" in k("rollout", "status", "deploy/web", "--timeout=10s")
    assert "service/web exposed" in k("expose", "deploy", "web", "--port", "80")
    svc = json.loads(k("get", "svc", "web", "-o", "json"))
    assert svc["spec"]["selector"] == {"app": "web"} and svc["spec"]["clusterIP"].startswith("10.43.")
    out = k("get", "svc,endpointslices")
    assert "service/web" in out
    assert "web-1" in k("get", "pods", "-A")
    logs = k.run("logs", "web-1")
    assert logs.returncode == 0
    out = k("delete", "pod", "-l", "app=web", "--wait=false")
    assert "web-1" in out


def test_server_side_apply_conflicts_after_scale(api: ApiThread, k: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(manifest_text("app.yaml"))
    k("apply", "--server-side", "-f", str(manifest))
    k("scale", "deploy/fastapi-app", "--replicas=5")
    # re-applying replicas: 3 now fights the scale, as against a real cluster
    proc = k.run("apply", "--server-side", "-f", str(manifest), ok=False)
    assert proc.returncode != 0
    assert "conflict" in proc.stderr and ".spec.replicas" in proc.stderr
    assert json.loads(k("get", "deploy", "fastapi-app", "-o", "json"))["spec"]["replicas"] == 5
    # --force-conflicts takes the field back
    k("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    assert json.loads(k("get", "deploy", "fastapi-app", "-o", "json"))["spec"]["replicas"] == 3
    # unchanged values never conflict
    k("scale", "deploy/fastapi-app", "--replicas=3")
    assert "serverside-applied" in k("apply", "--server-side", "-f", str(manifest))


def test_client_side_then_server_side_apply(api: ApiThread, k: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(manifest_text("app.yaml"))
    k("apply", "-f", str(manifest))
    changed = manifest_text("app.yaml").replace("terminationGracePeriodSeconds: 5", "terminationGracePeriodSeconds: 7")
    manifest.write_text(changed)
    k("apply", "--server-side", "-f", str(manifest))
    dep = json.loads(k("get", "deploy", "fastapi-app", "-o", "json"))
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 7


def test_strict_field_validation(api: ApiThread, k: Kubectl, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest_text("app.yaml").replace("  replicas: 3", "  replicaz: 3"))
    proc = k.run("apply", "--server-side", "-f", str(bad), ok=False)
    assert proc.returncode != 0
    assert 'strict decoding error: unknown field "spec.replicaz"' in proc.stderr
    proc = k.run("apply", "-f", str(bad), ok=False)
    assert proc.returncode != 0 and "spec.replicaz" in proc.stderr
    # --validate=warn: accepted, with the server's warning shown
    proc = k.run("apply", "--server-side", "--validate=warn", "-f", str(bad))
    assert 'unknown field "spec.replicaz"' in proc.stderr
    assert json.loads(k("get", "deploy", "fastapi-app", "-o", "json"))["spec"]["replicas"] == 1


@pytest.mark.upstream_manifest
def test_metallb_manifest_with_kubectl(api: ApiThread, k: Kubectl) -> None:
    manifest = FIXTURE
    out = k("apply", "--server-side", "-f", str(manifest))
    assert out.count("serverside-applied") >= 20
    out = k("get", "deploy,ds", "-n", "metallb-system")
    assert "deployment.apps/controller" in out and "daemonset.apps/speaker" in out
    assert "ipaddresspools" in k("api-resources", "--api-group=metallb.io")
