"""LiveCluster's wiring against the scripted API server: what it lists and watches, the
snapshots it hands out, MetalLB's CRD being absent, and a prompt stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_watch_fakeapi import PODS_PATH, FakeApi, event, pod

from k3dtui.core.identity import APP
from k3dtui.core.live import LiveCluster
from k3dtui.core.models import ClusterSnapshot
from k3dtui.core.watch import WatchSettings, wait_until

NODES_PATH = "/api/v1/nodes"
DEPLOY_PATH = "/apis/apps/v1/namespaces/default/deployments"
SVC_PATH = "/api/v1/namespaces/default/services"
EVENTS_PATH = "/api/v1/namespaces/default/events"
L2_PATH = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses"

SETTINGS = WatchSettings(timeout_seconds=30, inactivity_timeout=5, connect_timeout=1, backoff_initial=0.05,
                         backoff_max=0.2, absent_poll=0.2)


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi().start()
    api.lists[NODES_PATH] = ([
        {"metadata": {"name": "k3d-x-server-0", "uid": "n0", "labels": {"node-role.kubernetes.io/control-plane": "true"}},
         "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}},
        {"metadata": {"name": "k3d-x-agent-0", "uid": "n1"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "172.18.0.3"}]}},
    ], 5)
    api.lists[PODS_PATH] = ([pod("fastapi-a", 6)], 7)
    api.lists[DEPLOY_PATH] = ([{"metadata": {"name": APP.deployment, "namespace": "default", "uid": "d"},
                                "spec": {"replicas": 1}, "status": {"replicas": 1}}], 7)
    api.lists[SVC_PATH] = ([{"metadata": {"name": "fastapi-service", "namespace": "default", "uid": "s"},
                             "spec": {"ports": [{"port": 80}]},
                             "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200"}]}}}], 7)
    api.lists[EVENTS_PATH] = ([], 7)
    yield api
    api.stop()


def test_live_cluster_lists_watches_and_reports_snapshots(fake: FakeApi, tmp_path: Path) -> None:
    fake.script(PODS_PATH, ("sleep", 0.3), event("ADDED", pod("fastapi-b", 8)), ("hang",))
    got: list[ClusterSnapshot] = []
    lock = threading.Lock()

    def on_change(snap: ClusterSnapshot) -> None:
        with lock:
            got.append(snap)

    live = LiveCluster(fake.kubeconfig(tmp_path), watch_settings=SETTINGS)
    live.start(on_change)
    try:
        assert wait_until(lambda: len(live.snapshot().pods) == 2, 5)
        snap = live.snapshot()
        assert snap.connected and snap.error == ""
        assert [n.name for n in snap.nodes] == ["k3d-x-server-0", "k3d-x-agent-0"]
        assert snap.deployment is not None and snap.deployment.desired == 1 and snap.deployment.ready == 0
        assert snap.service is not None and snap.service.external_ip == "172.18.255.200"
        assert snap.service.announcing_node == ""  # the CRD is absent: 404 tolerated
        assert wait_until(lambda: bool(got) and len(got[-1].pods) == 2, 2)
        # Coalesced: six initial lists and one event gave far fewer callbacks than changes.
        with lock:
            assert len(got) <= live.state.changes
        # Selectors sent: only the app's pods, only its Deployment and Service.
        queries = {r.path: r.query for r in fake.requests if r.watch}
        assert queries[PODS_PATH]["labelSelector"] == "app=fastapi"
        assert queries[DEPLOY_PATH]["fieldSelector"] == "metadata.name=fastapi-app"
        assert queries[SVC_PATH]["fieldSelector"] == "metadata.name=fastapi-service"
        assert any(r.path == L2_PATH for r in fake.requests)
        # MetalLB installed later: its ServiceL2Status shows up and names the announcing node.
        fake.lists[L2_PATH] = ([{"metadata": {"name": "l2-1", "namespace": "metallb-system", "uid": "l2"},
                                 "status": {"node": "k3d-x-agent-0", "serviceName": "fastapi-service",
                                            "serviceNamespace": "default"}}], 9)
        assert wait_until(lambda: (live.snapshot().service or snap.service).announcing_node == "k3d-x-agent-0", 5)
    finally:
        began = time.monotonic()
        live.stop()
        assert time.monotonic() - began < 2.0
    assert not any(w.alive for w in live.watchers)


def test_live_cluster_reports_disconnection_and_recovers(fake: FakeApi, tmp_path: Path) -> None:
    live = LiveCluster(fake.kubeconfig(tmp_path), watch_settings=SETTINGS)
    live.start(lambda snap: None)
    try:
        assert wait_until(lambda: live.snapshot().connected, 5)
        port = fake.port
        fake.stop()  # hanging watches end; re-lists are refused
        assert wait_until(lambda: not live.snapshot().connected, 5)
        # First "the connection broke" (the streams), then, while it stays down, "refused".
        assert wait_until(lambda: "connection refused" in live.snapshot().error, 5)
        assert not live.snapshot().connected
        fake.lists[PODS_PATH] = ([pod("fastapi-c", 20)], 21)
        fake.port = port
        fake.start()
        assert wait_until(lambda: live.snapshot().connected, 5)
        assert [p.name for p in live.snapshot().pods] == ["fastapi-c"]  # resynced: no ghost of fastapi-a
    finally:
        live.stop()
