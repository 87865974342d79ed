"""Acceptance across parts: kill a pod while new-connection load runs against the simulated
cluster → the replacement shows up in the watched state, then receives responses; the killed
pod's count stops growing; errors during the switch are counted by kind, never raised."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from k3dtui.core.live import LiveCluster
from k3dtui.core.load import LoadGenerator
from k3dtui.core.models import LoadSettings, LoadSnapshot
from k3dtui.core.watch import wait_until
from k3dtui.sim.settings import SimSettings
from tests.simfixtures import SimHandle, install_app, start_sim, stop_sim

NAME = "h5-load"


@pytest.fixture
def app() -> Iterator[SimHandle]:
    handle = start_sim(NAME, settings=SimSettings.fast().replace(terminate_delay=0.3))
    try:
        install_app(handle)
        yield handle
    finally:
        stop_sim(handle)


def test_killed_pod_is_replaced_in_state_and_in_traffic(app: SimHandle) -> None:
    live = LiveCluster(app.kubeconfig)
    live.start(lambda s: None)
    gen: LoadGenerator | None = None
    try:

        def ready() -> bool:
            s = live.snapshot()
            return s.connected and s.service is not None and len(s.pods) == 3 and all(p.ready for p in s.pods)

        assert wait_until(ready, 10)
        svc = live.snapshot().service
        assert svc is not None and svc.external_ip
        host, port = app.provider.dial(svc.external_ip, svc.port)
        gen = LoadGenerator(LoadSettings(url=f"http://{host}:{port}/", mode="new-connection", concurrency=4,
                                         duration=20.0, timeout=2.0))
        gen.start()
        before = {p.name for p in live.snapshot().pods}

        def latest() -> LoadSnapshot:
            assert gen is not None
            return gen.latest()

        assert wait_until(lambda: before <= set(latest().per_pod), 10)
        victim = sorted(before)[0]
        assert live.kill(victim).ok
        # The replacement appears in the state, Running and ready...
        assert wait_until(
            lambda: victim not in {p.name for p in live.snapshot().pods}
            and len(live.snapshot().pods) == 3 and all(p.ready for p in live.snapshot().pods), 10)
        (replacement,) = {p.name for p in live.snapshot().pods} - before
        # ...then receives responses, while the killed pod's count stops growing.
        assert wait_until(lambda: latest().per_pod.get(replacement, 0) > 0, 10)
        frozen = latest().per_pod.get(victim, 0)
        time.sleep(0.5)
        snap = latest()
        assert snap.per_pod.get(victim, 0) == frozen
        assert snap.per_pod[replacement] > 0
        # the killed pod's connections may fail while it goes: counted by kind, never beyond the total
        assert all(isinstance(k, str) and n > 0 for k, n in snap.errors.items())
        assert sum(snap.errors.values()) < snap.responses
        assert snap.responses > 0
    finally:
        if gen is not None:
            gen.close()
        live.stop()


def test_scale_up_new_connection_reaches_new_pods_keep_alive_stays_pinned(app: SimHandle) -> None:
    """Scale 3 → 6: with a new connection per request every new pod gets responses soon after
    it is Ready; with 4 keep-alive connections at most 4 pods ever answer (the skew is real)."""
    live = LiveCluster(app.kubeconfig, max_replicas=6)
    live.start(lambda s: None)
    gens: list[LoadGenerator] = []
    try:
        assert wait_until(lambda: live.snapshot().connected and len(live.snapshot().pods) == 3
                          and all(p.ready for p in live.snapshot().pods), 10)
        svc = live.snapshot().service
        assert svc is not None and svc.external_ip
        host, port = app.provider.dial(svc.external_ip, svc.port)
        url = f"http://{host}:{port}/"
        fresh = LoadGenerator(LoadSettings(url=url, mode="new-connection", concurrency=4,
                                           duration=25.0, timeout=2.0, rate=400.0))
        pinned = LoadGenerator(LoadSettings(url=url, mode="keep-alive", concurrency=4,
                                            duration=25.0, timeout=2.0, rate=400.0))
        gens += [fresh, pinned]
        fresh.start()
        pinned.start()
        assert wait_until(lambda: len(fresh.latest().per_pod) == 3, 10)
        assert live.scale_to(6).ok
        assert wait_until(lambda: len(live.snapshot().pods) == 6
                          and all(p.ready for p in live.snapshot().pods), 15)
        ready_at = time.monotonic()
        names = {p.name for p in live.snapshot().pods}
        assert wait_until(lambda: names <= set(fresh.latest().per_pod), 5), (
            f"new pods without responses {time.monotonic() - ready_at:.1f}s after Ready: "
            f"{sorted(names - set(fresh.latest().per_pod))}")
        time.sleep(1.0)  # more traffic on the pinned connections
        served = {pod for pod, n in pinned.latest().per_pod.items() if n > 0}
        assert pinned.latest().responses > 200
        assert 1 <= len(served) <= 4, served
    finally:
        for gen in gens:
            gen.close()
        live.stop()
