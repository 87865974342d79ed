"""The simulated cluster keeps its state: every object and the resourceVersion counter, in
``<state folder>/cluster.json``, so a crash, a reboot or ``sim stop`` then ``sim start``
brings back the same cluster (as a k3s server keeps its datastore).

Crash-consistent by construction: each save writes a whole snapshot to a temporary file,
fsyncs it, and renames it over the previous one (then fsyncs the folder), so the file is
always one complete snapshot, never a torn one. The daemon saves at most every
``interval`` seconds while objects change, and once more when it stops; a crash loses at
most the last ``interval`` of changes, never consistency. A file that cannot be read is
set aside (``cluster.json.corrupt``) and the cluster starts fresh, saying so in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from k3dtui.sim.store import Store

log = logging.getLogger("k3dtui.sim.persist")

STATE_FILE = "cluster.json"
FORMAT = 1


def path_in(folder: Path) -> Path:
    return folder / STATE_FILE


def encode(store: Store, extra: dict[str, Any]) -> bytes:
    """The snapshot's bytes (on the loop: the objects must not change meanwhile)."""
    return orjson.dumps({"format": FORMAT, **extra, **store.dump()})


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def load(folder: Path) -> dict[str, Any] | None:
    """The last snapshot, or None (none kept, or unreadable: set aside)."""
    path = path_in(folder)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("cannot read the kept state %s (%s): starting a fresh cluster", path, exc)
        return None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("objects"), list):
            raise ValueError("not a k3dtui cluster snapshot")
    except ValueError as exc:
        aside = path.with_name(path.name + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.error("the kept state %s is unreadable (%s): set aside as %s; starting a fresh cluster", path, exc, aside)
        return None
    return data


def forget(folder: Path) -> None:
    """The cluster is deleted: its kept state goes too."""
    for name in (STATE_FILE, STATE_FILE + ".tmp"):
        with contextlib.suppress(OSError):
            (folder / name).unlink()


class Keeper:
    """Saves the store while it changes (at most every ``interval`` seconds) and on stop."""

    def __init__(self, store: Store, folder: Path, extra: Callable[[], dict[str, Any]],
                 interval: float = 0.5) -> None:
        self.store = store
        self.path = path_in(folder)
        self.extra = extra
        self.interval = interval
        self.saved_rv = -1
        self.saves = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.save()
            except OSError as exc:  # a full or read-only disk: keep serving, say so
                log.error("cannot keep the cluster's state in %s: %s", self.path, exc)

    async def save(self, *, force: bool = False) -> bool:
        async with self._lock:
            rv = self.store.resource_version
            if rv == self.saved_rv and not force:
                return False
            data = encode(self.store, self.extra())  # on the loop: a consistent picture
            await asyncio.to_thread(write_atomic, self.path, data)
            self.saved_rv = rv
            self.saves += 1
            return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.save(force=True)
        except OSError as exc:
            log.error("cannot keep the cluster's state in %s: %s", self.path, exc)
