"""The simulated API server as kubectl 1.33 sees it: protobuf request bodies, auth answers,
exec, logs, port-forward, metrics and OpenAPI (issue 13, first half)."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from k3dtui.sim.apiserver import protobuf
from k3dtui.sim.apiserver.metrics import CpuRates
from k3dtui.sim.podio import LogBook
from k3dtui.sim.testing import ApiThread, run_api_in_thread
from tests.sim.test_api_client import raw
from tests.sim.test_api_kubectl import Kubectl, seed_cluster
from tests.simfixtures import SimHandle, install_app, wait_for


def _find_kubectl() -> str:
    """kubectl 1.33 (installed beside kubectl as ``kubectl.1.33``), else ``kubectl`` itself when it
    is 1.32 or newer (the first to send protobuf), else ""."""
    found = shutil.which("kubectl")
    if not found:
        return ""
    beside = Path(found).resolve().parent / "kubectl.1.33"
    if beside.exists():
        return str(beside)
    try:
        out = subprocess.run([found, "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
        client = json.loads(out)["clientVersion"]
        minor = int(re.sub(r"\D", "", client["minor"]) or 0)
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return ""
    # a "-dispatcher" kubectl runs the release that matches the server's version (1.31 here)
    return found if minor >= 32 and "dispatcher" not in str(client.get("gitVersion")) else ""


KUBECTL_133 = _find_kubectl()
if not KUBECTL_133 and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true but no kubectl >= 1.32 is installed (these tests need one)")
pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(not KUBECTL_133, reason="no kubectl >= 1.32 is installed"),
]


class Kubectl133(Kubectl):
    def argv(self, *args: str) -> list[str]:
        return [KUBECTL_133, "--kubeconfig", str(self.api.kubeconfig), "--cache-dir", str(self.home / "cache"), *args]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    with run_api_in_thread(tmp_path / "api") as a:
        yield a


@pytest.fixture
def k(api: ApiThread, tmp_path: Path) -> Kubectl133:
    return Kubectl133(api, tmp_path / "home")


def get(k: Kubectl, *args: str) -> dict:
    return json.loads(k("get", *args, "-o", "json"))


# -- 1. protobuf request bodies ------------------------------------------------------
def test_kubectl_create_commands_send_protobuf_and_succeed(k: Kubectl133) -> None:
    # kubectl >= 1.32 sends these objects as application/vnd.kubernetes.protobuf
    proc = k.run("create", "namespace", "demo", "-v=8")
    assert "Content-Type: application/vnd.kubernetes.protobuf" in proc.stderr
    k("create", "deployment", "web", "--image=fastapi-random:latest", "--replicas=0", "--port=3000", "-n", "demo")
    k("create", "configmap", "cm", "--from-literal=a=b", "--from-literal=empty=", "-n", "demo")
    k("create", "secret", "generic", "s", "--from-literal=p=q", "-n", "demo")
    k("create", "serviceaccount", "robot", "-n", "demo")
    k("create", "job", "once", "--image=busybox", "-n", "demo", "--", "sleep", "5")

    assert get(k, "namespace", "demo")["metadata"]["name"] == "demo"
    dep = get(k, "deployment", "web", "-n", "demo")
    assert dep["spec"]["replicas"] == 0  # a Go pointer: its zero is kept
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "fastapi-random:latest"
    assert container["ports"] == [{"containerPort": 3000, "protocol": "TCP"}]
    assert get(k, "configmap", "cm", "-n", "demo")["data"] == {"a": "b", "empty": ""}
    assert get(k, "secret", "s", "-n", "demo")["data"] == {"p": "cQ=="}  # base64 of "q"
    assert get(k, "serviceaccount", "robot", "-n", "demo")["metadata"]["namespace"] == "demo"
    job = get(k, "job", "once", "-n", "demo")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sleep", "5"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2) with a one-byte key and length."""
    assert number < 16 and len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_envelope_decodes_special_types() -> None:
    # ConfigMap {metadata {name "c", creationTimestamp {seconds 1}, labels {"k": "v"}}, binaryData {"b": "\x00\x01"}}
    time = _field(8, bytes([0x08, 0x01]))
    meta = _field(1, b"c") + time + _field(11, _field(1, b"k") + _field(2, b"v"))
    cm = _field(1, meta) + _field(3, _field(1, b"b") + _field(2, b"\x00\x01"))
    unknown = _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, cm)
    obj = protobuf.decode(protobuf.MAGIC + unknown)
    assert obj == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "creationTimestamp": "1970-01-01T00:00:01Z", "labels": {"k": "v"}},
        "binaryData": {"b": "AAE="},
    }
    with pytest.raises(protobuf.ProtobufError, match="prefix"):
        protobuf.decode(b"{}")
    with pytest.raises(protobuf.ProtobufError, match="no kind"):
        protobuf.decode(protobuf.MAGIC)


