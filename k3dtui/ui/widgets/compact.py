"""The compact live layout: one line per pod under its node, nodes flowing into as many
columns as the width allows; dead pods fold into one count per node. One widget drawn with
the line API (a thousand pods are a thousand short lines, only the visible ones drawn)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from k3dtui.core.models import NodeView
from k3dtui.ui.widgets.pods import PodCard, short_node_name, status_style

COLUMN_WIDTH = 38  # the narrowest a column gets before another one is added
SHORT_STATUS = {"ContainerCreating": "Creating", "PodInitializing": "Initializing"}


@dataclass
class NodeBlock:
    node: NodeView | None  # None: pods waiting for a node
    announces: str
    cards: list[PodCard]


def _pod_suffix(name: str) -> str:
    return name.rsplit("-", 1)[-1]


class CompactPods(ScrollView, can_focus=False):
    DEFAULT_CSS = """
    CompactPods { height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.blocks: list[NodeBlock] = []
        self._rows: list[list[tuple[str, object]]] = []  # per column: ("node"|"pod"|"fold"|"gap", payload)
        self._columns = 1
        self._cache: dict[tuple[object, ...], Strip] = {}

    # -- data ---------------------------------------------------------------------------
    def set_blocks(self, blocks: list[NodeBlock]) -> None:
        self.blocks = blocks
        self._layout()

    def _layout(self) -> None:
        width = self.size.width or 80
        entries: list[list[tuple[str, object]]] = []
        for block in self.blocks:
            rows: list[tuple[str, object]] = [("node", block)]
            dead = 0
            for card in block.cards:
                if card.pod.deleting:
                    dead += 1
                else:
                    rows.append(("pod", card))
            if dead:
                rows.append(("fold", dead))
            entries.append(rows)
        columns = max(1, min(len(entries) or 1, width // COLUMN_WIDTH))
        total = sum(len(e) + 1 for e in entries)
        target = -(-total // columns)
        cols: list[list[tuple[str, object]]] = [[] for _ in range(columns)]
        index = 0
        for rows in entries:
            if cols[index] and len(cols[index]) + len(rows) > target and index < columns - 1:
                index += 1
            if cols[index]:
                cols[index].append(("gap", None))
            cols[index].extend(rows)
        self._rows = cols
        self._columns = columns
        height = max((len(c) for c in cols), default=0)
        self.virtual_size = Size(width, height)
        self.refresh()

    def on_resize(self) -> None:
        self._layout()

    def row_of(self, card: PodCard) -> int | None:
        for col in self._rows:
            for y, (kind, payload) in enumerate(col):
                if kind == "pod" and payload is card:
                    return y
        return None

    def scroll_card_visible(self, card: PodCard) -> None:
        y = self.row_of(card)
        if y is not None:
            top = round(self.scroll_offset.y)
            if y < top:
                self.scroll_to(y=y, animate=False)
            elif y >= top + self.size.height:
                self.scroll_to(y=y - self.size.height + 1, animate=False)

    # -- drawing ------------------------------------------------------------------------
    def _cell(self, kind: str, payload: object, width: int) -> Strip:
        if kind == "pod":
            assert isinstance(payload, PodCard)
            card = payload
            p = card.pod
            selected = card.has_class("-selected")
            key: tuple[object, ...] = ("pod", p, card.served, round(card.share, 2), selected, width)
        elif kind == "node":
            assert isinstance(payload, NodeBlock)
            block = payload
            live = sum(1 for c in block.cards if not c.pod.deleting)
            key = ("node", block.node, block.announces, live, width)
        else:
            key = (kind, payload, width)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        text = Text(no_wrap=True, overflow="ellipsis")
        if kind == "pod":
            mark = "▶ " if selected else "  "
            text.append(mark, style="bold cyan" if selected else "")
            text.append(f"{_pod_suffix(p.name):<5}", style="bold reverse" if selected else "bold")
            status = p.status
            text.append(f" {SHORT_STATUS.get(status, status)[:12]:<12}", style=status_style(status))
            text.append(f" {p.ready_text:<3}", style="dim")
            text.append(f" {card.served:>7,}", style="bold" if card.served else "dim")
            text.append(f" {card.share:>4.0%}" if card.served else "     ", style="")
            if p.restarts:
                text.append(f" ↻{p.restarts}", style="bold red")
            text.append(f" {p.ip or 'no IP'}", style="dim")
        elif kind == "node":
            node = block.node
            if node is None:
                text.append("unscheduled", style="bold yellow")
                text.append(f"  {live} waiting", style="dim")
            else:
                text.append(short_node_name(node.name), style="bold underline")
                text.append(" Ready" if node.ready else " NotReady", style="green" if node.ready else "bold red")
                text.append(f" {node.ip or '—'} · {live} pod{'s' if live != 1 else ''}", style="dim")
                if block.announces:
                    text.append(f" ★ {block.announces}", style="bold magenta")
        elif kind == "fold":
            text.append(f"  + {payload} terminating", style="grey50")
        text.truncate(width, overflow="ellipsis", pad=True)
        strip = Strip(list(text.render(self.app.console, end="")), width).crop_extend(0, width, None)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        row = y + round(self.scroll_offset.y)
        columns = self._columns
        col_width = max(1, (width - (columns - 1)) // columns)
        parts: list[Strip] = []
        for i, col in enumerate(self._rows):
            if i:
                parts.append(Strip([Segment("│", Style(color="grey35"))], 1))
            if row < len(col) and col[row][0] != "gap":
                parts.append(self._cell(col[row][0], col[row][1], col_width))
            else:
                parts.append(Strip.blank(col_width))
        strip = Strip.join(parts)
        return strip.crop_extend(0, width, self.rich_style)
