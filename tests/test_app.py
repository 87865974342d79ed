"""The app the cluster runs: identity in body and headers, one process hosting several."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from k3dtui import resources


def load_app_module() -> ModuleType:
    with resources.app_dir() as folder:
        spec = importlib.util.spec_from_file_location("fastapi_random_main", folder / "main.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules.pop("fastapi_random_main", None)
        spec.loader.exec_module(module)
        return module


def test_root_reports_pod_and_node_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "fastapi-7d4b9c8f5d-x2k9p")
    monkeypatch.setenv("NODE_NAME", "k3d-demo-agent-1")
    module = load_app_module()
    client = TestClient(module.create_app())
    res = client.get("/")
    assert res.status_code == 200
    body = res.json()
    assert body["pod"] == "fastapi-7d4b9c8f5d-x2k9p"
    assert body["node"] == "k3d-demo-agent-1"
    assert isinstance(body["random"], int)
    assert res.headers["x-pod"] == "fastapi-7d4b9c8f5d-x2k9p"
    assert res.headers["x-node"] == "k3d-demo-agent-1"
    assert res.headers["content-type"] == "application/json"


def test_two_instances_in_one_process_keep_their_identities() -> None:
    module = load_app_module()
    a = TestClient(module.create_app("pod-a", "node-1"))
    b = TestClient(module.create_app("pod-b", "node-2"))
    for _ in range(3):
        ra, rb = a.get("/"), b.get("/")
        assert (ra.json()["pod"], ra.headers["x-node"]) == ("pod-a", "node-1")
        assert (rb.json()["pod"], rb.headers["x-node"]) == ("pod-b", "node-2")


def test_healthz_is_200() -> None:
    module = load_app_module()
    res = TestClient(module.create_app("p", "n")).get("/healthz")
    assert res.status_code == 200
    assert res.json() == {"status": "ok"}


def test_random_values_vary() -> None:
    module = load_app_module()
    client = TestClient(module.create_app("p", "n"))
    values = {client.get("/").json()["random"] for _ in range(20)}
    assert len(values) > 1


def test_root_reports_the_peer_address_it_saw() -> None:
    module = load_app_module()
    client = TestClient(module.create_app("p", "n"), client=("10.42.2.0", 41234))
    res = client.get("/")
    assert res.json()["client"] == "10.42.2.0"
    assert res.headers["x-client"] == "10.42.2.0"
