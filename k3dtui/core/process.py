"""The one way k3dtui runs a program: an argv list (never a shell), output streamed line by
line as it comes, an optional timeout, and clear errors for a non-zero exit or a missing
executable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import LineSink

TAIL_LINES = 20
LINE_LIMIT = 64 * 1024 * 1024  # `k3d cluster list -o json` prints everything on one line

INSTALL_HINTS: dict[str, str] = {
    "k3d": "install k3d v5 (https://k3d.io/#installation) and make sure it is on PATH, "
    "or run with --sim for the simulated cluster",
    "docker": "install Docker (https://docs.docker.com/engine/install/) and start it",
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
}


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str


# ANSI escape sequences (CSI ... final byte, OSC ... BEL/ST, and lone ESC + one char).
# k3d colours every log line unless LOG_COLORS=false (logrus TextFormatter with ForceColors:
# k3d-io/k3d cmd/root.go, initLogging), and other programs may colour theirs too.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape codes."""
    return _ANSI_RE.sub("", text)


# logrus' two text shapes (k3d-io/k3d vendor/github.com/sirupsen/logrus/text_formatter.go):
# coloured `ERRO[0002] message` (4-letter level, seconds since start), and without colour on
# a pipe, logfmt: `time="2026-01-02T03:04:05Z" level=error msg="message"`.
_TEXT_RE = re.compile(r"^(TRAC|DEBU|INFO|WARN|ERRO|FATA|PANI)\[[^\]]*\]\s*(.*)$")
_LOGFMT_RE = re.compile(
    r'^(?:time="[^"]*"\s+)?level=(trace|debug|info|warning|warn|error|fatal|panic)\s+'
    r'(?:msg=("(?:[^"\\]|\\.)*"|\S*))?(.*)$'
)
_PLAIN_RE = re.compile(r"^(ERROR|FATAL|error|fatal):\s*(.*)$")
_LEVEL4 = {
    "trace": "TRAC", "debug": "DEBU", "info": "INFO", "warning": "WARN", "warn": "WARN",
    "error": "ERRO", "fatal": "FATA", "panic": "PANI",
}
ERROR_LEVELS = frozenset({"ERRO", "FATA", "PANI"})


def _unquote_go(value: str) -> str:
    """A Go ``%q`` string (what logrus writes for a value that needs quoting) → its text."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    body = value[1:-1]
    out: list[str] = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(escapes.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_log_line(line: str) -> tuple[str | None, str]:
    """(4-letter level or None, message) of one log line in either logrus shape, or of an
    ``error: ...`` line; escape codes removed. A line of another shape → (None, line)."""
    line = strip_ansi(line).strip()
    m = _TEXT_RE.match(line)
    if m:
        return m.group(1), m.group(2).rstrip()
    m = _LOGFMT_RE.match(line)
    if m:
        msg = _unquote_go(m.group(2) or "")
        rest = m.group(3).strip()
        return _LEVEL4[m.group(1)], f"{msg} {rest}".strip() if rest else msg
    m = _PLAIN_RE.match(line)
    if m:
        return ("FATA" if m.group(1).lower() == "fatal" else "ERRO"), m.group(2)
    return None, line


def _strip_level(line: str) -> str:
    """k3d's log lines start with ``ERRO[0002] `` (or ``level=error msg=``); the message is
    what follows."""
    return parse_log_line(line)[1] or line.strip()


def _is_error(line: str) -> bool:
    return parse_log_line(line)[0] in ERROR_LEVELS


class CommandError(K3dtuiError):
    """A program exited non-zero (or timed out). Carries the command and its stderr tail."""

    def __init__(
        self, argv: list[str], returncode: int | None, stderr: str, hint: str = ""
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        lines = [strip_ansi(ln) for ln in stderr.splitlines() if strip_ansi(ln).strip()]
        self.stderr_tail = "\n".join(lines[-TAIL_LINES:])
        last = _strip_level(lines[-1]) if lines else ""
        errors = [_strip_level(ln) for ln in lines if _is_error(ln)]
        if errors and errors[0] != last:
            last = f"{last} (first error: {errors[0]})"
        shown = shlex.join(argv[:4]) + (" ..." if len(argv) > 4 else "")
        if returncode is None:
            what = f"`{shown}` timed out"
        else:
            what = f"`{shown}` failed (exit {returncode})"
        message = f"{what}: {last}" if last else what
        if not hint:
            hint = "its output is above" if lines else "it printed nothing on stderr"
        super().__init__(message, hint)


def missing_executable(name: str) -> K3dtuiError:
    hint = INSTALL_HINTS.get(os.path.basename(name), f"install {name} and make sure it is on PATH")
    return K3dtuiError(f"{name} is not installed (not found on PATH)", hint)


def which(name: str, env: Mapping[str, str] | None = None) -> str | None:
    path = (env or os.environ).get("PATH")
    return shutil.which(name, path=path)


async def _pump(
    stream: asyncio.StreamReader | None, sink: list[str], on_line: LineSink | None
) -> None:
    if stream is None:
        return
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = strip_ansi(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        sink.append(line)
        if on_line is not None:
            on_line(line)


async def run(
    argv: list[str],
    *,
    on_line: LineSink | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    hint: str = "",
    stdin: bytes | None = None,
) -> ProcessResult:
    """Run ``argv``; every stdout and stderr line goes to ``on_line`` as it arrives.

    Non-zero exit → ``CommandError`` (unless ``check=False``); a timeout kills the program
    and raises ``CommandError`` with ``returncode`` None; a missing program → ``K3dtuiError``
    saying how to install it.
    """
    if not argv:
        raise ValueError("empty argv")
    full_env = dict(os.environ if env is None else env)
    exe = argv[0]
    if os.sep not in exe and which(exe, full_env) is None:
        raise missing_executable(exe)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            limit=LINE_LIMIT,
        )
    except FileNotFoundError:
        raise missing_executable(exe) from None
    except PermissionError:
        raise K3dtuiError(f"{exe} is not executable", f"check the permissions of {exe}") from None
    out: list[str] = []
    err: list[str] = []

    async def communicate() -> int:
        if stdin is not None and proc.stdin is not None:
            proc.stdin.write(stdin)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.drain()
            proc.stdin.close()
        await asyncio.gather(_pump(proc.stdout, out, on_line), _pump(proc.stderr, err, on_line))
        return await proc.wait()

    try:
        code = await asyncio.wait_for(communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise CommandError(
            argv, None, "\n".join(err), hint or f"it did not finish within {timeout:g} s"
        ) from None
    result = ProcessResult(code, "\n".join(out), "\n".join(err))
    if check and code != 0:
        raise CommandError(argv, code, result.stderr or result.stdout, hint)
    return result