def test_protobuf_without_a_kind_is_a_400_status(k: Kubectl133) -> None:
    resp = raw(k.api, "POST", "/api/v1/namespaces/default/configmaps", protobuf.MAGIC + b"\x0a\x00",
               content_type=protobuf.MEDIA_TYPE)
    assert resp.status_code == 400
    assert "the protobuf envelope names no kind" in resp.json()["message"]


def test_seeded_cluster_still_lists_with_kubectl_133(k: Kubectl133) -> None:
    seed_cluster(k.api)
    assert "web-1" in k("get", "pods")


# -- 7. authorization answers -------------------------------------------------------------
def test_auth_whoami_and_can_i(k: Kubectl133) -> None:
    who = json.loads(k("auth", "whoami", "-o", "json"))
    assert who["kind"] == "SelfSubjectReview"
    assert who["status"]["userInfo"] == {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
    assert k("auth", "can-i", "delete", "pods", "-n", "kube-system").strip() == "yes"
    assert k("auth", "can-i", "*", "*").strip() == "yes"
    listed = k("auth", "can-i", "--list")
    assert "*.*" in listed.splitlines()[1]
    # an impersonated user the cluster grants nothing
    denied = k.run("auth", "can-i", "get", "pods", "--as=bob", ok=False)
    assert denied.returncode == 1 and denied.stdout.strip() == "no"
    assert "bob" in k("auth", "whoami", "--as=bob")
    resources = k("api-resources", "--api-group=authorization.k8s.io", "-o", "name").split()
    assert "selfsubjectaccessreviews.authorization.k8s.io" in resources


# -- 3. exec -------------------------------------------------------------------------------
def test_exec_answers_with_a_status_not_not_found(k: Kubectl133) -> None:
    seed_cluster(k.api)
    proc = k.run("exec", "web-1", "--", "sh", "-c", "echo hi", ok=False)
    assert proc.returncode != 0
    assert "NotFound" not in proc.stderr and "not found" not in proc.stderr
    assert "no shell" in proc.stderr and "'sh' cannot run" in proc.stderr
    bad = k.run("exec", "web-1", "-c", "nope", "--", "ls", ok=False)
    assert "container nope is not valid for pod web-1" in bad.stderr


def test_spdy_upgrade_is_refused_with_a_status(k: Kubectl133) -> None:
    seed_cluster(k.api)
    resp = raw(k.api, "POST", "/api/v1/namespaces/default/pods/web-1/exec?command=ls&stdout=true", b"",
               content_type="application/json")
    assert resp.status_code == 400
    assert "WebSocket only" in resp.json()["message"]


# -- a simulated cluster with the app (one replica, so every request reaches the same pod) ------
class KubectlSim(Kubectl):
    """kubectl 1.33 against a running simulated cluster."""

    def __init__(self, handle: SimHandle, home: Path) -> None:
        self.handle = handle
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return [KUBECTL_133, "--kubeconfig", str(self.handle.kubeconfig), "--context", self.handle.context,
                "--cache-dir", str(self.home / "cache"), *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "KUBECONFIG": str(self.handle.kubeconfig)}


@pytest.fixture
def app1(sim_cluster: SimHandle, tmp_path: Path) -> tuple[KubectlSim, str, str]:
    """(kubectl, the app's only pod, its load balancer's loopback address)."""
    ip = install_app(sim_cluster, replicas=1)
    ks = KubectlSim(sim_cluster, tmp_path / "home")
    pod = ks("get", "pods", "-l", "app=fastapi", "-o", "jsonpath={.items[0].metadata.name}").strip()
    backend = str(sim_cluster.control("GET", "/sim/status")["lb"][f"{ip}:80"])
    return ks, pod, backend


def hit(backend: str, n: int, path: str = "/") -> None:
    with httpx.Client(base_url=f"http://{backend}", timeout=5) as h:
        for _ in range(n):  # bounded
            assert h.get(path).status_code == 200


# the peer the pod sees: through the Service under Cluster, the entry node's cni0 or flannel.1
# address (kube-proxy masquerades); directly, the client's 127.0.0.1
ACCESS = re.compile(r'^INFO: +(?:127\.0\.0\.1|10\.42\.\d+\.[01]):\d+ - "GET (/\S*) HTTP/1\.1" 200 OK$')


# -- 2. logs ---------------------------------------------------------------------------------
def test_logs_have_the_apps_startup_and_access_lines_with_options(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, backend = app1
    hit(backend, 5, "/?n=1")
    lines = ks("logs", pod).splitlines()
    assert lines[0] == "INFO:     Started server process [1]"
    assert "INFO:     Uvicorn running on http://0.0.0.0:3000 (Press CTRL+C to quit)" in lines
    access = [ln for ln in lines if ACCESS.match(ln) and ACCESS.match(ln).group(1) == "/?n=1"]  # type: ignore[union-attr]
    assert len(access) == 5
    # --tail, --timestamps, --limit-bytes
    assert ks("logs", pod, "--tail=2").splitlines() == lines[-2:]
    assert ks("logs", pod, "--tail=0") == ""
    stamped = ks("logs", pod, "--timestamps", "--tail=1").rstrip("\n")
    stamp, _, text = stamped.partition(" ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp) and text == lines[-1]
    assert ks("logs", pod, "--limit-bytes=10") == lines[0][:10]
    # --since-time after the last line: nothing; --since covering everything: all of it
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ks("logs", pod, f"--since-time={later}") == ""
    assert ks("logs", pod, "--since=1h").splitlines() == lines
    bad = ks.run("logs", pod, "--tail=-5", "--since=0s", ok=False)
    assert bad.returncode != 0
    nothing = ks.run("logs", pod, "--previous", ok=False)
    assert f'previous terminated container "fastapi" in pod "{pod}" not found' in nothing.stderr


def test_logs_previous_after_a_restart(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, backend = app1
    hit(backend, 3, "/?before=crash")
    ks.handle.control("POST", "/sim/faults", {"crash": pod, "namespace": "default"})

    def restarted() -> bool:
        p = json.loads(ks("get", "pod", pod, "-o", "json"))
        cs = p["status"]["containerStatuses"][0]
        return cs["restartCount"] == 1 and "running" in cs["state"]

    wait_for(restarted, 20, "the container to restart")
    previous = ks("logs", pod, "--previous")
    assert previous.count('"GET /?before=crash HTTP/1.1" 200 OK') == 3
    current = ks("logs", pod)
    assert current.startswith("INFO:     Started server process [1]") and "before=crash" not in current


def test_logs_follow_streams_new_lines_until_the_pod_goes(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, backend = app1
    proc = subprocess.Popen(ks.argv("logs", "-f", pod), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ks.env())
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        while "Uvicorn running" not in "".join(seen):
            seen.append(proc.stdout.readline())
        hit(backend, 2, "/?while=following")
        for _ in range(2):
            line = proc.stdout.readline()
            while "while=following" not in line:
                line = proc.stdout.readline()
        assert proc.poll() is None  # still following
        ks("delete", "pod", pod, "--wait=false")
        assert proc.wait(timeout=30) == 0  # the stream ended with the pod
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)


# -- 4. metrics.k8s.io -------------------------------------------------------------------------
def test_cpu_rates_over_a_window_with_a_given_clock() -> None:
    rates = CpuRates(keep=10)
    assert rates.rate("p", 5) is None
    for t in range(8):  # 0.5 cores for 4 s, then idle
        rates.observe("p", float(t), int(min(t, 4) * 0.5e9))
    assert rates.rate("p", 3) == (0.0, 3.0)  # t 4..7: idle
    rates.observe("p", 8.0, int(2e9 + 3e9))  # 3 cores in the last second
    assert rates.rate("p", 2) == (1.5, 2.0)
    rates.forget_except(set())
    assert rates.rate("p", 2) is None


def _top_pod_millicores(ks: KubectlSim, pod: str) -> int:
    out = ks("top", "pod", pod, "--no-headers").split()
    assert out[0] == pod and out[1].endswith("m") and out[2].endswith("Mi")
    return int(out[1][:-1])


def test_kubectl_top_rises_under_load_and_falls_after(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, backend = app1
    assert "metrics.k8s.io/v1beta1" in ks("api-versions").split()
    idle = _top_pod_millicores(ks, pod)
    hit(backend, 1500)  # bounded load; the sampler's window is 5 s
    busy = _top_pod_millicores(ks, pod)
    assert busy > idle and busy >= 5
    nodes = ks("top", "nodes", "--no-headers").splitlines()
    assert len(nodes) == 3 and all(line.split()[1].endswith("m") for line in nodes)
    wait_for(lambda: _top_pod_millicores(ks, pod) < busy / 2, 15, "the pod's CPU to fall after the load")
    gone = ks.run("top", "pod", "no-such-pod", ok=False)
    assert gone.returncode != 0 and 'podmetrics.metrics.k8s.io "default/no-such-pod" not found' in gone.stderr


# -- 6. OpenAPI v2 and v3 --------------------------------------------------------------------------
METALLB_MANIFEST = Path("/work/shared/fixtures/metallb-native-v0.15.2.yaml")


def test_openapi_v2_and_v3_carry_generated_schemas(k: Kubectl133) -> None:
    v2 = raw(k.api, "GET", "/openapi/v2").json()
    deployment = v2["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    ports = v2["definitions"]["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert (ports["x-kubernetes-patch-strategy"], ports["x-kubernetes-patch-merge-key"]) == ("merge", "containerPort")
    target = v2["definitions"]["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]
    assert target["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    assert "name" in v2["definitions"]["io.k8s.api.core.v1.Container"]["required"]

    index = raw(k.api, "GET", "/openapi/v3").json()["paths"]
    url = index["apis/apps/v1"]["serverRelativeURL"]
    apps = raw(k.api, "GET", url).json()
    spec = apps["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["properties"]["replicas"]["format"] == "int32"
    assert spec["properties"]["template"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"}
    core = raw(k.api, "GET", index["api/v1"]["serverRelativeURL"]).json()["components"]["schemas"]
    target = core["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]  # a ref with a description
    assert target["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    assert target["description"].startswith("Number or name of the port")
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in apps["components"]["schemas"]
    # the gnostic protobuf form client-go asks for: kubectl's v2 explain reads it
    pb = raw(k.api, "GET", "/openapi/v2", accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert pb.headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert pb.content.startswith(b"\x0a\x032.0")  # swagger = 1: "2.0"
    v2_explain = k("explain", "deployment.spec.replicas", "--output=plaintext-openapiv2")
    assert "FIELD:    replicas <integer>" in v2_explain and "Number of desired pods" in v2_explain


def test_kubectl_explain_builtin_and_crd_kinds(k: Kubectl133) -> None:
    replicas = k("explain", "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in replicas and "Number of desired pods" in replicas
    assert "FIELD: targetPort <IntOrString>" in k("explain", "service.spec.ports.targetPort")
    assert "FIELD: limits <map[string]Quantity>" in k("explain", "pod.spec.containers.resources.limits")
    ports = k("explain", "pods.spec.containers.ports")
    assert "containerPort\t<integer> -required-" in ports
    before = raw(k.api, "GET", "/openapi/v3").json()["paths"]
    k("apply", "-f", str(METALLB_MANIFEST))
    after = raw(k.api, "GET", "/openapi/v3").json()["paths"]
    assert "apis/metallb.io/v1beta1" in after and "apis/metallb.io/v1beta1" not in before
    pools = k("explain", "ipaddresspools.spec")
    assert "KIND:       IPAddressPool" in pools
    assert "autoAssign\t<boolean>" in pools and "addresses\t<[]string> -required-" in pools
    # applying again changes nothing the schemas could have made kubectl see differently
    again = k("apply", "-f", str(METALLB_MANIFEST))
    assert "deployment.apps/controller unchanged" in again and "daemonset.apps/speaker unchanged" in again


def test_kubectl_apply_of_the_projects_manifests_twice(k: Kubectl133) -> None:
    root = Path(__file__).resolve().parents[2] / "manifests"
    for name in ("app.yaml", "metallb-minimal.yaml"):
        k("apply", "-f", str(root / name))
        again = k("apply", "-f", str(root / name))
        # a PodDisruptionBudget's spec.selector has patchStrategy "replace", so kubectl's
        # client-side apply always sends it and says "configured", on kube-apiserver too
        # (PodDisruptionBudgetSpec in k8s.io/api/policy/v1/types.go)
        again = again.replace("poddisruptionbudget.policy/fastapi-app configured", "")
        assert "configured" not in again.replace("validatingwebhookconfiguration", ""), again


# -- 3. port-forward ----------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kubectl_port_forward_reaches_the_pods_listener(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, _backend = app1
    local = _free_port()
    proc = subprocess.Popen(ks.argv("port-forward", f"pod/{pod}", f"{local}:3000", "--address=127.0.0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ks.env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(f"Forwarding from 127.0.0.1:{local} -> 3000")
        with httpx.Client(base_url=f"http://127.0.0.1:{local}", timeout=10) as h:
            for _ in range(3):  # bounded; each is a new forwarded connection
                resp = h.get("/", headers={"Connection": "close"})
                assert resp.status_code == 200 and resp.json()["pod"] == pod
        # a port nothing listens on: the error comes back on the error stream
        other = _free_port()
        bad = subprocess.Popen(ks.argv("port-forward", f"pod/{pod}", f"{other}:8080", "--address=127.0.0.1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ks.env())
        try:
            assert bad.stdout is not None and bad.stdout.readline().startswith("Forwarding from")
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{other}/", timeout=5)
            bad.terminate()
            _, err = bad.communicate(timeout=10)
            assert "failed to connect to localhost:8080 inside the pod: connection refused" in err
        finally:
            if bad.poll() is None:
                bad.kill()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "GET / HTTP/1.1" in ks("logs", pod, "--tail=3")  # the forwarded requests reached the pod


def test_python_client_streaming_port_forward(app1: tuple[KubectlSim, str, str]) -> None:
    from kubernetes import client
    from kubernetes.stream import portforward

    ks, pod, _backend = app1
    core = client.CoreV1Api(ks.handle.api_client())
    pf = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="3000")
    try:
        sock = pf.socket(3000)
        sock.setblocking(True)
        sock.settimeout(10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
        data = b""
        while len(data) < 1 << 20:  # bounded
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"}" in data.split(b"\r\n\r\n", 1)[-1]:
                break
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["pod"] == pod
        assert pf.error(3000) is None
    finally:
        pf.close()


def test_spdy_without_websocket_is_refused_cleanly(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, _backend = app1
    with ks.handle.http() as h:
        resp = h.post(f"/api/v1/namespaces/default/pods/{pod}/portforward",
                      headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade", "X-Stream-Protocol-Version": "portforward.k8s.io"})
    assert resp.status_code == 400
    assert resp.json()["kind"] == "Status" and "the SPDY/3.1 protocol" in resp.json()["message"]


# -- a learner's session, end to end (this half's commands) ----------------------------------------
def test_learner_session_with_kubectl_133(app1: tuple[KubectlSim, str, str]) -> None:
    ks, _pod, _backend = app1
    assert ks("create", "namespace", "learn").strip() == "namespace/learn created"
    ks("create", "deployment", "hello", "--image=fastapi-random:latest", "--port=3000", "-n", "learn")
    # as on k3d: an imported ":latest" image must not be pulled (kubectl create defaults to Always)
    ks("patch", "deployment/hello", "-n", "learn", "-p",
       '{"spec":{"template":{"spec":{"containers":[{"name":"fastapi-random","imagePullPolicy":"IfNotPresent"}]}}}}')
    ks("scale", "deployment/hello", "--replicas=2", "-n", "learn")
    ks.run("rollout", "status", "deployment/hello", "-n", "learn", "--timeout=60s", timeout=90)

    def two_pods() -> list[str] | None:  # the first ReplicaSet's pod may still be terminating
        names = ks("get", "pods", "-n", "learn", "-l", "app=hello", "-o", "jsonpath={.items[*].metadata.name}").split()
        return names if len(names) == 2 else None

    pods: list[str] = wait_for(two_pods, 30, "two pods of hello")
    first = pods[0]
    # logs -f while requests arrive through a port-forward
    follow = subprocess.Popen(ks.argv("logs", "-f", first, "-n", "learn"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ks.env())
    local = _free_port()
    forward = subprocess.Popen(ks.argv("port-forward", "-n", "learn", f"pod/{first}", f"{local}:3000",
                                       "--address=127.0.0.1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ks.env())
    try:
        assert forward.stdout is not None and forward.stdout.readline().startswith("Forwarding from")
        with httpx.Client(base_url=f"http://127.0.0.1:{local}", timeout=10) as h:
            for _ in range(5):  # bounded
                assert h.get("/?from=learner", headers={"Connection": "close"}).json()["pod"] == first
        assert follow.stdout is not None
        seen = 0
        for _ in range(50):  # bounded: the startup lines, then the five access lines
            if "from=learner" in follow.stdout.readline():
                seen += 1
                if seen == 5:
                    break
        assert seen == 5
    finally:
        forward.terminate()
        forward.wait(timeout=10)
    # top and explain
    top = ks("top", "pods", "-n", "learn", "--no-headers").splitlines()
    assert sorted(line.split()[0] for line in top) == sorted(pods)
    assert "Number of desired pods" in ks("explain", "deployment.spec.replicas")
    # a bad rollout, then rollout undo brings the first template back (its ReplicaSet scaled up again)
    ks("set", "image", "deployment/hello", "fastapi-random=nginx:1.27", "-n", "learn")
    ks.run("rollout", "status", "deployment/hello", "-n", "learn", "--timeout=60s", timeout=90)
    ks("rollout", "undo", "deployment/hello", "-n", "learn")
    ks.run("rollout", "status", "deployment/hello", "-n", "learn", "--timeout=60s", timeout=90)
    image = ks("get", "deployment/hello", "-n", "learn", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "fastapi-random:latest"
    # drain the node of one of hello's pods: its pods are evicted and start elsewhere
    node = ks("get", "pods", "-n", "learn", "-l", "app=hello", "-o", "jsonpath={.items[0].spec.nodeName}")
    # only hello's pods: the node may also hold the single fastapi-app pod, whose
    # PodDisruptionBudget (minAvailable 1) rightly refuses its eviction
    ks.run("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--pod-selector=app=hello",
           "--timeout=60s", timeout=90)

    def moved() -> bool:
        placed = ks("get", "pods", "-n", "learn", "-l", "app=hello", "--field-selector=status.phase=Running",
                    "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{'\\n'}{end}")
        rows = [r.split() for r in placed.splitlines() if r.strip()]
        return len(rows) == 2 and all(len(r) == 1 and r[0] != node for r in rows)

    wait_for(moved, 60, "hello's pods off the drained node")
    ks("uncordon", node)
    # the namespace goes, and its pods with it (the follow stream ends with its pod)
    ks.run("delete", "namespace", "learn", "--timeout=60s", timeout=90)
    try:
        assert follow.wait(timeout=30) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
    assert ks("get", "pods", "-n", "learn", "-o", "name").strip() == ""


def test_logbook_keeps_two_incarnations_and_reads_by_offset_time_and_tail() -> None:
    book = LogBook()
    first = book.start("u", 1, 3000, startup=["one"])
    first.write("two", when_ns=first.lines[0][0] + 10)
    assert [t for _n, t in first.read()[0]] == ["one", "two"]
    assert [t for _n, t in first.read(after=1)[0]] == ["two"] and first.read()[1] == 2
    assert [t for _n, t in first.read(tail=1)[0]] == ["two"] and first.read(tail=0)[0] == []
    assert [t for _n, t in first.read(since_ns=first.lines[0][0] + 5)[0]] == ["two"]
    second = book.start("u", 1, 3000)
    assert not first.running and book.previous("u") is first and book.current("u") is second
    assert second.lines[0][1] == "INFO:     Started server process [1]"
    book.start("u", 1, 3000)
    assert book.previous("u") is second  # only the last two are kept
    book.stop("u")
    assert book.current("u") is not None and not book.current("u").running  # type: ignore[union-attr]


def test_delete_options_in_protobuf(k: Kubectl133) -> None:
    k("create", "configmap", "doomed")
    # DeleteOptions {gracePeriodSeconds = 1: 0, propagationPolicy = 4: "Background"}
    options = bytes([0x08, 0x00]) + _field(4, b"Background")
    envelope = protobuf.MAGIC + _field(1, _field(1, b"v1") + _field(2, b"DeleteOptions")) + _field(2, options)
    resp = raw(k.api, "DELETE", "/api/v1/namespaces/default/configmaps/doomed", envelope, content_type=protobuf.MEDIA_TYPE)
    assert resp.status_code == 200, resp.text
    assert k.run("get", "configmap", "doomed", ok=False).returncode != 0
    assert protobuf.decode(envelope)["propagationPolicy"] == "Background"
    assert protobuf.decode(envelope)["gracePeriodSeconds"] == 0  # a Go pointer: its zero is kept


def test_python_client_exec_gets_the_status(app1: tuple[KubectlSim, str, str]) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    ks, pod, _backend = app1
    core = client.CoreV1Api(ks.handle.api_client())
    resp = stream(core.connect_get_namespaced_pod_exec, pod, "default", command=["ls", "/"],
                  stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    try:
        resp.run_forever(timeout=10)
        status = json.loads(resp.read_channel(3))
    finally:
        resp.close()
    assert status["status"] == "Failure" and "no shell or other programs" in status["message"]
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "126"}]


def test_kubectl_port_forward_to_a_service(app1: tuple[KubectlSim, str, str]) -> None:
    ks, pod, _backend = app1
    local = _free_port()
    proc = subprocess.Popen(ks.argv("port-forward", "svc/fastapi-service", f"{local}:80", "--address=127.0.0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ks.env())
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(f"Forwarding from 127.0.0.1:{local} -> 3000")
        assert httpx.get(f"http://127.0.0.1:{local}/", timeout=10).json()["pod"] == pod
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_apiservices_say_what_is_served(k: Kubectl133) -> None:
    rows = {line.split()[0]: line.split()[1:3] for line in k("get", "apiservices", "--no-headers").splitlines()}
    assert rows["v1beta1.metrics.k8s.io"] == ["kube-system/metrics-server", "True"]
    assert rows["v1.apps"] == ["Local", "True"] and rows["v1"] == ["Local", "True"]


def test_an_incarnation_keeps_at_most_max_bytes_of_text() -> None:
    from k3dtui.sim import podio

    inc = podio.Incarnation(number=0, started_ns=0)
    line = "x" * 1000
    for _ in range(2 * podio.MAX_BYTES // 1000):  # bounded
        inc.write(line, when_ns=1)
    assert inc.size <= podio.MAX_BYTES and inc.size == len(inc.lines) * 1000
    assert inc.written == 2 * podio.MAX_BYTES // 1000
    lines, nxt = inc.read(after=inc.written - 2)
    assert len(lines) == 2 and nxt == inc.written
