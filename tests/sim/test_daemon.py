"""The simulated cluster's daemon and provider: start, state folder, kubeconfig, stop."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess

import psutil
import pytest
import yaml

from k3dtui.core.errors import K3dtuiError
from k3dtui.sim.provider import SimProvider
from tests.simfixtures import SimHandle, app_backends


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_state_folder_kubeconfig_token_and_kubectl(sim_cluster: SimHandle) -> None:
    folder = sim_cluster.kubeconfig.parent
    mode = stat.S_IMODE(sim_cluster.kubeconfig.stat().st_mode)
    assert mode == 0o600
    cfg = yaml.safe_load(sim_cluster.kubeconfig.read_text())
    name = sim_cluster.name
    assert cfg["current-context"] == f"k3d-{name}"
    assert cfg["contexts"][0]["context"] == {"cluster": f"k3d-{name}", "user": f"admin@k3d-{name}", "namespace": "default"}
    assert cfg["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert len(cfg["users"][0]["user"]["token"]) >= 32
    pid = int((folder / "pid").read_text().split()[0])
    assert psutil.pid_exists(pid)
    net = json.loads((folder / "network.json").read_text())
    assert net["network"] == f"k3d-{name}"
    members = {m["name"]: m["ip"] for m in net["members"]}
    assert set(members) == {f"k3d-{name}-server-0", f"k3d-{name}-agent-0", f"k3d-{name}-agent-1", f"k3d-{name}-serverlb"}
    import ipaddress

    subnet = ipaddress.ip_network(net["subnet"])
    assert all(ipaddress.ip_address(ip) in subnet for ip in members.values())
    assert ipaddress.ip_address(net["gateway"]) in subnet
    assert json.loads((folder / "lb.json").read_text()) == {}
    # the token is required; a wrong one gets a Status 401 and the server keeps serving
    with sim_cluster.http() as client:
        bad = client.get("/api/v1/nodes", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json()["kind"] == "Status"
        good = client.get("/api/v1/nodes")
        assert good.status_code == 200
        assert len(good.json()["items"]) == 3
    # stock kubectl works with the kubeconfig (it sends the token over TLS only)
    out = subprocess.run(sim_cluster.kubectl("get", "nodes", "-o", "wide"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    server = rows[f"k3d-{sim_cluster.name}-server-0"]
    assert server[1] == "Ready" and server[2] == "control-plane,master"
    assert rows[f"k3d-{sim_cluster.name}-agent-0"][2] == "<none>"
    assert "K3s" in out.stdout and "containerd://" in out.stdout


def test_start_twice_is_refused_and_delete_leaves_no_process(sim_cluster: SimHandle) -> None:
    again = SimProvider(sim_cluster.name)
    with pytest.raises(K3dtuiError, match="already running"):
        asyncio.run(again.create(1, 2, lambda _l: None))
    with sim_cluster.http() as client:  # the first one still answers
        assert client.get("/readyz").status_code == 200
    state = json.loads((sim_cluster.kubeconfig.parent / "state.json").read_text())
    pids = [state["pid"], state["dataplane_pid"]]
    assert all(psutil.pid_exists(p) for p in pids)
    asyncio.run(sim_cluster.provider.delete(lambda _l: None))
    for p in pids:
        assert not running(p), f"pid {p} still running"
    assert asyncio.run(sim_cluster.provider.find()) is None


def test_cli_start_status_stop_leaves_no_process(tmp_path: object) -> None:
    import sys

    def k3dtui(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "k3dtui", *args], capture_output=True, text=True, timeout=60)

    started = k3dtui("sim", "start", "--name", "cli-test", "--agents", "1")
    assert started.returncode == 0, started.stderr
    assert "kubeconfig:" in started.stdout and "k3d-cli-test" in started.stdout
    provider = SimProvider("cli-test")
    state = provider.state()
    pids = [state["pid"], state["dataplane_pid"]]
    assert all(psutil.pid_exists(p) for p in pids)
    again = k3dtui("sim", "start", "--name", "cli-test")
    assert again.returncode == 1 and "already running" in again.stderr and "Traceback" not in again.stderr
    status = k3dtui("sim", "status", "--name", "cli-test")
    assert status.returncode == 0 and "k3d-cli-test-agent-0" in status.stdout and "k3d-cli-test-agent-1" not in status.stdout
    stopped = k3dtui("sim", "stop", "--name", "cli-test")
    assert stopped.returncode == 0, stopped.stderr
    for p in pids:
        assert not running(p), f"pid {p} still running"
    again = k3dtui("sim", "stop", "--name", "cli-test")
    assert again.returncode == 1 and "not running" in again.stderr and "Traceback" not in again.stderr
    assert k3dtui("sim", "status", "--name", "cli-test").returncode == 1


def test_faults_node_down_restart_api_and_expire(sim_app: SimHandle) -> None:
    from kubernetes import client, watch

    from tests.simfixtures import wait_for

    api = client.CoreV1Api(sim_app.api_client())
    node = f"k3d-{sim_app.name}-agent-0"
    sim_app.control("POST", "/sim/faults", {"node": node, "ready": False})

    def pods_on_node_ready() -> list[bool]:
        return [
            any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            for p in api.list_namespaced_pod("default", field_selector=f"spec.nodeName={node}").items
        ]

    wait_for(lambda: pods_on_node_ready() == [False], 10, "the node's pod NotReady")
    assert app_backends(sim_app) == 2
    out = subprocess.run(sim_app.kubectl("get", "node", node), capture_output=True, text=True, timeout=30)
    assert "NotReady" in out.stdout
    sim_app.control("POST", "/sim/faults", {"node": node, "ready": True})
    wait_for(lambda: pods_on_node_ready() == [True], 10, "the node's pod Ready again")
    # expire: a watch from an old resourceVersion gets 410
    rv = api.list_namespaced_pod("default").metadata.resource_version
    api.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump"}})
    sim_app.control("POST", "/sim/faults", {"expire": True})
    with pytest.raises(client.ApiException) as exc:
        for _ in watch.Watch().stream(api.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=2):
            pass
    assert exc.value.status == 410
    # restart the API server: it comes back on the same port
    sim_app.control("POST", "/sim/faults", {"restart_api": True})
    import time

    time.sleep(0.5)
    assert wait_for(lambda: len(api.list_node().items) == 3, 10, "API back")


def test_fault_crash_restarts_the_container(sim_app: SimHandle) -> None:
    from kubernetes import client

    from tests.simfixtures import wait_for

    api = client.CoreV1Api(sim_app.api_client())
    pod = api.list_namespaced_pod("default", label_selector="app=fastapi").items[0].metadata.name
    assert asyncio.run(sim_app.provider.fault(crash=pod)) == [f"crash default/{pod}"]

    def restarted() -> bool:
        p = api.read_namespaced_pod(pod, "default")
        cs = p.status.container_statuses[0]
        return cs.restart_count == 1 and cs.ready and cs.last_state.terminated is not None
    wait_for(restarted, 10, "the container restarted")
    cs = api.read_namespaced_pod(pod, "default").status.container_statuses[0]
    assert cs.last_state.terminated.exit_code == 1 and cs.last_state.terminated.reason == "Error"
    out = subprocess.run(sim_app.kubectl("get", "pod", pod), capture_output=True, text=True, timeout=30)
    assert " 1 (" in out.stdout and "Running" in out.stdout
    with sim_app.http() as http:
        res = http.post("/sim/faults", json={"crash": "no-such-pod"})
    assert res.status_code == 409


def test_a_dead_data_plane_is_replaced_and_pods_serve_again(sim_app: SimHandle) -> None:
    import os
    import signal

    import httpx
    from kubernetes import client

    from tests.simfixtures import wait_for

    state = sim_app.provider.state()
    old = state["dataplane_pid"]
    os.kill(old, signal.SIGKILL)

    def replaced() -> bool:
        new = sim_app.provider.state().get("dataplane_pid")
        return bool(new) and new != old

    wait_for(replaced, 10, "a new data plane")
    api = client.CoreV1Api(sim_app.api_client())

    def restarted() -> bool:
        pods = api.list_namespaced_pod("default", label_selector="app=fastapi").items
        return all(p.status.container_statuses[0].restart_count == 1 and p.status.container_statuses[0].ready
                   for p in pods)

    wait_for(restarted, 15, "every app container restarted")
    wait_for(lambda: app_backends(sim_app) == 3, 10, "lb back")
    ip = api.read_namespaced_service("fastapi-service", "default").status.load_balancer.ingress[0].ip
    host, port = sim_app.provider.dial(ip, 80)
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=5) as http:
        assert http.get(f"http://{host}:{port}/").status_code == 200


@pytest.mark.kubectl
def test_without_openssl_the_daemon_serves_https_and_kubectl_works(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """No openssl command: the certificates are made in-process, the API is HTTPS only, and
    kubectl (which sends the token only over TLS) and the Python client both work."""
    import shutil

    kubectl = shutil.which("kubectl")
    assert kubectl is not None

    from kubernetes import client as k8s

    from k3dtui.core.kube import make_api_client
    from tests.simfixtures import start_sim, stop_sim

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "env"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bindir))
    assert shutil.which("openssl") is None
    handle = start_sim("no-tls", agents=1)
    try:
        cluster = yaml.safe_load(handle.kubeconfig.read_text())["clusters"][0]["cluster"]
        assert cluster["server"].startswith("https://127.0.0.1:") and cluster["certificate-authority-data"]
        nodes = k8s.CoreV1Api(make_api_client(handle.kubeconfig)).list_node()
        assert sorted(n.metadata.name for n in nodes.items) == ["k3d-no-tls-agent-0", "k3d-no-tls-server-0"]
        out = subprocess.run([kubectl, "--kubeconfig", str(handle.kubeconfig), "get", "nodes", "-o", "name"],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["node/k3d-no-tls-agent-0", "node/k3d-no-tls-server-0"]
        # plain HTTP is not served
        port = int(cluster["server"].rsplit(":", 1)[1])
        import httpx

        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).raise_for_status()
    finally:
        stop_sim(handle)


def test_a_daemon_whose_state_folder_is_gone_stops_by_itself() -> None:
    """Nothing lingers: once its state folder (pid file, kubeconfig) is deleted, nobody could
    reach or stop the simulated cluster, so it shuts itself down, data plane included."""
    import shutil
    import time

    from tests.simfixtures import start_sim

    handle = start_sim("orphan", agents=1)
    state = handle.provider.state()
    pids = [state["pid"], state["dataplane_pid"]]
    assert all(running(p) for p in pids)
    shutil.rmtree(handle.kubeconfig.parent)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(p) for p in pids):
        time.sleep(0.1)
    alive = [p for p in pids if running(p)]
    for p in alive:  # do not leave them behind even when the assertion fails
        psutil.Process(p).kill()
    assert not alive, f"still running after the state folder was removed: {alive}"
