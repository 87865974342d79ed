"""One Docker engine, the one the user's Docker CLI uses: DOCKER_HOST, DOCKER_CONTEXT, the
current context in $DOCKER_CONFIG/config.json, that context's endpoint; the engine's kind;
whether MetalLB addresses are routable from here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes.fixtures import DockerLab, FakeK3d, docker_lab, fake_k3d  # noqa: F401
from fakes.sockrelay import Relay

from k3dtui.core import dockerctx
from k3dtui.core.dockerctx import Endpoint, engine_kind, resolve
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.k3d_provider import probe_address, reachability_for


def make_context(config: Path, name: str, host: str, current: bool = True, tls: bool = False) -> Path:
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest / "meta.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {},
                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls:
        folder = config / "contexts" / "tls" / digest / "docker"
        folder.mkdir(parents=True)
        for n in ("ca", "cert", "key"):
            (folder / f"{n}.pem").write_text("x")
    if current:
        (config / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))
    return meta


def test_resolution_order(tmp_path: Path) -> None:
    cfg = tmp_path / "dc"
    make_context(cfg, "lab", "unix:///tmp/lab.sock")
    make_context(cfg, "other", "ssh://me@example.invalid", current=False)
    base = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(cfg)}
    # 3. currentContext in $DOCKER_CONFIG/config.json, its endpoint from meta/<sha256>/meta.json
    ep = resolve(base)
    assert (ep.context, ep.host, ep.source) == ("lab", "unix:///tmp/lab.sock", "config")
    # 2. DOCKER_CONTEXT beats the config file
    ep = resolve({**base, "DOCKER_CONTEXT": "other"})
    assert (ep.context, ep.host, ep.source, ep.remote) == ("other", "ssh://me@example.invalid", "DOCKER_CONTEXT", True)
    # 1. DOCKER_HOST beats both (the Docker CLI then uses the default context)
    ep = resolve({**base, "DOCKER_CONTEXT": "other", "DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert (ep.context, ep.host, ep.source, ep.remote) == ("default", "tcp://127.0.0.1:2375", "DOCKER_HOST", False)
    # 4. nothing: the default socket; DOCKER_CONTEXT=default is the same
    assert resolve({"HOME": str(tmp_path / "none")}).host == "unix:///var/run/docker.sock"
    assert resolve({**base, "DOCKER_CONTEXT": "default"}).host == "unix:///var/run/docker.sock"
    # without DOCKER_CONFIG: ~/.docker
    make_context(tmp_path / ".docker", "home", "unix:///tmp/home.sock")
    assert resolve({"HOME": str(tmp_path)}).context == "home"


def test_child_env_gives_k3d_the_same_engine(tmp_path: Path) -> None:
    cfg = tmp_path / "dc"
    make_context(cfg, "lab", "unix:///tmp/lab.sock")
    env = resolve({"DOCKER_CONFIG": str(cfg), "DOCKER_CONTEXT": "lab"}).child_env(
        {"PATH": "/bin", "DOCKER_CONTEXT": "lab"})
    assert env == {"PATH": "/bin", "DOCKER_HOST": "unix:///tmp/lab.sock"}


def test_tls_context(tmp_path: Path) -> None:
    cfg = tmp_path / "dc"
    make_context(cfg, "tls", "tcp://10.0.0.5:2376", tls=True)
    ep = resolve({"DOCKER_CONFIG": str(cfg)})
    assert ep.tls is not None and ep.tls.verify and ep.tls.ca and ep.tls.ca.endswith("docker/ca.pem")
    kwargs = ep.sdk_kwargs()
    assert kwargs["base_url"] == "tcp://10.0.0.5:2376" and kwargs["tls"].ca_cert.endswith("ca.pem")
    env = ep.child_env({})
    assert env["DOCKER_TLS_VERIFY"] == "1" and env["DOCKER_CERT_PATH"] == ep.tls.folder
    assert Endpoint("x", "ssh://u@h", "config").sdk_kwargs() == {"base_url": "ssh://u@h", "use_ssh_client": True}


@pytest.mark.parametrize("how", ["DOCKER_CONTEXT", "config"])
def test_missing_context_is_one_clear_line(tmp_path: Path, how: str) -> None:
    cfg = tmp_path / "dc"
    cfg.mkdir()
    env = {"DOCKER_CONFIG": str(cfg)}
    if how == "DOCKER_CONTEXT":
        env["DOCKER_CONTEXT"] = "gone"
    else:
        (cfg / "config.json").write_text('{"currentContext": "gone"}')
    with pytest.raises(K3dtuiError) as info:
        resolve(env)
    assert "Docker context 'gone'" in info.value.message and "does not exist" in info.value.message
    assert "docker context use" in info.value.hint


def test_broken_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(K3dtuiError, match="not valid JSON"):
        resolve({"DOCKER_CONFIG": str(tmp_path)})


LOCAL = Endpoint("default", "unix:///var/run/docker.sock", "default")


@pytest.mark.parametrize(
    ("ep", "info", "system", "kind"),
    [
        (LOCAL, {"OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "SecurityOptions": ["name=seccomp,profile=default"]}, "Linux", "native-linux"),
        (LOCAL, {"OperatingSystem": "Ubuntu 24.04", "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"]}, "Linux", "rootless"),
        (Endpoint("default", "unix:///run/user/1000/docker.sock", "DOCKER_HOST"), None, "Linux", "rootless"),
        (Endpoint("desktop-linux", "unix:///home/u/.docker/desktop/docker.sock", "config"), {"OperatingSystem": "Docker Desktop"}, "Linux", "docker-desktop"),
        (Endpoint("desktop-linux", "unix:///Users/u/.docker/run/docker.sock", "config"), {"OperatingSystem": "Docker Desktop"}, "Darwin", "docker-desktop"),
        (Endpoint("colima", "unix:///Users/u/.colima/default/docker.sock", "config"), {"OperatingSystem": "Ubuntu 24.04 LTS", "Name": "colima"}, "Darwin", "colima"),
        (Endpoint("orbstack", "unix:///Users/u/.orbstack/run/docker.sock", "config"), {"OperatingSystem": "OrbStack"}, "Darwin", "orbstack"),
        (Endpoint("default", "tcp://192.0.2.10:2376", "DOCKER_HOST"), {"OperatingSystem": "Ubuntu"}, "Linux", "remote"),
        (Endpoint("box", "ssh://me@box", "config"), {"OperatingSystem": "Ubuntu"}, "Darwin", "remote"),
        (LOCAL, {"OperatingSystem": "Alpine Linux"}, "Darwin", "other"),
    ],
)
def test_engine_kind(ep: Endpoint, info: dict[str, Any] | None, system: str, kind: str) -> None:
    assert engine_kind(ep, info, system) == kind


@pytest.mark.parametrize(
    ("kind", "system", "probe", "routable"),
    [
        ("native-linux", "Linux", None, True),
        ("native-linux", "Linux", (True, "10.0.0.2 answered"), True),
        ("native-linux", "Linux", (False, "timed out"), False),  # a firewall: the probe decides
        ("rootless", "Linux", (True, "x"), False),
        ("remote", "Darwin", None, False),
        ("docker-desktop", "Darwin", None, False),
        ("docker-desktop", "Windows", (True, "172.18.0.2 answered"), True),  # a route was added
        ("colima", "Darwin", None, False),
        ("colima", "Darwin", (True, "answered"), True),
        ("orbstack", "Darwin", None, True),
        ("orbstack", "Darwin", (False, "no route"), False),
        ("other", "Darwin", None, False),
    ],
)
def test_routability_table(kind: str, system: str, probe: tuple[bool, str] | None, routable: bool) -> None:
    r = reachability_for(kind, system, "k3d-x", probe)
    assert r.routable is routable, r.explanation
    assert r.engine_kind == kind
    assert "k3d-x" in r.explanation
    if not routable:
        assert "inside the cluster's network" in r.explanation and "port-forward" in r.explanation


def test_probe_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a closed port on loopback: refused means "there is a route"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, why = probe_address("127.0.0.1", port, 1.0)
    assert ok and "refused" in why

    def timeout(*_: Any, **__: Any) -> Any:
        raise TimeoutError

    monkeypatch.setattr(socket, "create_connection", timeout)
    ok, why = probe_address("172.30.0.2", 6443, 0.5)
    assert not ok and "did not answer within 0.5 s" in why


@pytest.mark.docker
def test_probe_reaches_a_container_on_a_lab_network(docker_lab: DockerLab) -> None:  # noqa: F811
    net = docker_lab.free_network("probe", 28)
    c = docker_lab.container(net.name)
    c.reload()
    ip = c.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    ok, why = probe_address(ip, 6443, 2.0)
    assert ok, why  # native Linux: the host is on the bridge; busybox refuses 6443



def _hidden_default_socket() -> list[str]:
    """argv prefix running a command with /var/run covered by an empty tmpfs (a private mount
    namespace): the default socket is not there, as on colima, OrbStack or rootless Docker."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        from tests.conftest import _missing

        _missing("hiding the default Docker socket needs root and unshare (util-linux)")
    return ["unshare", "-m", "sh", "-c", 'mount -t tmpfs k3dtui-test /var/run && exec "$@"', "sh"]


