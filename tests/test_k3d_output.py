"""k3d's own words reach the user: colours off, escape codes stripped anyway, the ERRO/FATA
cause in the error; the stand-in k3d is as strict as the real one (colours, JSON keys,
the v1alpha5 schema)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.fixtures import FAKE_K3D, FakeK3d, fake_k3d  # noqa: F401

from k3dtui.core import k3d
from k3dtui.core.k3d_provider import K3dProvider
from k3dtui.core.process import CommandError, parse_log_line, strip_ansi

ESC = "\x1b"


@pytest.mark.parametrize(
    ("line", "level", "message"),
    [
        # logrus coloured (what k3d prints by default), message padded to 44 columns
        (f"{ESC}[31mERRO{ESC}[0m[0003] Failed to create node        ", "ERRO", "Failed to create node"),
        (f"{ESC}[36mINFO{ESC}[0m[0000] Prep: Network", "INFO", "Prep: Network"),
        # logrus logfmt (LOG_COLORS=false on a pipe), Go-quoted message
        ('time="2026-01-02T03:04:05Z" level=fatal msg="Cluster creation FAILED, all changes have been rolled back!"',
         "FATA", "Cluster creation FAILED, all changes have been rolled back!"),
        ('time="2026-01-02T03:04:05Z" level=warning msg="say \\"hi\\"\\nthere"', "WARN", 'say "hi"\nthere'),
        ("time=\"x\" level=info msg=Starting", "INFO", "Starting"),
        ("error: unknown flag --x", "ERRO", "unknown flag --x"),
        ("just text", None, "just text"),
    ],
)
def test_parse_log_line(line: str, level: str | None, message: str) -> None:
    assert parse_log_line(line) == (level, message)


def test_strip_ansi() -> None:
    assert strip_ansi(f"{ESC}[1;31mred{ESC}[0m {ESC}]0;title\x07x{ESC}[2K") == "red x"


def test_k3d_env_turns_colours_off_and_names_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_COLORS", "true")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    env = k3d.k3d_env()
    assert env["LOG_COLORS"] == "false"
    assert env["DOCKER_HOST"] == "tcp://127.0.0.1:1"


def _run_fake(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(FAKE_K3D), *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_stand_in_refuses_keys_the_v1alpha5_schema_does_not_know(tmp_path: Path) -> None:
    doc: dict[str, Any] = yaml.safe_load(k3d.render_config("x", 1, 0))
    doc["options"]["k3d"]["timeuot"] = "300s"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "LOG_COLORS": "false"}
    env.pop("FAKE_K3D_LOG", None)
    res = _run_fake(["cluster", "create", "--config", str(path)], env)
    assert res.returncode == 1
    assert "level=fatal" in res.stderr and "options.k3d.timeuot" in res.stderr
    assert res.stdout == ""


def test_rendered_config_passes_the_schema_and_waits_300s() -> None:
    sys.path.insert(0, str(FAKE_K3D.parent))
    try:
        import k3d as fake  # the stand-in module
    finally:
        sys.path.pop(0)
    doc = yaml.safe_load(k3d.render_config("x", 1, 2))
    assert fake.unknown_keys(doc, fake.SCHEMA) == []
    assert doc["options"]["k3d"]["timeout"] == "300s"
    assert fake.unknown_keys({"options": {"k3d": {"nope": 1}}}, fake.SCHEMA) == ["options.k3d.nope"]


@pytest.mark.docker
def test_stand_in_colours_like_k3d(fake_k3d: FakeK3d) -> None:  # noqa: F811
    env = dict(os.environ)
    env.pop("LOG_COLORS", None)
    env["FAKE_K3D_FAIL"] = "create"
    config = Path(k3d.write_config(f"t{fake_k3d.run_id}", 1, 1))
    try:
        res = _run_fake(["cluster", "create", "--config", str(config)], env)
        # coloured by default: INFO (blue) on stdout, ERRO/FATA (red) on stderr
        assert f"{ESC}[36mINFO{ESC}[0m[" in res.stdout
        assert f"{ESC}[31mERRO{ESC}[0m[" in res.stderr and f"{ESC}[31mFATA{ESC}[0m[" in res.stderr
        assert "ERRO" not in res.stdout
        env["LOG_COLORS"] = "false"
        res = _run_fake(["cluster", "create", "--config", str(config)], env)
        assert ESC not in res.stdout + res.stderr
        assert "level=info msg=" in res.stdout and "level=error msg=" in res.stderr
    finally:
        config.unlink()


@pytest.mark.docker
def test_stand_in_json_uses_k3ds_key_names(fake_k3d: FakeK3d) -> None:  # noqa: F811
    name = f"t{fake_k3d.run_id}"
    subprocess.run(["k3d", "cluster", "create", name], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["k3d", "cluster", "list", "-o", "json"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    entry = next(c for c in json.loads(out) if c["name"] == name)
    # json tags of k3d's Cluster/Node (pkg/types/types.go) and clusterList.go's counts
    assert {"serversRunning", "serversCount", "agentsRunning", "agentsCount", "nodes", "network",
            "imageVolume", "hasLoadbalancer"} <= set(entry)
    assert "token" not in entry and "clusterToken" not in entry
    node = entry["nodes"][0]
    assert {"name", "role", "State", "IP", "runtimeLabels", "Networks"} <= set(node)
    assert not {"Args", "HostPidMode", "networks", "volumes", "env"} & set(node)


class _Colourful:
    """k3d_env without LOG_COLORS=false: as if a k3d ignored it, so colours come anyway."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = k3d.k3d_env

        def env(base: Any = None) -> dict[str, str]:
            e = real(base)
            e.pop("LOG_COLORS")
            return e

        monkeypatch.setattr(k3d, "k3d_env", env)


@pytest.mark.docker
@pytest.mark.parametrize("colours", [False, True], ids=["LOG_COLORS=false", "coloured-anyway"])
async def test_failing_k3d_cause_reaches_the_user_plain(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch, colours: bool  # noqa: F811
) -> None:
    if colours:
        _Colourful(monkeypatch)
    monkeypatch.setenv("FAKE_K3D_FAIL", "create")
    name = f"t{fake_k3d.run_id}"
    log: list[str] = []
    with pytest.raises(CommandError) as info:
        await K3dProvider(name).create(1, 2, log.append)
    err = info.value
    create = next(c for c in fake_k3d.calls() if c["argv"][:2] == ["cluster", "create"])
    assert create["env"].get("LOG_COLORS") == (None if colours else "false")
    # the FATA line and the first ERRO cause, as plain words
    assert err.message.endswith(
        "Cluster creation FAILED, all changes have been rolled back! (first error: Failed Cluster "
        f"Start: Failed to add one or more agents: Node k3d-{name}-agent-0 failed to get ready: "
        "error waiting for log line `successfully registered node` from node)"
    ), err.message
    assert ESC not in err.message + err.stderr_tail + "".join(log)
    # the streamed lines are plain text in one shape, whichever k3d printed
    assert f"INFO[0000] Creating node 'k3d-{name}-server-0'" in [ln[:4] + "[0000]" + ln[10:] for ln in log]
    assert any(ln.startswith("FATA[") and ln.endswith("rolled back!") for ln in log), log
