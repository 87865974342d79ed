"""The flow panel (issue 11): `t` switches externalTrafficPolicy and the panel's numbers
follow; snapshots of the panel at 100 and 160 columns; its line from fixed figures."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from k3dtui.core.models import LoadSnapshot, ServiceView
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
        assert fixed.calls[-1] == "policy Local"
        await until(pilot, lambda: "kube-proxy Local" in _panel(screen) and "cross-node 0%" in _panel(screen))
        line = _panel(screen)
        assert "agent-0 100%" in line and "server-0" not in line and "agent-1" not in line
        assert "pods saw 172.20.0.1 (the client's own)" in line

        await pilot.press("t")  # and back
        await settle(pilot)
        await until(pilot, lambda: "kube-proxy Cluster" in _panel(screen) and "cross-node 65%" in _panel(screen))
        assert fixed.calls[-1] == "policy Cluster"


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