@pytest.mark.docker
@pytest.mark.parametrize("how", ["config", "DOCKER_CONTEXT"])
def test_doctor_under_a_context_with_the_default_socket_hidden(
    fake_k3d: FakeK3d, tmp_path: Path, how: str  # noqa: F811
) -> None:
    sock_dir = Path("/tmp") / f"k3dtui-ctx-{fake_k3d.run_id}"
    sock_dir.mkdir()
    cfg = tmp_path / "dockercfg"
    name = "lab-vm"
    make_context(cfg, name, f"unix://{sock_dir}/docker.sock", current=(how == "config"))
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(cfg)
    if how == "DOCKER_CONTEXT":
        env["DOCKER_CONTEXT"] = name
    try:
        with Relay(sock_dir / "docker.sock") as relay:
            # first: that the default socket really is hidden in there
            check = subprocess.run([*_hidden_default_socket(), "test", "-e", "/var/run/docker.sock"])
            assert check.returncode == 1
            out = subprocess.run(
                [*_hidden_default_socket(), sys.executable, "-m", "k3dtui", "doctor", "--json"],
                capture_output=True, text=True, env=env, timeout=60,
            )
            assert relay.connections > 0
        data = json.loads(out.stdout)
        assert out.returncode == 0, out.stdout + out.stderr
        assert data["ok"] is True and data["provider"] == "k3d"
        assert data["context"] == name
        assert data["endpoint"] == f"unix://{sock_dir}/docker.sock"
        assert data["engine_kind"] == "native-linux"
        assert data["routable"] is True and "native Linux" in data["routable_reason"]
        docker = next(c for c in data["checks"] if c["name"] == "docker")
        assert docker["ok"] and f"context '{name}'" in docker["detail"]
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.mark.docker
def test_k3d_gets_the_contexts_engine(fake_k3d: FakeK3d, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import asyncio

    from k3dtui.core import k3d

    sock_dir = Path("/tmp") / f"k3dtui-ctx-{fake_k3d.run_id}"
    sock_dir.mkdir()
    cfg = tmp_path / "dockercfg"
    make_context(cfg, "lab-vm", f"unix://{sock_dir}/docker.sock")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    try:
        with Relay(sock_dir / "docker.sock") as relay:
            assert asyncio.run(k3d.cluster_list()) is not None
            assert relay.connections > 0
        call = fake_k3d.calls()[-1]
        assert call["env"] == {"DOCKER_HOST": f"unix://{sock_dir}/docker.sock", "LOG_COLORS": "false"}
        assert dockerctx.resolve().context == "lab-vm"
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
