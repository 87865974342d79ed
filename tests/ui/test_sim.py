"""Pilot tests against the simulated cluster: the real backend, the real core, the real sim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from k3dtui.core.models import PodView
from k3dtui.core.steps import SETUP_STEPS
from k3dtui.ui.app import K3dtuiApp
from k3dtui.ui.backend import CoreBackend
from k3dtui.ui.screens.live import LiveScreen
from tests.simfixtures import SimHandle


async def wait_until(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        app = pilot.app
        assert isinstance(app, K3dtuiApp)
        assert not app.failures, f"a worker failed while waiting for {what}: {app.failures}"
        if time.monotonic() > deadline:
            outcomes = getattr(app.screen, "outcomes", None)
            raise AssertionError(f"timed out waiting for {what} (on {type(app.screen).__name__}; {outcomes})")
        await pilot.pause(0.05)


def live(app: K3dtuiApp) -> LiveScreen | None:
    return app.screen if isinstance(app.screen, LiveScreen) else None


def pods(app: K3dtuiApp) -> list[PodView]:
    screen = live(app)
    return list(screen.snapshot.pods) if screen else []


def cards(app: K3dtuiApp) -> dict[str, str]:
    """pod name → the status its card shows (from the widgets, not the snapshot)."""
    screen = live(app)
    out: dict[str, str] = {}
    if screen:
        for column in screen.columns.values():
            for card in column.cards.values():
                out[card.pod.name] = "Terminating" if card.pod.deleting else card.pod.status
    return out


async def test_live_view_kill_scale_and_load(sim_app: SimHandle) -> None:
    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    # sim_app's MetalLB stand-in has no webhook configuration, so detect_stage() calls it
    # "cluster": open the live view directly (test_start_routing covers the start).
    app = K3dtuiApp(backend, detect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_live()
        await wait_until(pilot, lambda: live(app) and len(cards(app)) == 3, 20, "the live view with 3 pods")
        screen = live(app)
        assert screen is not None
        assert len([c for c in screen.columns.values() if c.node is not None]) == 3
        assert {p.node for p in pods(app)} == {n.name for n in screen.snapshot.nodes}
        await wait_until(pilot, lambda: screen.snapshot.service and screen.snapshot.service.external_ip, 10, "the external IP")

        # l: load in new-connection mode; every Running pod's count rises
        assert screen.settings.mode == "new-connection"
        await pilot.press("l")
        running = {p.name for p in pods(app) if p.status == "Running"}

        def all_counted() -> bool:
            load = screen.load
            return bool(load and load.running and all(load.per_pod.get(n, 0) > 0 for n in running))

        await wait_until(pilot, all_counted, 15, "counts for every running pod")
        first = dict(screen.load.per_pod)  # type: ignore[union-attr]
        await wait_until(
            pilot,
            lambda: all(screen.load.per_pod.get(n, 0) > first[n] for n in running),  # type: ignore[union-attr]
            10,
            "the counts to keep rising",
        )
        # the cards show it too
        await wait_until(
            pilot,
            lambda: all(c.served > 0 for col in screen.columns.values() for c in col.cards.values()),
            5,
            "every card's served count",
        )
        await pilot.press("l")  # stop the load
        await wait_until(pilot, lambda: screen.load is not None and not screen.load.running, 10, "the load to stop")

        # every state the cards went through, recorded as each snapshot is rendered
        seen: set[tuple[str, str]] = set()
        apply = screen.apply_snapshot

        def recording(snap: Any) -> None:
            apply(snap)
            seen.update(cards(app).items())

        screen.apply_snapshot = recording  # type: ignore[method-assign]

        # k on the selected pod: it shows Terminating, a replacement appears and runs
        await pilot.press("right", "left")
        victim = screen.selected_pod()
        assert victim is not None
        await pilot.press("k")
        await wait_until(pilot, lambda: (victim.name, "Terminating") in seen, 10, "the pod Terminating")
        await wait_until(
            pilot,
            lambda: sum(1 for n, s in cards(app).items() if n != victim.name and s == "Running") == 3,
            20,
            "a replacement Running",
        )

        # x kills a random pod: it too shows Terminating, then a replacement runs
        before = {n for n, s in cards(app).items() if s == "Running"}
        await pilot.press("x")
        await wait_until(pilot, lambda: any((n, "Terminating") in seen for n in before), 10, "a random pod Terminating")
        await wait_until(
            pilot,
            lambda: len({n for n, s in cards(app).items() if s == "Running"} - before) >= 1
            and sum(1 for s in cards(app).values() if s == "Running") == 3,
            20,
            "its replacement Running",
        )

        # + twice: five pods
        await pilot.press("plus")
        await pilot.pause(0.3)
        await pilot.press("plus")
        await wait_until(
            pilot, lambda: sum(1 for s in cards(app).values() if s == "Running") == 5, 20, "5 running pods"
        )
        assert screen.snapshot.deployment is not None and screen.snapshot.deployment.desired == 5
    backend.close()

    # --read-only on the same cluster: k, x and + change nothing and are hidden
    ro_backend = CoreBackend(sim_app.name, force_sim=True, read_only=True, provider=sim_app.provider)
    ro = K3dtuiApp(ro_backend, detect=False)
    async with ro.run_test(size=(120, 40)) as pilot:
        ro.open_live()
        await wait_until(pilot, lambda: live(ro) and len([s for s in cards(ro).values() if s == "Running"]) == 5, 20, "the live view")
        screen = live(ro)
        assert screen is not None
        names = {p.name for p in pods(ro)}
        for key in ("k", "x", "plus", "K", "minus"):
            await pilot.press(key)
        await asyncio.sleep(1.0)
        await pilot.pause(0.1)
        assert {p.name for p in pods(ro)} == names
        assert all(not p.deleting for p in pods(ro))
        assert screen.snapshot.deployment is not None and screen.snapshot.deployment.desired == 5
        assert not ro.failures
    ro_backend.close()


async def test_setup_to_live_by_keys_alone(sim_cluster: SimHandle) -> None:
    """The cluster exists (no MetalLB, no app): setup (reuse) → pool → deploy → live, keys only."""
    backend = CoreBackend(sim_cluster.name, force_sim=True, provider=sim_cluster.provider)
    app = K3dtuiApp(backend)
    async with app.run_test(size=(120, 40)) as pilot:
        # a partial cluster: k3dtui offers to finish; escape goes to the setup screen instead
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ResumeScreen", 20, "the offer to finish")
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "SetupScreen", 5, "the setup screen")
        await pilot.press("ctrl+s")  # create (reuses the running cluster)
        await wait_until(pilot, lambda: getattr(app.screen, "created", False), 30, "the cluster step")
        await pilot.press("enter")  # the focused "Next" button
        await wait_until(pilot, lambda: type(app.screen).__name__ == "PoolScreen", 5, "the pool screen")
        await wait_until(pilot, lambda: getattr(app.screen, "choice", None) is not None, 20, "a suggested range")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: getattr(app.screen, "applied", False), 60, "MetalLB and the pool")
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeployScreen", 5, "the deploy screen")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: getattr(app.screen, "deployed", False), 60, "the app deployed")
        deploy: Any = app.screen
        host, port = sim_cluster.provider.dial(deploy.ip, 80)
        assert deploy.url == f"http://{host}:{port}/"  # the probe answered through the dial address
        assert host == "127.0.0.1"
        # the screens ran the steps `k3dtui up` runs, over one session
        assert backend.session.ran == list(SETUP_STEPS)
        await pilot.press("enter")
        await wait_until(pilot, lambda: live(app) and len(cards(app)) == 3, 20, "the live view with 3 pods")
    backend.close()
