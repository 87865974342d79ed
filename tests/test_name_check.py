"""One name check for every command taking --name (k3d's rules: one lower-case DNS label,
no dots, no paths), before anything is read or made; read-only commands make no folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from k3dtui.cli import main

COMMANDS = [
    ["up", "--sim"], ["down", "--yes"], ["status"], ["pool"], ["scale", "4"], ["kill"],
    ["watch"], ["load", "--requests", "1"], ["serve"], ["sim", "start"], ["sim", "stop"],
    ["sim", "status"], [],  # [] = the TUI
]
BAD = ["../escape", "/tmp/k3dtui-abs", "web.prod", "a/b", "Demo", "x" * 40]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "tui")
def test_a_bad_name_is_refused_by_every_command(argv: list[str], bad: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    state = Path(os.environ["K3DTUI_STATE_DIR"])
    code = main(["--sim", *argv, "--name", bad] if argv else ["--sim", "--name", bad])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[0].startswith("k3dtui: error: cluster name") and repr(bad) in lines[0]
    assert len(lines) == 2 and lines[1].startswith("k3dtui: ")  # the problem, then the fix
    assert "Traceback" not in err and not out
    assert not state.exists(), "a refused name made a folder"
    assert not Path("/tmp/k3dtui-abs").exists()
    assert not (state.parent / "escape").exists()


@pytest.mark.parametrize("argv", [["status"], ["sim", "status"], ["sim", "stop"], ["down", "--yes"], ["kill"],
                                  ["pool"]], ids=" ".join)
def test_read_only_commands_leave_no_state_folder(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    state = Path(os.environ["K3DTUI_STATE_DIR"])
    main(["--sim", *argv, "--name", "demo"])
    assert "Traceback" not in capsys.readouterr().err
    assert not state.exists()
