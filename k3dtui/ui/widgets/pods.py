"""Pods as cards inside one column per node; cards are keyed by pod uid and updated in place."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget

from k3dtui.core.models import NodeView, PodView
from k3dtui.ui.widgets.text import TextLine

STATUS_STYLES = {
    "Running": "bold green",
    "Pending": "bold yellow",
    "ContainerCreating": "bold cyan",
    "PodInitializing": "bold cyan",
    "Terminating": "bold dark_orange",
    "Completed": "dim",
    "Succeeded": "dim",
}


def status_style(status: str) -> str:
    """The colour kubectl's status word gets: green running, yellow/cyan starting, orange leaving, red errors."""
    return STATUS_STYLES.get(status, "bold red")


def short_pod_name(name: str) -> str:
    """``fastapi-7d4b9c8f5d-x2k9p`` → ``fastapi-x2k9p`` (the ReplicaSet hash dropped)."""
    parts = name.split("-")
    if len(parts) >= 3 and len(parts[-2]) >= 8:
        return "-".join([*parts[:-2], parts[-1]])
    return name


def short_node_name(name: str) -> str:
    """``k3d-demo-agent-1`` → ``agent-1``."""
    for role in ("server", "agent"):
        marker = f"-{role}-"
        if name.startswith("k3d-") and marker in name:
            return role + "-" + name.rsplit(marker, 1)[1]
    return name


def format_age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s"
    if s < 3600 * 2:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d"


class PodCard(Widget):
    """One pod: short name (title), status, ready, IP, age, restarts, responses served and share."""

    DEFAULT_CSS = """
    PodCard {
        height: 5;
        border: round $primary-darken-1;
        border-title-color: $text;
        border-title-style: bold;
        padding: 0 1;
    }
    PodCard.-terminating { border: round $warning-darken-2; color: $text-muted; }
    PodCard.-error { border: round $error; }
    PodCard.-selected { border: heavy $accent; }
    """

    def __init__(self, pod: PodView, clock: Callable[[], float]) -> None:
        super().__init__(id=f"pod-{pod.uid}", classes="pod-card")
        self.pod = pod
        self.clock = clock
        self.served = 0
        self.share = 0.0
        self.border_title = short_pod_name(pod.name)
        self._classes_for(pod)

    def _classes_for(self, pod: PodView) -> None:
        self.set_class(pod.deleting or pod.status == "Terminating", "-terminating")
        self.set_class(status_style(pod.status) == "bold red", "-error")

    def set_pod(self, pod: PodView) -> None:
        if pod != self.pod:
            self.pod = pod
            title = short_pod_name(pod.name)
            if title != self.border_title:
                self.border_title = title
            self._classes_for(pod)
            self.refresh()

    def set_served(self, served: int, share: float) -> None:
        if (served, share) != (self.served, self.share):
            self.served, self.share = served, share
            self.refresh()

    def render(self) -> Text:
        p = self.pod
        status = "Terminating" if p.deleting else p.status
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(status, style=status_style(status))
        text.append(f" {p.ready_text}", style="dim")
        text.append("\n")
        text.append(p.ip or "no IP", style="" if p.ip else "dim")
        text.append(f" · {format_age(self.clock() - p.created)}")
        text.append(f" · ↻{p.restarts}", style="bold red" if p.restarts else "dim")
        text.append("\n")
        if self.served:
            text.append(f"{self.served:,}", style="bold")
            text.append(f" served {self.share:.0%}", style="dim")
        else:
            text.append("0 served", style="dim")
        return text


class NodeHeader(TextLine):
    DEFAULT_CSS = """
    NodeHeader { height: 3; padding: 0 1; background: $boost; }
    """


class NodeColumn(Vertical):
    """One node: name, role, IP, Ready, the service-IP announcement mark; then its pod cards."""

    DEFAULT_CSS = """
    NodeColumn { width: 1fr; height: 1fr; border-right: vkey $panel-lighten-1; }
    NodeColumn > VerticalScroll { height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, node: NodeView | None, *, key: str, clock: Callable[[], float]) -> None:
        super().__init__(id=f"node-{key}", classes="node-column")
        self.node = node
        self.key = key
        self.clock = clock
        self.announces = ""
        self.cards: dict[str, PodCard] = {}
        self._scroll: VerticalScroll | None = None

    def compose(self) -> ComposeResult:
        yield NodeHeader(self._header_text())
        self._scroll = VerticalScroll(*self.cards.values())
        yield self._scroll

    def _header_text(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        node = self.node
        if node is None:
            text.append("unscheduled\n", style="bold yellow")
            text.append("pods waiting for a node", style="dim")
            return text
        text.append(short_node_name(node.name), style="bold")
        text.append("\n")
        role = "server" if "control-plane" in node.roles or "master" in node.roles else "agent"
        text.append("Ready" if node.ready else "NotReady", style="green" if node.ready else "bold red")
        text.append(f" {role} {node.ip or '—'}")
        text.append("\n")
        if self.announces:
            text.append(f"★ announces {self.announces}", style="bold magenta")
        return text

    def set_node(self, node: NodeView | None, announces: str) -> None:
        if node != self.node or announces != self.announces:
            self.node, self.announces = node, announces
            if self.is_mounted:
                self.query_one(NodeHeader).update(self._header_text())

    def on_mount(self) -> None:
        self.query_one(NodeHeader).update(self._header_text())

    def sync_pods(self, pods: list[PodView]) -> list[PodCard]:
        """Update cards in place; mount new ones; remove the gone. Returns the new cards."""
        wanted = {p.uid: p for p in pods}
        for uid in [u for u in self.cards if u not in wanted]:
            gone = self.cards.pop(uid)
            if gone.parent is not None:
                gone.remove()
        new: list[PodCard] = []
        for pod in pods:
            card = self.cards.get(pod.uid)
            if card is None:
                card = PodCard(pod, self.clock)
                self.cards[pod.uid] = card
                new.append(card)
            else:
                card.set_pod(pod)
        if new and self._scroll is not None:
            self._scroll.mount_all(new)
        return new
