"""The subprocess helper: argv lists, lines streamed as they come, errors that carry stderr."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.process import CommandError, run

PY = sys.executable


async def test_streams_lines_as_they_come() -> None:
    seen: list[tuple[str, float]] = []
    code = (
        "import sys, time\n"
        "print('one', flush=True)\n"
        "time.sleep(0.4)\n"
        "print('two', file=sys.stderr, flush=True)\n"
        "time.sleep(0.4)\n"
        "print('three', flush=True)\n"
    )
    t0 = time.monotonic()
    res = await run([PY, "-c", code], on_line=lambda line: seen.append((line, time.monotonic() - t0)))
    assert [s for s, _ in seen] == ["one", "two", "three"]
    assert seen[0][1] < 0.35, "the first line arrives before the program ends"
    assert seen[2][1] - seen[0][1] > 0.6
    assert res.returncode == 0
    assert res.stdout == "one\nthree"
    assert res.stderr == "two"


async def test_arguments_are_not_shell_interpreted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    res = await run([PY, "-c", "import sys; print(sys.argv[1])", f"; touch {marker}"])
    assert res.stdout == f"; touch {marker}"
    assert not marker.exists()


async def test_nonzero_exit_carries_command_and_stderr_tail() -> None:
    code = "import sys\nfor i in range(30): print(f'err {i}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(CommandError) as info:
        await run([PY, "-c", code, "extra-arg"])
    err = info.value
    assert isinstance(err, K3dtuiError)
    assert err.returncode == 3
    assert err.argv == [PY, "-c", code, "extra-arg"]
    assert "failed (exit 3)" in err.message and "err 29" in err.message
    assert err.stderr_tail.splitlines()[0] == "err 10"  # the last 20 lines
    assert err.stderr_tail.splitlines()[-1] == "err 29"


async def test_check_false_returns_the_code() -> None:
    res = await run([PY, "-c", "import sys; sys.exit(4)"], check=False)
    assert res.returncode == 4


async def test_timeout_kills_and_reports() -> None:
    t0 = time.monotonic()
    with pytest.raises(CommandError) as info:
        await run([PY, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert info.value.returncode is None
    assert "timed out" in info.value.message
    assert "0.5 s" in info.value.hint


async def test_missing_executable_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(K3dtuiError) as info:
        await run(["k3d", "version"])
    assert "k3d is not installed" in info.value.message
    assert "install k3d v5" in info.value.hint
    assert not isinstance(info.value, CommandError)


async def test_missing_absolute_path() -> None:
    with pytest.raises(K3dtuiError, match="not installed"):
        await run(["/nonexistent/bin/tool"])


async def test_env_and_stdin_are_passed() -> None:
    env = {**os.environ, "K3DTUI_PROBE": "value-1"}
    res = await run(
        [PY, "-c", "import os,sys; print(os.environ['K3DTUI_PROBE'], sys.stdin.read())"],
        env=env, stdin=b"from-stdin",
    )
    assert res.stdout == "value-1 from-stdin"


async def test_very_long_lines() -> None:
    res = await run([PY, "-c", "print('x' * 300_000); print('end')"])
    assert res.stdout.splitlines() == ["x" * 300_000, "end"]
