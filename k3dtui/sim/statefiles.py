"""The simulated cluster's state folder, read from outside the daemon (light imports only:
``SimProvider`` uses these in every CLI process, which must not pay for the API server)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k3dtui.core import paths
from k3dtui.core.process import pid_alive as pid_alive  # re-exported (the daemon, the provider)


def state_dir(name: str, *, create: bool = False) -> Path:
    return paths.cluster_dir("sim", name, create=create)




def write_json(path: Path, data: Any, *, sort_keys: bool = False) -> None:
    """``data`` as JSON into ``path``, atomically: a reader sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n", encoding="utf-8")
    os.replace(tmp, path)


PID_FILE = "pid"


@dataclass(frozen=True)
class PidRecord:
    """What the pid file says about the daemon: its pid, its start time (clock ticks since
    boot, from ``/proc/<pid>/stat``), the boot it started in, and the identity token it
    answers to (``GET /sim/status`` → ``identity``). A pid alone may name any process after
    a crash or a reboot; the pair (pid, start time) within one boot names one process."""

    pid: int
    start: str
    boot: str
    token: str

    def text(self) -> str:
        return f"{self.pid}\nstart={self.start}\nboot={self.boot}\ntoken={self.token}\n"


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" when unknown or gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    try:  # no /proc (macOS): psutil when installed
        import psutil

        return f"{psutil.Process(pid).create_time():.2f}"
    except Exception:
        return ""


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def record_for(pid: int, token: str = "") -> PidRecord:
    return PidRecord(pid, process_start(pid), boot_id(), token or secrets.token_hex(16))


def write_pid_file(folder: Path, pid: int | None = None, token: str = "") -> PidRecord:
    """Record ``pid`` (this process by default) with its identity, atomically."""
    rec = record_for(os.getpid() if pid is None else pid, token)
    tmp = folder / (PID_FILE + ".tmp")
    tmp.write_text(rec.text(), encoding="utf-8")
    os.replace(tmp, folder / PID_FILE)
    return rec


def read_pid_file(folder: Path) -> PidRecord | None:
    """The pid file's record; None without one. A file without identity fields (an older
    k3dtui's) gives a record with an empty start time, which never matches a process."""
    try:
        lines = (folder / PID_FILE).read_text(encoding="utf-8").split()
    except OSError:
        return None
    if not lines:
        return None
    try:
        pid = int(lines[0])
    except ValueError:
        return PidRecord(-1, "", "", "")
    fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    return PidRecord(pid, fields.get("start", ""), fields.get("boot", ""), fields.get("token", ""))


def is_same_process(rec: PidRecord) -> bool:
    """True only when the recorded process is alive and is the one recorded: same start
    time, same boot."""
    if rec.pid <= 0 or not rec.start or not pid_alive(rec.pid):
        return False
    if rec.boot and boot_id() and rec.boot != boot_id():
        return False
    return process_start(rec.pid) == rec.start


def pid_status(folder: Path) -> tuple[str, PidRecord | None]:
    """("absent" | "running" | "stale", record). Stale: a pid file naming a process that
    is gone or is not the one recorded (a crash, a reboot, a reused pid)."""
    rec = read_pid_file(folder)
    if rec is None:
        return "absent", None
    return ("running" if is_same_process(rec) else "stale"), rec


def stale_message(rec: PidRecord) -> str:
    if rec.pid <= 0:
        return "its pid file is unreadable"
    if not pid_alive(rec.pid):
        return f"its pid file names pid {rec.pid}, which is no longer running"
    if not rec.start:
        return f"its pid file names pid {rec.pid} without the identity to check it (that process is left alone)"
    return f"its pid file names pid {rec.pid}, which is another process now (a different start time; left alone)"


def clean_stale(folder: Path, names: tuple[str, ...] = ()) -> None:
    """Remove a stale pid file (and the run files named): never signal anything."""
    for name in (PID_FILE, *names):
        with contextlib.suppress(OSError):
            (folder / name).unlink()


def running_pid(folder: Path) -> int | None:
    """The daemon's pid when the pid file names a live process that is the one recorded."""
    status, rec = pid_status(folder)
    return rec.pid if status == "running" and rec is not None else None


def read_lb_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
