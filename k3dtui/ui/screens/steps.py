"""A screen that runs pipeline steps: their events stream into a log and a progress line."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import RichLog

from k3dtui.core.session import PipelineEvent
from k3dtui.ui.screens.base import K3dScreen
from k3dtui.ui.widgets.progress import StepProgress

KIND_STYLE = {
    "start": "bold",
    "log": "",
    "progress": "cyan",
    "done": "bold green",
    "failed": "bold red",
    "warning": "bold yellow",
}


class PipelineScreen(K3dScreen):
    STEPS: list[str] = []
    SPANS: list[str] = []
    """The event steps the screen's work reports, in order, once per span (the progress
    bar's units); empty: ``STEPS``."""

    @dataclass
    class Step(Message):
        """A pipeline event, posted from the worker thread that runs the step."""

        event: PipelineEvent

    def emit(self, event: PipelineEvent) -> None:
        """Thread-safe: hand a pipeline event to this screen."""
        self.post_message(self.Step(event))

    def progress(self) -> StepProgress:
        return StepProgress(self.SPANS or self.STEPS, self.backend.now, id="progress")

    def log_widget(self) -> RichLog:
        return RichLog(id="log", wrap=False, markup=False, max_lines=2000)

    def write_log(self, text: str | Text, style: str = "") -> None:
        self.query_one("#log", RichLog).write(Text(text, style=style) if isinstance(text, str) else text)

    def on_pipeline_screen_step(self, message: Step) -> None:
        e = message.event
        prefix = "" if e.kind == "log" else f"[{e.step}] "
        self.write_log(prefix + e.message, KIND_STYLE.get(e.kind, ""))
        self.query_one(StepProgress).event(e.step, e.kind, e.message)
        self.step_event(e)

    def step_event(self, event: PipelineEvent) -> None:
        """Screens refine (readiness, external IP...)."""

    @dataclass
    class Failed(Message):
        what: str
        message: str
        hint: str

    def show_failure(self, what: str, message: str, hint: str) -> None:
        # through this screen's queue, so it lands after the step events the worker posted
        self.post_message(self.Failed(what, message, hint))

    def on_pipeline_screen_failed(self, failed: Failed) -> None:
        what, message, hint = failed.what, failed.message, failed.hint
        self.write_log(f"{what} failed: {message}", "bold red")
        if hint:
            self.write_log(f"  what to do: {hint}", "yellow")
        self.query_one(StepProgress).finish(False, f"{what} failed: {message}")
        self.failed(what)

    def failed(self, what: str) -> None:
        """Screens refine: re-enable their buttons."""
