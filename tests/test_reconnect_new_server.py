"""A restarted cluster comes back on a new address with a new token and CA: the live view
re-reads the kubeconfig, moves every watcher to the new server, lists afresh and says so
(server_generation); actions refuse while the picture is stale and then reach the new server."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

from kubernetes import client

from k3dtui.core.kube import make_api_client
from k3dtui.core.live import LiveCluster
from k3dtui.core.watch import WatchSettings, wait_until
from k3dtui.sim.testing import ApiThread, run_api_in_thread

SETTINGS = WatchSettings(timeout_seconds=30, inactivity_timeout=5, connect_timeout=1, backoff_initial=0.5,
                         backoff_max=8.0, absent_poll=0.2)


def _pod(api: ApiThread, name: str) -> None:
    kube = make_api_client(api.kubeconfig)
    try:
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": "fastapi"}},
                "spec": {"nodeName": "k3d-sim-agent-0",
                         "containers": [{"name": "fastapi", "image": "fastapi-random:latest"}]}}
        client.CoreV1Api(kube).create_namespaced_pod("default", body, _preload_content=False)
    finally:
        kube.close()


def test_the_live_view_moves_to_a_new_api_server(tmp_path: Path) -> None:
    old = run_api_in_thread(tmp_path / "old")
    new: ApiThread | None = None
    kubeconfig = tmp_path / "kubeconfig.yaml"  # what the provider keeps up to date
    shutil.copy(old.kubeconfig, kubeconfig)
    _pod(old, "fastapi-old-aaaaa")
    live = LiveCluster(kubeconfig, watch_settings=SETTINGS)
    generations: list[int] = []
    lock = threading.Lock()

    def seen(snap: object) -> None:
        with lock:
            generations.append(getattr(snap, "server_generation", -1))

    live.start(seen)
    try:
        assert wait_until(lambda: [p.name for p in live.snapshot().pods] == ["fastapi-old-aaaaa"], 5)
        assert wait_until(lambda: live.snapshot().connected, 5) and live.server == old.url
        old.stop()  # the cluster's process dies
        assert wait_until(lambda: not live.snapshot().connected, 5)
        stale = live.kill("fastapi-old-aaaaa")
        assert not stale.ok and stale.message.startswith("refused: the view is stale")
        # let the watchers' back-off grow past the bound below: the new server must still be
        # reached at once, as soon as the kubeconfig names it
        assert wait_until(lambda: all(w._backoff.attempts >= 3 for w in live.watchers), 10)
        new = run_api_in_thread(tmp_path / "new")
        assert new.url != old.url and new.token != old.token
        _pod(new, "fastapi-new-bbbbb")
        shutil.copy(new.kubeconfig, kubeconfig)  # the restarted cluster's kubeconfig
        assert wait_until(lambda: live.snapshot().connected and live.snapshot().server_generation == 1, 3)
        assert [p.name for p in live.snapshot().pods] == ["fastapi-new-bbbbb"]
        assert live.server == new.url
        assert all(w.reconnects == 1 for w in live.watchers)
        with lock:
            assert 1 in generations
        # actions reach the new server (a new client from the new kubeconfig)
        r = live.scale_to(2)
        assert not r.ok and "deployment fastapi-app not found" in r.message
    finally:
        live.stop()
        old.stop()
        if new is not None:
            new.stop()


def test_a_kubeconfig_that_did_not_change_keeps_the_client(tmp_path: Path) -> None:
    api = run_api_in_thread(tmp_path / "a")
    live = LiveCluster(api.kubeconfig, watch_settings=SETTINGS)
    live.start(lambda s: None)
    try:
        assert wait_until(lambda: live.snapshot().connected, 5)
        assert live._refresh(0, lambda a: a) is None  # same kubeconfig: no new client
        data = json.loads(json.dumps({"generation": live.snapshot().server_generation}))
        assert data == {"generation": 0}
    finally:
        live.stop()
        api.stop()
