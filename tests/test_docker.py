"""Docker network inspection and `k3dtui pool` against networks made on the real engine
(a /16, a /24, a /28, a dual-stack network with its IPv6 entry first), and Docker down."""

from __future__ import annotations

import copy
import ipaddress
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakes.fixtures import DockerLab, docker_lab  # noqa: F401

from k3dtui.cli import main
from k3dtui.core.docker import inspect_network, network_info_from_attrs
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.pool import suggest_range

pytestmark = pytest.mark.docker


def ip4(c: Any, network: str) -> str:
    c.reload()
    return str(c.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_slash16_with_a_container_at_the_top(docker_lab: DockerLab, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    net = docker_lab.free_network("n16", 16)
    subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
    top = str(subnet.network_address + (255 << 8) + 210)
    a = docker_lab.container(net.name)
    b = docker_lab.container(net.name, ip=top)

    info = inspect_network(net.name, docker_lab.client)
    assert info.name == net.name
    assert info.subnet == str(subnet)
    assert info.gateway == str(subnet.network_address + 1)
    assert {(m.name, m.ip) for m in info.members} == {
        (a.name, ip4(a, net.name)), (b.name, top)
    }

    code, out, err = run_cli(["pool", "--network", net.name, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"network", "subnet", "gateway", "used", "range", "size"}
    assert data["network"] == net.name and data["subnet"] == str(subnet)
    assert sorted(data["used"]) == sorted([info.gateway, ip4(a, net.name), top])
    assert data["size"] == 51
    start, end = (ipaddress.IPv4Address(x) for x in data["range"].split("-"))
    assert end < ipaddress.IPv4Address(top), "moved down below the used address at .255.210"
    assert int(end) - int(start) + 1 == 51

    # a user range overlapping the container is refused with exit 1 and the reason
    bad = f"{subnet.network_address + (255 << 8) + 200}-{subnet.network_address + (255 << 8) + 220}"
    code, out, err = run_cli(["pool", "--network", net.name, "--range", bad], capsys)
    assert code == 1
    assert f"({top})" in err and "Traceback" not in err
    assert f"e.g. {data['range']}" in err


def test_slash24_with_implicit_gateway(docker_lab: DockerLab, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    net = docker_lab.free_network("n24", 24, gateway_offset=None)
    subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
    containers = [docker_lab.container(net.name) for _ in range(2)]
    info = inspect_network(net.name, docker_lab.client)
    assert info.gateway == str(subnet.network_address + 1)  # the bridge takes the first host
    assert sorted(m.ip for m in info.members) == sorted(ip4(c, net.name) for c in containers)
    assert info.gateway not in {m.ip for m in info.members}

    code, out, _ = run_cli(["pool", "--network", net.name], capsys)
    assert code == 0
    want = f"{subnet.network_address + 200}-{subnet.network_address + 250}"
    assert f"range    {want}  (51 addresses, suggested)" in out
    assert f"subnet   {subnet}" in out

    code, out, _ = run_cli(["pool", "--network", net.name, "--range", want, "--json"], capsys)
    assert code == 0 and json.loads(out)["range"] == want


def test_slash28_shrinks_then_refuses_when_full(docker_lab: DockerLab, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    net = docker_lab.free_network("n28", 28)
    subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
    docker_lab.container(net.name)
    code, out, err = run_cli(["pool", "--network", net.name, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    start, end = (ipaddress.IPv4Address(x) for x in data["range"].split("-"))
    assert end == subnet.broadcast_address - 1 and start in subnet
    assert 1 <= data["size"] < 14
    assert all(ipaddress.IPv4Address(u) < start for u in data["used"])

    # explicit --size larger than any free run: refused
    code, _, err = run_cli(["pool", "--network", net.name, "--size", "13"], capsys)
    assert code == 1 and "no free run of 13 addresses" in err

    # fill the /28: 14 hosts - gateway - 1 container = 12 more
    docker_lab.containers(net.name, 12)
    assert len(inspect_network(net.name, docker_lab.client).used) == 14
    code, out, err = run_cli(["pool", "--network", net.name], capsys)
    assert code == 1
    assert f"no free run of 1 address in {subnet}" in err
    assert "k3dtui:" in err and "Traceback" not in err and out == ""


class _Reordered:
    """The engine's own answer for one network with the IPAM list reversed (IPv6 first).
    Docker 20.10 always lists IPv4 first; newer engines and other tools do not."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.networks = self

    def get(self, name: str) -> Any:
        real = self._client.networks.get(name)
        real.reload()
        attrs = copy.deepcopy(real.attrs)
        attrs["IPAM"]["Config"].reverse()

        class Net:
            def __init__(self) -> None:
                self.attrs = attrs

            def reload(self) -> None:
                return None

        return Net()


def test_dual_stack_ipv6_entry_first(docker_lab: DockerLab) -> None:  # noqa: F811
    net = docker_lab.free_network("ds", 24, ipv6_first=True)
    cfg = net.attrs["IPAM"]["Config"]
    assert {":" in c["Subnet"] for c in cfg} == {True, False}
    v4 = next(c for c in cfg if ":" not in c["Subnet"])
    c = docker_lab.container(net.name)
    client = _Reordered(docker_lab.client)
    assert ":" in client.get(net.name).attrs["IPAM"]["Config"][0]["Subnet"]
    info = inspect_network(net.name, client)
    assert info.subnet == v4["Subnet"]
    assert info.gateway == v4["Gateway"]
    assert [m.ip for m in info.members] == [ip4(c, net.name)]
    choice = suggest_range(info.subnet, info.used)
    assert ipaddress.IPv4Address(choice.start) in ipaddress.ip_network(v4["Subnet"])
    # and straight from the engine (IPv4 listed first there)
    assert inspect_network(net.name, docker_lab.client) == info


def test_network_without_ipv4() -> None:
    attrs = {"Name": "v6only", "Driver": "bridge",
             "IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}]}, "Containers": {}}
    with pytest.raises(K3dtuiError, match="no IPv4 subnet"):
        network_info_from_attrs(attrs)


def test_missing_network(docker_engine: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(K3dtuiError, match="not found"):
        inspect_network("k3dtui-test-no-such-network", docker_engine)
    code, _, err = run_cli(["pool", "--network", "k3dtui-test-no-such-network"], capsys)
    assert code == 1 and "Docker network k3dtui-test-no-such-network not found" in err


def test_pool_malformed_input_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--range", "1.2.3"], ["--range", "10.0.0.9-10.0.0.1x"], ["--size", "0"]):
        code, _, err = run_cli(["pool", "--network", "whatever", *argv], capsys)
        assert code == 2, argv
        assert err.startswith("k3dtui: error:")


# ------------------------------------------------------------------ Docker down


@pytest.fixture
def closed_socket(tmp_path: Path) -> str:
    path = tmp_path / "docker.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays; nobody listens
    return f"unix://{path}"


def test_inspect_with_engine_down(monkeypatch: pytest.MonkeyPatch, closed_socket: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", closed_socket)
    with pytest.raises(K3dtuiError) as info:
        inspect_network("anything")
    assert info.value.message.startswith(f"Docker engine not reachable at {closed_socket}")
    assert "connection refused" in info.value.message
    assert "DOCKER_HOST" in info.value.hint


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:1", "closed"])
def test_pool_command_with_engine_down(host: str, closed_socket: str) -> None:
    env = {"DOCKER_HOST": closed_socket if host == "closed" else host, "PATH": "/usr/bin:/bin"}
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "k3dtui", "pool", "--network", "k3d-x"],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert time.monotonic() - t0 < 5
    assert out.returncode == 1
    assert "Docker engine not reachable" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 2


async def test_cluster_network_found_through_labels(docker_lab: DockerLab) -> None:  # noqa: F811
    from k3dtui.core.docker import cluster_network_name
    from k3dtui.core.k3d_provider import K3dProvider

    net = docker_lab.free_network("ext", 24)
    cluster = f"ext{docker_lab.run_id}"
    node = docker_lab.container(net.name, labels={
        "app": "k3d", "k3d.cluster": cluster, "k3d.role": "server",
        "k3d.cluster.network": net.name,
    })
    assert cluster_network_name(cluster, docker_lab.client) == net.name  # not k3d-<name>
    info = await K3dProvider(cluster).network()
    assert info.name == net.name
    assert [m.ip for m in info.members] == [ip4(node, net.name)]
