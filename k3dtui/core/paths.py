"""Where k3dtui keeps its own files (never the user's ~/.kube/config).

``K3DTUI_STATE_DIR`` and ``K3DTUI_CACHE_DIR`` override the platform defaults (tests use them).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def state_dir() -> Path:
    base = os.environ.get("K3DTUI_STATE_DIR") or platformdirs.user_state_dir("k3dtui")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    base = os.environ.get("K3DTUI_CACHE_DIR") or platformdirs.user_cache_dir("k3dtui")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cluster_dir(provider: str, name: str) -> Path:
    """k3dtui's folder for one cluster: ``<state>/<provider>/<name>/`` (kubeconfig, sim state)."""
    path = state_dir() / provider / name
    path.mkdir(parents=True, exist_ok=True)
    return path
