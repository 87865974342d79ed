"""Every screen state from fixed data, compared with the accepted SVG snapshots.

Update after a deliberate visual change: ``pytest tests/ui --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from k3dtui.core.doctor import Check
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import ClusterInfo
from tests.ui.fixed import FixedBackend
from tests.ui.helpers import make_app, settle, still_cursor, until

WIDE = (120, 40)
SMALL = (80, 24)


def existing() -> ClusterInfo:
    return ClusterInfo("simple-app-cluster", 1, 2, 1, 2)


async def _type(pilot: Pilot[Any], selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector)
    widget.value = text  # type: ignore[attr-defined]
    await settle(pilot)


# -- setup -----------------------------------------------------------------------------------
def test_setup_initial(snap_compare: Any) -> None:
    app, _ = make_app(existing=existing())

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause(0.5)  # the name lookup is debounced
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_setup_clusters_listed(snap_compare: Any) -> None:
    """The clusters on this host, to reuse (enter) or delete (ctrl+d), one highlighted."""
    app, _ = make_app(
        existing=existing(),
        clusters=[existing(), ClusterInfo("demo", 1, 3, 1, 3), ClusterInfo("old-one", 1, 1, 0, 0)],
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause(0.5)
        await settle(pilot)
        pilot.app.screen.query_one("#clusters").focus()
        await pilot.press("down")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_setup_three_clusters_at_first_sight(snap_compare: Any) -> None:
    """120x40, nothing pressed: the three clusters on this host are in view."""
    app, _ = make_app(
        existing=existing(),
        clusters=[existing(), ClusterInfo("demo", 1, 3, 1, 3), ClusterInfo("old-one", 1, 1, 0, 0)],
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause(0.5)
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_setup_validation_errors(snap_compare: Any) -> None:
    app, _ = make_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await _type(pilot, "#name", "Bad_Name!")
        await _type(pilot, "#servers", "0")
        await _type(pilot, "#agents", "many")
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_setup_cluster_created(snap_compare: Any) -> None:
    app, _ = make_app(
        provider="k3d",
        doctor_findings=[
            Check("docker engine", True, "engine 27.3.1", "", True),
            Check("k3d", True, "k3d v5.8.3", "", True),
            Check("routability", False, "Docker Desktop: the cluster network is inside a VM", "use kubectl port-forward", False),
        ],
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause(0.5)
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_setup_create_fails_with_what_to_do(snap_compare: Any) -> None:
    app, _ = make_app(fail={"cluster": K3dtuiError("k3d cluster create exited with 1: port 6550 is in use", "free the port or pick another name")})

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await until(pilot, lambda: bool(app.failures))
        await pilot.pause(0.3)
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_setup_small_terminal(snap_compare: Any) -> None:
    app, _ = make_app(existing=existing())
    assert snap_compare(app, terminal_size=SMALL, run_before=settle)


# -- pool ------------------------------------------------------------------------------------
def _pool_app(**kw: Any) -> Any:
    app, fixed = make_app(**kw)
    app.detect = False
    return app, fixed


def test_pool_suggested(snap_compare: Any) -> None:
    app, _ = _pool_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_pool()
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_pool_validation_errors(snap_compare: Any) -> None:
    app, _ = _pool_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_pool()
        await settle(pilot)
        await _type(pilot, "#start", "172.20.0.3")
        await _type(pilot, "#end", "10.0.0.9")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_pool_range_over_used_address(snap_compare: Any) -> None:
    app, _ = _pool_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_pool()
        await settle(pilot)
        await _type(pilot, "#start", "172.20.0.2")
        await _type(pilot, "#end", "172.20.0.40")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_pool_applied(snap_compare: Any) -> None:
    app, _ = _pool_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_pool()
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


# -- deploy ----------------------------------------------------------------------------------
def test_deploy_in_progress(snap_compare: Any) -> None:
    app, fixed = _pool_app(hold={"deploy"})

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_deploy()
        await settle(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "deploy" in fixed.calls)
        await pilot.pause(0.3)
        still_cursor(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
    fixed.release()


def test_deploy_not_routable_panel(snap_compare: Any) -> None:
    app, _ = _pool_app(routable=False, provider="k3d")

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_deploy()
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_deploy_done_open_line_and_kubeconfig(snap_compare: Any) -> None:
    """The simulated cluster: one "open" line that works from this machine, and the
    ``export KUBECONFIG=…`` line."""
    app, _ = _pool_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_deploy()
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_deploy_replicas_invalid(snap_compare: Any) -> None:
    app, _ = _pool_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        app.open_deploy()
        await settle(pilot)
        await _type(pilot, "#replicas", "0")

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


# -- live ------------------------------------------------------------------------------------
async def _live(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "LiveScreen")
    await settle(pilot)


def test_live_load_running_pod_terminating(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("right", "k")
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_live_small_terminal(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        await pilot.press("l")
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


def test_live_reconnecting(snap_compare: Any) -> None:
    app, fixed = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        fixed.set_connected(False)
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_live_read_only(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed", read_only=True)
    assert snap_compare(app, terminal_size=WIDE, run_before=_live)


def test_live_help(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_live_scale_modal_refuses(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        await pilot.press("s")
        await until(pilot, lambda: pilot.app.screen.query("#replicas"))
        await _type(pilot, "#replicas", "500")

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_live_delete_confirmation(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        app.screen.action_delete_cluster()  # type: ignore[attr-defined]
        await until(pilot, lambda: pilot.app.screen.query("#yes"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_resume_offer(snap_compare: Any) -> None:
    app, _ = make_app(stage="cluster", existing=existing())

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_fixed_backend_is_deterministic() -> None:
    a, b = FixedBackend(), FixedBackend()
    assert a.snapshot() == b.snapshot()


def test_live_node_not_ready(snap_compare: Any) -> None:
    """A stopped agent after the grace period: its column says NotReady, its pods are not
    ready, the status line counts down to their eviction."""
    app, fixed = make_app(stage="deployed")
    agent = next(n.name for n in fixed.nodes if "-agent-" in n.name)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _live(pilot)
        fixed.node_fails(agent, ago=5)
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
