"""The app's image really builds and serves, on a real Python base made from Debian's
packages (.ci/python-base-image.sh); the in-network load generator runs against two such
containers on a test network, behind a per-connection random relay (as a Service is)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.fixtures import REPO, DockerLab, docker_lab  # noqa: F401

from k3dtui.core.docker import build_image
from k3dtui.core.innetwork import (
    LABEL,
    LABEL_VALUE,
    OWNER_LABEL,
    InNetworkLoadGenerator,
    cleanup_stale,
)
from k3dtui.core.models import LoadSettings
from k3dtui.resources import app_dir

pytestmark = pytest.mark.docker

BASE = "k3dtui-test/python-base:bookworm"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

# A per-connection random TCP relay (what kube-proxy does for a Service), run with the base
# image's own python3: `relay.py PORT BACKEND...`
RELAY = r"""
import asyncio, random, sys
port, backends = int(sys.argv[1]), sys.argv[2:]
async def pump(r, w):
    try:
        while data := await r.read(65536):
            w.write(data); await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    host, bport = random.choice(backends).split(":")
    try:
        br, bw = await asyncio.open_connection(host, int(bport))
    except OSError:
        cw.close(); return
    await asyncio.gather(pump(cr, bw), pump(br, cw))
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def base_image() -> str:
    import docker

    from tests.conftest import docker_client

    cli = docker_client()  # no engine: skips (fails under CI=true) like every Docker test
    try:
        cli.images.get(BASE)
    except docker.errors.ImageNotFound:
        # build it (about 30 s with Debian's and PyPI's packages reachable); CI builds it first
        res = subprocess.run(["bash", str(REPO / ".ci" / "python-base-image.sh"), BASE],
                             capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
        if res.returncode != 0:
            from tests.conftest import _missing

            _missing(f"the Python base image {BASE} could not be built: {res.stderr.strip()[-300:]} "
                     "(run .ci/python-base-image.sh)")
    return BASE


@pytest.fixture(scope="module")
def app_image(base_image: str) -> Iterator[str]:
    from k3dtui.core.docker import connect

    cli = connect()
    tag = f"k3dtui-test/app:{uuid.uuid4().hex[:8]}"
    log: list[str] = []
    with app_dir() as context:
        build_image(context, tag, log.append, cli, buildargs={"PYTHON_IMAGE": base_image})
    try:
        yield tag
    finally:
        import contextlib

        from k3dtui.core.innetwork import image_tag

        with contextlib.suppress(Exception):  # the generator image built on it, if any
            cli.images.remove(image_tag(cli, tag), force=True)
        cli.images.remove(tag, force=True)


def _ip(container: Any, network: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def _run_app(lab: DockerLab, image: str, network: str, pod: str, node: str) -> Any:
    return lab.client.containers.run(
        image, detach=True, name=lab.name(pod), network=network, labels=lab.labels,
        environment={"POD_NAME": pod, "NODE_NAME": node},
    )


def _get(url: str, timeout: float = 2.0) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with opener.open(url, timeout=timeout) as res:
        return json.loads(res.read())  # type: ignore[no-any-return]


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout}s (last: {last!r})")


def test_app_container_serves_on_3000_as_non_root_and_is_healthy(docker_lab: DockerLab, app_image: str) -> None:  # noqa: F811
    net = docker_lab.free_network("app", 28)
    c = _run_app(docker_lab, app_image, net.name, "pod-a", "node-1")
    ip = _ip(c, net.name)
    body = _wait(lambda: _get(f"http://{ip}:3000/"), 30, "the app answering on port 3000")
    assert body["pod"] == "pod-a" and body["node"] == "node-1" and isinstance(body["random"], int)
    # the server process runs as the app user (uid 10001), not root
    top = c.top(ps_args="-o pid,uid,args")
    uids = {row[1] for row in top["Processes"] if "uvicorn" in row[-1]}
    assert uids == {"10001"}, top
    assert c.exec_run("id -u").output.decode().strip() == "10001"
    # Docker runs the image's HEALTHCHECK (every 10 s after a 5 s start period) and it passes
    status = _wait(lambda: (c.reload(), c.attrs["State"]["Health"]["Status"])[1] == "healthy", 40,
                   "the HEALTHCHECK passing")
    assert status
    assert c.attrs["State"]["Health"]["Log"][-1]["ExitCode"] == 0


def test_in_network_generator_counts_per_container(
    docker_lab: DockerLab, app_image: str, base_image: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # dead proxy variables on this side: nothing may go through them
    for var in PROXY_VARS:
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    net = docker_lab.free_network("inload", 28)
    a = _run_app(docker_lab, app_image, net.name, "pod-a", "node-1")
    b = _run_app(docker_lab, app_image, net.name, "pod-b", "node-2")
    backends = [f"{_ip(a, net.name)}:3000", f"{_ip(b, net.name)}:3000"]
    relay = docker_lab.client.containers.run(
        base_image, ["python3", "-c", RELAY, "8080", *backends], detach=True,
        name=docker_lab.name("relay"), network=net.name, labels=docker_lab.labels,
    )
    for backend in backends:
        _wait(lambda backend=backend: _get(f"http://{backend}/"), 30, f"{backend} answering")
    url = f"http://{_ip(relay, net.name)}:8080/"
    settings = LoadSettings(url=url, mode="new-connection", concurrency=4, duration=None, requests=300, timeout=3.0)
    gen = InNetworkLoadGenerator(settings, network=net.name, base_image=app_image, cli=docker_lab.client)
    with gen:
        gen.start()
        name = gen.container_name
        running = docker_lab.client.containers.get(name)
        assert running.labels[LABEL] == LABEL_VALUE and running.labels[OWNER_LABEL].endswith(f":{os.getpid()}")
        env = dict(e.split("=", 1) for e in running.attrs["Config"]["Env"])
        assert not set(PROXY_VARS) & set(env)
        snap = gen.wait(60)
    assert not snap.running and snap.finished_reason == "requests", snap
    assert snap.responses == 300 and snap.requests == 300 and not any(snap.errors.values()), snap
    assert set(snap.per_pod) == {"pod-a", "pod-b"} and sum(snap.per_pod.values()) == 300
    assert min(snap.per_pod.values()) >= 60, snap.per_pod  # random per connection: both get a share
    assert snap.per_node == {"node-1": snap.per_pod["pod-a"], "node-2": snap.per_pod["pod-b"]}
    assert snap.latency_ms_total.get("p50", 0) > 0
    # the container is gone once the run ends
    _wait(lambda: not docker_lab.client.containers.list(all=True, filters={"name": name}), 15,
          "the generator container removed")


def test_in_network_generator_stop_and_live_update(docker_lab: DockerLab, app_image: str) -> None:  # noqa: F811
    net = docker_lab.free_network("inload2", 28)
    a = _run_app(docker_lab, app_image, net.name, "pod-a", "node-1")
    ip = _ip(a, net.name)
    _wait(lambda: _get(f"http://{ip}:3000/"), 30, "the app answering")
    settings = LoadSettings(url=f"http://{ip}:3000/", mode="keep-alive", concurrency=2, duration=30.0, timeout=3.0)
    with InNetworkLoadGenerator(settings, network=net.name, base_image=app_image, cli=docker_lab.client) as gen:
        gen.start()
        name = gen.container_name
        _wait(lambda: gen.latest().responses > 20, 20, "responses flowing back")
        gen.update(concurrency=3)
        _wait(lambda: gen.latest().concurrency == 3, 10, "the live update reaching the container")
        gen.stop()
        snap = gen.latest()
    assert snap.finished_reason == "stopped" and snap.per_pod["pod-a"] == snap.responses > 20
    _wait(lambda: not docker_lab.client.containers.list(all=True, filters={"name": name}), 15,
          "the generator container removed after stop")


KILLED = r"""
import sys, time
from k3dtui.core.innetwork import InNetworkLoadGenerator
from k3dtui.core.models import LoadSettings
gen = InNetworkLoadGenerator(LoadSettings(url=sys.argv[1], mode="keep-alive", concurrency=1,
                                          duration=120.0, timeout=3.0),
                             network=sys.argv[2], base_image=sys.argv[3])
gen.start()
print(gen.container_name, flush=True)
time.sleep(120)
"""


def test_killed_k3dtui_leaves_no_generator_behind(docker_lab: DockerLab, app_image: str, tmp_path: Path) -> None:  # noqa: F811
    net = docker_lab.free_network("inload3", 28)
    a = _run_app(docker_lab, app_image, net.name, "pod-a", "node-1")
    ip = _ip(a, net.name)
    _wait(lambda: _get(f"http://{ip}:3000/"), 30, "the app answering")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, f"http://{ip}:3000/", net.name, app_image],
                            stdout=subprocess.PIPE, text=True)
    try:
        name = proc.stdout.readline().strip() if proc.stdout else ""
        assert name.startswith("k3dtui-load-")
        assert docker_lab.client.containers.get(name).status == "running"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # its stdin reached EOF with k3dtui gone: the worker ends, AutoRemove removes the container
    _wait(lambda: not docker_lab.client.containers.list(all=True, filters={"name": name}), 20,
          "the orphaned generator removed")


