"""Pilot tests of the UI's behaviour over the fixed-data backend (fast, no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Static

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import ClusterInfo
from k3dtui.ui.app import K3dtuiApp
from k3dtui.ui.screens.live import LiveScreen
from k3dtui.ui.screens.modals import ConfirmScreen
from tests.ui.helpers import make_app, settle, until

CHANGING_TITLES = {
    "Kill the selected pod",
    "Force-kill the selected pod (grace 0)",
    "Kill a random pod",
    "Scale up by one",
    "Scale down by one",
    "Scale to a number…",
    "Delete the cluster…",
}


def palette_titles(app: K3dtuiApp) -> set[str]:
    return {cmd.title for cmd in app.get_system_commands(app.screen)}


async def to_live(pilot: Any) -> LiveScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, LiveScreen))
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, LiveScreen)
    return screen


@pytest.mark.parametrize(
    ("stage", "read_only", "screen"),
    [
        ("deployed", False, "LiveScreen"),
        ("cluster", False, "ResumeScreen"),
        ("metallb", False, "ResumeScreen"),
        ("absent", False, "SetupScreen"),
        ("cluster", True, "SetupScreen"),
    ],
)
async def test_start_routing(stage: str, read_only: bool, screen: str) -> None:
    app, _ = make_app(stage=stage, read_only=read_only)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == screen)


async def test_resume_finish_goes_to_pool() -> None:
    app, fixed = make_app(stage="cluster")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "ResumeScreen")
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "PoolScreen")
        await settle(pilot)
        assert "network" in fixed.calls


async def test_palette_offers_every_live_action_and_read_only_removes_the_changing_ones() -> None:
    app, _ = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        titles = palette_titles(app)
        assert titles >= CHANGING_TITLES
        assert {"Start / stop load", "Switch the load's connection mode", "Help: every key"} <= titles
        shown = {k for k, b in app.screen.active_bindings.items() if b.enabled and b.binding.show}
        assert {"k", "K", "x", "plus", "minus", "s"} <= shown

    ro, _ = make_app(stage="deployed", read_only=True)
    async with ro.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        titles = palette_titles(ro)
        assert not (CHANGING_TITLES & titles)
        assert "Start / stop load" in titles
        keys = {k for k, b in ro.screen.active_bindings.items() if b.enabled}
        assert not ({"k", "K", "x", "plus", "minus", "s"} & keys)


async def test_read_only_keys_change_nothing() -> None:
    app, fixed = make_app(stage="deployed", read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        before = list(fixed.pods)
        await pilot.press("k", "K", "x", "plus", "minus", "s")
        await settle(pilot)
        assert fixed.pods == before
        assert isinstance(app.screen, LiveScreen)  # no scale modal opened


async def test_kill_scale_and_load_keys() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        await pilot.press("right")  # second column: agent-0's pod
        target = screen.selected_pod()
        assert target is not None and target.node.endswith("agent-0")
        await pilot.press("k")
        await settle(pilot)
        card = screen.columns[target.node].cards[target.uid]
        assert card.pod.deleting and card.has_class("-terminating")
        assert len(screen.snapshot.pods) == 4  # the replacement appeared
        await pilot.press("plus")
        await settle(pilot)
        assert fixed.desired == 4
        await pilot.press("s")
        await until(pilot, lambda: type(app.screen).__name__ == "ScaleScreen" and app.screen.query("#replicas"))
        app.screen.query_one("#replicas").value = "7"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert fixed.desired == 7
        await pilot.press("l")
        await settle(pilot)
        await until(pilot, lambda: screen.load is not None and screen.load.running)
        assert fixed.load_running
        await pilot.press("m", "right_square_bracket")
        await settle(pilot)
        assert screen.settings.mode == "keep-alive" and screen.settings.concurrency == 32
        assert fixed._load_settings.mode == "keep-alive"
        await pilot.press("l")
        await settle(pilot)
        assert not fixed.load_running


async def test_failed_action_becomes_a_visible_message_and_the_app_goes_on() -> None:
    app, _ = make_app(stage="deployed", fail={"kill": K3dtuiError("the API refused the delete", "check your RBAC")})
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert app.failures and app.failures[0][1] == "the API refused the delete"
        notes = [n.message for n in app._notifications]
        assert any("What to do: check your RBAC" in n for n in notes)
        assert isinstance(app.screen, LiveScreen) and app.is_running
        await pilot.press("plus")  # still works
        await settle(pilot)
        assert screen.snapshot.deployment is not None and screen.snapshot.deployment.desired == 4


async def test_lost_connection_shows_reconnecting_and_recovers() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        status = screen.query_one("#live-status")
        fixed.set_connected(False)
        await settle(pilot)
        assert "reconnecting" in str(status.render())
        assert screen.query_one("#nodes").has_class("-disconnected")
        fixed.set_connected(True)
        await settle(pilot)
        assert "reconnecting" not in str(status.render())
        assert not screen.query_one("#nodes").has_class("-disconnected")


async def test_delete_cluster_from_palette_asks_naming_the_cluster() -> None:
    app, fixed = make_app(stage="deployed", existing=ClusterInfo("simple-app-cluster", 1, 2, 1, 2))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        screen.action_delete_cluster()
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#yes"))
        assert "simple-app-cluster" in str(app.screen.query_one("#yes").label)  # type: ignore[attr-defined]
        await pilot.press("escape")
        await settle(pilot)
        assert fixed.existing is not None  # cancelled: nothing deleted
        screen.action_delete_cluster()
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#yes"))
        await pilot.click("#yes")
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        assert fixed.existing is None


async def test_setup_blocks_only_on_its_own_bad_field() -> None:
    app, fixed = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        await settle(pilot)
        app.screen.query_one("#agents").value = "-1"  # type: ignore[attr-defined]
        await pilot.pause(0.05)
        assert str(app.screen.query_one("#agents-error", Static).render()) != ""
        assert str(app.screen.query_one("#name-error", Static).render()) == ""
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "cluster" not in fixed.calls  # refused before anything ran
        app.screen.query_one("#agents").value = "2"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "cluster" in fixed.calls


def _listed() -> list[ClusterInfo]:
    return [ClusterInfo("demo", 1, 3, 1, 3), ClusterInfo("old-one", 1, 1, 0, 0)]


async def test_setup_lists_clusters_enter_reuses_and_goes_on() -> None:
    app, fixed = make_app(clusters=_listed())
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen" and app.screen.query("#clusters"))
        await settle(pilot)
        table = app.screen.query_one("#clusters")
        assert table.row_count == 2  # type: ignore[attr-defined]
        table.focus()
        await pilot.press("enter")  # the first row: demo
        await settle(pilot, rounds=3)
        assert app.screen.query_one("#name").value == "demo"  # type: ignore[attr-defined]
        assert app.screen.query_one("#agents").value == "3"  # type: ignore[attr-defined]
        assert fixed.name == "demo" and "cluster" in fixed.calls  # reused through the cluster step
        await until(pilot, lambda: app.screen.created)  # type: ignore[attr-defined]
        await pilot.press("ctrl+n")
        await until(pilot, lambda: type(app.screen).__name__ == "PoolScreen")


async def test_setup_delete_listed_cluster_asks_naming_it() -> None:
    app, fixed = make_app(clusters=_listed())
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen" and app.screen.query("#clusters"))
        await settle(pilot)
        table = app.screen.query_one("#clusters")
        table.focus()
        await pilot.press("down")  # old-one
        await pilot.press("ctrl+d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#yes"))
        assert "old-one" in str(app.screen.query_one("#yes").label)  # type: ignore[attr-defined]
        assert "old-one" in str(app.screen.query_one("#dialog-title").render())
        await pilot.press("escape")
        await settle(pilot)
        assert [c.name for c in fixed.clusters] == ["demo", "old-one"]  # cancelled: nothing deleted
        await pilot.press("ctrl+d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#yes"))
        await pilot.click("#yes")
        await until(pilot, lambda: "delete old-one" in fixed.calls)
        await settle(pilot, rounds=3)
        assert [c.name for c in fixed.clusters] == ["demo"]
        assert app.screen.query_one("#clusters").row_count == 1  # type: ignore[attr-defined]
        assert fixed.name == "simple-app-cluster"  # back to the name in the field
        assert app.screen.query_one("#name").value == "simple-app-cluster"  # type: ignore[attr-defined]


async def test_scale_key_shows_the_asked_count_at_once() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        status = screen.query_one("#live-status")
        screen.action_scale_up()  # on the UI thread: shown before the worker even runs
        assert "scaling 3 → 4" in str(status.render())
        await settle(pilot)
        assert fixed.desired == 4
        assert "scaling" not in str(status.render())  # the watched count replaced it
        assert "/4 ready" in str(status.render())
