"""Small modal screens: confirm, scale to a number, help, resume a partial setup."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from k3dtui.core.errors import K3dtuiError


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no, with the confirm button naming what will happen."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel", id="confirm.cancel", tooltip="Close without doing anything")]

    def __init__(self, title: str, message: str, confirm: str) -> None:
        super().__init__(classes="modal")
        self.title_text, self.message, self.confirm = title, message, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="dialog-title")
            yield Static(self.message, id="dialog-message")
            with Horizontal(id="dialog-buttons"):
                yield Button(self.confirm, variant="error", id="yes")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_cancel(self) -> None:
        self.dismiss(False)


class ScaleScreen(ModalScreen[int | None]):
    """Ask for a replica count; the reason for a refusal shows under the field."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel", id="scale.cancel", tooltip="Close without scaling")]

    def __init__(self, current: int, validate: Callable[[int], None], deployment: str) -> None:
        super().__init__(classes="modal")
        self.deployment = deployment
        self.current = current
        self.validate = validate

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Scale deployment/{self.deployment}", id="dialog-title")
            yield Input(str(self.current), type="integer", id="replicas", placeholder="replicas")
            yield Static("", id="replicas-error", classes="field-error")
            yield Static("enter to scale, escape to cancel", classes="hint")

    def _value(self) -> int | None:
        text = self.query_one("#replicas", Input).value.strip()
        error = self.query_one("#replicas-error", Static)
        try:
            value = int(text)
            self.validate(value)
        except ValueError:
            error.update("replicas must be a whole number, e.g. 5")
            return None
        except K3dtuiError as exc:
            error.update(exc.message + (f" — {exc.hint}" if exc.hint else ""))
            return None
        error.update("")
        return value

    def on_input_changed(self, event: Input.Changed) -> None:
        self._value()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = self._value()
        if value is not None:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key of the screen it was opened from, with what it does."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("escape", "close", "close", id="help.close", tooltip="Close the help"),
        Binding("question_mark", "close", "close", show=False, id="help.close2", tooltip="Close the help"),
    ]

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__(classes="modal")
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        text = Text()
        for i, (key, what) in enumerate(self.keys):
            if i:
                text.append("\n")
            text.append(f"{key:>10}  ", style="bold")
            text.append(what)
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", id="dialog-title")
            yield Static(text, id="help-keys")
            yield Static("escape or ? closes this help", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


class ResumeScreen(ModalScreen[str]):
    """The cluster exists but the setup did not finish: finish it, or go to the setup screen."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "setup", "setup", id="resume.setup", tooltip="Go to the setup screen")]

    def __init__(self, name: str, stage: str) -> None:
        super().__init__(classes="modal")
        self.cluster, self.stage = name, stage

    def compose(self) -> ComposeResult:
        done = {
            "stopped": "exists but is stopped",
            "cluster": "is running, without MetalLB or the app",
            "metallb": "has MetalLB, but the app is not deployed",
        }.get(self.stage, f"is at stage {self.stage}")
        with Vertical(id="dialog"):
            yield Label("Finish the setup?", id="dialog-title")
            yield Static(f"Cluster '{self.cluster}' {done}.", id="dialog-message")
            with Horizontal(id="dialog-buttons"):
                yield Button("Finish the setup", variant="primary", id="finish")
                yield Button("Setup screen", id="setup")

    def on_mount(self) -> None:
        self.query_one("#finish", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "setup")

    def action_setup(self) -> None:
        self.dismiss("setup")
