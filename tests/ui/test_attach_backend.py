"""The attached backend's load from this machine: an address this machine cannot reach is one
line that points at the in-cluster load, and nothing is started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from k3dtui.core.errors import UsageError
from k3dtui.core.identity import AppIdentity
from k3dtui.core.models import LoadSettings, ServiceView
from k3dtui.core.target import Attached
from k3dtui.ui import backend as backend_mod


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_service_address_points_at_the_in_cluster_load(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/"
    monkeypatch.setattr("k3dtui.core.target.service_url", lambda attached, dial=None: url)
    monkeypatch.setattr("k3dtui.providers.sim_dial_for", lambda server: None)
    attached = Attached(kubeconfig=tmp_path / "config", context="ctx", server="https://192.0.2.9:6443",
                        namespace="shop", identity=AppIdentity(namespace="shop", app="web", deployment="web",
                                                               service="web", selector="app=web", attached=True),
                        allow_changes=True, app_text="deployment/web (app=web) svc/web")
    be = backend_mod.AttachedBackend(attached)
    started: list[object] = []
    with pytest.raises(UsageError) as info:
        be.load_start(LoadSettings(duration=1.0), ServiceView("web", "203.0.113.7", 80, ""), started.append)
    assert info.value.message.startswith(f"cannot connect to {url}")
    assert "press w to run the load inside the cluster" in (info.value.hint or "")
    assert be._load is None and not started  # nothing was started
