"""A newcomer's first minutes (issue 14): quitting, going back, filtering, a cluster that
goes away under the live view."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Button, Input

from k3dtui.ui.app import K3dtuiApp
from k3dtui.ui.backend import CoreBackend
from tests.simfixtures import SimHandle
from tests.ui.helpers import make_app, settle, until
from tests.ui.test_sim import cards, live, wait_until


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


async def test_q_on_the_first_screen_quits_and_creates_nothing() -> None:
    state = Path(os.environ["K3DTUI_STATE_DIR"])
    before = _files(state)
    backend = CoreBackend("first-minutes", force_sim=True)
    app = K3dtuiApp(backend)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        await settle(pilot)
        # focus starts on the first action, not in the name field
        assert isinstance(app.focused, Button) and app.focused.id == "create"
        assert app.screen.query_one("#name", Input).value == "first-minutes"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert not app.is_running
    created = [f for f in _files(state) if f not in before]
    # no file at all (reading the simulated cluster's state folder makes the folder itself,
    # empty; k3dtui.sim's SimProvider.folder), and nothing for a cluster called "q"
    assert [f for f in created if (state / f).is_file()] == [], f"quitting created {created}"
    assert not any(Path(f).name == "q" for f in created)
    from k3dtui.providers import list_clusters

    assert list_clusters(force_sim=True) == []


async def test_esc_leaves_a_field_so_q_quits_and_the_footer_names_ctrl_q() -> None:
    app, _ = make_app(stage="absent")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        await settle(pilot)
        footer_keys = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert "ctrl+q" in footer_keys
        name = app.screen.query_one("#name", Input)
        name.focus()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.focused, Input)
        assert name.value == "simple-app-cluster"
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running
    assert name.value == "simple-app-cluster"


async def test_cluster_gone_fixed_data_clears_cards_stops_load_and_esc_opens_setup() -> None:
    from tests.ui.test_behaviour import to_live

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        await pilot.press("l")
        await until(pilot, lambda: fixed.load_running)
        assert screen.columns
        fixed.removed = "the simulated cluster 'simple-app-cluster' no longer exists"
        fixed.set_connected(False)
        await until(pilot, lambda: bool(screen.gone))
        await settle(pilot)
        assert not screen.columns
        assert not fixed.load_running and not screen.load_on
        banner = str(screen.query_one("#gone").render())
        assert "no longer exists" in banner and "What to do" in banner
        assert "cluster gone" in str(screen.query_one("#live-status").render())
        assert screen.check_action("kill", ()) is False
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")


async def test_cluster_gone_within_5s_of_the_sim_daemon_stopping(sim_app: SimHandle) -> None:
    import signal
    import time

    backend = CoreBackend(sim_app.name, force_sim=True, provider=sim_app.provider)
    app = K3dtuiApp(backend, detect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_live()
        await wait_until(pilot, lambda: len(cards(app)) == 3, 20, "three pod cards")
        screen = live(app)
        assert screen is not None
        await wait_until(pilot, lambda: screen.snapshot.service and screen.snapshot.service.external_ip, 20, "the IP")
        await pilot.press("l")
        await wait_until(pilot, lambda: screen.load is not None and screen.load.running, 20, "the load to run")
        pid = sim_app.provider.pid()
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        stopped = time.monotonic()
        while not screen.gone:
            assert time.monotonic() - stopped < 5.0, "no 'cluster gone' state 5 s after the daemon stopped"
            await pilot.pause(0.05)
        await settle(pilot)
        assert "no longer exists" in screen.gone
        assert not screen.columns and not cards(app)
        assert not screen.load_on
        await wait_until(pilot, lambda: backend._load is not None and not backend._load.latest().running, 5, "the load to stop")
        assert "What to do" in str(screen.query_one("#gone").render())


def test_bar_lines_live_pods_first_and_dead_ones_folded() -> None:
    from k3dtui.ui.widgets.load import bar_lines

    counts = {"dead-a": 900, "dead-b": 800, "dead-c": 700, **{f"live-{i}": 10 * i for i in range(6)}}
    gone = frozenset({"dead-a", "dead-b", "dead-c"})
    lines = bar_lines(counts, gone, width=50, height=7).plain.splitlines()
    assert len(lines) == 7
    assert [line.split()[0] for line in lines[:6]] == [f"live-{i}" for i in (5, 4, 3, 2, 1, 0)]
    assert lines[6].startswith("+ 3 gone pods 2,400")
    # room for everything: dead pods listed after the live ones
    lines = bar_lines(counts, gone, width=50, height=12).plain.splitlines()
    assert [line.split()[0] for line in lines] == [*(f"live-{i}" for i in (5, 4, 3, 2, 1, 0)), "dead-a", "dead-b", "dead-c"]
    # not even the live ones fit: the last line says how many more
    lines = bar_lines(counts, gone, width=50, height=4).plain.splitlines()
    assert lines[3] == "+ 3 more live 30 · 3 gone pods 2,400"


async def test_dead_pods_do_not_push_live_pods_out_of_the_load_panel() -> None:
    from tests.ui.test_behaviour import to_live

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await to_live(pilot)
        await pilot.press("l")
        await settle(pilot)
        fixed.scale_to(6)
        for name in [p.name for p in fixed.pods if not p.deleting][:2]:
            fixed.kill(name, force=False)
        await settle(pilot)
        live_names = {p.name.rsplit("-", 1)[1] for p in screen.snapshot.pods if not p.deleting}
        assert len(live_names) == 6
        shown = screen.query_one("#load-pods").render()
        rows = {line.split()[0].rsplit("-", 1)[-1] for line in str(shown).splitlines() if line and not line.startswith("+")}
        assert live_names <= {r for r in rows}, f"{live_names - rows} not listed in {rows}"
        # cards and panel show the same counts (one snapshot)
        per_pod = screen.shown_load.per_pod if screen.shown_load else {}
        for column in screen.columns.values():
            for card in column.cards.values():
                assert card.served == per_pod.get(card.pod.name, 0)


def test_cluster_events_carry_their_resource_version() -> None:
    from k3dtui.core.state import cluster_event

    ev = cluster_event({
        "metadata": {"resourceVersion": "4711", "creationTimestamp": "2026-12-06T13:00:00Z"},
        "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Pulled", "message": "m",
    })
    assert ev.resource_version == 4711 and ev.object == "pod/p"


async def test_events_are_wrapped_and_in_the_clusters_order() -> None:
    from textual.widgets import RichLog

    from k3dtui.core.models import ClusterEvent
    from tests.ui.test_behaviour import to_live

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await to_live(pilot)
        t = fixed.clock + 5
        long = "Successfully pulled image \"fastapi-app:latest\" in 1.2s (1.2s including waiting). Image size: 12345678 bytes."
        fixed._events.append(ClusterEvent(t, "Pulled", "pod/fastapi-app-7d4b9c8f5d-zzzzz", long, resource_version=12))
        fixed.push()
        await settle(pilot)
        # an event of the same second with a lower resourceVersion arrives later
        fixed._events.append(ClusterEvent(t, "Created", "pod/fastapi-app-7d4b9c8f5d-zzzzz", "Created container fastapi", resource_version=11))
        fixed.push()
        await settle(pilot)
        log = screen.query_one("#events", RichLog)
        text = "\n".join(strip.text for strip in log.lines)
        assert text.index("Created container") < text.index("Pulled")
        assert long in " ".join(text.split())  # wrapped, not cut
        assert max(len(strip.text.rstrip()) for strip in log.lines) <= log.scrollable_content_region.width


def test_up_and_status_print_one_open_line_and_the_kubeconfig_export() -> None:
    from k3dtui.commands.cluster import reach_lines

    sim = reach_lines("http://172.19.255.200/", "http://127.0.0.1:36603/", "172.19.255.200", "/s/kubeconfig.yaml")
    assert sim == [
        "open:        http://127.0.0.1:36603/  (from this machine; 172.19.255.200 is the cluster's own address)",
        "kubectl:     export KUBECONFIG=/s/kubeconfig.yaml",
    ]
    routable = reach_lines("http://172.19.255.200/", "http://172.19.255.200:80/", "172.19.255.200", "")
    assert routable == ["open:        http://172.19.255.200/"]


def test_status_on_the_simulated_cluster_opens_from_here_and_exports_its_kubeconfig(
    sim_app: SimHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    from k3dtui.cli import main

    assert main(["status", "--sim", "--name", sim_app.name]) == 0
    out = capsys.readouterr().out
    opens = [line.split()[1] for line in out.splitlines() if line.strip().startswith("open:")]
    assert len(opens) == 1 and opens[0].startswith("http://127.0.0.1:")
    assert httpx.get(opens[0], timeout=5).status_code == 200
    exports = [line for line in out.splitlines() if "export KUBECONFIG=" in line]
    assert len(exports) == 1
    assert exports[0].split("=", 1)[1] == str(sim_app.kubeconfig)


async def test_slash_filters_pods_by_name_node_or_status_and_esc_clears() -> None:
    from tests.ui.test_behaviour import to_live

    app, _ = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)

        def shown() -> set[str]:
            return {card.pod.name.rsplit("-", 1)[1] for c in screen.columns.values() for card in c.cards.values()}

        assert shown() == {"x2k9p", "m4q7z", "c8wln"}
        await pilot.press("slash")
        await pilot.press(*"x2k")
        await settle(pilot)
        assert shown() == {"x2k9p"}  # by name, as typed
        await pilot.press("enter")
        await settle(pilot)
        assert shown() == {"x2k9p"} and "/x2k" in str(screen.query_one("#live-status").render())
        await pilot.press("k")  # keys act again once the prompt is closed
        await settle(pilot)
        assert any(what.startswith("kill") for what, _ in screen.outcomes)
        await pilot.press("escape")  # esc clears the filter first
        await settle(pilot)
        assert "x2k9p" in shown() and len(shown()) >= 3
        await pilot.press("slash", *"agent-1", "enter")  # by node
        await settle(pilot)
        assert shown() == {"m4q7z"}
        await pilot.press("escape", "slash", *"terminating", "enter")  # by status
        await settle(pilot)
        assert shown() == {"x2k9p"}
        assert isinstance(app.screen, type(screen))  # esc cleared the filter, did not leave


async def test_esc_goes_back_a_screen_from_live_to_deploy_to_pool_to_setup() -> None:
    from tests.ui.test_behaviour import to_live

    app, _ = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "DeployScreen")
        await settle(pilot)
        # opened from the live view: the way back to it is offered at once
        assert app.screen.query_one("#next").display
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "PoolScreen")
        await settle(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")


async def test_colon_commands_scale_and_open_screens() -> None:
    from tests.ui.test_behaviour import to_live

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        await pilot.press("colon", *"scale 5", "enter")
        await settle(pilot)
        assert fixed.desired == 5
        await pilot.press("colon", *"scale lots", "enter")
        await settle(pilot)
        assert fixed.desired == 5
        await pilot.press("colon", *"pool", "enter")
        await until(pilot, lambda: type(app.screen).__name__ == "PoolScreen")
        assert screen is not app.screen


async def test_colon_commands_policy_and_node() -> None:
    from tests.ui.test_behaviour import to_live

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        await pilot.press("colon", *"policy local", "enter")
        await until(pilot, lambda: fixed.service.traffic_policy == "Local")
        await pilot.press("colon", *"policy local", "enter")  # already: nothing asked
        await settle(pilot)
        assert fixed.calls.count("policy Local") == 1
        await pilot.press("colon", *"node cordon agent-1", "enter")
        await until(pilot, lambda: "node cordon k3d-simple-app-cluster-agent-1" in fixed.calls)
        await pilot.press("colon", *"node drain agent-9", "enter")  # no such node: refused, said
        await settle(pilot)
        assert not any(c.startswith("node drain") for c in fixed.calls)


async def test_palette_lists_help_once_and_every_live_action_with_its_key() -> None:
    from tests.ui.test_behaviour import to_live

    app, _ = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_live(pilot)
        commands = list(app.get_system_commands(app.screen))
        titles = [c.title for c in commands]
        assert sum("help" in t.lower() or t == "Keys" for t in titles) == 1
        ours = [c for c in commands if c.title not in ("Theme", "Screenshot", "Maximize", "Minimize")]
        missing = [c.title for c in ours if "[" not in (c.help or "")]
        assert missing == [], f"palette entries without their key: {missing}"


async def test_ctrl_d_never_deletes_a_cluster_row_out_of_view() -> None:
    from textual.widgets import DataTable

    from k3dtui.core.provider import ClusterInfo
    from k3dtui.ui.screens.modals import ConfirmScreen

    clusters = [ClusterInfo(f"c{i:02d}", 1, 1, 1, 1) for i in range(14)]
    app, fixed = make_app(clusters=clusters)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        await settle(pilot)
        table = app.screen.query_one("#clusters", DataTable)
        assert table.row_count == 14
        table.move_cursor(row=13, scroll=False)  # highlighted, but below the table's window
        await settle(pilot)
        await pilot.press("ctrl+d")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert "delete" not in fixed.calls
        await pilot.press("ctrl+d")  # now scrolled into view: asks, naming it
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen) and "c13" in confirm.title_text


async def test_compact_layout_by_size_every_live_pod_on_screen_and_v_switches() -> None:
    from k3dtui.ui.widgets.compact import CompactPods

    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(80, 24)) as pilot:
        from tests.ui.test_behaviour import to_live

        screen = await to_live(pilot)
        assert not screen.compact  # three pods: the cards fit
        fixed.scale_to(6)
        for name in [p.name for p in fixed.pods if not p.deleting][:2]:
            fixed.kill(name, force=False)
        await settle(pilot)
        assert screen.compact  # the size picks the compact list now
        compact = screen.query_one(CompactPods)
        lines = "\n".join(compact.render_line(y).text for y in range(compact.size.height))
        live = [p.name.rsplit("-", 1)[1] for p in screen.snapshot.pods if not p.deleting]
        assert len(live) == 6 and all(s in lines for s in live), lines
        dead = [p.name.rsplit("-", 1)[1] for p in screen.snapshot.pods if p.deleting]
        assert dead and not any(s in lines for s in dead) and "terminating" in lines
        await pilot.press("v")
        await settle(pilot)
        assert not screen.compact and screen.query_one("#nodes").display
        await pilot.press("v")
        await settle(pilot)
        assert screen.compact


async def test_pool_messages_speak_of_one_address_and_examples_come_from_this_subnet() -> None:
    app, _ = make_app(stage="cluster")
    app.detect = False
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_pool()
        await until(pilot, lambda: type(app.screen).__name__ == "PoolScreen")
        await settle(pilot)
        screen = app.screen
        start, end = screen.query_one("#start", Input), screen.query_one("#end", Input)
        net = screen.network
        assert net is not None
        member = net.members[0]
        start.value = member.ip
        await settle(pilot)
        problem = str(screen.query_one("#start-error").render())
        assert problem.startswith(f"{member.ip} is in use by {member.name}")
        assert "range" not in problem and f"{member.ip}-{member.ip}" not in problem
        end.value = ""
        await settle(pilot)
        empty = str(screen.query_one("#end-error").render())
        example = empty.rsplit("e.g. ", 1)[1]
        import ipaddress

        assert ipaddress.IPv4Address(example) in ipaddress.IPv4Network(net.subnet)
        assert end.placeholder == f"e.g. {example}"


def test_load_lists_every_pod_of_the_app_with_zeros(sim_app: SimHandle, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from k3dtui.cli import main

    # one keep-alive connection: every response from one pod, the other two get none
    assert main(["load", "--sim", "--name", sim_app.name, "--requests", "30", "--concurrency", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from kubernetes import client

    from k3dtui.core.identity import APP

    listed = client.CoreV1Api(sim_app.api_client()).list_namespaced_pod(APP.namespace, label_selector=APP.label_selector)
    names = {pod.metadata.name for pod in listed.items}
    assert set(data["per_pod"]) == names and len(names) == 3
    assert sorted(data["per_pod"].values()) == [0, 0, 30]


def test_every_card_line_is_exactly_the_card_width() -> None:
    """A top line one cell too wide left a stray corner beside the card (and shifted cells)."""
    from rich.style import Style

    from k3dtui.ui.widgets.pods import CardStyles, _draw_card

    styles = CardStyles(*(Style() for _ in range(7)))
    for width in (8, 20, 26, 39, 40, 80):
        for classes in (set(), {"-selected"}):
            lines = _draw_card("fastapi-app-m4q7z", ((("Running 1/1", ""),),) * 3, width, styles, classes)
            assert [sum(len(seg.text) for seg in line) for line in lines] == [width] * 5
