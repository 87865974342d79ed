"""The live view: one column per node holding its pods as cards, the load panel, the event
log, and the keys that kill and scale. Cards are keyed by pod uid and updated in place."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, RichLog

from k3dtui.core.actions import ActionResult
from k3dtui.core.identity import APP
from k3dtui.core.models import ClusterEvent, ClusterSnapshot, LoadSettings, LoadSnapshot, PodView
from k3dtui.core.session import PipelineEvent
from k3dtui.ui.screens.base import K3dScreen
from k3dtui.ui.screens.modals import ConfirmScreen, HelpScreen, ScaleScreen
from k3dtui.ui.widgets.load import LoadPanel
from k3dtui.ui.widgets.pods import NodeColumn, PodCard, short_node_name, short_pod_name
from k3dtui.ui.widgets.text import TextLine

CONCURRENCY_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOAD_DURATION = 300.0
CARD_PERIOD = 0.5  # seconds of the load run (the generator's clock) between updates of the cards' served counts  # every run is bounded; l starts another


KILL = Binding.Group("kill", compact=True)
SCALE = Binding.Group("±1", compact=True)
CONC = Binding.Group("conc", compact=True)


def _freeze_heap() -> None:
    gc.collect()
    gc.freeze()


def _node_order(name: str, roles: str) -> tuple[int, str]:
    return (0 if ("control-plane" in roles or "master" in roles) else 1, name)


class LiveScreen(K3dScreen):
    PAGE = "live"
    CSS_PATH = "live.tcss"
    CHANGING = frozenset({"kill", "force_kill", "kill_random", "scale_up", "scale_down", "scale_to", "delete_cluster"})
    BINDINGS = [
        Binding("left", "select('left')", "select", show=False, id="live.left", tooltip="Select the pod in the node to the left"),
        Binding("right", "select('right')", "select", show=False, id="live.right", tooltip="Select the pod in the node to the right"),
        Binding("up", "select('up')", "select", show=False, id="live.up", tooltip="Select the pod above"),
        Binding("down", "select('down')", "select", show=False, id="live.down", tooltip="Select the pod below"),
        Binding("tab", "select('next')", "next pod", show=False, priority=True, id="live.next", tooltip="Select the next pod"),
        Binding("shift+tab", "select('prev')", "previous pod", show=False, priority=True, id="live.prev", tooltip="Select the previous pod"),
        Binding("k", "kill", "kill", group=KILL, id="live.kill", tooltip="Delete the selected pod (graceful)"),
        Binding("K", "force_kill", "force", group=KILL, id="live.force_kill", tooltip="Delete the selected pod now (grace period 0)"),
        Binding("x", "kill_random", "random", id="live.kill_random", tooltip="Delete a random pod"),
        Binding("plus", "scale_up", "+1", key_display="+", group=SCALE, id="live.scale_up", tooltip="Scale the deployment up by one"),
        Binding("minus", "scale_down", "-1", key_display="-", group=SCALE, id="live.scale_down", tooltip="Scale the deployment down by one"),
        Binding("s", "scale_to", "scale", id="live.scale_to", tooltip="Scale the deployment to a number"),
        Binding("l", "toggle_load", "load", id="live.load", tooltip="Start or stop the load generator"),
        Binding("m", "switch_mode", "mode", id="live.mode", tooltip="Switch the load between keep-alive and a new connection per request"),
        Binding("left_square_bracket", "concurrency(-1)", "conc-", key_display="[", group=CONC, id="live.conc_down", tooltip="Halve the load's concurrency"),
        Binding("right_square_bracket", "concurrency(1)", "conc+", key_display="]", group=CONC, id="live.conc_up", tooltip="Double the load's concurrency"),
        Binding("r", "reset", "reset", id="live.reset", tooltip="Reset the response counts"),
        Binding("question_mark", "help", "help", key_display="?", id="live.help", tooltip="List every key"),
    ]
    COMMAND_TITLES = {
        "select('left')": "Select the pod to the left",
        "select('right')": "Select the pod to the right",
        "select('up')": "Select the pod above",
        "select('down')": "Select the pod below",
        "select('next')": "Select the next pod",
        "select('prev')": "Select the previous pod",
        "kill": "Kill the selected pod",
        "force_kill": "Force-kill the selected pod (grace 0)",
        "kill_random": "Kill a random pod",
        "scale_up": "Scale up by one",
        "scale_down": "Scale down by one",
        "scale_to": "Scale to a number…",
        "toggle_load": "Start / stop load",
        "switch_mode": "Switch the load's connection mode",
        "concurrency(-1)": "Load concurrency down",
        "concurrency(1)": "Load concurrency up",
        "reset": "Reset the response counts",
        "help": "Help: every key",
    }
    PALETTE_ONLY = (("delete_cluster", "Delete the cluster…", "Delete the whole cluster (asks for confirmation)"),)

    @dataclass
    class SnapshotArrived(Message):
        """Posted from the watch threads (thread-safe) with the newest cluster picture."""

        snapshot: ClusterSnapshot

    @dataclass
    class ActionDone(Message):
        what: str
        outcome: ActionResult

    @dataclass
    class LoadChanged(Message):
        running: bool

    class LoadArrived(Message):
        """New load snapshots are waiting (one message however many arrived meanwhile)."""

    @dataclass
    class Step(Message):
        event: PipelineEvent

    class ClusterDeleted(Message):
        """The cluster is gone: the app goes back to the setup screen."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = ClusterSnapshot()
        self.columns: dict[str, NodeColumn] = {}
        self._column_seq = 0
        self.selected: str | None = None  # pod uid
        self.seen_events: set[ClusterEvent] = set()
        self.settings = LoadSettings(duration=LOAD_DURATION)
        self.load_on = False
        self.load: LoadSnapshot | None = None
        self.pending_gone: set[str] = set()
        self.outcomes: list[tuple[str, ActionResult]] = []
        # a scale asked for and not yet seen in the watched deployment: (from, to, state),
        # state "asked" (key pressed) then "accepted" (the API answered); shown at once,
        # replaced by the watched truth when the deployment's desired count reaches "to"
        self.pending_scale: tuple[int, int, str] | None = None
        self._pending_since = 0.0
        self._cards_shown: tuple[float, frozenset[str]] | None = None  # (run elapsed, pods counted)
        self._gc_frozen = False
        # the newest load snapshot from the generator's reader thread, not yet shown
        self._load_lock = threading.Lock()
        self._load_next: LoadSnapshot | None = None
        self._load_posted = False

    def compose(self) -> ComposeResult:
        yield self.header_widget()
        yield TextLine(id="live-status")
        yield Horizontal(id="nodes")
        with Horizontal(id="bottom"):
            yield LoadPanel(id="load")
            yield RichLog(id="events", wrap=True, markup=False, max_lines=500)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#events", RichLog).border_title = "events"
        self.query_one(LoadPanel).settings = self.settings
        self._render_status()
        backend = self.backend

        def changed(snap: ClusterSnapshot) -> None:
            self.post_message(self.SnapshotArrived(snap))

        def work() -> None:
            backend.live_start(changed)

        self.run_io(work, name="watch the cluster")
        self.set_interval(1.0, self._tick_ages)

    def on_unmount(self) -> None:
        backend = self.backend
        self.k3d.run_io(backend.live_stop, name="stop watching")

    # -- cluster state -----------------------------------------------------------------
    def on_live_screen_snapshot_arrived(self, message: SnapshotArrived) -> None:
        self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snap: ClusterSnapshot) -> None:
        before = {p.name for p in self.snapshot.pods}
        self.snapshot = snap
        pending = self.pending_scale
        if pending is not None and snap.deployment is not None and (
            snap.deployment.desired == pending[1] or time.monotonic() - self._pending_since > 15.0
        ):
            self.pending_scale = None
        nodes = sorted(snap.nodes, key=lambda n: _node_order(n.name, n.roles))
        announcing = snap.service.announcing_node if snap.service else ""
        ip = snap.service.external_ip if snap.service else ""
        container = self.query_one("#nodes", Horizontal)
        with self.app.batch_update():
            wanted = [n.name for n in nodes] + (["\x00unscheduled"] if snap.unscheduled else [])
            for key in [k for k in self.columns if k not in wanted]:
                self.columns.pop(key).remove()
            for node in nodes:
                column = self.columns.get(node.name)
                if column is None:
                    self._column_seq += 1
                    column = NodeColumn(node, key=f"n{self._column_seq}", clock=self.backend.now)
                    self.columns[node.name] = column
                    container.mount(column)
                column.set_node(node, ip if node.name == announcing else "")
                column.sync_pods(snap.pods_on(node.name))
            if snap.unscheduled:
                column = self.columns.get("\x00unscheduled")
                if column is None:
                    self._column_seq += 1
                    column = NodeColumn(None, key=f"unscheduled-{self._column_seq}", clock=self.backend.now)
                    self.columns["\x00unscheduled"] = column
                    container.mount(column)
                column.sync_pods(snap.unscheduled)
            container.set_class(not snap.connected, "-disconnected")
            self._render_status()
            self._log_events(snap.events)
            self._fix_selection()
            self._apply_served()
        gone = before - {p.name for p in snap.pods}
        if gone:
            self.backend.load_mark_gone(gone)
        if snap.pods and not self._gc_frozen:
            # Everything long-lived exists now (Textual, the kubernetes client, the cards):
            # move it out of the collector's way, or every full collection walks it all
            # (~100 ms pauses in the middle of updates).
            self._gc_frozen = True
            self.call_after_refresh(_freeze_heap)

    def _render_status(self) -> None:
        snap = self.snapshot
        text = Text(no_wrap=True, overflow="ellipsis")
        if not snap.connected:
            text.append(" ⟳ reconnecting… ", style="bold black on yellow")
            text.append(f" {snap.error or 'the API server does not answer'}; retrying by itself ", style="yellow")
        elif snap.server_generation:
            # the watches moved to a restarted cluster's new API server (core.live)
            text.append("● reconnected to a new API server ", style="bold green")
        else:
            text.append("● connected ", style="bold green")
        dep = snap.deployment
        pending = self.pending_scale
        if pending is not None:
            text.append("│ ", style="dim")
            text.append(f" scaling {pending[0]} → {pending[1]} ", style="bold black on cyan")
            text.append(" requested" if pending[2] == "asked" else " accepted, waiting for the watch", style="cyan")
            if dep is not None:
                text.append(f" │ {dep.ready}/{dep.desired} ready", style="dim")
        elif dep is not None:
            text.append("│ replicas ", style="dim")
            text.append(f"{dep.ready}/{dep.desired} ready", style="bold" if dep.ready == dep.desired else "bold yellow")
        svc = snap.service
        if svc is not None:
            text.append(" │ ", style="dim")
            text.append(f"{svc.external_ip}:{svc.port}" if svc.external_ip else "external IP pending",
                        style="bold magenta" if svc.external_ip else "yellow")
            if svc.announcing_node:
                text.append(f" via {short_node_name(svc.announcing_node)}", style="dim")
        alive = [p for p in snap.pods if not p.deleting]
        text.append(f" │ {len(alive)} pods on {len(snap.nodes)} nodes", style="dim")
        pod = self.selected_pod()
        if pod is not None:
            text.append(" │ selected ", style="dim")
            text.append(short_pod_name(pod.name), style="bold reverse")
        self.query_one("#live-status", TextLine).set(text)

    def _log_events(self, events: tuple[ClusterEvent, ...]) -> None:
        log = self.query_one("#events", RichLog)
        for ev in sorted(events, key=lambda e: e.time):
            if ev in self.seen_events:
                continue
            self.seen_events.add(ev)
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(time.strftime("%H:%M:%S ", time.gmtime(ev.time)), style="dim")
            line.append(ev.reason, style="bold yellow" if ev.type != "Normal" else "bold cyan")
            obj = ev.object.split("/", 1)
            name = short_pod_name(obj[1]) if obj[0] == "pod" and len(obj) > 1 else ev.object
            line.append(f" {name} ", style="")
            line.append(ev.message, style="dim")
            log.write(line)

    def log_action(self, message: str, style: str = "bold") -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(time.strftime("%H:%M:%S ", time.gmtime(self.backend.now())), style="dim")
        line.append("> ", style="bold magenta")
        line.append(message, style=style)
        self.query_one("#events", RichLog).write(line)

    # -- selection ---------------------------------------------------------------------
    def _grid(self) -> list[list[PodCard]]:
        return [list(c.cards.values()) for c in self.columns.values() if c.cards]

    def selected_pod(self) -> PodView | None:
        for p in self.snapshot.pods:
            if p.uid == self.selected:
                return p
        return None

    def _fix_selection(self) -> None:
        grid = self._grid()
        flat = [card for col in grid for card in col]
        if self.selected is None or all(c.pod.uid != self.selected for c in flat):
            alive = [c for c in flat if not c.pod.deleting]
            self.selected = (alive or flat)[0].pod.uid if flat else None
        for card in flat:
            card.set_class(card.pod.uid == self.selected, "-selected")

    def action_select(self, direction: str) -> None:
        grid = self._grid()
        flat = [card for col in grid for card in col]
        if not flat:
            return
        pos = next(((ci, ri) for ci, col in enumerate(grid) for ri, c in enumerate(col) if c.pod.uid == self.selected), (0, 0))
        ci, ri = pos
        if direction in ("next", "prev"):
            index = flat.index(grid[ci][ri]) + (1 if direction == "next" else -1)
            target = flat[index % len(flat)]
        elif direction in ("left", "right"):
            ci = max(0, min(len(grid) - 1, ci + (1 if direction == "right" else -1)))
            target = grid[ci][min(ri, len(grid[ci]) - 1)]
        else:
            ri = max(0, min(len(grid[ci]) - 1, ri + (1 if direction == "down" else -1)))
            target = grid[ci][ri]
        self.selected = target.pod.uid
        for card in flat:
            card.set_class(card is target, "-selected")
        target.scroll_visible()
        self._render_status()

    # -- actions on the cluster ----------------------------------------------------------
    def _act(self, what: str, fn: Callable[[], ActionResult]) -> None:
        self.log_action(what)

        def work() -> None:
            self.post_message(self.ActionDone(what, fn()))

        self.run_io(work, name=what)

    def on_live_screen_action_done(self, message: ActionDone) -> None:
        out = message.outcome
        self.outcomes.append((message.what, out))
        if message.what.startswith("scale") and self.pending_scale is not None:
            if out.ok:
                frm, to, _ = self.pending_scale
                self.pending_scale = (frm, to, "accepted")
            else:
                self.pending_scale = None
            self._render_status()
        self.log_action(out.message, "green" if out.ok else "bold red")
        if not out.ok:
            self.notify(out.message, title=message.what, severity="warning")

    def action_kill(self, force: bool = False) -> None:
        if not self.allowed("kill"):
            return
        pod = self.selected_pod()
        if pod is None:
            self.notify("select a pod first (arrows or tab)", severity="warning")
            return
        backend = self.backend
        name = pod.name
        self._act(f"{'force-kill' if force else 'kill'} {short_pod_name(name)}", lambda: backend.kill(name, force=force))

    def action_force_kill(self) -> None:
        if self.allowed("force_kill"):
            self.action_kill(force=True)

    def action_kill_random(self) -> None:
        if self.allowed("kill_random"):
            backend = self.backend
            self._act("kill a random pod", lambda: backend.kill_random(force=False))

    def _desired(self) -> int:
        """The replica count last asked for (pending) or else watched."""
        if self.pending_scale is not None:
            return self.pending_scale[1]
        return self.snapshot.deployment.desired if self.snapshot.deployment else 0

    def _show_pending(self, target: int) -> None:
        """Show the asked-for count at once (the key press → the screen), before the API answers."""
        watched = self.snapshot.deployment.desired if self.snapshot.deployment else 0
        frm = self.pending_scale[0] if self.pending_scale is not None else watched
        self.pending_scale = (frm, target, "asked")
        self._pending_since = time.monotonic()
        self._render_status()

    def action_scale_up(self) -> None:
        if self.allowed("scale_up"):
            backend = self.backend
            self._show_pending(self._desired() + 1)
            self._act("scale +1", lambda: backend.scale_by(1))

    def action_scale_down(self) -> None:
        if self.allowed("scale_down"):
            backend = self.backend
            if self._desired() > 0:
                self._show_pending(self._desired() - 1)
            self._act("scale -1", lambda: backend.scale_by(-1))

    def action_scale_to(self) -> None:
        if not self.allowed("scale_to"):
            return
        current = self.snapshot.deployment.desired if self.snapshot.deployment else 3
        backend = self.backend

        def chosen(value: int | None) -> None:
            if value is not None:
                self._show_pending(value)
                self._act(f"scale to {value}", lambda: backend.scale_to(value))

        name = self.snapshot.deployment.name if self.snapshot.deployment else APP.deployment
        self.app.push_screen(ScaleScreen(current, backend.validate_replicas, name), chosen)

    def action_delete_cluster(self) -> None:
        if not self.allowed("delete_cluster"):
            return
        name = self.k3d.header_info.name
        backend = self.backend

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            self.log_action(f"delete cluster {name}", "bold red")

            def step(event: PipelineEvent) -> None:
                self.post_message(self.Step(event))

            def work() -> None:
                backend.load_stop()
                backend.delete_cluster(step)
                self.post_message(self.ClusterDeleted())

            self.run_io(work, name="delete cluster")

        self.app.push_screen(
            ConfirmScreen(
                "Delete the cluster?",
                f"This deletes the cluster '{name}' with its nodes, MetalLB and the app. "
                "The live view closes and the setup screen opens.",
                f"Delete {name}",
            ),
            answered,
        )

    def on_live_screen_step(self, message: Step) -> None:
        self.log_action(message.event.message, "dim")

    # -- load ----------------------------------------------------------------------------
    def action_toggle_load(self) -> None:
        backend = self.backend
        if self.load_on:
            self.load_on = False
            self.log_action("stop load")
            self.run_io(backend.load_stop, name="stop load")
            return
        service = self.snapshot.service
        if service is None or not service.external_ip:
            self.notify("the service has no external IP yet; load needs one", severity="warning")
            return
        self.load_on = True
        settings = self.settings
        self.log_action(f"start load: {settings.mode}, concurrency {settings.concurrency}, {LOAD_DURATION:.0f}s max")
        def start() -> None:
            says = backend.load_start(settings, service, self.load_arrived)
            if says:  # where the load runs from, and why
                self.app.call_from_thread(self.log_action, says, "dim")

        self.run_io(start, name="start load")

    def _set_settings(self, **changes: object) -> None:
        self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        panel = self.query_one(LoadPanel)
        panel.settings = self.settings
        panel.show(self.load)
        backend = self.backend
        self.run_io(lambda: backend.load_update(**changes), name="change load")

    def action_switch_mode(self) -> None:
        mode = "keep-alive" if self.settings.mode == "new-connection" else "new-connection"
        self.log_action(f"load mode → {mode}")
        self._set_settings(mode=mode)

    def action_concurrency(self, step: int) -> None:
        current = self.settings.concurrency
        bigger = [c for c in CONCURRENCY_STEPS if c > current]
        smaller = [c for c in CONCURRENCY_STEPS if c < current]
        value = (bigger[0] if bigger else current) if step > 0 else (smaller[-1] if smaller else current)
        if value != current:
            self.log_action(f"concurrency → {value}")
            self._set_settings(concurrency=value)

    def action_reset(self) -> None:
        self.log_action("reset counts")
        self.backend.load_reset()

    def load_arrived(self, snap: LoadSnapshot) -> None:
        """Thread-safe: the load generator's reader hands over a snapshot. Bursts coalesce:
        one message is in flight at a time and it shows the newest snapshot."""
        with self._load_lock:
            self._load_next = snap
            if self._load_posted:
                return
            self._load_posted = True
        self.post_message(self.LoadArrived())

    def on_live_screen_load_arrived(self, message: LoadArrived) -> None:
        with self._load_lock:
            snap, self._load_next = self._load_next, None
            self._load_posted = False
        if snap is None or snap is self.load:
            return
        self.load = snap
        if self.load_on and not snap.running and snap.finished_reason and snap.elapsed > 0.5:
            self.load_on = False
        shown = self._cards_shown
        # the panel follows every snapshot; the cards (many widgets) twice a second of the
        # run, at once when a pod starts or stops being counted, and at the end
        cards_due = (
            shown is None
            or not snap.running
            or not 0 <= snap.elapsed - shown[0] < CARD_PERIOD
            or frozenset(snap.per_pod) != shown[1]
        )
        with self.app.batch_update():
            self.query_one(LoadPanel).show(snap)
            if cards_due:
                self._cards_shown = (snap.elapsed, frozenset(snap.per_pod))
                self._apply_served()

    def _apply_served(self) -> None:
        snap = self.load
        per_pod = snap.per_pod if snap else {}
        total = sum(per_pod.values()) or 1
        for column in self.columns.values():
            for card in column.cards.values():
                served = per_pod.get(card.pod.name, 0)
                card.set_served(served, served / total)

    def _tick_ages(self) -> None:
        for column in self.columns.values():
            column.stack.tick()

    # -- help, failures --------------------------------------------------------------------
    def action_help(self) -> None:
        keys: list[tuple[str, str]] = [("←↑↓→ tab", "select a pod")]
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.show and self.check_action(b.action, ()) is True:
                keys.append((b.key_display or b.key, b.tooltip))
        keys.append(("q", "quit (the cluster keeps running)"))
        if self.allowed("delete_cluster"):
            keys.append(("ctrl+p", "command palette: every action, and delete the cluster"))
        else:
            keys.append(("ctrl+p", "command palette: every action"))
        self.app.push_screen(HelpScreen(keys))

    def show_failure(self, what: str, message: str, hint: str) -> None:
        self.log_action(f"{what} failed: {message}" + (f" — {hint}" if hint else ""), "bold red")
        if what == "start load":
            self.load_on = False
