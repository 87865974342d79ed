"""The load panel: state, mode (explained), concurrency/rate, req/s sparkline, latency, errors, bars."""

from __future__ import annotations

from collections.abc import Mapping

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


def bar_lines(
    counts: dict[str, int], gone: frozenset[str], *, width: int, height: int = 0, total: int = 0
) -> Text:
    """One line per key: ``name ████████░░ 1,234 33%``, fitted to ``width`` cells.

    Live keys come first (most served first, zeros included), so a dead pod never pushes a
    live one out: when everything does not fit in ``height`` lines (0: no limit), the gone
    keys fold into one line with their count, and if the live ones alone do not fit either,
    the last line says how many more there are."""
    text = Text(no_wrap=True, overflow="ellipsis")
    total = total or sum(counts.values()) or 1  # shares of ``total`` (the cards' too)
    top = max(counts.values(), default=0) or 1
    longest = max((len(k) for k in counts), default=4)
    label = max(8, min(longest, width // 3))
    show_share = width >= label + 18
    bar = max(0, width - label - 1 - 8 - (5 if show_share else 0) - 1)
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    live = [(k, v) for k, v in order if k not in gone]
    dead = [(k, v) for k, v in order if k in gone]
    rows: list[tuple[str, int]] = live + dead
    summary = ""
    if height > 0 and len(rows) > height:
        dead_total = sum(v for _, v in dead)
        fold_dead = f"+ {len(dead)} gone pod{'s' if len(dead) != 1 else ''} {dead_total:,}" if dead else ""
        if len(live) + (1 if dead else 0) <= height:
            rows, summary = live, fold_dead
        else:
            keep = max(0, height - 1)
            more = live[keep:]
            rows = live[:keep]
            summary = f"+ {len(more)} more live {sum(v for _, v in more):,}" + (f" · {fold_dead[2:]}" if dead else "")
    for i, (name, count) in enumerate(rows):
        dead_row = name in gone
        filled = round(bar * count / top)
        if i:
            text.append("\n")
        shown = name if len(name) <= label else name.rsplit("-", 1)[-1][-label:]  # the pod's own suffix
        text.append(f"{shown:<{label}} ", style="grey50 strike" if dead_row else "")
        text.append("█" * filled, style="grey42" if dead_row else "green")
        text.append("░" * (bar - filled), style="grey23")
        text.append(f" {count:>7,}", style="grey50" if dead_row else ("bold" if count else "dim"))
        if show_share:
            text.append(f" {count / total:>4.0%}", style="grey50" if dead_row else "")
    if summary:
        if rows:
            text.append("\n")
        text.append(summary, style="grey50")
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
    LoadPanel.-short > #load-mode { display: none; }
    LoadPanel.-short > Sparkline { height: 1; }
    """

    SHORT = 14  # rows (border included) below which the per-pod rows get the room

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "load"
        self.settings = LoadSettings()
        self.snapshot: LoadSnapshot | None = None
        self.pods: dict[str, str] = {}  # live pod name → node (the cards' cluster picture)
        self.in_cluster = False  # the load runs as a Job of worker pods inside the cluster
        self.load_workers = 2  # worker pods of an in-cluster run

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

    def on_resize(self) -> None:
        self.set_class(self.size.height + 2 < self.SHORT, "-short")
        self.call_after_refresh(self.show, self.snapshot)

    def show(self, snap: LoadSnapshot | None, pods: Mapping[str, str] | None = None) -> None:
        """Draw ``snap``: req/s first, then errors, then the rest. ``pods`` (live pod name →
        node, from the same cluster picture as the cards) lists every live pod, zeros included."""
        self.snapshot = snap
        if pods is not None:
            self.pods = dict(pods)
        s = self.settings
        running = snap is not None and snap.running
        state = Text(no_wrap=True, overflow="ellipsis")
        state.append("● " if running else "○ ", style="bold green" if running else "bold")
        if snap is None:
            state.append("stopped", style="bold")
            state.append(" │ l starts the load", style="dim")
        else:
            state.append(f"{snap.rps:,.0f} req/s", style="bold cyan")
            errors = {k: v for k, v in snap.errors.items() if v}
            n_errors = sum(errors.values())
            state.append(" │ ", style="dim")
            if n_errors:
                state.append(f"{n_errors:,} error{'s' if n_errors != 1 else ''}", style="bold red")
            else:
                state.append("no errors", style="green")
            state.append(f" │ {snap.responses:,} ok", style="")
            if running:
                state.append(f" │ {snap.elapsed:.1f}s", style="dim")
            else:
                state.append(" │ stopped", style="bold")
                if snap.finished_reason:
                    state.append(f" ({snap.finished_reason})", style="dim")
        self.query_one("#load-state", TextLine).update(state)
        mode = snap.mode if running and snap is not None else s.mode
        conc = snap.concurrency if running and snap is not None else s.concurrency
        line = Text(no_wrap=True, overflow="ellipsis")
        if self.in_cluster:
            line.append(f"in-cluster, {self.load_workers} workers", style="bold magenta")
            line.append(" · ", style="")
        line.append(mode, style="bold")
        line.append(f" · conc {conc} · rate {f'{s.rate:g}/s' if s.rate else 'max'}", style="")
        line.append(" │ " + MODE_EXPLANATION.get(mode, mode), style="dim")
        self.query_one("#load-mode", TextLine).update(line)
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
                    lat.append(f"{snap.latency_ms[key]:.1f}ms ", style="bold")
        else:
            lat.append("latency — ", style="dim")
        errors = {k: v for k, v in (snap.errors if snap else {}).items() if v}
        if errors:
            lat.append("│ ", style="dim")
            lat.append(" ".join(f"{k} {v:,}" for k, v in sorted(errors.items())), style="bold red")
        self.query_one("#load-latency", TextLine).update(lat)
        pod_box, node_box = self.query_one("#load-pods", TextLine), self.query_one("#load-nodes", TextLine)
        if snap is None or not (snap.per_pod or snap.running):
            hints = Text(style="dim")
            hints.append("l", style="bold")
            hints.append(" start / stop the load\n")
            hints.append("m", style="bold")
            hints.append(" keep-alive ⇄ a new connection per request\n")
            hints.append("[ ]", style="bold")
            hints.append(" concurrency down / up")
            pod_box.update(hints)
            node_box.update("")
            return
        if snap.identity_missing:
            # totals, latency and errors above; no per-pod split, and how to get one
            why = Text(no_wrap=False, style="yellow")
            why.append("no per-pod split: ", style="bold yellow")
            why.append(snap.identity_missing)
            pod_box.update(why)
            node_box.update(self._worker_lines(snap, node_box.size.width or 30))
            return
        live = self.pods
        per_pod = dict(snap.per_pod)
        counts = {short_pod_name(name): per_pod.get(name, 0) for name in live}
        gone = frozenset(short_pod_name(k) for k in per_pod if k not in live or k in snap.gone_pods)
        for name, value in per_pod.items():
            short = short_pod_name(name)
            if short in gone:
                counts[short] = value
        nodes = {short_node_name(n): 0 for n in live.values() if n}
        nodes.update({short_node_name(k): v for k, v in snap.per_node.items()})
        room = pod_box.size.height
        dead = {k: v for k, v in counts.items() if k in gone}
        folded = ""
        if room and dead and len(counts) > room and len(counts) - len(dead) <= room:
            # every live pod gets a row; the gone ones fold into a line under the nodes
            counts = {k: v for k, v in counts.items() if k not in gone}
            folded = f"+ {len(dead)} gone pod{'s' if len(dead) != 1 else ''} {sum(dead.values()):,}"
        everything = sum(per_pod.values())
        pod_box.update(bar_lines(counts, gone, width=pod_box.size.width or 40, height=room, total=everything))
        workers = self._worker_lines(snap, node_box.size.width or 30)
        worker_rows = len(workers.plain.splitlines()) if workers.plain else 0
        node_height = node_box.size.height - (1 if folded else 0) - worker_rows
        node_text = bar_lines(nodes, frozenset(), width=node_box.size.width or 30, height=max(1, node_height))
        if folded:
            node_text.append("\n" + folded, style="grey50")
        if worker_rows:
            node_text.append("\n")
            node_text.append_text(workers)
        node_box.update(node_text)

    def _worker_lines(self, snap: LoadSnapshot, width: int) -> Text:
        """In-cluster load: one line per worker pod (its node, responses, req/s)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if not snap.per_worker:
            return text
        text.append(f"workers ({len(snap.per_worker)})", style="bold magenta")
        for pod, w in sorted(snap.per_worker.items()):
            text.append("\n")
            text.append(f"{pod.rsplit('-', 2)[-2] if pod.count('-') >= 2 else pod:>3} ", style="magenta")
            text.append(f"{short_node_name(w.node) if w.node else '-':<10} ", style="dim")
            text.append(f"{w.responses:>8,}", style="bold" if w.running else "")
            text.append(f" {w.rps:>6,.0f}/s", style="")
            if w.errors:
                text.append(f" {w.errors:,} err", style="red")
        return text
