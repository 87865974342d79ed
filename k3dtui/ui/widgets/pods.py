"""Pods as cards inside one column per node; cards are keyed by pod uid and updated in place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region, Size
from textual.strip import Strip
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
    """``fastapi-app-7d4b9c8f5d-x2k9p`` → ``fastapi-app-x2k9p`` (the ReplicaSet hash dropped)."""
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


CARD_HEIGHT = 5  # border, three lines, border


class PodCard:
    """One pod: short name (title), status, ready, IP, age, restarts, responses served and share.

    Not a widget: a column draws all its cards in one :class:`PodStack` (a hundred card
    widgets made every update of the live view a hundred-widget repaint). A change to
    one card repaints only that card's five lines.
    """

    def __init__(self, pod: PodView, clock: Callable[[], float], stack: PodStack | None = None) -> None:
        self.pod = pod
        self.clock = clock
        self.stack = stack
        self.served = 0
        self.share = 0.0
        self.classes: set[str] = set()
        self.shown_age = ""
        self._strip_key: object = None
        self._strips: list[Strip] = []
        self._classes_for(pod)

    # the widget-like bits the live screen and the tests use
    @property
    def border_title(self) -> str:
        return short_pod_name(self.pod.name)

    def has_class(self, name: str) -> bool:
        return name in self.classes

    def set_class(self, add: bool, name: str) -> None:
        if (name in self.classes) != add:
            (self.classes.add if add else self.classes.discard)(name)
            self.refresh()

    def refresh(self) -> None:
        if self.stack is not None:
            self.stack.refresh_card(self)

    def scroll_visible(self) -> None:
        if self.stack is not None:
            self.stack.scroll_card_visible(self)

    def _classes_for(self, pod: PodView) -> None:
        self.set_class(pod.deleting or pod.status == "Terminating", "-terminating")
        self.set_class(status_style(pod.status) == "bold red", "-error")

    def set_pod(self, pod: PodView) -> None:
        if pod != self.pod:
            self.pod = pod
            self._classes_for(pod)
            self.refresh()

    def set_served(self, served: int, share: float) -> None:
        if (served, share) != (self.served, self.share):
            self.served, self.share = served, share
            self.refresh()

    def age_text(self) -> str:
        return format_age(self.clock() - self.pod.created)

    def _line_parts(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        p = self.pod
        self.shown_age = self.age_text()
        status = "Terminating" if p.deleting else p.status
        first = ((status, status_style(status)), (f" {p.ready_text}", "dim"))
        second = (
            (p.ip or "no IP", "" if p.ip else "dim"),
            (f" · {self.shown_age}", ""),
            (f" · ↻{p.restarts}", "bold red" if p.restarts else "dim"),
        )
        if self.served:
            third: tuple[tuple[str, str], ...] = ((f"{self.served:,}", "bold"), (f" served {self.share:.0%}", "dim"))
        else:
            third = (("0 served", "dim"),)
        return first, second, third

    def card_text(self) -> Text:
        """The card's three content lines as one Text."""
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(self._line_parts()):
            if i:
                text.append("\n")
            for part, style in line:
                text.append(part, style=style)
        return text

    render = card_text

    def strips(self, width: int, styles: CardStyles | None) -> list[Strip]:
        """The card's five lines (border included), cached until something shown changes."""
        parts = self._line_parts()
        key = (parts, width, styles, frozenset(self.classes), self.pod.name)
        if styles is None:
            return []
        if key != self._strip_key:
            self._strip_key = key
            self._strips = _draw_card(self.border_title, parts, width, styles, self.classes)
        return self._strips


@dataclass(frozen=True)
class CardStyles:
    border: Style
    terminating: Style
    error: Style
    selected: Style
    title: Style
    text: Style
    muted: Style


_STYLES: dict[str, Style] = {}


def _parsed(style: str) -> Style:
    cached = _STYLES.get(style)
    if cached is None:
        cached = _STYLES[style] = Style.parse(style) if style else Style()
    return cached


def _fit(parts: Iterable[tuple[str, Style]], width: int, pad: Style) -> list[Segment]:
    """Segments filling exactly ``width`` cells (an ellipsis when cut); plain string work,
    no intermediate strips (this runs for every line of every changed card)."""
    out: list[Segment] = []
    used = 0
    for text, style in parts:
        if used >= width:
            break
        n = cell_len(text)
        if used + n > width:
            room = width - used - 1
            if room > 0:
                out.append(Segment(set_cell_size(text, room), style))
            out.append(Segment("…", style))
            used = width
            break
        out.append(Segment(text, style))
        used += n
    if used < width:
        out.append(Segment(" " * (width - used), pad))
    return out


def _draw_card(
    title: str, parts: tuple[tuple[tuple[str, str], ...], ...], width: int, st: CardStyles, classes: set[str]
) -> list[Strip]:
    selected = "-selected" in classes
    border = st.selected if selected else st.error if "-error" in classes else st.terminating if "-terminating" in classes else st.border
    text = st.muted if "-terminating" in classes else st.text
    tl, tr, bl, br, h, v = ("┏", "┓", "┗", "┛", "━", "┃") if selected else ("╭", "╮", "╰", "╯", "─", "│")
    inner = max(0, width - 2)
    if width < 4:
        return [Strip.blank(width, text) for _ in range(CARD_HEIGHT)]
    top = [Segment(tl + h, border)]
    top += _fit([(f" {title} ", st.title)], min(inner - 1, cell_len(title) + 2), border)
    used = 1 + min(inner - 1, cell_len(title) + 2)
    top += [Segment(h * max(0, inner - used), border), Segment(tr, border)]  # exactly ``width`` cells
    lines = [Strip(top, width)]
    for line in parts:
        body = _fit(((t, text + _parsed(s)) for t, s in line), max(0, inner - 2), text)
        lines.append(Strip([Segment(v, border), Segment(" ", text), *body, Segment(" ", text), Segment(v, border)], width))
    lines.append(Strip([Segment(bl + h * inner + br, border)], width))
    return lines


