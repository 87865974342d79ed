"""No traceback from any command when k3dtui's own files cannot be written: a read-only
state folder, a full disk; bad manifest content under --insecure-skip-verify; a failed `up`
removes the cluster it created (README, "When up fails")."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                         capture_output=True, check=False)
    return res.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _cannot(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def read_only_state(tmp_path: Path) -> Iterator[Path]:
    """A state folder on a read-only file system (a read-only tmpfs as root; else a folder
    without write permission, which refuses a non-root user alike)."""
    mnt = tmp_path / "ro"
    if _mount_tmpfs(mnt, "1m"):
        (mnt / "state").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        try:
            yield mnt / "state"
        finally:
            _umount(mnt)
        return
    if os.geteuid() == 0:
        _cannot("cannot mount a tmpfs here (root without CAP_SYS_ADMIN)")
    (mnt / "state").mkdir()
    mnt.chmod(0o555)
    (mnt / "state").chmod(0o555)
    try:
        yield mnt / "state"
    finally:
        (mnt / "state").chmod(0o755)
        mnt.chmod(0o755)


@pytest.fixture
def full_state(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "full"
    if not _mount_tmpfs(mnt, "256k"):
        _cannot("a full disk needs a small tmpfs: run as root with CAP_SYS_ADMIN")
    try:
        (mnt / "state").mkdir()
        with contextlib.suppress(OSError), open(mnt / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        yield mnt / "state"
    finally:
        _umount(mnt)


def run_cli(state: Path, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "K3DTUI_STATE_DIR": str(state), "K3DTUI_CACHE_DIR": str(state.parent.parent / "cache"),
           "PYTHONPATH": str(ROOT)}
    env.pop("K3DTUI_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "k3dtui", *argv], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


# every subcommand, with what it needs to run without a terminal
SUBCOMMANDS = [
    ["up"], ["down", "--yes"], ["status"], ["status", "--json"], ["pool"], ["scale", "4"], ["kill", "--random"],
    ["watch", "--duration", "1"], ["load", "--requests", "1"], ["sim", "start"], ["sim", "stop"],
    ["sim", "status"], ["doctor"],
]


def _no_traceback(res: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_with_a_read_only_state_folder(read_only_state: Path, argv: list[str]) -> None:
    res = run_cli(read_only_state, "--sim", *argv, "--name", "ro")
    _no_traceback(res)
    if argv[0] in ("up",) or argv == ["sim", "start"]:
        # the commands that create something: refused, naming the path and the fix
        assert res.returncode == 1
        last = [ln for ln in res.stderr.splitlines() if ln.startswith("k3dtui: ")]
        assert last[-2].startswith("k3dtui: error: ") and str(read_only_state) in last[-2]
        assert "read-only" in last[-2] or "permission denied" in last[-2]
        assert "K3DTUI_STATE_DIR" in last[-1]
    # nothing was made
    assert not (read_only_state / "sim").exists()


def test_sim_start_on_a_full_disk_names_the_folder(full_state: Path) -> None:
    for argv in (["sim", "start"], ["up"]):
        res = run_cli(full_state, "--sim", *argv, "--name", "full")
        _no_traceback(res)
        assert res.returncode == 1
        err = [ln for ln in res.stderr.splitlines() if ln.startswith("k3dtui: error: ")]
        assert err == [f"k3dtui: error: the simulated cluster 'full' cannot start: cannot write "
                       f"{full_state / 'sim' / 'full'}: no space left on the device"]
        assert "is kept" not in res.stderr  # nothing runs, so nothing is said to be kept


def test_a_namespaced_object_without_a_namespace_under_skip_verify(tmp_path: Path) -> None:
    manifest = tmp_path / "metallb.yaml"
    manifest.write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: controller\n")
    state = tmp_path / "state"
    res = run_cli(state, "--sim", "up", "--name", "badman", "--metallb-manifest", str(manifest),
                  "--insecure-skip-verify", timeout=120)
    _no_traceback(res)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("k3dtui: ")]
    assert lines[0] == ("k3dtui: error: ServiceAccount controller in the manifest has no metadata.namespace, "
                        "but ServiceAccount is namespaced")
    assert lines[1].endswith("; the cluster badman this run created was removed")
    status = run_cli(state, "--sim", "sim", "status", "--name", "badman")
    assert status.returncode == 1 and "not running" in status.stdout


def test_an_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from k3dtui.cli import main

    def boom(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("k3dtui.commands.cluster.cmd_status", boom)
    monkeypatch.delenv("K3DTUI_DEBUG", raising=False)
    assert main(["--sim", "status"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "k3dtui: error: unexpected RuntimeError: boom" and "Traceback" not in err
