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
        assert all(isinstance(k, str) and n >= 0 for k, n in snap.errors.items())  # counted by kind
        assert snap.responses > 0
    finally:
        if gen is not None:
            gen.close()
        live.stop()
