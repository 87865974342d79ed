"""A step indicator: which step runs, for how long, how far along (no animation)."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static


class StepProgress(Horizontal):
    """``● metallb  waiting for pods  12.4 s  [████░░░░] 2/4``."""

    DEFAULT_CSS = """
    StepProgress { height: 1; }
    StepProgress > #step-label { width: 1fr; }
    StepProgress > ProgressBar { width: auto; }
    """

    def __init__(self, steps: list[str], clock: Callable[[], float], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps = steps
        self.clock = clock
        self.current = ""
        self.message = "ready"
        self.state = "idle"  # idle / running / done / failed
        self.started = 0.0
        self.finished = 0.0
        self.done = 0  # spans of the listed steps finished (a step may run more than once)

    def compose(self) -> ComposeResult:
        yield Static(id="step-label")
        yield ProgressBar(total=len(self.steps), show_eta=False, id="step-bar")

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)
        self._render_label()

    def begin(self) -> None:
        self.started = self.clock()
        self.state = "running"
        self.done = 0
        self.query_one(ProgressBar).update(progress=0)
        self._render_label()

    def event(self, step: str, kind: str, message: str) -> None:
        if step in self.steps:
            self.current = step
        if kind == "done" and step in self.steps:
            self.done = min(self.done + 1, len(self.steps))
            self.query_one(ProgressBar).update(progress=self.done)
        if kind != "log":
            self.message = message
        if kind == "failed":
            self.state = "failed"
            self.finished = self.clock()
        self._render_label()

    def finish(self, ok: bool, message: str) -> None:
        self.state = "done" if ok else "failed"
        self.message = message
        self.finished = self.clock()
        if ok:
            self.query_one(ProgressBar).update(progress=len(self.steps))
        self._render_label()

    def _tick(self) -> None:
        if self.state == "running":
            self._render_label()

    def _render_label(self) -> None:
        mark, style = {
            "idle": ("○", "dim"),
            "running": ("●", "bold yellow"),
            "done": ("✓", "bold green"),
            "failed": ("✗", "bold red"),
        }[self.state]
        text = Text()
        text.append(f"{mark} ", style=style)
        if self.current:
            text.append(f"{self.current}  ", style="bold")
        text.append(self.message)
        if self.state != "idle":
            end = self.clock() if self.state == "running" else self.finished
            text.append(f"  {max(0.0, end - self.started):.1f} s", style="dim")
        self.query_one("#step-label", Static).update(text)
