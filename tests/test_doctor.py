"""`k3dtui doctor`: each check passes or fails with its fix; --json; exit codes;
provider selection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakes.fixtures import FakeK3d, fake_k3d, install_fake_k3d  # noqa: F401

from k3dtui.cli import main
from k3dtui.core.doctor import Check, check_routing, k3d_usable, report_json, run_checks
from k3dtui.core.k3d_provider import K3dProvider
from k3dtui.providers import select_provider


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


@pytest.mark.docker
def test_all_present_exit_0(fake_k3d: FakeK3d, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    checks = by_name(run_checks())
    assert checks["docker"].ok and checks["docker"].required
    assert "Docker " in checks["docker"].detail
    assert checks["k3d"].ok and "k3d v5.9.0" in checks["k3d"].detail
    assert str(fake_k3d.bin_dir) in checks["k3d"].detail
    assert checks["provider"].ok and "k3d" in checks["provider"].detail
    assert checks["routing"].ok  # a native Linux engine
    assert not checks["kubectl"].required and not checks["routing"].required

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] docker" in out and "[ok  ] k3d" in out and "k3d provider usable" in out

    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["provider"] == "k3d"
    assert {c["name"] for c in data["checks"]} >= {"docker", "k3d", "kubectl", "routing", "provider"}
    for c in data["checks"]:
        assert set(c) == {"name", "ok", "detail", "fix", "required"}
        assert c["fix"] == "" if c["ok"] else c["fix"]


@pytest.mark.docker
def test_k3d_missing_exit_1(docker_engine: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither k3d nor kubectl
    checks = by_name(run_checks())
    assert checks["docker"].ok
    assert not checks["k3d"].ok and "k3d is not installed" in checks["k3d"].detail
    assert "install k3d v5" in checks["k3d"].fix
    assert not checks["kubectl"].ok and not checks["kubectl"].required
    assert "optional" in checks["kubectl"].fix
    assert not checks["provider"].ok and "simulated cluster" in checks["provider"].detail
    assert not k3d_usable(list(checks.values()))

    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] k3d" in out and "fix: install k3d v5" in out
    assert "[warn] kubectl" in out
    assert main(["doctor", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["provider"] == "sim"


@pytest.mark.docker
def test_kubectl_absent_does_not_matter(fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("PATH", str(fake_k3d.bin_dir))  # the stand-in only
    checks = run_checks()
    assert not by_name(checks)["kubectl"].ok
    assert k3d_usable(checks)
    assert report_json(checks)["provider"] == "k3d"


@pytest.mark.docker
def test_k3d_v4_fails(fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("FAKE_K3D_VERSION", "v4.4.8")
    check = by_name(run_checks())["k3d"]
    assert not check.ok and "v4.4.8" in check.detail and "needs k3d v5" in check.detail


def _closed_socket(tmp_path: Path) -> str:
    path = tmp_path / "d.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    return f"unix://{path}"


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:1", "closed-unix"])
def test_docker_down_is_clear_quick_exit_1(host: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_fake_k3d(bin_dir)  # k3d present: only Docker fails
    env = {
        **os.environ,
        "DOCKER_HOST": _closed_socket(tmp_path) if host == "closed-unix" else host,
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
    }
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "k3dtui", "doctor"], capture_output=True,
                         text=True, env=env, timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < 3, f"doctor took {elapsed:.1f} s with the engine down"
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    docker_line = next(ln for ln in lines if ln.startswith("[FAIL] docker"))
    assert "Docker engine not reachable at " + env["DOCKER_HOST"] in docker_line
    assert "connection refused" in docker_line
    assert any("fix: start the Docker engine" in ln for ln in lines)
    assert any(ln.startswith("[ok  ] k3d") for ln in lines)
    assert "Traceback" not in out.stdout + out.stderr

    out = subprocess.run([sys.executable, "-m", "k3dtui", "doctor", "--json"],
                         capture_output=True, text=True, env=env, timeout=30)
    data = json.loads(out.stdout)
    assert out.returncode == 1 and data["ok"] is False and data["provider"] == "sim"
    docker = next(c for c in data["checks"] if c["name"] == "docker")
    assert docker["ok"] is False and docker["required"] is True and docker["fix"]


def test_routing_on_docker_desktop() -> None:
    from k3dtui.core.k3d_provider import reachability_for

    check = check_routing(reachability_for("docker-desktop", "Darwin"), "Darwin")
    assert not check.ok and not check.required
    assert "not routable" in check.detail and "port-forward" in check.fix
    assert check_routing(reachability_for("native-linux", "Linux"), "Linux").ok


def test_image_store_warning() -> None:
    from k3dtui.core.doctor import check_image_store

    check = check_image_store({"DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]})
    assert check is not None and not check.ok and "image import" in check.detail
    ok = check_image_store({"DriverStatus": [["Backing Filesystem", "extfs"]]})
    assert ok is not None and ok.ok


# ------------------------------------------------------------------ provider selection


@pytest.mark.docker
def test_select_k3d_when_docker_and_k3d_answer(fake_k3d: FakeK3d) -> None:  # noqa: F811
    provider, reason = select_provider("demo", force_sim=False)
    assert isinstance(provider, K3dProvider) and provider.kind == "k3d"
    assert provider.name == "demo"
    assert reason.startswith("k3d:") and "v5.9.0" in reason


@pytest.mark.docker
def test_select_sim_when_k3d_missing(
    docker_engine: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # Docker answers, k3d is nowhere
    provider, reason = select_provider("demo", force_sim=False)
    assert provider.kind == "sim" and provider.name == "demo"
    assert reason == "simulated cluster: k3d is not installed (not found on PATH)"


def test_select_sim_when_docker_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    provider, reason = select_provider("demo", force_sim=False)
    assert provider.kind == "sim"
    assert reason.startswith("simulated cluster: ") and "tcp://127.0.0.1:1" in reason


def test_select_sim_when_forced() -> None:
    provider, reason = select_provider("demo", force_sim=True)
    assert provider.kind == "sim" and "--sim" in reason


def test_select_sim_when_docker_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_fake_k3d(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    provider, reason = select_provider("demo", force_sim=False)
    assert provider.kind == "sim"
    assert "Docker engine not reachable" in reason
