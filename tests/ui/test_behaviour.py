"""Pilot tests of the UI's behaviour.

What the UI itself decides (routing, the palette, read-only gating, validation, how a
failure is shown) runs over the fixed-data backend (fast, no cluster). What an action does
to the cluster (kill, scale, load, delete) runs over the real ``CoreBackend`` and
``LiveCluster`` against the in-process simulated cluster, and is checked in the API."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import ClusterInfo
from k3dtui.ui.app import K3dtuiApp
from k3dtui.ui.backend import CoreBackend
from k3dtui.ui.screens.live import LiveScreen
from k3dtui.ui.screens.modals import ConfirmScreen
from tests.simfixtures import SimHandle
from tests.ui.helpers import make_app, settle, until
from tests.ui.test_sim import cards, live, wait_until

CHANGING_TITLES = {
    "Kill the selected pod",
    "Force-kill the selected pod (grace 0)",
    "Kill a random pod",
    "Scale up by one",
    "Scale down by one",
    "Scale to a number…",
    "Delete the cluster…",
    "Cordon the selected node",
    "Uncordon the selected node",
    "Drain the selected node",
    "Stop the selected node…",
    "Start the selected node",
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
        assert {"k", "K", "x", "plus", "minus", "s", "c", "u", "d", "o", "O"} <= shown

    ro, _ = make_app(stage="deployed", read_only=True)
    async with ro.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        titles = palette_titles(ro)
        assert not (CHANGING_TITLES & titles)
        assert "Start / stop load" in titles
        keys = {k for k, b in ro.screen.active_bindings.items() if b.enabled}
        assert not ({"k", "K", "x", "plus", "minus", "s", "c", "u", "d", "o", "O"} & keys)


async def test_read_only_keys_change_nothing() -> None:
    app, fixed = make_app(stage="deployed", read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        before = list(fixed.pods)
        await pilot.press("k", "K", "x", "plus", "minus", "s", "c", "u", "d", "o", "O")
        await settle(pilot)
        assert fixed.pods == before
        assert not [c for c in fixed.calls if c.startswith("node ")]
        assert isinstance(app.screen, LiveScreen)  # no scale modal opened


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
        await pilot.press("plus")  # the next action still runs, and its outcome is shown
        await settle(pilot)
        what, outcome = screen.outcomes[-1]
        assert what == "scale +1" and outcome.ok and outcome.message == "scaled deployment/fastapi-app to 4"
        assert len(app.failures) == 1


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


async def test_setup_blocks_only_on_its_own_bad_field() -> None:
    app, fixed = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        await settle(pilot)
        app.screen.query_one("#agents").value = "-1"  # type: ignore[attr-defined]
        await pilot.pause(0.05)
        assert str(app.screen.query_one("#agents-error", Static).render()) == "agents must be at least 0 (got -1) — give --agents 0 or more"
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


# -- on the simulated cluster: what the keys do to the cluster --------------------------------
def _deployment_replicas(sim: SimHandle) -> int:
    with sim.http() as client:
        res = client.get("/apis/apps/v1/namespaces/default/deployments/fastapi-app")
        res.raise_for_status()
        return int(res.json()["spec"]["replicas"])


def _api_pods(sim: SimHandle) -> dict[str, bool]:
    """pod name → being deleted, as the API has them."""
    with sim.http() as client:
        res = client.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=fastapi"})
        res.raise_for_status()
        return {p["metadata"]["name"]: bool(p["metadata"].get("deletionTimestamp")) for p in res.json()["items"]}


def _running(app: K3dtuiApp) -> set[str]:
    return {name for name, state in cards(app).items() if state == "Running"}


async def _sim_live(pilot: Pilot[Any], app: K3dtuiApp) -> LiveScreen:
    app.open_live()
    await wait_until(pilot, lambda: live(app) and len(_running(app)) == 3, 20, "the live view with 3 running pods")
    screen = live(app)
    assert screen is not None
    await wait_until(
        pilot,
        lambda: screen.snapshot.connected
        and screen.snapshot.deployment is not None
        and screen.snapshot.deployment.desired == 3
        and screen.snapshot.service
        and screen.snapshot.service.external_ip,
        10,
        "the watched Deployment at 3 and the external IP",
    )
    return screen


async def test_kill_scale_and_load_keys(sim_app: SimHandle) -> None:
    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    app = K3dtuiApp(backend, detect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _sim_live(pilot, app)
        seen: set[tuple[str, str]] = set()
        apply = screen.apply_snapshot

        def recording(snap: Any) -> None:
            apply(snap)
            seen.update(cards(app).items())

        screen.apply_snapshot = recording  # type: ignore[method-assign]

        # k: the selected pod is deleted in the API, its card shows Terminating, a replacement runs
        await pilot.press("right")
        target = screen.selected_pod()
        assert target is not None
        await pilot.press("k")
        await wait_until(pilot, lambda: (target.name, "Terminating") in seen, 10, "the card Terminating")
        assert _api_pods(sim_app).get(target.name, True)  # deleting, or already gone
        await wait_until(pilot, lambda: len(_running(app) - {target.name}) == 3, 20, "a replacement Running")

        # -: the Deployment is scaled to 2 in the API and the view follows
        await pilot.press("minus")
        await wait_until(pilot, lambda: _deployment_replicas(sim_app) == 2, 10, "the API's replicas at 2")
        await wait_until(pilot, lambda: len(_running(app)) == 2, 20, "2 running pods")

        # s: the modal scales to a number
        await pilot.press("s")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ScaleScreen" and app.screen.query("#replicas"), 5, "the scale modal")
        app.screen.query_one("#replicas").value = "4"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(pilot, lambda: _deployment_replicas(sim_app) == 4, 10, "the API's replicas at 4")
        await wait_until(pilot, lambda: len(_running(app)) == 4, 20, "4 running pods")
        assert screen.snapshot.deployment is not None and screen.snapshot.deployment.desired == 4

        # l, m, ]: the generator runs, and reports the mode and concurrency it was switched to
        await pilot.press("l")
        await wait_until(pilot, lambda: screen.load is not None and screen.load.running and screen.load.responses > 0, 15, "load counts")
        await pilot.press("m", "right_square_bracket")
        assert screen.settings.mode == "keep-alive" and screen.settings.concurrency == 32
        await wait_until(
            pilot,
            lambda: screen.load is not None and screen.load.mode == "keep-alive" and screen.load.concurrency == 32,
            10,
            "the generator in keep-alive mode at concurrency 32",
        )
        await pilot.press("l")
        await wait_until(pilot, lambda: screen.load is not None and not screen.load.running, 10, "the load to stop")
        assert not app.failures
    backend.close()


async def test_scale_key_shows_the_asked_count_at_once(sim_app: SimHandle) -> None:
    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    app = K3dtuiApp(backend, detect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _sim_live(pilot, app)
        status = screen.query_one("#live-status")
        screen.action_scale_up()  # on the UI thread: shown before the worker even runs
        assert "scaling 3 → 4" in str(status.render())
        await wait_until(
            pilot,
            lambda: screen.snapshot.deployment is not None and screen.snapshot.deployment.desired == 4,
            10,
            "the watched Deployment at 4",
        )
        await pilot.pause(0.05)
        assert "scaling" not in str(status.render())  # the watched count replaced it
        assert "/4 ready" in str(status.render())
        assert _deployment_replicas(sim_app) == 4
    backend.close()


async def test_delete_cluster_from_palette_asks_naming_the_cluster(sim_app: SimHandle) -> None:
    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    app = K3dtuiApp(backend, detect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _sim_live(pilot, app)
        screen.action_delete_cluster()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#yes"), 5, "the question")
        assert sim_app.name in str(app.screen.query_one("#yes").label)  # type: ignore[attr-defined]
        await pilot.press("escape")
        await settle(pilot)
        assert await sim_app.provider.find() is not None  # cancelled: nothing deleted
        screen.action_delete_cluster()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#yes"), 5, "the question")
        await pilot.click("#yes")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "SetupScreen", 30, "the setup screen")
        assert await sim_app.provider.find() is None
        # the setup screen looked the cluster up again and found it gone
        await wait_until(
            pilot,
            lambda: app.screen.query("#existing")
            and "no cluster named 'simple-app-cluster' yet" in str(app.screen.query_one("#existing", Static).render()),
            10,
            "the setup screen's lookup",
        )
        await settle(pilot)
    backend.close()


async def test_node_keys_act_on_the_selected_node_and_a_server_stop_asks_first() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        node = screen.target_node()
        assert node is not None and node == screen.selected_pod().node  # type: ignore[union-attr]
        await pilot.press("c")
        await until(pilot, lambda: f"node cordon {node}" in fixed.calls)
        await pilot.press("u", "d")
        await until(pilot, lambda: f"node drain {node}" in fixed.calls)
        assert f"node uncordon {node}" in fixed.calls
        # n walks the nodes, server first
        names = sorted((n.name for n in fixed.nodes), key=lambda n: ("-server-" not in n, n))
        screen.selected_node = None
        screen.selected = None
        await pilot.press("n")
        assert screen.target_node() == names[0]
        # stopping the server asks first (the API goes away); escape stops nothing
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await settle(pilot)
        assert not [c for c in fixed.calls if c.startswith("node stop")]
        # an agent stops at once, and its column's node turns NotReady
        await pilot.press("n")
        agent = screen.target_node()
        assert agent is not None and "-agent-" in agent
        await pilot.press("o")
        await until(pilot, lambda: f"node stop {agent}" in fixed.calls)
        await until(pilot, lambda: agent in screen.node_stopped)
        await pilot.press("O")
        await until(pilot, lambda: f"node start {agent}" in fixed.calls)


def status_text(screen: LiveScreen) -> str:
    return str(screen.query_one("#live-status").render())


async def test_stop_by_key_shows_the_countdown_then_the_pods_moving() -> None:
    from k3dtui.ui.widgets.pods import short_node_name

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await to_live(pilot)
        agent = next(n.name for n in fixed.nodes if "-agent-" in n.name and any(p.node == n.name for p in fixed.pods))
        while screen.target_node() != agent:
            await pilot.press("n")
        await pilot.press("o")
        short = short_node_name(agent)
        # stopped, no heartbeat: NotReady after the 40 s grace period
        await until(pilot, lambda: f"{short} stopped 0s ago, no heartbeat · NotReady in ~40s" in status_text(screen))
        fixed.node_fails(agent, ago=5)
        await until(pilot, lambda: f"{short} NotReady 5s · pods unreachable, evicted in 10s" in status_text(screen))
        moved = [p.name for p in fixed.pods if p.node == agent]
        fixed.evict_from(agent)
        await until(pilot, lambda: all(p.deleting for p in screen.snapshot.pods if p.name in moved))
        alive_elsewhere = [p for p in screen.snapshot.pods if not p.deleting and p.node != agent]
        assert len(alive_elsewhere) == len([p for p in fixed.pods if not p.deleting])
