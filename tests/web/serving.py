"""Run `k3dtui serve` as a person would (its own process) and drive it from a browser."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"(http://\S+)")

LAUNCH_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    first_line: str
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        match = re.search(r":(\d+)/", self.url)
        assert match, self.url
        return int(match.group(1))

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ctrl_c(self) -> None:
        """SIGINT to the whole process group, as a terminal's Ctrl+C sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def apps(self) -> list[psutil.Process]:
        """The app processes this server runs (one per open browser tab), living ones only."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for kid in kids:
            try:
                if kid.status() != psutil.STATUS_ZOMBIE and "k3dtui" in " ".join(kid.cmdline()):
                    out.append(kid)
            except psutil.NoSuchProcess:
                continue
        return out


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT) + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    return out


@contextmanager
def serve(*args: str, timeout: float = 30.0) -> Iterator[Served]:
    """`k3dtui serve --port 0 ARGS`; stopped with SIGINT (as Ctrl+C) at the end, and checked
    to exit 0 leaving no app process behind."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "k3dtui", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT,
        start_new_session=True,  # its own process group, as in a terminal
    )
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True).start()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not URL.search(lines[0]):
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"k3dtui serve printed no URL: {lines!r} {''.join(errors)}")
    served = Served(proc, URL.search(lines[0]).group(1), lines[0].strip(), errors)  # type: ignore[union-attr]
    kids: list[psutil.Process] = []
    try:
        yield served
    finally:
        kids = served.apps()
        if proc.poll() is None:
            served.ctrl_c()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                raise AssertionError("k3dtui serve did not stop within 20 s of Ctrl+C") from None
    assert proc.returncode == 0, (proc.returncode, "".join(errors))
    _gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, f"app processes left after the server stopped: {alive}"


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import chromium_path

    with tempfile.TemporaryDirectory(prefix="k3dtui-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1400, "height": 900},
            timeout=60_000,
        )
        try:
            yield context
        finally:
            context.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, page: Any = None) -> Any:
    """Poll ``predicate``; with ``page``, wait through the page so its events (websocket
    frames, requests) are delivered meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)
