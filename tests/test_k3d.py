"""The k3d CLI wrapper and K3dProvider: unit tests of the config, list parsing and version,
then the whole provider against the stand-in `k3d` on PATH and the real Docker engine."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.fixtures import FakeK3d, fake_k3d  # noqa: F401

from k3dtui.core import k3d
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.k3d_provider import K3dProvider, reachability_for
from k3dtui.core.pool import suggest_range, validate_range
from k3dtui.core.process import CommandError
from tests.upstream import MINIMAL

# ------------------------------------------------------------------ unit


def test_config_disables_servicelb_on_every_server() -> None:
    doc = yaml.safe_load(k3d.render_config("demo", 3, 4))
    assert doc["apiVersion"] == "k3d.io/v1alpha5" and doc["kind"] == "Simple"
    assert doc["metadata"]["name"] == "demo"
    assert (doc["servers"], doc["agents"]) == (3, 4)
    args = doc["options"]["k3s"]["extraArgs"]
    servicelb = [a for a in args if a["arg"] == "--disable=servicelb"]
    assert servicelb == [{"arg": "--disable=servicelb", "nodeFilters": ["server:*"]}]


def test_write_config_is_a_temp_file() -> None:
    path = k3d.write_config("demo", 1, 2)
    try:
        assert yaml.safe_load(path.read_text())["metadata"]["name"] == "demo"
    finally:
        path.unlink()


@pytest.mark.parametrize(
    ("out", "version"),
    [
        ("k3d version v5.9.0\nk3s version v1.31.5-k3s1 (default)\n", "v5.9.0"),
        ("k3d version v5.6.3-rc.1\n", "v5.6.3-rc.1"),
        ("k3d version v4.4.8\n", "v4.4.8"),
    ],
)
def test_parse_version(out: str, version: str) -> None:
    assert k3d.parse_version(out) == version


def test_require_v5() -> None:
    k3d.require_v5("v5.9.0")
    with pytest.raises(K3dtuiError, match="needs k3d v5"):
        k3d.require_v5("v4.4.8")
    with pytest.raises(K3dtuiError):
        k3d.parse_version("something else")


REAL_SHAPE = [
    {
        "name": "demo",
        "network": {"name": "k3d-demo", "id": "abc", "isExternal": False,
                    "ipam": {"ipPrefix": "172.19.0.0/16", "ipsUsed": None, "Managed": False},
                    "Members": None},
        "token": "",
        "nodes": [
            {"name": "k3d-demo-server-0", "role": "server", "runtimeLabels": {"app": "k3d"},
             "State": {"Running": True, "Status": "running", "Started": ""},
             "IP": {"IP": "172.19.0.3", "Static": False}, "GPURequest": "", "Memory": ""},
            {"name": "k3d-demo-agent-0", "role": "agent",
             "State": {"Running": False, "Status": "exited", "Started": ""},
             "IP": {"IP": "", "Static": False}},
            {"name": "k3d-demo-serverlb", "role": "loadbalancer",
             "State": {"Running": True, "Status": "running", "Started": ""}},
        ],
        "serversRunning": 1, "serversCount": 1, "agentsRunning": 0, "agentsCount": 1,
        "hasLoadbalancer": True, "imageVolume": "k3d-demo-images",
    }
]


def test_parse_cluster_list_real_shape() -> None:
    [info] = k3d.parse_cluster_list(json.dumps(REAL_SHAPE))
    assert (info.name, info.servers, info.agents) == ("demo", 1, 1)
    assert (info.servers_running, info.agents_running) == (1, 0)
    assert not info.running


def test_parse_cluster_list_counts_from_nodes_when_absent() -> None:
    item = {k: v for k, v in REAL_SHAPE[0].items() if not k.endswith(("Count", "Running"))}
    [info] = k3d.parse_cluster_list(json.dumps([item]))
    assert (info.servers, info.agents, info.servers_running, info.agents_running) == (1, 1, 1, 0)


@pytest.mark.parametrize("text", ["", "[]", "null"])
def test_parse_cluster_list_empty(text: str) -> None:
    assert k3d.parse_cluster_list(text) == []


def test_parse_cluster_list_garbage() -> None:
    with pytest.raises(K3dtuiError, match="not JSON"):
        k3d.parse_cluster_list("NAME SERVERS\n")


def test_provider_refuses_bad_name() -> None:
    with pytest.raises(UsageError):
        K3dProvider("Bad_Name")


def test_reachability() -> None:
    linux = reachability_for("native-linux", "Linux", "k3d-x")
    assert linux.routable and "k3d-x" in linux.explanation
    for kind, system in [("other", "Darwin"), ("docker-desktop", "Windows"), ("docker-desktop", "Linux")]:
        r = reachability_for(kind, system, "k3d-x")
        assert not r.routable
        assert "inside the cluster's network" in r.explanation and "port-forward" in r.explanation


def test_dial_is_the_ip_itself() -> None:
    assert K3dProvider("demo").dial("172.19.255.200", 80) == ("172.19.255.200", 80)
    assert K3dProvider("demo").context == "k3d-demo"


# ------------------------------------------------------------------ with the stand-in k3d


def lines() -> tuple[list[str], Any]:
    out: list[str] = []
    return out, out.append


@pytest.mark.docker
async def test_provider_lifecycle_against_stand_in(fake_k3d: FakeK3d) -> None:  # noqa: F811
    name = f"t{fake_k3d.run_id}"
    provider = K3dProvider(name)
    assert await provider.find() is None

    log, sink = lines()
    await provider.create(1, 1, sink)
    assert any(f"Cluster '{name}' created successfully" in ln for ln in log), log

    # the call and the generated config file
    create = next(c for c in fake_k3d.calls() if c["argv"][:2] == ["cluster", "create"])
    assert create["argv"][2] == "--config" and len(create["argv"]) == 4
    assert not Path(create["argv"][3]).exists(), "the temporary config is removed"
    cfg = yaml.safe_load(create["config"])
    assert (cfg["metadata"]["name"], cfg["servers"], cfg["agents"]) == (name, 1, 1)
    assert {"arg": "--disable=servicelb", "nodeFilters": ["server:*"]} in cfg["options"]["k3s"]["extraArgs"]

    # what k3d made on the engine: servicelb is off on the server, not passed to agents
    nodes = {c.labels["k3d.role"]: c for c in fake_k3d.containers(name)}
    assert set(nodes) == {"server", "agent", "loadbalancer"}
    assert json.loads(nodes["server"].labels["k3dtui.test.k3s-args"]) == ["--disable=servicelb"]
    assert json.loads(nodes["agent"].labels["k3dtui.test.k3s-args"]) == []

    info = await provider.find()
    assert info is not None and (info.servers, info.agents) == (1, 1) and info.running

    # kubeconfig in k3dtui's own folder, 0600, from `k3d kubeconfig get NAME`
    path = await provider.kubeconfig()
    assert path.parent.name == name and path.parent.parent.name == "k3d"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kc = yaml.safe_load(path.read_text())
    assert kc["current-context"] == f"k3d-{name}" == provider.context
    assert ["kubeconfig", "get", name] in fake_k3d.argvs()

    # the network (found through the nodes' labels) and a pool that avoids every node
    from k3dtui.core.docker import cluster_network_name

    assert cluster_network_name(name, fake_k3d.client) == f"k3d-{name}"
    assert cluster_network_name(f"none{fake_k3d.run_id}", fake_k3d.client) == f"k3d-none{fake_k3d.run_id}"
    net = await provider.network()
    assert net.name == f"k3d-{name}"
    assert {m.name for m in net.members} == {c.name for c in nodes.values()}
    choice = suggest_range(net.subnet, net.used)
    validate_range(choice.range, net.subnet, net.used)

    # image import always names the cluster
    log, sink = lines()
    await provider.import_image("k3dtui-test/busybox:latest", sink)
    assert ["image", "import", "k3dtui-test/busybox:latest", "-c", name] in fake_k3d.argvs()
    assert any(f"into cluster '{name}'" in ln for ln in log)

    # creating again is refused (never recreated silently)
    with pytest.raises(K3dtuiError, match="already exists"):
        await provider.create(1, 1, sink)
    assert sum(1 for a in fake_k3d.argvs() if a[:2] == ["cluster", "create"]) == 1

    log, sink = lines()
    await provider.delete(sink)
    assert ["cluster", "delete", name] in fake_k3d.argvs()
    assert fake_k3d.containers(name) == []
    assert not path.exists()
    assert await provider.find() is None


@pytest.mark.docker
async def test_create_failure_reaches_the_user(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("FAKE_K3D_FAIL", "create")
    name = f"t{fake_k3d.run_id}"
    log, sink = lines()
    with pytest.raises(CommandError) as info:
        await K3dProvider(name).create(1, 2, sink)
    err = info.value
    assert err.returncode == 1
    assert "all changes have been rolled back" in err.message  # k3d's last stderr line
    assert "failed to get ready" in err.stderr_tail
    assert "(first error: Failed Cluster Start" in err.message
    assert "k3d cluster create --config" in err.message
    assert f"k3d cluster delete {name}" in err.hint
    assert any("Rolling Back" in ln for ln in log), "stderr lines stream as progress too"
    assert fake_k3d.containers(name) == []


@pytest.mark.docker
async def test_import_into_missing_cluster_fails_clearly(fake_k3d: FakeK3d) -> None:  # noqa: F811
    with pytest.raises(CommandError) as info:
        await k3d.image_import("k3dtui-test/busybox:latest", f"none{fake_k3d.run_id}", lambda _: None)
    assert "No nodes found" in info.value.message
    assert "could not be imported" in info.value.hint


@pytest.mark.docker
async def test_kubeconfig_of_missing_cluster(fake_k3d: FakeK3d) -> None:  # noqa: F811
    with pytest.raises(CommandError, match="No nodes found"):
        await K3dProvider(f"none{fake_k3d.run_id}").kubeconfig()


async def test_k3d_missing_is_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(K3dtuiError) as info:
        await K3dProvider("demo").find()
    assert "k3d is not installed" in info.value.message
    assert "--sim" in info.value.hint
    with pytest.raises(K3dtuiError, match="k3d is not installed"):
        k3d.version_sync()


@pytest.mark.docker
def test_old_k3d_is_refused(fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("FAKE_K3D_VERSION", "v4.4.8")
    version = k3d.version_sync()
    assert version == "v4.4.8"
    with pytest.raises(K3dtuiError, match="needs k3d v5"):
        k3d.require_v5(version)


@pytest.mark.docker
async def test_docker_down_is_named_not_k3d(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    import socket

    sock = tmp_path / "closed.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    provider = K3dProvider(f"t{fake_k3d.run_id}")
    for call in (provider.find(), provider.create(1, 0, lambda _: None)):
        with pytest.raises(K3dtuiError) as info:
            await call
        assert info.value.message.startswith("Docker engine not reachable")
        assert "DOCKER_HOST" in info.value.hint
    assert not any(a[:2] == ["cluster", "create"] for a in fake_k3d.argvs())


@pytest.mark.docker
def test_up_shows_k3d_failure_to_the_user(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    from k3dtui.cli import main

    monkeypatch.setenv("FAKE_K3D_FAIL", "create")
    name = f"t{fake_k3d.run_id}"
    # any MetalLB will do: create fails before it is applied
    code = main(["up", "--name", name, "--agents", "1", "--metallb-manifest", str(MINIMAL), "--insecure-skip-verify"])
    out, err = capsys.readouterr()
    assert code == 1
    text = out + err
    assert "k3d cluster create --config" in text
    assert "all changes have been rolled back" in text  # k3d's own stderr line
    assert "Traceback" not in text
    assert fake_k3d.containers(name) == []
