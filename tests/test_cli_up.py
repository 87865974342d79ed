"""`k3dtui up/down/status`: bad input is refused with one line and exit 2, before anything
is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from k3dtui.cli import main
from tests.upstream import MINIMAL


def _created_anything() -> list[str]:
    state = Path(os.environ["K3DTUI_STATE_DIR"])
    if not state.exists():
        return []
    return sorted(str(p.relative_to(state)) for p in state.rglob("*"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--name", "Simple-App"], "capital"),
        (["--name", "a" * 33], "at most 32"),
        (["--servers", "0"], "servers must be at least 1"),
        (["--agents", "-1"], "agents must be at least 0"),
        (["--replicas", "-2"], "replicas must be at least 0"),
        (["--pool", "172.28.255.250-172.28.255.200"], "reversed"),
        (["--pool", "fd00::10-fd00::20"], "IPv6"),
        (["--pool", "not-a-range"], "not of the form A-B"),
        (["--pool", "10.0.0.x-10.0.0.9"], "not an IP address"),
        (["--metallb-manifest", "/nonexistent/metallb.yaml"], "no such file"),
        (["--insecure-skip-verify"], "--metallb-manifest"),
    ],
)
def test_up_bad_input_exit_2_nothing_created(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["up", "--sim", *argv])
    err = capsys.readouterr().err
    assert code == 2
    first = err.splitlines()[0]
    assert first.startswith("k3dtui: error: ") and needle in first
    assert "Traceback" not in err
    assert _created_anything() == []


def test_up_checksum_mismatch_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_bytes(MINIMAL.read_bytes())  # a MetalLB manifest, not the pinned one
    code = main(["up", "--sim", "--metallb-manifest", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert "a1b04c376fb39c93265f551fe23716a3ae6e09b790edb3bf257d3fc784c35a18" in err
    import hashlib

    assert hashlib.sha256(bad.read_bytes()).hexdigest() in err
    assert _created_anything() == []


def test_up_json_error_record(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code = main(["up", "--sim", "--json", "--servers", "0"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 2
    rec = json.loads(out[-1])
    assert rec["event"] == "error" and rec["exit_code"] == 2 and "servers" in rec["message"]


@pytest.mark.parametrize("command", ["down", "status"])
def test_bad_name_refused_for_down_and_status(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([command, "--sim", "--name", "UPPER"])
    assert code == 2
    assert "capital" in capsys.readouterr().err
