"""The load panel's in-cluster toggle (w), its per-worker rows, and the line saying why the
figures have no per-pod split (over the fixed-data backend)."""

from __future__ import annotations

from k3dtui.core.models import LoadSnapshot, WorkerView
from k3dtui.ui.widgets.load import LoadPanel
from k3dtui.ui.widgets.text import TextLine
from tests.ui.helpers import make_app, settle
from tests.ui.test_behaviour import palette_titles, to_live

TITLE = "Switch the load: this machine / in-cluster Job"


def _text(panel: LoadPanel, id: str) -> str:
    widget = panel.query_one(f"#{id}", TextLine)
    return str(widget.render())


async def test_w_moves_the_load_into_the_cluster_and_back() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        assert TITLE in palette_titles(app)
        assert screen.active_bindings["w"].binding.tooltip.startswith("Switch the load between this machine")
        await pilot.press("w")
        await settle(pilot)
        panel = screen.query_one(LoadPanel)
        assert screen.in_cluster and panel.in_cluster
        assert fixed.calls[-1] == "load place in-cluster 2"
        assert "in-cluster, 2 workers" in _text(panel, "load-mode")
        await pilot.press("w")
        await settle(pilot)
        assert not screen.in_cluster
        assert fixed.calls[-1] == "load place local 2"
        assert "in-cluster" not in _text(panel, "load-mode")


async def test_read_only_has_no_in_cluster_toggle() -> None:
    app, fixed = make_app(stage="deployed", read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        assert TITLE not in palette_titles(app)
        await pilot.press("w")
        await settle(pilot)
        assert not screen.in_cluster
        assert not [c for c in fixed.calls if c.startswith("load place")]


def _snap(**kw: object) -> LoadSnapshot:
    base: dict[str, object] = dict(running=True, mode="new-connection", concurrency=4, elapsed=3.0, requests=130,
                                   responses=120, rps=40.0, latency_ms={"p50": 1.5, "p95": 3.0, "p99": 4.0},
                                   errors={"timeout": 10})
    base.update(kw)
    return LoadSnapshot(**base)  # type: ignore[arg-type]


async def test_panel_shows_each_worker_with_its_node() -> None:
    app, _ = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        panel = screen.query_one(LoadPanel)
        workers = {
            "k3dtui-load-0a1b2c3d-0-abcde": WorkerView("k3dtui-load-0a1b2c3d-0-abcde", "k3d-demo-agent-0",
                                                       requests=70, responses=60, errors=10, rps=20.0),
            "k3dtui-load-0a1b2c3d-1-fghij": WorkerView("k3dtui-load-0a1b2c3d-1-fghij", "k3d-demo-agent-1",
                                                       requests=60, responses=60, rps=20.0),
        }
        pods = {p.name: p.node for p in screen.snapshot.pods}
        first = sorted(pods)[0]
        panel.show(_snap(per_pod={first: 120}, per_node={pods[first]: 120}, per_worker=workers), pods)
        await pilot.pause()
        nodes = _text(panel, "load-nodes")
        assert "workers (2)" in nodes
        lines = [ln for ln in nodes.splitlines() if ln.strip().startswith(("0 ", "1 "))]
        assert len(lines) == 2
        assert "agent-0" in lines[0] and "60" in lines[0] and "10 err" in lines[0]
        assert "agent-1" in lines[1] and "err" not in lines[1]


async def test_panel_says_why_there_is_no_per_pod_split() -> None:
    app, _ = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        panel = screen.query_one(LoadPanel)
        why = "the responses carry no X-Pod header (not k3dtui's app), so there is no per-pod split: give --identity header:NAME"
        panel.show(_snap(per_pod={"unknown": 120}, per_node={"unknown": 120}, identity_missing=why), {})
        await pilot.pause()
        pods_text = _text(panel, "load-pods")
        assert "no per-pod split" in pods_text and "--identity header:NAME" in pods_text
        assert "unknown" not in pods_text  # no bar for an "unknown" pod
        assert "40 req/s" in _text(panel, "load-state") and "10 errors" in _text(panel, "load-state")
        assert "p50 1.5ms" in _text(panel, "load-latency")
