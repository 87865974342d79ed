"""The data plane's process containers (k3dtui.sim.procpods): logs, exit codes, SIGTERM
then SIGKILL, the whole process group, the bound on how many run."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from k3dtui.sim.podio import LogBook
from k3dtui.sim.procpods import LINE_MAX, ProcessHost, exit_of

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _lines(book: LogBook, uid: str) -> list[str]:
    inc = book.current(uid)
    assert inc is not None
    return [text for _, text in inc.read()[0]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_exit_codes() -> None:
    assert exit_of(0) == (0, "Completed")
    assert exit_of(3) == (3, "Error")
    assert exit_of(-15) == (143, "Error")
    assert exit_of(-9) == (137, "Error")


async def test_output_becomes_the_log_and_the_exit_code_is_kept() -> None:
    book = LogBook()
    host = ProcessHost(book)
    code = f"import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.stdout.write('x' * {LINE_MAX + 10})\nsys.exit(4)\n"
    started = await host.start("u1", [sys.executable, "-c", code], ENV, "")
    assert started["pid"] > 0 and started["startedAt"]
    end = await host.wait("u1")
    assert (end["exitCode"], end["reason"]) == (4, "Error")
    lines = _lines(book, "u1")
    assert "out" in lines and "err" in lines
    assert "x" * LINE_MAX in lines and "x" * 10 in lines  # a long line is split as the runtime splits it
    inc = book.current("u1")
    assert inc is not None and not inc.running
    assert not host.running("u1")


async def test_stop_sends_sigterm_then_sigkill_to_the_group() -> None:
    host = ProcessHost(LogBook())
    # ignores SIGTERM, and leaves a child of its own in the group
    code = ("import signal, subprocess, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print(p.pid, flush=True)\ntime.sleep(600)\n")
    started = await host.start("u2", [sys.executable, "-c", code], ENV, "")
    for _ in range(200):
        inc = host.book.current("u2")
        if inc is not None and inc.read()[0]:
            break
        await asyncio.sleep(0.02)
    inc = host.book.current("u2")
    assert inc is not None
    grandchild = int(inc.read()[0][0][1])
    end = await host.stop("u2", 0.3)
    assert end["exitCode"] == 137  # killed at the end of the grace period
    for _ in range(100):
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.02)
    assert not _alive(started["pid"]) and not _alive(grandchild)


async def test_sigterm_ends_a_process_that_does_not_catch_it() -> None:
    host = ProcessHost(LogBook())
    await host.start("u3", [sys.executable, "-c", "import time; time.sleep(600)"], ENV, "")
    end = await host.stop("u3", 5.0)
    assert end["exitCode"] == 143


async def test_at_most_limit_running() -> None:
    host = ProcessHost(LogBook(), limit=1)
    first = await host.start("a", [sys.executable, "-c", "import time; time.sleep(600)"], ENV, "")
    with pytest.raises(RuntimeError, match="at most 1 process containers"):
        await host.start("b", [sys.executable, "-c", "pass"], ENV, "")
    await host.forget("a")
    assert not _alive(first["pid"]) and host.pids() == {}
    await host.start("b", [sys.executable, "-c", "pass"], ENV, "")
    assert (await host.wait("b"))["exitCode"] == 0


async def test_a_missing_program_is_an_error() -> None:
    host = ProcessHost(LogBook())
    with pytest.raises(RuntimeError, match='exec: "no-such-program-here"'):
        await host.start("c", ["no-such-program-here"], ENV, "")
