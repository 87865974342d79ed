"""providers.list_clusters: the simulated clusters with a live daemon, and k3d's list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k3dtui import providers
from k3dtui.core import paths
from k3dtui.core.provider import ClusterInfo


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("K3DTUI_STATE_DIR", str(tmp_path / "state"))
    return paths.state_dir()


def _sim_folder(state: Path, name: str, pid: int, servers: int = 1, agents: int = 2) -> None:
    folder = state / "sim" / name
    folder.mkdir(parents=True)
    from k3dtui.sim.statefiles import write_pid_file

    write_pid_file(folder, pid)  # the identity of the live process, as the daemon records its own
    (folder / "state.json").write_text(json.dumps({"servers": servers, "agents": agents}))


def test_sim_clusters_with_a_live_daemon_only(state: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _sim_folder(state, "alive", sleeper.pid, servers=1, agents=3)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        _sim_folder(state, "stale", dead.pid)
        (state / "sim" / "nopid").mkdir()
        assert providers.list_clusters(force_sim=True) == [ClusterInfo("alive", 1, 3, 1, 3)]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert providers.list_clusters(force_sim=True) == []


def test_no_sim_folder_means_no_clusters(state: Path) -> None:
    assert providers.list_clusters(force_sim=True) == []


def test_k3d_clusters_when_k3d_is_usable(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from k3dtui.core import k3d

    async def fake_list() -> list[ClusterInfo]:
        return [ClusterInfo("demo", 1, 2, 1, 1)]

    monkeypatch.setattr(providers, "k3d_usable", lambda: (True, "fake"))
    monkeypatch.setattr(k3d, "cluster_list", fake_list)
    _sim_folder(state, "alive", os.getpid())
    assert providers.list_clusters(force_sim=False) == [ClusterInfo("demo", 1, 2, 1, 1)]
    # --sim: the simulated ones even when k3d is usable
    assert [c.name for c in providers.list_clusters(force_sim=True)] == ["alive"]
