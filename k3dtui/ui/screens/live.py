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
from textual.widgets import Footer, Input, RichLog, Static

from k3dtui.core.actions import ActionResult
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP
from k3dtui.core.models import ClusterEvent, ClusterSnapshot, LoadSettings, LoadSnapshot, PodView
from k3dtui.core.session import PipelineEvent
from k3dtui.ui.screens.base import K3dScreen
from k3dtui.ui.screens.modals import ConfirmScreen, HelpScreen, ScaleScreen
from k3dtui.ui.widgets.compact import CompactPods, NodeBlock
from k3dtui.ui.widgets.flow import TERMS as FLOW_TERMS
from k3dtui.ui.widgets.flow import FlowPanel
from k3dtui.ui.widgets.load import LoadPanel
from k3dtui.ui.widgets.pods import NodeColumn, PodCard, short_node_name, short_pod_name
from k3dtui.ui.widgets.text import TextLine

POLICY_SETTLE = 1.0  # seconds between a policy switch and the reset of the counts
CONCURRENCY_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOAD_DURATION = 300.0
CARD_PERIOD = 0.5  # seconds of the load run (the generator's clock) between updates of the cards' served counts  # every run is bounded; l starts another


KILL = Binding.Group("kill", compact=True)
SCALE = Binding.Group("±1", compact=True)
CONC = Binding.Group("conc", compact=True)
NODE = Binding.Group("node", compact=True)
NODE_ACTIONS = ("cordon_node", "uncordon_node", "drain_node", "stop_node", "start_node")


def _freeze_heap() -> None:
    gc.collect()
    gc.freeze()


def _node_order(name: str, roles: str) -> tuple[int, str]:
    return (0 if ("control-plane" in roles or "master" in roles) else 1, name)