def test_cleanup_stale_removes_generators_of_dead_owners(docker_lab: DockerLab) -> None:  # noqa: F811
    import socket as s

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = s.gethostname()
    net = docker_lab.free_network("stale", 28)
    mine = docker_lab.container(net.name, what="alive", labels={LABEL: LABEL_VALUE, OWNER_LABEL: f"{host}:{os.getpid()}"})
    stale = docker_lab.container(net.name, what="stale", labels={LABEL: LABEL_VALUE, OWNER_LABEL: f"{host}:{dead}"})
    removed = cleanup_stale(docker_lab.client)
    assert stale.name in removed and mine.name not in removed
    assert docker_lab.client.containers.get(mine.name).status == "running"


class NotRoutableK3d:
    """A k3d-like provider whose engine does not route the cluster network to this host (as
    Docker Desktop or colima): its network is a test network with the app behind a relay."""

    kind = "k3d"

    def __init__(self, kubeconfig: Path, network: str) -> None:
        self.name = "demo"
        self.network_name = network
        self._kubeconfig = kubeconfig
        self.dialed: list[tuple[str, int]] = []

    @property
    def context(self) -> str:
        return "k3d-demo"

    async def find(self) -> Any:
        from k3dtui.core.provider import ClusterInfo

        return ClusterInfo(self.name, 1, 1, 1, 1)

    async def kubeconfig(self) -> Path:
        return self._kubeconfig

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        self.dialed.append((ip, port))
        return ip, port

    def reachability(self) -> Any:
        from k3dtui.core.k3d_provider import reachability_for

        return reachability_for("docker-desktop", "Darwin", self.network_name)


