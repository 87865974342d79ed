"""Process containers: the emulated ``python`` image's containers, run as real processes.

They live in the data-plane process (``runtime.py``), beside the pods' servers: each is a
child process in its own process group, its stdout and stderr read line by line into the
pod's :class:`~k3dtui.sim.podio.LogBook` (so ``kubectl logs``, ``--follow`` and the logs
of a finished pod show them). What it runs (argv, environment, working directory, the
pod's folder) is decided by the simulated kubelet (:mod:`k3dtui.sim.controllers.containers`).

None outlives the data plane: each child asks the kernel for ``SIGKILL`` when the data
plane dies (``prctl(PR_SET_PDEATHSIG)`` on Linux), the data plane kills every group when it
stops, and a container's whole group is killed when its main process exits (as a container's
other processes go when its PID 1 ends). At most :data:`MAX_RUNNING` run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from k3dtui.sim.podio import Incarnation, LogBook

MAX_RUNNING = 64  # process containers running at once, on the whole simulated cluster
LINE_MAX = 16 * 1024  # a longer line is split, as the container runtime splits log lines
_PR_SET_PDEATHSIG = 1


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """In the child, before exec: SIGKILL when the data plane dies (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def exit_of(returncode: int) -> tuple[int, str]:
    """A container's exit code and reason from the process's return code (killed by
    signal N: 128 + N, as the container runtime reports it)."""
    code = 128 - returncode if returncode < 0 else returncode
    return code, "Completed" if code == 0 else "Error"


@dataclass
class Proc:
    uid: str
    process: asyncio.subprocess.Process
    started: str
    incarnation: Incarnation
    done: asyncio.Future[dict[str, Any]]
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class ProcessHost:
    """Every process container of the data plane, by pod uid (one per pod)."""

    def __init__(self, book: LogBook, limit: int = MAX_RUNNING) -> None:
        self.book = book
        self.limit = limit
        self.procs: dict[str, Proc] = {}

    def running(self, uid: str) -> bool:
        proc = self.procs.get(uid)
        return proc is not None and not proc.done.done()

    def pids(self) -> dict[str, int]:
        return {uid: p.process.pid for uid, p in self.procs.items() if not p.done.done()}

    async def start(self, uid: str, argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
        """Start the container's process; ``{pid, startedAt}``. ``RuntimeError`` when it
        cannot start (too many running, no such program)."""
        current = self.procs.get(uid)
        if current is not None and not current.done.done():
            return {"pid": current.process.pid, "startedAt": current.started}
        live = sum(1 for p in self.procs.values() if not p.done.done())
        if live >= self.limit:
            raise RuntimeError(f"the simulated cluster runs at most {self.limit} process containers at once")
        if not argv:
            raise RuntimeError("no command to run")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd or None, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise RuntimeError(f'exec: "{argv[0]}": {exc.strerror or exc}') from None
        inc = self.book.start(uid, process.pid, 0, startup=[])
        loop = asyncio.get_running_loop()
        proc = Proc(uid, process, _now(), inc, loop.create_future())
        assert process.stdout is not None and process.stderr is not None
        proc.pumps = [loop.create_task(self._pump(inc, process.stdout)),
                      loop.create_task(self._pump(inc, process.stderr))]
        self.procs[uid] = proc
        proc.pumps.append(loop.create_task(self._reap(proc)))  # kept with the pumps (a reference)
        return {"pid": process.pid, "startedAt": proc.started}

    @staticmethod
    async def _pump(inc: Incarnation, stream: asyncio.StreamReader) -> None:
        pending = b""
        with contextlib.suppress(Exception):
            while True:
                chunk = await stream.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    for i in range(0, max(len(line), 1), LINE_MAX):
                        inc.write(line[i:i + LINE_MAX].decode("utf-8", "replace"))
                while len(pending) >= LINE_MAX:
                    inc.write(pending[:LINE_MAX].decode("utf-8", "replace"))
                    pending = pending[LINE_MAX:]
        if pending:
            inc.write(pending.decode("utf-8", "replace"))

    async def _reap(self, proc: Proc) -> None:
        returncode = await proc.process.wait()
        # the container's other processes end with its main one
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*proc.pumps[:2], return_exceptions=True), 5.0)
        for task in proc.pumps[:2]:
            task.cancel()
        if self.book.current(proc.uid) is proc.incarnation:
            self.book.stop(proc.uid)
        proc.incarnation.running = False
        code, reason = exit_of(returncode)
        if not proc.done.done():
            proc.done.set_result({"exitCode": code, "reason": reason, "startedAt": proc.started,
                                  "finishedAt": _now(), "pid": proc.process.pid})

    async def wait(self, uid: str) -> dict[str, Any]:
        """The container's end: ``{exitCode, reason, startedAt, finishedAt, pid}``; ``{}``
        when there is no such container."""
        proc = self.procs.get(uid)
        if proc is None:
            return {}
        return dict(await asyncio.shield(proc.done))

    async def stop(self, uid: str, grace: float) -> dict[str, Any]:
        """SIGTERM to the container's processes, SIGKILL after ``grace`` seconds; its end."""
        proc = self.procs.get(uid)
        if proc is None:
            return {}
        if not proc.done.done():
            self._signal(proc, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(proc.done), max(grace, 0.0))
            except TimeoutError:
                self._signal(proc, signal.SIGKILL)
        return dict(await asyncio.shield(proc.done))

    async def forget(self, uid: str) -> None:
        """The pod is gone: kill what still runs and drop it."""
        proc = self.procs.get(uid)
        if proc is None:
            return
        if not proc.done.done():
            self._signal(proc, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.done), 5.0)
        if self.procs.get(uid) is proc:
            del self.procs[uid]

    @staticmethod
    def _signal(proc: Proc, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.process.pid, sig)

    async def stop_all(self) -> None:
        for uid in list(self.procs):
            await self.forget(uid)
