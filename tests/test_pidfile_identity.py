"""The simulated cluster's pid file records the daemon's identity (pid, start time, boot,
token): `sim stop` and `down` signal only the process recorded; a pid file naming any other
process is stale, reported and removed, and that process is left alone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3dtui.cli import main
from k3dtui.sim.statefiles import (
    PidRecord,
    pid_status,
    process_start,
    read_pid_file,
    running_pid,
    state_dir,
    write_pid_file,
)


@pytest.fixture
def foreign() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _folder(name: str) -> Path:
    return state_dir(name, create=True)


def test_the_record_names_one_process(foreign: subprocess.Popen[bytes]) -> None:
    folder = _folder("demo")
    rec = write_pid_file(folder, foreign.pid)
    assert rec.start == process_start(foreign.pid) and rec.start
    assert read_pid_file(folder) == rec
    assert running_pid(folder) == foreign.pid
    # the same pid with another start time is another process
    (folder / "pid").write_text(PidRecord(foreign.pid, str(int(rec.start) + 1), rec.boot, rec.token).text())
    assert pid_status(folder)[0] == "stale" and running_pid(folder) is None


@pytest.mark.parametrize("content", ["{pid}\n", "{pid}\nstart=1\nboot=x\ntoken=t\n"])
@pytest.mark.parametrize("argv", [["sim", "stop"], ["--sim", "down", "--yes"]])
def test_a_pid_file_naming_a_foreign_process_is_refused(
    foreign: subprocess.Popen[bytes], content: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder("demo")
    (folder / "pid").write_text(content.format(pid=foreign.pid))
    (folder / "kubeconfig.yaml").write_text("stale")
    code = main([*argv, "--name", "demo"])
    err = capsys.readouterr().err
    assert foreign.poll() is None, "the foreign process was signalled"
    assert f"pid {foreign.pid}" in err and "removed the stale pid file" in err
    assert not (folder / "pid").exists() and not (folder / "kubeconfig.yaml").exists()
    assert code == (1 if argv[0] == "sim" else 0)  # sim stop: not running; down: nothing to delete
    assert "Traceback" not in err


def test_a_pid_file_naming_a_dead_process_is_stale(capsys: pytest.CaptureFixture[str]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = _folder("demo")
    write_pid_file(folder, dead.pid)
    assert pid_status(folder)[0] == "stale"
    assert main(["sim", "stop", "--name", "demo"]) == 1
    assert "no longer running" in capsys.readouterr().err
    assert not (folder / "pid").exists()
