"""The simulated cluster's state folder, read from outside the daemon (light imports only:
``SimProvider`` uses these in every CLI process, which must not pay for the API server)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from k3dtui.core import paths


def state_dir(name: str) -> Path:
    return paths.cluster_dir("sim", name)


def pid_alive(pid: int) -> bool:
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


def running_pid(folder: Path) -> int | None:
    try:
        pid = int((folder / "pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def read_lb_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
