"""Proxies: the proxy variables point at a dead proxy (a closed port on 127.0.0.1). Nothing
k3dtui sends to the cluster goes through them: the Kubernetes client (unless the kubeconfig
names a `proxy-url`, and then NO_PROXY still counts), the reachability probe, the load
generator; the in-network generator runs with the proxy variables removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.fixtures import FakeK3d, fake_k3d  # noqa: F401
from loadservers import ServerThread, closed_port

from k3dtui.core.k3d_provider import probe_address
from k3dtui.core.kube import make_api_client
from k3dtui.core.load import LoadGenerator
from k3dtui.core.models import LoadSettings

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sock, port = closed_port()
    url = f"http://127.0.0.1:{port}"
    for var in PROXY_VARS:
        monkeypatch.setenv(var, url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        yield url
    finally:
        sock.close()


def _namespaces(kubeconfig: Path, context: str) -> list[str]:
    from kubernetes import client

    api = client.CoreV1Api(make_api_client(kubeconfig, context))
    return [ns.metadata.name for ns in api.list_namespace(_request_timeout=5).items]


def test_kube_client_ignores_proxy_variables(sim_cluster: Any, dead_proxy: str) -> None:
    api = make_api_client(sim_cluster.kubeconfig, sim_cluster.context)
    assert api.configuration.proxy is None
    assert "default" in _namespaces(sim_cluster.kubeconfig, sim_cluster.context)


def _with_proxy_url(kubeconfig: Path, tmp_path: Path, proxy: str) -> Path:
    doc = yaml.safe_load(kubeconfig.read_text())
    for c in doc["clusters"]:
        c["cluster"]["proxy-url"] = proxy
    path = tmp_path / "with-proxy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_proxy_url_is_used_and_no_proxy_honoured(
    sim_cluster: Any, dead_proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _with_proxy_url(sim_cluster.kubeconfig, tmp_path, dead_proxy)
    api = make_api_client(path, sim_cluster.context)
    assert api.configuration.proxy == dead_proxy
    # the kubeconfig's proxy is dead: the call fails through it...
    with pytest.raises(Exception) as info:
        _namespaces(path, sim_cluster.context)
    assert "proxy" in repr(info.value).lower() or "refused" in repr(info.value).lower()
    # ...unless NO_PROXY exempts the API server's host
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    assert "default" in _namespaces(path, sim_cluster.context)


def test_probe_and_load_generator_ignore_proxy_variables(dead_proxy: str) -> None:
    servers = ServerThread()
    try:
        port = servers.app("pod-a", "node-1")
        ok, why = probe_address("127.0.0.1", port, 2.0)
        assert ok and "answered" in why
        settings = LoadSettings(url=f"http://127.0.0.1:{port}/", mode="new-connection",
                                concurrency=2, duration=None, requests=20, timeout=2.0)
        with LoadGenerator(settings) as gen:
            gen.start()
            snap = gen.wait(20)
            while gen.running:
                snap = gen.wait(1)
        assert snap.responses == 20 and not any(snap.errors.values()), snap
        assert snap.per_pod == {"pod-a": 20}
    finally:
        servers.close()


@pytest.mark.docker
def test_doctor_and_node_probe_with_a_dead_proxy(fake_k3d: FakeK3d, dead_proxy: str) -> None:  # noqa: F811
    """On the real engine: a cluster of the stand-in k3d, doctor probes one of its node
    addresses directly (no proxy) and reports it routable."""
    name = f"t{fake_k3d.run_id}"
    subprocess.run(["k3d", "cluster", "create", name, "-a", "1"], check=True, capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-m", "k3dtui", "doctor", "--json", "--name", name],
                         capture_output=True, text=True, timeout=60)
    data = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert data["routable"] is True and data["load"] == "direct"
    assert f"k3d-{name}" in data["routable_reason"] and "probe:" in data["routable_reason"]
    assert "answered" in data["routable_reason"]
def test_in_network_generator_env_drops_proxy_variables(dead_proxy: str) -> None:
    from k3dtui.core.innetwork import container_env

    env = container_env({"duration": 1})
    assert not set(PROXY_VARS) & set(env)
    assert os.environ["HTTP_PROXY"] == dead_proxy  # the host's variables are untouched