class PodStack(Widget):
    """All the pod cards of one column, drawn with the line API: one widget however many pods."""

    COMPONENT_CLASSES = {"card--border", "card--terminating", "card--error", "card--selected", "card--title", "card--muted"}
    DEFAULT_CSS = """
    PodStack { height: auto; }
    PodStack > .card--border { color: $primary-darken-1; }
    PodStack > .card--terminating { color: $warning-darken-2; }
    PodStack > .card--error { color: $error; }
    PodStack > .card--selected { color: $accent; text-style: bold; }
    PodStack > .card--title { color: $text; text-style: bold; }
    PodStack > .card--muted { color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.order: list[PodCard] = []
        self._styles_key: object = None
        self._card_styles: CardStyles | None = None
        self._frame: tuple[int, CardStyles | None] = (0, None)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return CARD_HEIGHT * len(self.order)

    def set_cards(self, cards: list[PodCard]) -> None:
        if [id(c) for c in cards] != [id(c) for c in self.order]:
            grew = len(cards) != len(self.order)
            self.order = list(cards)
            for card in cards:
                card.stack = self
            self.refresh(layout=grew)

    def notify_style_update(self) -> None:
        self._card_styles = None
        super().notify_style_update()

    def card_styles(self) -> CardStyles:
        key = self.app.theme
        if key != self._styles_key or self._card_styles is None:
            self._styles_key = key
            base = self.rich_style
            get = self.get_component_rich_style
            self._card_styles = CardStyles(
                border=get("card--border"), terminating=get("card--terminating"), error=get("card--error"),
                selected=get("card--selected"), title=get("card--title"), text=base,
                muted=base + get("card--muted", partial=True),
            )
        return self._card_styles

    def refresh_card(self, card: PodCard) -> None:
        try:
            index = self.order.index(card)
        except ValueError:
            return
        if self.is_mounted:
            self.refresh(Region(0, index * CARD_HEIGHT, self.size.width, CARD_HEIGHT))

    def scroll_card_visible(self, card: PodCard) -> None:
        if card in self.order and self.is_mounted:
            index = self.order.index(card)
            self.scroll_to_region(Region(0, index * CARD_HEIGHT, self.size.width, CARD_HEIGHT), animate=False)

    def tick(self) -> None:
        """Once a second: repaint the cards whose age text changed (others are cached)."""
        for index, card in enumerate(self.order):
            if card.age_text() != card.shown_age:
                self.refresh(Region(0, index * CARD_HEIGHT, self.size.width, CARD_HEIGHT))

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = (self.size.width, self.card_styles())  # once per pass, not per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, styles = self._frame
        index, row = divmod(y, CARD_HEIGHT)
        if 0 <= index < len(self.order):
            lines = self.order[index].strips(width, styles)
            if row < len(lines):
                return lines[row]
        return Strip.blank(width)


class NodeHeader(TextLine):
    DEFAULT_CSS = """
    NodeHeader { height: 3; padding: 0 1; background: $boost; }
    """


class NodeColumn(Vertical):
    """One node: name, role, IP, Ready, the service-IP announcement mark; then its pod cards."""

    DEFAULT_CSS = """
    NodeColumn { width: 1fr; height: 1fr; margin-right: 1; }
    NodeColumn > VerticalScroll { height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, node: NodeView | None, *, key: str, clock: Callable[[], float]) -> None:
        super().__init__(id=f"node-{key}", classes="node-column")
        self.node = node
        self.key = key
        self.clock = clock
        self.announces = ""
        self.cards: dict[str, PodCard] = {}
        self.stack = PodStack()

    def compose(self) -> ComposeResult:
        yield NodeHeader(self._header_text())
        with VerticalScroll():
            yield self.stack

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
        if node.heartbeat:
            # the kubelet's last Lease renewal (every 10 s while it runs)
            age = max(0.0, self.clock() - node.heartbeat)
            text.append(f" ♥{age:.0f}s", style="dim" if age < 20 else "bold red")
        text.append("\n")
        if self.announces:
            text.append(f"★ announces {self.announces}", style="bold magenta")
        return text

    def tick_header(self) -> None:
        """Redraw the header: the heartbeat's age moves every second."""
        if self.is_mounted and self.node is not None and self.node.heartbeat:
            self.query_one(NodeHeader).update(self._header_text())

    def set_node(self, node: NodeView | None, announces: str) -> None:
        if node != self.node or announces != self.announces:
            self.node, self.announces = node, announces
            if self.is_mounted:
                self.query_one(NodeHeader).update(self._header_text())

    def on_mount(self) -> None:
        self.query_one(NodeHeader).update(self._header_text())

    def sync_pods(self, pods: list[PodView]) -> list[PodCard]:
        """Update cards in place; add new ones; drop the gone. Returns the new cards."""
        new: list[PodCard] = []
        cards: dict[str, PodCard] = {}
        for pod in pods:
            card = self.cards.get(pod.uid)
            if card is None:
                card = PodCard(pod, self.clock, self.stack)
                new.append(card)
            else:
                card.set_pod(pod)
            cards[pod.uid] = card
        self.cards = cards
        self.stack.set_cards(list(cards.values()))
        return new
