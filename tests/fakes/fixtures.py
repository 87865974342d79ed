"""Fixtures for tests that need the Docker engine: the tiny local image, networks with
chosen subnets, and the stand-in `k3d` on PATH. Everything created is labelled with a
per-test run id and removed afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "k3dtui-test/busybox:latest"
K3S_NODE = "k3dtui-test/k3s-node:latest"  # busybox + a recording ctr (tests/fakes/k3s-node)
RUN_LABEL = "k3dtui.test.run"
FAKE_K3D = Path(__file__).with_name("k3d.py")


def ensure_busybox(client: Any) -> str:
    import docker.errors

    try:
        client.images.get(BUSYBOX)
    except docker.errors.ImageNotFound:
        subprocess.run(["bash", str(REPO / ".ci" / "busybox-image.sh"), BUSYBOX], check=True)
        client.images.get(BUSYBOX)
    return BUSYBOX


def ensure_k3s_node(client: Any) -> str:
    """The node stand-in with a recording ``ctr``, built once (rebuilt when its files change)."""
    import hashlib

    import docker.errors

    ensure_busybox(client)
    folder = Path(__file__).with_name("k3s-node")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.iterdir()))).hexdigest()[:16]
    try:
        if client.images.get(K3S_NODE).labels.get("k3dtui.test.inputs") == digest:
            return K3S_NODE
    except docker.errors.ImageNotFound:
        pass
    client.images.build(path=str(folder), tag=K3S_NODE, labels={"k3dtui.test.inputs": digest}, rm=True)
    return K3S_NODE


def _remove(c: Any) -> None:
    with contextlib.suppress(Exception):
        c.remove(force=True)


def cleanup_run(client: Any, run_id: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    flt = {"label": [f"{RUN_LABEL}={run_id}"]}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(_remove, client.containers.list(all=True, filters=flt)))
    for n in client.networks.list(filters=flt):
        with contextlib.suppress(Exception):
            n.remove()


@dataclass
class DockerLab:
    """Networks and containers made for one test, all removed after it."""

    client: Any
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id}

    def name(self, what: str) -> str:
        return f"k3dtui-test-{what}-{self.run_id}"

    def network(self, what: str, subnets: list[tuple[str, str | None]], ipv6: bool = False) -> Any:
        from docker.types import IPAMConfig, IPAMPool

        pools = [IPAMPool(subnet=s, gateway=g) if g else IPAMPool(subnet=s) for s, g in subnets]
        net = self.client.networks.create(
            self.name(what), driver="bridge", enable_ipv6=ipv6,
            ipam=IPAMConfig(pool_configs=pools), labels=self.labels,
        )
        net.reload()
        return net

    def free_network(
        self, what: str, prefix: int, *, gateway_offset: int | None = 1, ipv6_first: bool = False
    ) -> Any:
        """A network on a random 10.x IPv4 subnet of ``prefix`` (retrying past any overlap with
        networks that already exist). ``gateway_offset`` None leaves the gateway implicit."""
        import ipaddress
        import random

        import docker.errors

        last: Exception | None = None
        for _ in range(20):
            base = ipaddress.IPv4Address(
                f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.{random.randint(0, 255)}"
            )
            net = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
            gw = str(net.network_address + gateway_offset) if gateway_offset else None
            subnets: list[tuple[str, str | None]] = [(str(net), gw)]
            if ipv6_first:
                v6 = f"fd00:6b33:{random.randint(0, 0xffff):x}:{random.randint(0, 0xffff):x}::/64"
                subnets.insert(0, (v6, None))
            try:
                return self.network(what, subnets, ipv6=ipv6_first)
            except docker.errors.APIError as exc:
                last = exc
                if "overlap" not in str(exc).lower():
                    raise
        raise RuntimeError(f"no free test subnet found: {last}")

    def container(
        self, network: str, ip: str | None = None, what: str = "c",
        labels: dict[str, str] | None = None,
    ) -> Any:
        ensure_busybox(self.client)
        config = None
        if ip is not None:
            config = {network: self.client.api.create_endpoint_config(ipv4_address=ip)}
        c = self.client.containers.create(
            BUSYBOX, ["sleep", "120"], name=self.name(f"{what}-{uuid.uuid4().hex[:6]}"),
            labels={**self.labels, **(labels or {})}, network=network, networking_config=config,
        )
        c.start()
        return c

    def containers(self, network: str, count: int) -> list[Any]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda _: self.container(network), range(count)))


@pytest.fixture
def docker_lab(docker_engine: Any) -> Iterator[DockerLab]:
    lab = DockerLab(docker_engine)
    try:
        yield lab
    finally:
        cleanup_run(docker_engine, lab.run_id)


@dataclass
class FakeK3d:
    bin_dir: Path
    log: Path
    run_id: str
    client: Any

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]

    def containers(self, cluster: str) -> list[Any]:
        return list(self.client.containers.list(
            all=True, filters={"label": ["app=k3d", f"k3d.cluster={cluster}"]}
        ))


def install_fake_k3d(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "k3d"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_K3D}" "$@"\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def fake_k3d(
    docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeK3d]:
    ensure_busybox(docker_engine)
    run_id = uuid.uuid4().hex[:10]
    bin_dir = tmp_path / "fakebin"
    install_fake_k3d(bin_dir)
    log = tmp_path / "k3d-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_K3D_LOG", str(log))
    monkeypatch.setenv("FAKE_K3D_RUN", run_id)
    monkeypatch.delenv("FAKE_K3D_FAIL", raising=False)
    monkeypatch.delenv("FAKE_K3D_VERSION", raising=False)
    # the images k3dtui pulls before `k3d cluster create` are local ones here: no registry
    for var in ("K3DTUI_K3S_IMAGE", "K3D_IMAGE_LOADBALANCER", "K3D_IMAGE_TOOLS"):
        monkeypatch.setenv(var, BUSYBOX)
    try:
        yield FakeK3d(bin_dir, log, run_id, docker_engine)
    finally:
        cleanup_run(docker_engine, run_id)
