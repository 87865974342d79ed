"""The flow panel (issue 11): `t` switches externalTrafficPolicy and the panel's numbers
follow; snapshots of the panel at 100 and 160 columns; its line from fixed figures."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from k3dtui.core.models import LoadSnapshot, ServiceView, WorkerView
from k3dtui.ui.screens.live import LiveScreen
from k3dtui.ui.widgets.flow import FlowPanel, flow_text
from tests.ui.helpers import make_app, settle, until


async def _live(pilot: Pilot[Any]) -> LiveScreen:
    await settle(pilot)
    await until(pilot, lambda: isinstance(pilot.app.screen, LiveScreen))
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, LiveScreen)
    return screen


def _panel(screen: LiveScreen) -> str:
    panel = screen.query_one(FlowPanel)
    panel.refresh_flow()
    return str(panel.render())


async def test_t_switches_the_policy_and_the_flow_panel_follows() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await _live(pilot)
        await pilot.press("l")
        await settle(pilot)
        await until(pilot, lambda: screen.load is not None and screen.load.responses > 0)
        line = _panel(screen)
        assert "(ARP: agent-0)" in line and "kube-proxy Cluster" in line
        assert "cross-node 65%" in line and "(masqueraded)" in line
        assert "server-0" in line and "agent-1" in line

        await pilot.press("t")
        await settle(pilot)
        await until(pilot, lambda: screen.snapshot.service is not None
                    and screen.snapshot.service.traffic_policy == "Local")
        await until(pilot, lambda: fixed.calls[-1] == "load reset")  # the numbers start over
        assert fixed.calls[-2] == "policy Local"
        await until(pilot, lambda: screen.load is not None and screen.load.responses == 0)
        fixed.load_advance(12.4)
        await until(pilot, lambda: "kube-proxy Local" in _panel(screen) and "cross-node 0%" in _panel(screen))
        line = _panel(screen)
        assert "agent-0 100%" in line and "server-0" not in line and "agent-1" not in line
        assert "pods saw 172.20.0.1 (the client's own)" in line

        await pilot.press("t")  # and back
        await settle(pilot)
        await until(pilot, lambda: fixed.calls[-2:] == ["policy Cluster", "load reset"])
        fixed.load_advance(12.4)
        await until(pilot, lambda: "kube-proxy Cluster" in _panel(screen) and "cross-node 65%" in _panel(screen))


async def test_read_only_t_changes_nothing_and_narrow_terminals_hide_the_panel() -> None:
    app, fixed = make_app(stage="deployed", read_only=True)
    async with app.run_test(size=(99, 30)) as pilot:
        screen = await _live(pilot)
        await pilot.press("t")
        await settle(pilot)
        assert not any(c.startswith("policy") for c in fixed.calls)
        assert screen.query_one(FlowPanel).display is False


def test_flow_text_says_when_no_node_announces() -> None:
    svc = ServiceView("fastapi-service", "172.20.255.201", 80, "", "Local")
    load = LoadSnapshot(running=True, mode="new-connection", concurrency=4, elapsed=1.0, requests=0,
                        responses=0, rps=0.0)
    line = str(flow_text(svc, load, 160))
    assert "no node announces: no ready pod on any node, Local" in line and "counting" in line


def test_flow_text_of_a_load_inside_the_cluster_starts_at_the_workers() -> None:
    svc = ServiceView("hello", "172.20.255.202", 80, "agent-1", "Cluster")
    workers = {f"k3dtui-load-1-{i}": WorkerView(pod=f"k3dtui-load-1-{i}", node="server-0", requests=5, responses=5,
                                                errors=0, rps=1.0) for i in range(2)}
    load = LoadSnapshot(running=True, mode="new-connection", concurrency=4, elapsed=1.0, requests=10,
                        responses=10, rps=10.0, per_node={"server-0": 4, "agent-0": 6}, paths={"server-0": {
                            "server-0": 4, "agent-0": 6}}, cross_node=6, client_addrs={"10.42.0.9": 10},
                        per_worker=workers)
    line = str(flow_text(svc, load, 160))
    assert line.startswith("2 worker pods → hello ClusterIP → kube-proxy any ready pod → agent-0 60% · server-0 40%")
    assert "ARP" not in line and "172.20.255.202" not in line
    assert "cross-node 60%" in line and "pods saw 10.42.0.9 (the workers' pod IPs)" in line


def _flow_app(width: int) -> Any:
    app, _ = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await _live(pilot)
        await pilot.press("l")
        await settle(pilot)
        await until(pilot, lambda: screen.load is not None and screen.load.responses > 0)
        screen.query_one(FlowPanel).refresh_flow()
        await settle(pilot)
        await pilot.pause(0.2)

    return app, run_before


def test_flow_panel_at_100_columns(snap_compare: Any) -> None:
    app, run_before = _flow_app(100)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_flow_panel_at_160_columns(snap_compare: Any) -> None:
    app, run_before = _flow_app(160)
    assert snap_compare(app, terminal_size=(160, 40), run_before=run_before)


async def test_t_on_the_simulated_cluster_the_panel_shows_local_then_cluster(sim_app: Any) -> None:
    from k3dtui.ui.app import K3dtuiApp
    from k3dtui.ui.backend import CoreBackend
    from tests.ui.test_sim import cards, live, wait_until

    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    app = K3dtuiApp(backend, detect=False)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            app.open_live()
            await wait_until(pilot, lambda: live(app) and len(cards(app)) == 3, 20, "the live view with 3 pods")
            screen = live(app)
            assert screen is not None
            await wait_until(pilot, lambda: screen.snapshot.service and screen.snapshot.service.announcing_node,
                             10, "the announcing node")
            entry = screen.snapshot.service.announcing_node  # type: ignore[union-attr]
            await pilot.press("l")
            await wait_until(pilot, lambda: screen.load and screen.load.responses > 300, 15, "load counts")
            load = screen.load
            assert load is not None and load.announcing_node == entry
            share = load.cross_node_share
            assert share is not None and 0.4 < share < 0.9
            assert "(masqueraded)" in _panel(screen) and f"cross-node {share:.0%}" in _panel(screen)

            await pilot.press("t")
            await wait_until(pilot, lambda: screen.snapshot.service.traffic_policy == "Local", 10,  # type: ignore[union-attr]
                             "the Local policy seen")

            def local_counted() -> bool:
                ld = screen.load
                svc = screen.snapshot.service
                return bool(ld and svc and svc.announcing_node and ld.responses > 300
                            and set(ld.per_node) == {svc.announcing_node})

            await wait_until(pilot, local_counted, 15, "counts under Local (after the reset)")
            line = _panel(screen)
            assert "kube-proxy Local" in line and "cross-node 0%" in line
            assert "pods saw 127.0.0.1 (the client's own)" in line

            await pilot.press("t")
            await wait_until(pilot, lambda: screen.snapshot.service.traffic_policy == "Cluster", 10,  # type: ignore[union-attr]
                             "the Cluster policy seen")
            await wait_until(pilot, lambda: screen.load and screen.load.responses > 300
                             and len(screen.load.per_node) == 3, 15, "the spread back")
            await pilot.press("l")
    finally:
        backend.close()
