"""A text widget that repaints without a layout pass (its size comes from CSS, never from
its content), for lines that change many times a second."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    DEFAULT_CSS = """
    TextLine { height: 1; }
    """

    def __init__(self, text: Text | str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = Text(text) if isinstance(text, str) else text

    def set(self, text: Text | str) -> None:
        new = Text(text) if isinstance(text, str) else text
        if new != self._text:
            self._text = new
            self.refresh()

    # Static-compatible spelling
    update = set

    def render(self) -> Text:
        return self._text
