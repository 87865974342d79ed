"""The load worker's entry point inside the in-network generator's container.

Copied into the image next to ``loadworker.py`` (``k3dtui.core.innetwork`` builds it): it runs
the same worker as a local load run, with its pipe to k3dtui replaced by the container's own
stdio: snapshots go out as JSON lines on stdout, k3dtui's commands (``["ack", n]``,
``["stop"]``, ``["update", {...}]``, ``["reset", epoch]``) come in as JSON lines on stdin.
EOF on stdin (k3dtui stopped reading, or was killed: the container is attached with
``StdinOnce``) ends the run like a closed pipe does. The settings come in ``K3DTUI_LOAD``.
"""

from __future__ import annotations

import json
import os
import select
import sys
from types import SimpleNamespace
from typing import Any

try:  # inside the image the two files sit side by side
    from loadworker import worker_main  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - imported from the package (tests, type checks)
    from k3dtui.core.loadworker import worker_main

SETTINGS_ENV = "K3DTUI_LOAD"


class StdioConn:
    """``multiprocessing.Connection``'s calls the worker makes, over stdin/stdout lines."""

    def __init__(self, fd_in: int = 0, out: Any = None) -> None:
        self.fd = fd_in
        self.out = out if out is not None else sys.stdout
        self.buf = b""
        self.eof = False

    def fileno(self) -> int:
        return self.fd

    def poll(self, timeout: float | None = 0.0) -> bool:
        if b"\n" in self.buf or self.eof:
            return True
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        data = os.read(self.fd, 65536)
        if not data:
            self.eof = True
        self.buf += data
        return b"\n" in self.buf or self.eof

    def recv(self) -> Any:
        while b"\n" not in self.buf:
            if self.eof:
                raise EOFError
            self.poll(None)
        line, _, self.buf = self.buf.partition(b"\n")
        msg = json.loads(line)
        return tuple(msg) if isinstance(msg, list) else msg

    def send(self, obj: Any) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


class _Never:
    def is_set(self) -> bool:
        return False


def main() -> None:
    settings = json.loads(os.environ[SETTINGS_ENV])
    worker_main(SimpleNamespace(**settings), StdioConn(), _Never(), os.getppid())


if __name__ == "__main__":
    main()
