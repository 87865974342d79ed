"""Pilot test of `k3dtui attach` read-only, against the simulated cluster, on an app made with kubectl."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import RichLog
from textual.widgets._footer import FooterKey

from k3dtui.core.target import Target, resolve_target
from k3dtui.ui.app import K3dtuiApp
from k3dtui.ui.backend import AttachedBackend
from k3dtui.ui.screens.base import action_name
from k3dtui.ui.screens.live import LiveScreen
from k3dtui.ui.widgets.header import ProviderHeader
from tests.simfixtures import SimHandle, wait_for
from tests.test_attach import pods, shop
from tests.ui.test_sim import cards, live, wait_until

pytestmark = pytest.mark.kubectl

__all__ = ["shop"]  # the module-scoped simulated cluster with the shop app


def _palette_titles(app: K3dtuiApp) -> set[str]:
    return {command.title for command in app.get_system_commands(app.screen)}


def _live_pods(handle: SimHandle) -> dict[str, Any]:
    return {p["metadata"]["name"]: p["metadata"].get("deletionTimestamp") for p in pods(handle, "app=web")}


async def test_attach_read_only_shows_where_and_offers_no_change(shop: SimHandle, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_bytes(shop.kubeconfig.read_bytes())
    untouched = (kubeconfig.read_bytes(), kubeconfig.stat().st_mtime_ns)
    attached = resolve_target(Target(kubeconfig=kubeconfig, namespace="shop", deployment="web"))
    backend = AttachedBackend(attached)
    app = K3dtuiApp(backend)  # detects nothing: straight to the live view, no setup screens
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: live(app) and len(cards(app)) == 2, 20, "the live view with web's 2 pods")
        screen = live(app)
        assert isinstance(screen, LiveScreen)
        header = screen.query_one(ProviderHeader).render().plain
        assert f"attached · {shop.context} · ns shop · deployment/web (app=web) svc/web" in header
        assert "READ-ONLY" in header

        # the changing keys are absent from the footer, their palette entries too
        await pilot.pause()
        await wait_until(pilot, lambda: len(screen.query(FooterKey)) >= 4, 5, "the footer's keys")
        shown = {key.action for key in screen.query(FooterKey)}
        changing = {b.action for b in LiveScreen.BINDINGS if action_name(b.action) in LiveScreen.CHANGING}
        assert changing and not shown & changing
        assert {"toggle_layout", "help"} <= {action_name(a) for a in shown}  # the reading keys stay
        titles = _palette_titles(app)
        for action in changing | {"open_screen('setup')"}:
            title = LiveScreen.COMMAND_TITLES.get(action)
            assert title is None or title not in titles, title
        assert "Kill a random pod" not in titles and "Scale to a number…" not in titles
        assert LiveScreen.COMMAND_TITLES["toggle_layout"] in titles

        # x and a ":" command change nothing on the cluster
        before = _live_pods(shop)
        await pilot.press("x")
        await pilot.press("colon", *"kill random", "enter")
        await pilot.press("plus")
        await asyncio.sleep(1.0)
        await pilot.pause()
        assert _live_pods(shop) == before and all(stamp is None for stamp in before.values())
        assert len(cards(app)) == 2
        with shop.http() as client:
            assert client.get("/apis/apps/v1/namespaces/shop/deployments/web").json()["spec"]["replicas"] == 2
        log = "\n".join(strip.text for strip in screen.query_one("#events", RichLog).lines)
        assert "read-only: :kill changes the cluster" in log
        # esc does not lead to setup screens of a cluster that is not k3dtui's
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LiveScreen) and not app.failures
    assert (kubeconfig.read_bytes(), kubeconfig.stat().st_mtime_ns) == untouched


async def test_attach_without_node_permission_groups_the_pods_by_their_node(shop: SimHandle, tmp_path: Path) -> None:
    from k3dtui.sim.testing import limited_kubeconfig

    nodeless = limited_kubeconfig(shop.kubeconfig, tmp_path / "no-nodes.yaml", "no-nodes")
    attached = resolve_target(Target(kubeconfig=nodeless, namespace="shop", deployment="web"))
    app = K3dtuiApp(AttachedBackend(attached))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: live(app) and len(cards(app)) == 2 and live(app).snapshot.connected,  # type: ignore[union-attr]
                         20, "the live view with web's 2 pods, connected")
        screen = live(app)
        assert screen is not None
        where = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods(shop, "app=web")
                 if not p["metadata"].get("deletionTimestamp")}
        shown = {card.pod.name: column.node.name for column in screen.columns.values() if column.node is not None
                 for card in column.cards.values()}
        assert shown == where
        assert not app.failures


async def test_attach_with_allow_changes_kills_only_the_apps_pods_and_never_powers_nodes(
        shop: SimHandle, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_bytes(shop.kubeconfig.read_bytes())
    attached = resolve_target(Target(kubeconfig=kubeconfig, namespace="shop", deployment="web", allow_changes=True))
    app = K3dtuiApp(AttachedBackend(attached))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: live(app) and len(cards(app)) == 2 and live(app).snapshot.connected,  # type: ignore[union-attr]
                         20, "the live view with web's 2 pods, connected")
        screen = live(app)
        assert screen is not None
        assert "ALLOW-CHANGES" in screen.query_one(ProviderHeader).render().plain
        await pilot.pause()
        await wait_until(pilot, lambda: len(screen.query(FooterKey)) >= 4, 5, "the footer's keys")
        shown = {action_name(key.action) for key in screen.query(FooterKey)}
        assert {"kill_random", "scale_to"} <= shown
        assert not shown & {"stop_node", "start_node", "delete_cluster"}
        for action in ("stop_node", "start_node", "delete_cluster", "open_screen('setup')"):
            assert screen.check_action(action, ()) is False
        worker = {p["metadata"]["name"] for p in pods(shop, "app=worker")}
        before = set(_live_pods(shop))
        await pilot.press("x")

        def one_killed() -> bool:
            now = _live_pods(shop)
            return any(now.get(name) for name in before) or not before <= set(now)
        await wait_until(pilot, one_killed, 10, "x to kill one of web's pods")
        with shop.http() as client:
            left = client.get("/api/v1/namespaces/shop/pods", params={"labelSelector": "app=worker"}).json()["items"]
        assert {p["metadata"]["name"] for p in left if not p["metadata"].get("deletionTimestamp")} == worker
    with shop.http() as client:  # leave web as it was for the next test
        wait_for(lambda: len([p for p in pods(shop, "app=web") if not p["metadata"].get("deletionTimestamp")]) == 2
                 and len(pods(shop, "app=web")) == 2, 30, "web to settle")
        assert client.get("/apis/apps/v1/namespaces/shop/deployments/web").json()["spec"]["replicas"] == 2