def test_load_command_runs_in_network_when_not_routable(
    docker_lab: DockerLab, app_image: str, base_image: str, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from k3dtui.cli import main
    from k3dtui.sim import gvrs
    from k3dtui.sim.testing import run_api_in_thread

    net = docker_lab.free_network("cli", 28)
    a = _run_app(docker_lab, app_image, net.name, "pod-a", "node-1")
    b = _run_app(docker_lab, app_image, net.name, "pod-b", "node-2")
    backends = [f"{_ip(a, net.name)}:3000", f"{_ip(b, net.name)}:3000"]
    relay = docker_lab.client.containers.run(  # the Service's address: port 80, as MetalLB's
        base_image, ["python3", "-c", RELAY, "80", *backends], detach=True,
        name=docker_lab.name("svc"), network=net.name, labels=docker_lab.labels,
    )
    for backend in backends:
        _wait(lambda backend=backend: _get(f"http://{backend}/"), 30, f"{backend} answering")
    ip = _ip(relay, net.name)
    api = run_api_in_thread(tmp_path)
    try:
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "fastapi-service", "namespace": "default"},
               "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 3000}],
                        "selector": {"app": "fastapi"}},
               "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        api.call(lambda: api.store.create(gvrs.SERVICES, svc))
        provider = NotRoutableK3d(api.kubeconfig, net.name)
        monkeypatch.setattr("k3dtui.providers.select_provider", lambda name, sim: (provider, "test"))
        # the generator image is built on the app image k3dtui would have built (here: the test's)
        monkeypatch.setattr("k3dtui.core.loadplan.app_image", lambda: app_image)
        code = main(["load", "--name", "demo", "--requests", "200", "--new-connections", "--json"])
        out, err = capsys.readouterr()
    finally:
        api.stop()
    assert code == 0, err
    assert provider.dialed == [(ip, 80)]
    assert f"load runs inside the cluster's network, in a container on {net.name}" in err
    data = json.loads(out)
    assert data["requests"] == 200 and data["status"] == {"200": 200} and not any(data["errors"].values())
    assert data["latency_ms"]["p50"] > 0
    assert set(data["per_pod"]) == {"pod-a", "pod-b"} and sum(data["per_pod"].values()) == 200
    assert set(data["per_node"]) == {"node-1", "node-2"}
