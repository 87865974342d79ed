"""LiveCluster and the kill/scale commands against the simulated cluster with the app deployed
(3 replicas over 1 server + 2 agents, MetalLB stand-in, external IP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from k3dtui.cli import main
from k3dtui.core.live import LiveCluster
from k3dtui.core.models import ClusterSnapshot
from k3dtui.core.watch import wait_until
from k3dtui.sim.settings import SimSettings
from tests.simfixtures import SimHandle, install_app, start_sim, stop_sim

NAME = "h5-live"


@pytest.fixture
def app() -> Iterator[SimHandle]:
    # A pod stays Terminating ~0.5 s after a graceful delete, long enough to be seen.
    handle = start_sim(NAME, settings=SimSettings.fast().replace(terminate_delay=0.5))
    try:
        install_app(handle)
        yield handle
    finally:
        stop_sim(handle)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snaps: list[ClusterSnapshot] = []

    def __call__(self, snap: ClusterSnapshot) -> None:
        with self.lock:
            self.snaps.append(snap)

    def since(self, n: int) -> list[ClusterSnapshot]:
        with self.lock:
            return self.snaps[n:]

    def __len__(self) -> int:
        with self.lock:
            return len(self.snaps)


@pytest.fixture
def live(app: SimHandle) -> Iterator[tuple[LiveCluster, Recorder]]:
    rec = Recorder()
    lc = LiveCluster(app.kubeconfig, max_replicas=6)
    lc.start(rec)
    try:
        yield lc, rec
    finally:
        lc.stop()


def settled(lc: LiveCluster, n: int) -> bool:
    s = lc.snapshot()
    return (
        s.connected
        and len(s.nodes) == 3
        and len(s.pods) == n
        and all(p.status == "Running" and p.ready for p in s.pods)
        and s.deployment is not None
        and s.deployment.ready == n
    )


def statuses(snap: ClusterSnapshot) -> dict[str, str]:
    return {p.name: p.status for p in snap.pods}


def test_snapshot_shows_the_app_over_three_nodes(live: tuple[LiveCluster, Recorder]) -> None:
    lc, rec = live
    assert wait_until(lambda: settled(lc, 3) and lc.snapshot().service is not None, 10)
    snap = lc.snapshot()
    assert snap.connected and snap.error == ""
    assert len(snap.nodes) == 3 and all(n.ready for n in snap.nodes)
    assert snap.nodes[0].roles == "control-plane,master"
    # each node's heartbeat: its kubelet's Lease in kube-node-lease, renewed while it runs
    assert wait_until(lambda: all(n.heartbeat > 0 for n in lc.snapshot().nodes), 10)
    first = {n.name: n.heartbeat for n in lc.snapshot().nodes}
    assert wait_until(lambda: all(n.heartbeat > first[n.name] for n in lc.snapshot().nodes), 15)
    assert sorted(len(snap.pods_on(n.name)) for n in snap.nodes) == [1, 1, 1]
    assert all(p.ip and p.ready_text == "1/1" and p.restarts == 0 for p in snap.pods)
    assert snap.service is not None and snap.service.external_ip and snap.service.port == 80
    assert wait_until(lambda: (lc.snapshot().service or snap.service).announcing_node != "", 5)
    announcing = lc.snapshot().service
    assert announcing is not None and announcing.announcing_node in {n.name for n in snap.nodes}
    wanted = {"SuccessfulCreate", "Scheduled", "IPAllocated"}
    assert wait_until(lambda: wanted <= {e.reason for e in lc.snapshot().events}, 5)
    # The coalesced callback delivers the same picture (its trailing call may lag a little).
    assert wait_until(lambda: len(rec) >= 1 and rec.since(len(rec) - 1)[0].pods == lc.snapshot().pods, 2)
    assert len(rec) < lc.state.changes  # coalesced: fewer callbacks than changes


def test_kill_graceful_then_force_then_random(live: tuple[LiveCluster, Recorder]) -> None:
    lc, rec = live
    assert wait_until(lambda: settled(lc, 3), 10)
    before = set(statuses(lc.snapshot()))
    victim = sorted(before)[0]
    mark = len(rec)
    result = lc.kill(victim)
    assert result.ok and victim in result.message and "terminating" in result.message
    assert wait_until(lambda: victim not in statuses(lc.snapshot()) and settled(lc, 3), 10)
    assert wait_until(lambda: rec.since(len(rec) - 1)[0].pods == lc.snapshot().pods, 2)
    seen = rec.since(mark)
    # Terminating was shown, the replacement appeared while the victim was still there, then it went.
    assert any(statuses(s).get(victim) == "Terminating" for s in seen)
    assert any(victim in statuses(s) and set(statuses(s)) - before for s in seen)
    assert victim not in statuses(seen[-1])
    assert wait_until(lambda: any(e.reason == "Killing" and e.object == f"pod/{victim}" for e in lc.snapshot().events), 5)

    # Forced: gone without ever being shown Terminating.
    current = set(statuses(lc.snapshot()))
    forced = sorted(current)[0]
    mark = len(rec)
    result = lc.kill(forced, force=True)
    assert result.ok and "grace period 0" in result.message
    assert wait_until(lambda: forced not in statuses(lc.snapshot()) and settled(lc, 3), 10)
    assert all(statuses(s).get(forced) != "Terminating" for s in rec.since(mark))

    # Random: one of the Running pods, replaced too.
    current = set(statuses(lc.snapshot()))
    result = lc.kill_random(force=True)
    assert result.ok
    killed = next(name for name in current if name in result.message)
    assert wait_until(lambda: killed not in statuses(lc.snapshot()) and settled(lc, 3), 10)

    # Already gone.
    gone = lc.kill(forced)
    assert not gone.ok and "not found" in gone.message and "already gone" in gone.message


def test_refuses_pods_that_are_not_the_apps(app: SimHandle, live: tuple[LiveCluster, Recorder]) -> None:
    lc, _ = live
    app.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}})
    for ns, labels, name in (("default", {"app": "web"}, "web-pod"), ("elsewhere", {"app": "fastapi"}, "fastapi-other")):
        app.apply({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                   "spec": {"containers": [{"name": "c", "image": "fastapi-random:latest"}]}})
    r = lc.kill("web-pod", force=True)
    assert not r.ok and r.message.startswith("refused: pod web-pod is not part of the app")
    r = lc.kill("fastapi-other", force=True)
    assert not r.ok and "not found in namespace default" in r.message
    with app.http() as http:
        assert http.get("/api/v1/namespaces/default/pods/web-pod").status_code == 200
        assert http.get("/api/v1/namespaces/elsewhere/pods/fastapi-other").status_code == 200
    # The app's picture never included them.
    assert "web-pod" not in statuses(lc.snapshot())


def test_scale_by_and_to_within_bounds(live: tuple[LiveCluster, Recorder]) -> None:
    lc, _ = live
    assert wait_until(lambda: settled(lc, 3), 10)
    r = lc.scale_by(1)
    assert r.ok and r.message == "scaled deployment fastapi-app from 3 to 4 replicas"
    assert wait_until(lambda: settled(lc, 4), 10)
    assert lc.scale_by(-1).ok
    assert wait_until(lambda: settled(lc, 3), 10)
    assert lc.scale_to(6).ok
    assert wait_until(lambda: settled(lc, 6), 10)
    snap = lc.snapshot()
    assert sorted(len(snap.pods_on(n.name)) for n in snap.nodes) == [2, 2, 2]
    r = lc.scale_by(1)
    assert not r.ok and "outside 0..6" in r.message
    r = lc.scale_to(7)
    assert not r.ok and "outside 0..6" in r.message
    r = lc.scale_to(-1)
    assert not r.ok
    assert lc.snapshot().deployment is not None and lc.snapshot().deployment.desired == 6  # type: ignore[union-attr]
    assert lc.scale_to(2).ok
    assert wait_until(lambda: settled(lc, 2), 10)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*argv, "--sim", "--name", NAME])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_scale_and_kill(app: SimHandle, capsys: pytest.CaptureFixture[str]) -> None:
    lc = LiveCluster(app.kubeconfig)
    lc.start(lambda s: None)
    try:
        assert wait_until(lambda: settled(lc, 3), 10)
        code, out, _ = run(["scale", "+1"], capsys)
        assert (code, out.strip()) == (0, "scaled deployment fastapi-app from 3 to 4 replicas")
        code, out, _ = run(["scale", "2"], capsys)
        assert (code, out.strip()) == (0, "scaled deployment fastapi-app from 4 to 2 replicas")
        assert wait_until(lambda: settled(lc, 2), 10)
        code, _, err = run(["scale", "-3"], capsys)
        assert code == 1 and "refused: 2-3 = -1 replicas is outside 0..50" in err
        code, _, err = run(["scale", "abc"], capsys)
        assert code == 2 and "not a replica count" in err
        victim = lc.snapshot().pods[0].name
        code, out, _ = run(["kill", victim, "--force"], capsys)
        assert code == 0 and f"pod {victim}" in out and "grace period 0" in out
        code, _, err = run(["kill", "fastapi-nope-zzzzz"], capsys)
        assert code == 1 and "not found" in err
        assert wait_until(lambda: settled(lc, 2), 10)
        code, out, _ = run(["kill", "--random"], capsys)
        assert code == 0 and "is terminating" in out
    finally:
        lc.stop()
    stop_sim(app)
    code, _, err = run(["kill", "--random"], capsys)
    assert code == 1 and "not running" in err and "Traceback" not in err


def test_watch_survives_an_api_server_restart(app: SimHandle) -> None:
    from k3dtui.core.watch import WatchSettings

    fast = WatchSettings(timeout_seconds=30, inactivity_timeout=10, connect_timeout=1,
                         backoff_initial=0.05, backoff_max=0.5)
    lc = LiveCluster(app.kubeconfig, watch_settings=fast)
    lc.start(lambda s: None)
    try:
        assert wait_until(lambda: settled(lc, 3), 10)
        lists_before = {w.kind: w.lists for w in lc.watchers}
        app.control("POST", "/sim/faults", {"restart_api": True})
        # Every watcher notices the dropped stream, lists again and is connected again.
        assert wait_until(lambda: all(w.lists > lists_before[w.kind] for w in lc.watchers), 10)
        assert wait_until(lambda: lc.snapshot().connected, 10)
        victim = lc.snapshot().pods[0].name
        assert lc.kill(victim, force=True).ok
        assert wait_until(lambda: settled(lc, 3) and victim not in statuses(lc.snapshot()), 10)
        with app.http() as http:
            items = http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=fastapi"}).json()["items"]
        snap = lc.snapshot()
        assert sorted(p.uid for p in snap.pods) == sorted(i["metadata"]["uid"] for i in items)  # no ghost, no duplicate
        assert len(snap.nodes) == 3
    finally:
        lc.stop()


def test_cli_watch_prints_pod_changes_as_json_lines(app: SimHandle) -> None:
    import json
    import os
    import queue
    import signal
    import subprocess
    import sys

    lc = LiveCluster(app.kubeconfig)
    proc = subprocess.Popen(
        [sys.executable, "-m", "k3dtui", "watch", "--sim", "--name", NAME, "--json", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True)
    reader.start()
    try:
        seen: list[dict[str, object]] = []

        def take(until: float) -> None:
            while True:
                try:
                    seen.append(json.loads(lines.get(timeout=max(0.01, until - time.monotonic()))))
                except queue.Empty:
                    return
                if pred():
                    return

        def pred() -> bool:
            return len([s for s in seen if s.get("change") == "added"]) >= 3

        take(time.monotonic() + 6)
        first = [s for s in seen if s.get("change") == "added"]
        assert len(first) == 3 and all(s["status"] == "Running" and s["ready"] == "1/1" for s in first)
        victim = str(first[0]["pod"])
        assert lc.kill(victim, force=True).ok

        def pred() -> bool:  # noqa: F811 - now: the victim deleted and a replacement added
            return any(s.get("change") == "deleted" and s.get("pod") == victim for s in seen) and len(
                [s for s in seen if s.get("change") == "added"]
            ) >= 4

        take(time.monotonic() + 5)
        assert pred(), seen
        assert all(str(s["time"]).endswith("Z") for s in seen)
        proc.send_signal(signal.SIGINT)  # "until interrupted": Ctrl-C ends it cleanly
    finally:
        proc.wait(timeout=25)
    assert proc.returncode == 0
    assert (proc.stderr.read() if proc.stderr else "") == ""


def test_watch_relists_after_an_expired_resource_version(app: SimHandle) -> None:
    """The simulator forgets its event window: a watcher that resumes from a resourceVersion
    older than the window gets 410 Expired, lists again, and the state stays exact."""
    from k3dtui.core.watch import WatchSettings

    # Server-side watch timeout of 1 s: every watch ends normally and resumes from its RV.
    fast = WatchSettings(timeout_seconds=1, inactivity_timeout=10, connect_timeout=1,
                         backoff_initial=0.05, backoff_max=0.5)
    lc = LiveCluster(app.kubeconfig, watch_settings=fast)
    lc.start(lambda s: None)
    try:
        assert wait_until(lambda: settled(lc, 3), 10)
        assert all(w.expired == 0 for w in lc.watchers)
        victim = lc.snapshot().pods[0].name
        # Writes the node watcher never sees leave its resourceVersion behind; then the
        # window is forgotten, so its next resume is older than anything the server keeps.
        assert lc.kill(victim, force=True).ok
        app.control("POST", "/sim/faults", {"expire": True})
        assert wait_until(lambda: any(w.expired > 0 for w in lc.watchers), 10)
        assert wait_until(lambda: settled(lc, 3) and victim not in statuses(lc.snapshot()), 15)
        with app.http() as http:
            items = http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=fastapi"}).json()["items"]
        snap = lc.snapshot()
        assert sorted(p.uid for p in snap.pods) == sorted(i["metadata"]["uid"] for i in items)
        assert len(snap.nodes) == 3
    finally:
        lc.stop()
