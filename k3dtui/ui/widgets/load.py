"""The load panel: state, mode (explained), concurrency/rate, req/s sparkline, latency, errors, bars."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline

from k3dtui.core.models import LoadSettings, LoadSnapshot
from k3dtui.ui.widgets.pods import short_node_name, short_pod_name
from k3dtui.ui.widgets.text import TextLine

MODE_EXPLANATION = {
    "new-connection": "a new connection per request: kube-proxy picks a pod each time, a fair spread",
    "keep-alive": "keep-alive: each connection stays pinned to the pod kube-proxy picked: skew",
}


def bar_lines(counts: dict[str, int], gone: frozenset[str], *, width: int) -> Text:
    """One line per key: ``name ████████░░ 1,234 33%``, fitted to ``width`` cells; gone keys
    greyed (struck through) with their final count."""
    text = Text(no_wrap=True, overflow="ellipsis")
    total = sum(counts.values()) or 1
    top = max(counts.values(), default=0) or 1
    longest = max((len(k) for k in counts), default=4)
    label = max(8, min(longest, width // 3))
    show_share = width >= label + 18
    bar = max(0, width - label - 1 - 8 - (5 if show_share else 0) - 1)
    for i, (name, count) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))):
        dead = name in gone
        filled = round(bar * count / top)
        if i:
            text.append("\n")
        shown = name if len(name) <= label else name.split("-", 1)[-1][-label:]
        text.append(f"{shown:<{label}} ", style="grey50 strike" if dead else "")
        text.append("█" * filled, style="grey42" if dead else "green")
        text.append("░" * (bar - filled), style="grey23")
        text.append(f" {count:>7,}", style="grey50" if dead else "bold")
        if show_share:
            text.append(f" {count / total:>4.0%}", style="grey50" if dead else "")
    return text


class LoadPanel(Vertical):
    """Attributes down: the live screen sets ``settings`` and calls ``show(snapshot)``."""

    DEFAULT_CSS = """
    LoadPanel { border: round $secondary; border-title-style: bold; padding: 0 1; height: 1fr; }
    LoadPanel > #load-state { height: 1; }
    LoadPanel > #load-mode { height: 1; color: $text-muted; }
    LoadPanel > Sparkline { height: 2; margin: 0 0; }
    LoadPanel > #load-latency { height: 1; }
    LoadPanel > #load-bars { height: 1fr; }
    LoadPanel #load-pods { width: 3fr; height: 1fr; }
    LoadPanel #load-nodes { width: 2fr; height: 1fr; margin-left: 2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "load"
        self.settings = LoadSettings()
        self.snapshot: LoadSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield TextLine(id="load-state")
        yield TextLine(id="load-mode")
        yield Sparkline([], id="load-spark")
        yield TextLine(id="load-latency")
        with Horizontal(id="load-bars"):
            yield TextLine(id="load-pods")
            yield TextLine(id="load-nodes")

    def on_mount(self) -> None:
        self.show(None)

    def show(self, snap: LoadSnapshot | None) -> None:
        self.snapshot = snap
        s = self.settings
        state = Text(no_wrap=True, overflow="ellipsis")
        running = snap is not None and snap.running
        if running and snap is not None:
            state.append("● RUNNING ", style="bold green")
            state.append(f"{snap.elapsed:5.1f}s ")
        else:
            state.append("○ stopped ", style="bold")
            if snap is not None and snap.finished_reason:
                state.append(f"({snap.finished_reason}) ", style="dim")
        mode = snap.mode if running and snap is not None else s.mode
        conc = snap.concurrency if running and snap is not None else s.concurrency
        state.append("│ mode ", style="dim")
        state.append(mode, style="bold")
        state.append(" │ concurrency ", style="dim")
        state.append(str(conc), style="bold")
        state.append(" │ rate ", style="dim")
        state.append(f"{s.rate:g}/s" if s.rate else "max", style="bold")
        if snap is not None:
            state.append(" │ ", style="dim")
            state.append(f"{snap.rps:,.0f} req/s", style="bold cyan")
            state.append(f"  {snap.responses:,} ok", style="dim")
        self.query_one("#load-state", TextLine).update(state)
        self.query_one("#load-mode", TextLine).update(
            Text(MODE_EXPLANATION.get(mode, mode), no_wrap=True, overflow="ellipsis")
        )
        spark = self.query_one(Sparkline)
        history = list(snap.rps_history[-120:]) if snap is not None and snap.rps_history else []
        if list(spark.data or []) != history:
            spark.data = history
        lat = Text(no_wrap=True, overflow="ellipsis")
        if snap is not None and snap.latency_ms:
            lat.append("latency ", style="dim")
            for key in ("p50", "p95", "p99"):
                if key in snap.latency_ms:
                    lat.append(f"{key} ", style="dim")
                    lat.append(f"{snap.latency_ms[key]:.1f}ms  ", style="bold")
        else:
            lat.append("latency —  ", style="dim")
        lat.append("│ errors ", style="dim")
        errors = {k: v for k, v in (snap.errors if snap else {}).items() if v}
        if errors:
            lat.append(" ".join(f"{k} {v:,}" for k, v in sorted(errors.items())), style="bold red")
        else:
            lat.append("none", style="green")
        self.query_one("#load-latency", TextLine).update(lat)
        if snap is None or not snap.per_pod:
            self.query_one("#load-pods", TextLine).update(
                Text("press l to start load, m to switch mode, [ ] for concurrency", style="dim")
            )
            self.query_one("#load-nodes", TextLine).update("")
            return
        pods = {short_pod_name(k): v for k, v in snap.per_pod.items()}
        gone = frozenset(short_pod_name(k) for k in snap.gone_pods)
        nodes = {short_node_name(k): v for k, v in snap.per_node.items()}
        pod_box, node_box = self.query_one("#load-pods", TextLine), self.query_one("#load-nodes", TextLine)
        pod_box.update(bar_lines(pods, gone, width=pod_box.size.width or 40))
        node_box.update(bar_lines(nodes, frozenset(), width=node_box.size.width or 30))
