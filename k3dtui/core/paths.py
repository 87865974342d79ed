"""Where k3dtui keeps its own files (never the user's ~/.kube/config).

``K3DTUI_STATE_DIR`` and ``K3DTUI_CACHE_DIR`` override the platform defaults (tests use them).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def state_dir(*, create: bool = False) -> Path:
    """k3dtui's state folder; made only when ``create`` (by a command that creates something)."""
    base = os.environ.get("K3DTUI_STATE_DIR") or platformdirs.user_state_dir("k3dtui")
    path = Path(base)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    base = os.environ.get("K3DTUI_CACHE_DIR") or platformdirs.user_cache_dir("k3dtui")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cluster_dir(provider: str, name: str, *, create: bool = False) -> Path:
    """k3dtui's folder for one cluster: ``<state>/<provider>/<name>/`` (kubeconfig, sim state).

    Made only when ``create``: commands that only read leave nothing behind. ``name`` must be
    one path component (the CLI checks names with ``spec.validate_name`` first; this is the
    last guard against a folder outside the state folder)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        from k3dtui.core.errors import UsageError

        raise UsageError(f"cluster name {name!r} is not a valid host name (no paths)",
                         "use lower-case letters, digits and '-'")
    path = state_dir() / provider / name
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