class LiveScreen(K3dScreen):
    PAGE = "live"
    LOG_LINES = 500
    CSS_PATH = "live.tcss"
    CHANGING = frozenset({"kill", "force_kill", "kill_random", "scale_up", "scale_down", "scale_to", "delete_cluster", "traffic_policy",
                          "toggle_in_cluster",
                          *NODE_ACTIONS})
    BINDINGS = [
        # first, so a narrow footer drops other keys before it drops how to quit
        Binding("ctrl+q", "app.quit", "quit", id="live.quit", tooltip="Leave k3dtui (the cluster keeps running)"),
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
        Binding("m", "switch_mode", "mode", show=False, id="live.mode", tooltip="Switch the load between keep-alive and a new connection per request"),
        Binding("w", "toggle_in_cluster", "in-cluster", show=False, id="live.in_cluster", tooltip="Switch the load between this machine and a Job of worker pods inside the cluster (creates a Job: not in read-only)"),
        Binding("left_square_bracket", "concurrency(-1)", "conc-", show=False, key_display="[", group=CONC, id="live.conc_down", tooltip="Halve the load's concurrency"),
        Binding("right_square_bracket", "concurrency(1)", "conc+", show=False, key_display="]", group=CONC, id="live.conc_up", tooltip="Double the load's concurrency"),
        Binding("r", "reset", "reset", show=False, id="live.reset", tooltip="Reset the response counts"),
        Binding("t", "traffic_policy", "policy", show=False, id="live.policy", tooltip="Switch externalTrafficPolicy between Cluster and Local"),
        Binding("question_mark", "help", "help", key_display="?", id="live.help", tooltip="List every key"),
        Binding("v", "toggle_layout", "view", id="live.layout", tooltip="Switch between pod cards and the compact list (one line per pod)"),
        Binding("slash", "prompt('/')", "filter", key_display="/", id="live.filter", tooltip="Filter the pods by name, node or status"),
        Binding("colon", "prompt(':')", "cmd", key_display=":", id="live.command", tooltip="Type a command: scale 5, kill, kill random, load, setup, pool, deploy…"),
        Binding("escape", "back", "back", show=False, id="live.back", tooltip="Clear the filter, or go back to the deploy screen"),
        Binding("ctrl+d", "delete_cluster", "delete cluster", show=False, id="live.delete_cluster", tooltip="Delete the whole cluster (asks first)"),
        # node actions, on the selected node (the selected pod's, or the one `n` picked)
        Binding("n", "next_node", "node", show=False, id="live.next_node", tooltip="Select the next node for the node actions"),
        Binding("c", "cordon_node", "cordon", group=NODE, id="live.cordon_node", tooltip="Cordon the selected node (no new pods)"),
        Binding("u", "uncordon_node", "uncordon", group=NODE, id="live.uncordon_node", tooltip="Uncordon the selected node"),
        Binding("d", "drain_node", "drain", group=NODE, id="live.drain_node", tooltip="Drain the selected node: cordon, then evict the app's pods (honours the PodDisruptionBudget)"),
        Binding("o", "stop_node", "stop", group=NODE, id="live.stop_node", tooltip="Stop the selected node's container (k3d node stop): it goes NotReady, its pods move"),
        Binding("O", "start_node", "start", group=NODE, id="live.start_node", tooltip="Start the selected node's container again (k3d node start)"),
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
        "toggle_in_cluster": "Switch the load: this machine / in-cluster Job",
        "concurrency(-1)": "Load concurrency down",
        "concurrency(1)": "Load concurrency up",
        "reset": "Reset the response counts",
        "traffic_policy": "Switch externalTrafficPolicy (Cluster / Local)",
        "help": "Help: every key",
        "prompt('/')": "Filter the pods…",
        "toggle_layout": "Switch the layout: cards / compact list",
        "prompt(':')": "Command prompt…",
        "back": "Back: clear the filter, or the deploy screen",
        "delete_cluster": "Delete the cluster…",
        "open_screen('setup')": "Go to the setup screen",
        "open_screen('pool')": "Go to the MetalLB pool screen",
        "open_screen('deploy')": "Go to the deploy screen",
        "next_node": "Select the next node",
        "cordon_node": "Cordon the selected node",
        "uncordon_node": "Uncordon the selected node",
        "drain_node": "Drain the selected node",
        "stop_node": "Stop the selected node…",
        "start_node": "Start the selected node",
    }
    PALETTE_ONLY = (
        ("open_screen('setup')", "Go to the setup screen", "Change the cluster (reuse, create, delete)  [:setup]"),
        ("open_screen('pool')", "Go to the MetalLB pool screen", "Change the address pool  [:pool]"),
        ("open_screen('deploy')", "Go to the deploy screen", "Deploy again, change the replicas  [:deploy · esc]"),
    )
    PROMPT_COMMANDS = (
        ("scale N | +1 | -1", "scale the deployment"),
        ("kill [POD] | kill random | kill! [POD]", "delete the selected (or named, or a random) pod; ! = grace 0"),
        ("load | mode | conc N | reset", "start/stop load, switch its mode, set concurrency, reset counts"),
        ("policy cluster | local", "set the Service's externalTrafficPolicy"),
        ("node cordon|uncordon|drain|stop|start NODE", "act on a node (agent-0 or its full name)"),
        ("layout", "switch cards / compact list"),
        ("setup | pool | deploy", "go to that screen"),
        ("delete", "delete the cluster (asks first)"),
        ("help | quit", ""),
    )

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

    @dataclass
    class GoneChecked(Message):
        """The answer to "is the watched cluster still there?" ("" when it is)."""

        reason: str

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = ClusterSnapshot()
        self.columns: dict[str, NodeColumn] = {}
        self._column_seq = 0
        self.selected: str | None = None  # pod uid
        self.selected_node: str | None = None  # picked with `n`; else the selected pod's node
        self.node_stopped: dict[str, float] = {}  # node → when this view stopped it (backend clock)
        self.seen_events: set[ClusterEvent] = set()
        self.settings = LoadSettings(duration=LOAD_DURATION)
        self.load_on = False
        self.in_cluster = False  # the load runs as a Job of worker pods inside the cluster
        self.load: LoadSnapshot | None = None
        self.pending_gone: set[str] = set()
        self.outcomes: list[tuple[str, ActionResult]] = []
        # a scale asked for and not yet seen in the watched deployment: (from, to, state),
        # state "asked" (key pressed) then "accepted" (the API answered); shown at once,
        # replaced by the watched truth when the deployment's desired count reaches "to"
        self.pending_scale: tuple[int, int, str] | None = None
        self._pending_since = 0.0
        # what the panel and cards show: (run elapsed, pods counted, responses), the snapshot
        self._cards_shown: tuple[float, frozenset[str], int] | None = None
        self.shown_load: LoadSnapshot | None = None
        self._gc_frozen = False
        # the newest load snapshot from the generator's reader thread, not yet shown
        self._load_lock = threading.Lock()
        self._load_next: LoadSnapshot | None = None
        self._load_posted = False
        # why the cluster is gone ("" while it exists): the cards are cleared, the load is
        # stopped, and the reason with what to do takes their place
        self.gone = ""
        self._checking_gone = False
        self.layout_choice = "auto"  # "auto" (by terminal size and pod count), "cards", "compact"
        self.compact = False
        self.filter = ""  # "/" filter: pods whose name, node or status contains it
        self.prompt_kind = ""  # "/" or ":" while the prompt is open
        self._log_entries: list[tuple[tuple[float, int, int], Text]] = []
        self._log_seq = 0

    def compose(self) -> ComposeResult:
        yield self.header_widget()
        yield TextLine(id="live-status")
        yield FlowPanel(id="flow")
        yield Horizontal(id="nodes")
        yield CompactPods(id="compact")
        yield Static(id="gone")
        with Horizontal(id="bottom"):
            yield LoadPanel(id="load")
            yield RichLog(id="events", wrap=True, markup=False, max_lines=self.LOG_LINES, min_width=16)
        yield Input(id="prompt", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#events", RichLog).border_title = "events"
        self.query_one("#gone").display = False
        self.query_one("#prompt").display = False
        self.query_one("#compact").display = False
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
        if self.gone:
            if not (snap.connected and snap.nodes):
                return  # still gone: nothing to draw
            self._set_gone("")  # it is back (made again under the same name)
        if not snap.connected:
            self._check_gone()
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
                column.sync_pods(self._filtered(snap.pods_on(node.name)))
                # a NotReady node's pods are unreachable: greyed until they are evicted
                column.set_class(not node.ready, "-unreachable")
            if snap.unscheduled:
                column = self.columns.get("\x00unscheduled")
                if column is None:
                    self._column_seq += 1
                    column = NodeColumn(None, key=f"unscheduled-{self._column_seq}", clock=self.backend.now)
                    self.columns["\x00unscheduled"] = column
                    container.mount(column)
                column.sync_pods(self._filtered(snap.unscheduled))
            container.set_class(not snap.connected, "-disconnected")
            self._choose_layout()
            self._render_status()
            self._log_events(snap.events)
            self._fix_selection()
            self._draw_load(self.shown_load)
            self._update_compact()
        gone = before - {p.name for p in snap.pods}
        if gone:
            self.backend.load_mark_gone(gone)
        if snap.pods and not self._gc_frozen:
            # Everything long-lived exists now (Textual, the kubernetes client, the cards):
            # move it out of the collector's way, or every full collection walks it all
            # (~100 ms pauses in the middle of updates).
            self._gc_frozen = True
            self.call_after_refresh(_freeze_heap)

    # -- the cluster went away (deleted, or its process stopped, from another shell) -------
    def _check_gone(self) -> None:
        """While the watches reconnect, ask (on a thread) whether the cluster still exists."""
        if self._checking_gone or self.gone:
            return
        self._checking_gone = True
        backend = self.backend

        def work() -> None:
            try:
                reason = backend.cluster_gone()
            except Exception:  # cannot tell: keep reconnecting, ask again next second
                reason = ""
            self.post_message(self.GoneChecked(reason))

        self.run_io(work, name="check the cluster")

    def on_live_screen_gone_checked(self, message: GoneChecked) -> None:
        self._checking_gone = False
        if message.reason and not self.snapshot.connected:
            self._set_gone(message.reason)

    def _set_gone(self, reason: str) -> None:
        self.gone = reason
        banner = self.query_one("#gone", Static)
        nodes = self.query_one("#nodes", Horizontal)
        if reason:
            if self.load_on or (self.load is not None and self.load.running):
                self.load_on = False
                self.run_io(self.backend.load_stop, name="stop load")
            with self.app.batch_update():
                for column in self.columns.values():
                    column.remove()
                self.columns.clear()
                self.selected = None
                self.snapshot = ClusterSnapshot(connected=False, error=reason)
                name = self.k3d.header_info.name
                sim = " --sim" if self.k3d.header_info.provider == "sim" else ""
                text = Text()
                text.append("✗ The cluster is gone\n\n", style="bold red")
                text.append(reason[:1].upper() + reason[1:] + ".\n", style="bold")
                text.append("The load is stopped and the pods are cleared.\n\n", style="dim")
                text.append("What to do: ", style="bold")
                text.append("esc", style="bold reverse")
                text.append(" opens the setup screen to create it again, or run ")
                text.append(f"k3dtui up{sim} --name {name}", style="bold")
                text.append(" in a shell (the live view comes back by itself); ")
                text.append("ctrl+q", style="bold reverse")
                text.append(" quits.")
                banner.update(text)
                banner.display = True
                nodes.display = False
                self.query_one("#compact").display = False
                self.compact = False
                self.shown_load = self.load = None
                self.query_one(LoadPanel).show(None, {})
            self.log_action(f"cluster gone: {reason}", "bold red")
        else:
            banner.display = False
            nodes.display = True
            self.log_action("the cluster is back", "green")
        self._render_status()
        self.refresh_bindings()

    def _render_status(self) -> None:
        snap = self.snapshot
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.gone:
            text.append(" ✗ cluster gone ", style="bold white on red")
            text.append(f" {self.gone}", style="bold red")
            self.query_one("#live-status", TextLine).set(text)
            return
        if not snap.connected:
            text.append(" ⟳ reconnecting… ", style="bold black on yellow")
            text.append(f" {snap.error or 'the API server does not answer'}; retrying by itself ", style="yellow")
        elif snap.server_generation:
            # the watches moved to a restarted cluster's new API server (core.live)
            text.append("● reconnected to a new API server ", style="bold green")
        else:
            text.append("● connected ", style="bold green")
        self._node_story(text)
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
            elif svc.external_ip and svc.traffic_policy == "Local":
                text.append(" no node announces (no ready pod for Local)", style="yellow")
            text.append(f" {svc.traffic_policy}", style="dim")
        alive = [p for p in snap.pods if not p.deleting]
        text.append(f" │ {len(alive)} pods on {len(snap.nodes)} nodes", style="dim")
        if self.compact:
            text.append(" │ compact (v: cards)", style="dim")
        if self.filter:
            shown = len(self._filtered(list(snap.pods)))
            text.append(" │ ", style="dim")
            text.append(f" /{self.filter} ", style="bold black on cyan")
            text.append(f" {shown} of {len(snap.pods)}", style="cyan")
        pod = self.selected_pod()
        if pod is not None:
            text.append(" │ selected ", style="dim")
            text.append(short_pod_name(pod.name), style="bold reverse")
        self.query_one("#live-status", TextLine).set(text)

    def _node_story(self, text: Text) -> None:
        """The nodes that are failing, cordoned or stopped here: state, countdowns."""
        from k3dtui.core.nodes import node_story

        now = self.backend.now()
        for node in sorted(self.snapshot.nodes, key=lambda n: n.name):
            story = node_story(node, now, self.node_stopped.get(node.name))
            if story:
                text.append("│ ", style="dim")
                text.append(f"{short_node_name(node.name)} {story} ", style="bold red" if not node.ready else "yellow")

    def _log_events(self, events: tuple[ClusterEvent, ...]) -> None:
        new: list[tuple[tuple[float, int, int], Text]] = []
        for ev in events:
            if ev in self.seen_events:
                continue
            self.seen_events.add(ev)
            line = Text(overflow="fold")
            line.append(time.strftime("%H:%M:%S ", time.gmtime(ev.time)), style="dim")
            line.append(ev.reason, style="bold yellow" if ev.type != "Normal" else "bold cyan")
            obj = ev.object.split("/", 1)
            name = short_pod_name(obj[1]) if obj[0] == "pod" and len(obj) > 1 else ev.object
            line.append(f" {name} ", style="")
            line.append(ev.message, style="dim")
            self._log_seq += 1
            new.append(((ev.time, ev.resource_version, self._log_seq), line))
        self._add_log(new)

    def log_action(self, message: str, style: str = "bold") -> None:
        now = self.backend.now()
        line = Text(overflow="fold")
        line.append(time.strftime("%H:%M:%S ", time.gmtime(now)), style="dim")
        line.append("> ", style="bold magenta")
        line.append(message, style=style)
        self._log_seq += 1
        self._add_log([((now, 1 << 62, self._log_seq), line)])

    def _add_log(self, new: list[tuple[tuple[float, int, int], Text]]) -> None:
        """Events and actions in the cluster's order (time, then resourceVersion), wrapped to
        the log's width: appended when they come after the last line, else the log is
        written again in order (an event of an earlier second can arrive late)."""
        if not new:
            return
        new.sort(key=lambda entry: entry[0])
        entries = self._log_entries
        in_order = not entries or new[0][0] >= entries[-1][0]
        entries.extend(new)
        log = self.query_one("#events", RichLog)
        if in_order:
            for _, line in new:
                log.write(line)
        else:
            entries.sort(key=lambda entry: entry[0])
            self._rewrite_log()
        if len(entries) > self.LOG_LINES:
            del entries[: len(entries) - self.LOG_LINES]

    def _rewrite_log(self) -> None:
        log = self.query_one("#events", RichLog)
        log.clear()
        for _, line in self._log_entries:
            log.write(line)

    def on_resize(self) -> None:
        # lines are wrapped when written: wrap them again for the new width
        self.call_after_refresh(self._rewrite_log)
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        self._choose_layout()
        self._fix_selection()
        self._update_compact()

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
        alive = [c for c in flat if not c.pod.deleting]
        # the compact list folds terminating pods into a count: the selection moves to a live one
        hidden = self.compact and any(c.pod.uid == self.selected and c.pod.deleting for c in flat)
        if self.selected is None or hidden or all(c.pod.uid != self.selected for c in flat):
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
        if self.compact:
            compact = self.query_one(CompactPods)
            compact.scroll_card_visible(target)
            compact.refresh()
        else:
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

    # -- node actions ----------------------------------------------------------------------
    def target_node(self) -> str | None:
        names = [n.name for n in self.snapshot.nodes]
        if self.selected_node in names:
            return self.selected_node
        pod = self.selected_pod()
        return pod.node if pod is not None and pod.node else None

    def action_next_node(self) -> None:
        names = [n.name for n in sorted(self.snapshot.nodes, key=lambda n: _node_order(n.name, n.roles))]
        if not names:
            return
        current = self.target_node()
        index = (names.index(current) + 1) % len(names) if current in names else 0
        self.selected_node = names[index]
        self.notify(f"node {self.selected_node} selected: c cordon, u uncordon, d drain, o stop, O start",
                    title="node")

    def _node_act(self, action: str) -> None:
        if not self.allowed(f"{action}_node"):
            return
        node = self.target_node()
        if node is None:
            self.notify("select a node first (n, or select one of its pods)", severity="warning")
            return
        backend = self.backend

        def run() -> ActionResult:
            result = backend.node_action(node, action)
            if result.ok and action == "stop":
                self.node_stopped[node] = backend.now()
            elif result.ok and action == "start":
                self.node_stopped.pop(node, None)
            return result

        self._act(f"{action} {node}", run)

    def action_cordon_node(self) -> None:
        self._node_act("cordon")

    def action_uncordon_node(self) -> None:
        self._node_act("uncordon")

    def action_drain_node(self) -> None:
        self._node_act("drain")

    def action_start_node(self) -> None:
        self._node_act("start")

    def action_stop_node(self) -> None:
        if not self.allowed("stop_node"):
            return
        node = self.target_node()
        if node is None:
            self.notify("select a node first (n, or select one of its pods)", severity="warning")
            return
        view = next((n for n in self.snapshot.nodes if n.name == node), None)
        server = "-server-" in node or (view is not None and ("control-plane" in view.roles or "master" in view.roles))
        if not server:
            self._node_act("stop")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._node_act("stop")

        self.app.push_screen(
            ConfirmScreen(
                "Stop the server node?",
                f"{node} runs the Kubernetes API: while it is stopped the live view cannot watch "
                "the cluster or act on it, until it is started again (k3dtui node start).",
                f"Stop {short_node_name(node)}",
            ),
            answered,
        )

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

    def action_traffic_policy(self) -> None:
        svc = self.snapshot.service
        if svc is None:
            self.log_action("no service to switch the traffic policy of", "yellow")
            return
        new = "Local" if svc.traffic_policy == "Cluster" else "Cluster"
        backend = self.backend

        def switch() -> ActionResult:
            result = backend.set_traffic_policy(new)
            if result.ok and self.load_on:
                # the flow's numbers from now on are the new policy's, once kube-proxy has
                # resynced (its --iptables-min-sync-period defaults to 1 s)
                time.sleep(POLICY_SETTLE)
                backend.load_reset()
            return result

        self._act(f"policy {svc.traffic_policy} → {new}", switch)

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
        if service is None or not (service.external_ip or self.in_cluster):
            # (in-cluster load reaches the Service by its cluster DNS name: no external IP needed)
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

    def action_toggle_in_cluster(self) -> None:
        """Load from this machine ⇄ from a Job of worker pods in the app's namespace. A run
        under way stops (its Job is deleted) and starts again in the new place."""
        if not self.allowed("toggle_in_cluster"):
            return
        self.in_cluster = not self.in_cluster
        panel = self.query_one(LoadPanel)
        panel.in_cluster = self.in_cluster
        workers = panel.load_workers
        self._draw_load(self.shown_load)
        where = f"inside the cluster ({workers} worker pods)" if self.in_cluster else "from this machine"
        self.log_action(f"load runs {where} from the next start" if not self.load_on else f"load moves {where}")
        restart = self.load_on
        backend, in_cluster = self.backend, self.in_cluster

        def place() -> None:
            backend.load_place(in_cluster, workers)
            if restart:
                self.app.call_from_thread(self._restart_load)

        self.run_io(place, name="move load", exclusive=True)

    def _restart_load(self) -> None:
        self.load_on = False
        self.action_toggle_load()

    def _set_settings(self, **changes: object) -> None:
        self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        panel = self.query_one(LoadPanel)
        panel.settings = self.settings
        self._draw_load(self.shown_load)
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
        # the panel and the cards show one and the same snapshot: twice a second of the run,
        # at once when a pod starts or stops being counted, after a reset, and at the end
        due = (
            shown is None
            or not snap.running
            or not 0 <= snap.elapsed - shown[0] < CARD_PERIOD
            or frozenset(snap.per_pod) != shown[1]
            or snap.responses < shown[2]
        )
        if due:
            self._cards_shown = (snap.elapsed, frozenset(snap.per_pod), snap.responses)
            self._draw_load(snap)

    def _draw_load(self, snap: LoadSnapshot | None) -> None:
        """The load panel and the cards' served counts, from one load snapshot and the
        current cluster picture (the same frame shows the same counts everywhere)."""
        self.shown_load = snap
        live = {p.name: p.node for p in self.snapshot.pods if not p.deleting}
        with self.app.batch_update():
            self.query_one(LoadPanel).show(snap, live)
            self._apply_served()

    def _apply_served(self) -> None:
        snap = self.shown_load
        per_pod = snap.per_pod if snap else {}
        total = sum(per_pod.values()) or 1
        for column in self.columns.values():
            for card in column.cards.values():
                served = per_pod.get(card.pod.name, 0)
                card.set_served(served, served / total)
        if self.compact:
            self.query_one(CompactPods).refresh()

    def _tick_ages(self) -> None:
        if not self.snapshot.connected and not self.gone:
            self._check_gone()
        now = self.backend.now()
        for column in self.columns.values():
            column.stack.tick()
            column.tick_header()
        if self.node_stopped or any(not n.ready or n.unschedulable or (n.heartbeat and now - n.heartbeat > 20)
                                    for n in self.snapshot.nodes):
            self._render_status()  # the node countdowns

    # -- state of the actions, going back ------------------------------------------------
    def action_state(self, action: str) -> bool | None:
        # gone: nothing to act on; help, esc (setup) and ctrl+q remain
        return not (self.gone and action not in ("help", "back", "open_screen", "prompt"))

    def go_back(self) -> None:
        if self.k3d.header_info.attached:
            return  # no setup screens behind an attached cluster's live view (ctrl+q quits)
        if self.gone:
            self.k3d.open_setup()
        else:
            self.k3d.open_deploy(deployed=True)

    def action_back(self) -> None:
        """``esc``: close the prompt (a filter being typed is dropped), else clear the
        filter, else back a screen (k9s: esc goes back)."""
        if self.prompt_kind:
            kind = self.prompt_kind
            self._close_prompt()
            if kind == "/":
                self._set_filter("")
            return
        if self.filter:
            self._set_filter("")
            return
        self.go_back()

    def action_open_screen(self, which: str) -> None:
        if which == "setup":
            self.k3d.open_setup()
        elif which == "pool":
            self.k3d.open_pool()
        else:
            self.k3d.open_deploy(deployed=not self.gone)

    # -- layout: pod cards, or the compact list (one line per pod) -------------------------
    def action_toggle_layout(self) -> None:
        self.layout_choice = "cards" if self.compact else "compact"
        self.log_action(f"layout → {self.layout_choice} (v switches)")
        self._choose_layout()
        self._fix_selection()
        self._update_compact()
        self._render_status()

    def _cards_fit(self) -> bool:
        """Whether every live pod gets a whole card on screen: wide enough columns, and
        tall enough for the fullest node."""
        from k3dtui.ui.widgets.pods import CARD_HEIGHT

        size = self.size
        if size.width == 0:
            return True
        columns = max(1, len(self.snapshot.nodes) + (1 if self.snapshot.unscheduled else 0))
        if size.width // columns < 26:
            return False
        bottom = self.query_one("#bottom").outer_size.height or 9
        area = size.height - bottom - 3  # header, status line, footer
        per_node: dict[str, int] = {}
        for p in self._filtered(list(self.snapshot.pods)):  # a terminating card takes room too
            per_node[p.node] = per_node.get(p.node, 0) + 1
        most = max(per_node.values(), default=0)
        return most * CARD_HEIGHT + 3 <= area

    def _choose_layout(self) -> None:
        if self.gone:
            return
        compact = self.layout_choice == "compact" or (self.layout_choice == "auto" and not self._cards_fit())
        if compact != self.compact:
            self.compact = compact
            self.query_one("#nodes").display = not compact
            self.query_one("#compact").display = compact

    def _update_compact(self) -> None:
        if not self.compact:
            return
        blocks = [NodeBlock(col.node, col.announces, list(col.cards.values())) for col in self.columns.values()]
        self.query_one(CompactPods).set_blocks(blocks)

    # -- "/" filter and ":" commands ---------------------------------------------------------
    def _matches(self, pod: PodView) -> bool:
        needle = self.filter.lower()
        status = "terminating" if pod.deleting else pod.status.lower()
        return (
            needle in pod.name.lower() or needle in pod.node.lower()
            or needle in short_node_name(pod.node).lower() or needle in status
        )

    def _filtered(self, pods: list[PodView]) -> list[PodView]:
        return [p for p in pods if self._matches(p)] if self.filter else pods

    def _set_filter(self, text: str) -> None:
        text = text.strip()
        if text != self.filter:
            self.filter = text
            self.apply_snapshot(self.snapshot)
        self._render_status()

    def action_prompt(self, kind: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self.prompt_kind = kind
        if kind == "/":
            prompt.placeholder = "filter pods by name, node or status (enter keeps it, esc clears it)"
            prompt.value = self.filter
        else:
            prompt.placeholder = "scale 5 · kill · kill random · load · mode · setup · pool · deploy · help (esc closes)"
            prompt.value = ""
        prompt.display = True
        prompt.focus()

    def _close_prompt(self) -> None:
        self.prompt_kind = ""
        prompt = self.query_one("#prompt", Input)
        prompt.display = False
        self.set_focus(None)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "prompt" and self.prompt_kind == "/":
            self._set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt":
            return
        kind = self.prompt_kind
        self._close_prompt()
        if kind == "/":
            self._set_filter(event.value)
        elif event.value.strip():
            self.run_command(event.value)

    def run_command(self, line: str) -> None:
        """One ``:`` command (k9s style): ``scale 5``, ``kill``, ``kill random``, ``setup``…"""
        words = line.strip().lstrip(":").split()
        if not words:
            return
        verb, args = words[0].lower(), words[1:]
        self.log_action(f":{' '.join(words)}", "bold magenta")
        refusal = self._command_refusal(verb, args)
        if refusal:
            self._command_error(*refusal)
            return
        if verb in ("scale", "sc") and len(args) == 1:
            self._command_scale(args[0])
        elif verb in ("kill", "kill!", "delete-pod") or verb == "k":
            force = verb.endswith("!") or "--force" in args
            args = [a for a in args if a != "--force"]
            if args and args[0] == "random":
                if self.allowed("kill_random"):
                    backend = self.backend
                    self._act("kill a random pod", lambda: backend.kill_random(force=force))
            elif args:
                pod = next((p for p in self.snapshot.pods if p.name == args[0] or p.name.endswith("-" + args[0])
                            or short_pod_name(p.name) == args[0]), None)
                if pod is None:
                    self._command_error(f"no pod named {args[0]!r}", "pick one from the cards, e.g. :kill " + (
                        short_pod_name(self.snapshot.pods[0].name) if self.snapshot.pods else "POD"))
                    return
                self.selected = pod.uid
                self.action_kill(force=force)
            else:
                self.action_kill(force=force)
        elif verb == "load":
            self.action_toggle_load()
        elif verb == "mode":
            self.action_switch_mode()
        elif verb in ("conc", "concurrency") and len(args) == 1 and args[0].isdigit():
            value = int(args[0])
            if value < 1 or value > CONCURRENCY_STEPS[-1]:
                self._command_error(f"concurrency {value} is out of range", f"give 1 to {CONCURRENCY_STEPS[-1]}")
                return
            self.log_action(f"concurrency → {value}")
            self._set_settings(concurrency=value)
        elif verb == "reset":
            self.action_reset()
        elif verb == "policy" and len(args) == 1 and args[0].lower() in ("cluster", "local"):
            wanted = args[0].capitalize()
            svc = self.snapshot.service
            if svc is not None and svc.traffic_policy == wanted:
                self.log_action(f"externalTrafficPolicy is already {wanted}")
            else:
                self.action_traffic_policy()
        elif verb == "node" and len(args) == 2 and args[0] in ("cordon", "uncordon", "drain", "stop", "start"):
            node = next((n.name for n in self.snapshot.nodes
                         if args[1] in (n.name, short_node_name(n.name))), None)
            if node is None:
                names = ", ".join(short_node_name(n.name) for n in self.snapshot.nodes) or "none"
                self._command_error(f"no node named {args[1]!r}", f"the nodes are {names}")
                return
            self.selected_node = node
            if args[0] == "stop":
                self.action_stop_node()  # asks first for a server node
            else:
                self._node_act(args[0])
        elif verb in ("layout", "compact", "cards", "view"):
            self.action_toggle_layout()
        elif verb in ("setup", "pool", "deploy"):
            self.action_open_screen(verb)
        elif verb in ("delete", "delete-cluster"):
            self.action_delete_cluster()
        elif verb in ("help", "h", "?"):
            self.action_help()
        elif verb in ("q", "quit", "q!"):
            self.app.exit()
        else:
            self._command_error(f"unknown command {line.strip()!r}",
                                "try :scale 5, :kill, :kill random, :policy local, :node drain agent-0, :load, :help")

    def _command_refusal(self, verb: str, args: list[str]) -> tuple[str, str] | None:
        """(why, what to do) when a ``:`` command would change what read-only (or attached)
        mode forbids; None when it may run."""
        attached = self.k3d.header_info.attached
        if attached and (verb in ("setup", "pool", "deploy", "delete", "delete-cluster")
                         or (verb == "node" and args[:1] in (["stop"], ["start"]))):
            return (f":{verb} is not for an attached cluster (it is not k3dtui's)",
                    "node stop/start, delete and the setup screens are for k3dtui's own cluster")
        changing = verb in ("scale", "sc", "kill", "kill!", "delete-pod", "k", "policy", "node", "delete",
                            "delete-cluster")
        if changing and self.k3d.read_only:
            hint = "attach again with --allow-changes" if attached else "run k3dtui without --read-only"
            return f"read-only: :{verb} changes the cluster", hint
        return None

    def _command_error(self, message: str, hint: str) -> None:
        self.log_action(f"{message} — {hint}", "bold red")
        self.notify(f"{message}\n{hint}", title="command", severity="warning")

    def _command_scale(self, arg: str) -> None:
        if not self.allowed("scale_to"):
            self._command_error("read-only: scaling is off", "run k3dtui without --read-only")
            return
        backend = self.backend
        try:
            target = max(0, self._desired() + int(arg)) if arg in ("+1", "-1") else int(arg)
            backend.validate_replicas(target)
        except ValueError:
            self._command_error(f"scale needs a number, not {arg!r}", "e.g. :scale 5, :scale +1")
            return
        except K3dtuiError as exc:
            self._command_error(exc.message, exc.hint)
            return
        self._show_pending(target)
        self._act(f"scale to {target}", lambda: backend.scale_to(target))

    # -- help, failures --------------------------------------------------------------------
    def action_help(self) -> None:
        keys: list[tuple[str, str]] = [("←↑↓→ tab", "select a pod")]
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.key not in ("left", "right", "up", "down", "tab", "shift+tab") \
                    and self.check_action(b.action, ()) is True:
                keys.append((b.key_display or b.key, b.tooltip))
        keys.append(("ctrl+q q", "quit (the cluster keeps running)"))
        keys.extend(FLOW_TERMS)
        keys.append(("ctrl+p", "command palette: every action with its key"))
        for command, what in self.PROMPT_COMMANDS:
            keys.append((":" + command.split(" ", 1)[0], f"{command}" + (f": {what}" if what else "")))
        self.app.push_screen(HelpScreen(keys))

    def show_failure(self, what: str, message: str, hint: str) -> None:
        self.log_action(f"{what} failed: {message}" + (f" — {hint}" if hint else ""), "bold red")
        if what == "start load":
            self.load_on = False
