"""The header every screen shows: provider (k3d or SIMULATED, unmistakably), cluster, context."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from k3dtui.ui.backend import HeaderInfo


class ProviderHeader(Widget):
    """One line: ``k3dtui ▌SIMULATED▐ cluster … context … [read-only]``."""

    DEFAULT_CSS = """
    ProviderHeader {
        dock: top;
        height: 1;
        background: $panel;
    }
    """

    info: reactive[HeaderInfo | None] = reactive(None)
    read_only: reactive[bool] = reactive(False)
    page: reactive[str] = reactive("")

    def __init__(self, info: HeaderInfo | None = None, *, read_only: bool = False, page: str = "") -> None:
        super().__init__()
        self.set_reactive(ProviderHeader.info, info)
        self.set_reactive(ProviderHeader.read_only, read_only)
        self.set_reactive(ProviderHeader.page, page)

    def render(self) -> Text:
        full = self._line(compact=False)
        if full.cell_len <= self.size.width or self.size.width == 0:
            return full
        compact = self._line(compact=True)
        if compact.cell_len <= self.size.width:
            return compact
        return self._line(compact=True, context=False)  # the page name stays; the context goes

    def _attached(self, text: Text, info: HeaderInfo, *, compact: bool, app: bool) -> Text:
        """``attached · <context> · ns <namespace> · <app>`` and read-only or allow-changes."""
        text.append("attached", style="bold black on dark_orange")
        text.append(" · ", style="dim")
        text.append(info.context, style="bold")
        text.append(" · ns ", style="dim")
        text.append(info.namespace, style="bold")
        if app:
            text.append(" · ", style="dim")
            text.append(info.app_text, style="bold")
        text.append("  ")
        if self.read_only:
            text.append(" READ-ONLY ", style="bold black on yellow")
        else:
            text.append(" ALLOW-CHANGES ", style="bold white on red")
        if self.page:
            text.append(f" │ {self.page}" if compact else f"  │ {self.page}", style="bold" if compact else "dim")
        return text

    def _line(self, *, compact: bool, context: bool = True) -> Text:
        text = Text(" k3dtui ", style="bold")
        info = self.info
        if info is None:
            text.append(" … ", style="dim")
            return text
        if info.attached:
            return self._attached(text, info, compact=compact, app=context)
        if info.provider == "sim":
            badge = " SIMULATED " if compact else " SIMULATED CLUSTER "
            text.append(badge, style="bold white on dark_magenta")
        else:
            text.append(f" {info.provider} ", style="bold black on green3")
        text.append(" " if compact else "   cluster ", style="dim")
        text.append(info.name, style="bold")
        if context:
            text.append(" ctx " if compact else "  context ", style="dim")
            text.append(info.context, style="bold")
        if self.read_only:
            text.append("  ")
            text.append(" READ-ONLY ", style="bold black on yellow")
        if self.page:
            text.append(f" │ {self.page}" if compact else f"  │ {self.page}", style="bold" if compact else "dim")
        return text
