"""The k3dtui Textual app: start routing, screens, the palette, and the one place worker
failures become a visible message."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from k3dtui.ui.backend import Backend, HeaderInfo, problem_text
from k3dtui.ui.screens.base import K3dScreen, action_name


class StartScreen(K3dScreen):
    """Shown while k3dtui finds out how far the cluster got."""

    DEFAULT_CSS = """
    StartScreen #looking { width: auto; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield self.header_widget()
        with Middle(), Center():
            yield Static(f"looking for cluster '{self.k3d.header_info.name}'…", id="looking")
        yield Footer(compact=True)


class K3dtuiApp(App[int]):
    """Attributes down (backend, header info, read-only), messages up (screens → app)."""

    TITLE = "k3dtui"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        # the footer always says how to quit; ctrl+q works everywhere, q wherever no field
        # has the focus (a field takes the letter q as text, so the footer names ctrl+q)
        Binding("ctrl+q", "quit", "quit", priority=True, id="app.quit", tooltip="Leave k3dtui (the cluster keeps running)"),
        Binding("q", "quit", "quit", show=False, id="app.quit_q", tooltip="Leave k3dtui (the cluster keeps running)"),
    ]

    @dataclass
    class StageDetected(Message):
        stage: str

    def __init__(self, backend: Backend, *, detect: bool = True) -> None:
        super().__init__()
        self.backend = backend
        self.read_only = backend.read_only
        self.header_info: HeaderInfo = backend.header()
        self.detect = detect
        self.failures: list[tuple[str, str, str]] = []

    # -- start -------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(StartScreen())
        if self.detect:
            self.run_io(self._detect, name="detect stage", group="start")

    def _detect(self) -> None:
        self.post_message(self.StageDetected(self.backend.detect_stage()))

    def on_k3dtui_app_stage_detected(self, message: StageDetected) -> None:
        stage = message.stage
        if stage == "deployed":
            self.open_live()
        elif stage in ("cluster", "metallb", "stopped") and not self.read_only:
            from k3dtui.ui.screens.modals import ResumeScreen

            def chosen(choice: str | None) -> None:
                if choice == "finish":
                    if stage == "stopped":
                        self.open_setup()
                    else:
                        self.open_pool()
                else:
                    self.open_setup()

            self.push_screen(ResumeScreen(self.header_info.name, stage), chosen)
        else:
            self.open_setup()

    def open_setup(self) -> None:
        from k3dtui.ui.screens.setup import SetupScreen

        self.switch_screen(SetupScreen())

    def open_pool(self) -> None:
        from k3dtui.ui.screens.pool import PoolScreen

        self.switch_screen(PoolScreen())

    def open_deploy(self, *, deployed: bool = False) -> None:
        """``deployed``: the app runs already (from the live view): the way back is offered."""
        from k3dtui.ui.screens.deploy import DeployScreen

        self.switch_screen(DeployScreen(deployed=deployed))

    def open_live(self) -> None:
        from k3dtui.ui.screens.live import LiveScreen

        self.switch_screen(LiveScreen())

    # messages up from the screens
    def on_setup_screen_done(self, message: Message) -> None:
        self.open_pool()

    def on_pool_screen_done(self, message: Message) -> None:
        self.open_deploy()

    def on_deploy_screen_done(self, message: Message) -> None:
        self.open_live()

    def on_live_screen_cluster_deleted(self, message: Message) -> None:
        self.open_setup()

    def set_header(self, info: HeaderInfo) -> None:
        self.header_info = info
        screen = self.screen
        if isinstance(screen, K3dScreen):
            screen.update_header(info)

    # -- workers: all I/O, and the one place failures become visible --------------------
    def run_io(
        self, fn: Callable[[], Any], *, name: str, group: str = "io", exclusive: bool = False
    ) -> Worker[Any]:
        return self.run_worker(
            fn, name=name, group=group, exclusive=exclusive, thread=True, exit_on_error=False
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.report_failure(event.worker.name or "a task", event.worker.error)

    def report_failure(self, what: str, exc: BaseException) -> None:
        message, hint = problem_text(exc)
        self.failures.append((what, message, hint))
        body = message + (f"\nWhat to do: {hint}" if hint else "")
        self.notify(body, title=f"{what} failed", severity="error", timeout=20)
        for screen in self.screen_stack:
            if isinstance(screen, K3dScreen):
                screen.show_failure(what, message, hint)
                break

    # -- the command palette: every action of the screen, minus what read-only forbids --
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        if not isinstance(screen, K3dScreen):
            yield from super().get_system_commands(screen)
            return
        has_help = any(isinstance(b, Binding) and action_name(b.action) == "help" for b in screen.BINDINGS)
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                yield SystemCommand("Quit", "Leave k3dtui (the cluster keeps running)  [ctrl+q]", command.callback)
            elif command.title == "Keys" and has_help:
                continue  # the screen's own help lists every key: help once
            else:
                yield command
        seen: set[str] = set()
        for binding in screen.BINDINGS:
            if not isinstance(binding, Binding):
                continue
            name = action_name(binding.action)
            if binding.action in seen or screen.check_action(binding.action, ()) is not True:
                continue
            seen.add(binding.action)
            title = screen.COMMAND_TITLES.get(binding.action) or screen.COMMAND_TITLES.get(name)
            key = binding.key_display or binding.key
            yield SystemCommand(
                title or binding.description.capitalize(),
                f"{binding.tooltip}  [{key}]",
                partial(screen.run_action, binding.action),
            )
        for action, title, help_text in screen.PALETTE_ONLY:
            if action in seen:
                continue
            if screen.check_action(action, ()) is True:
                yield SystemCommand(title, help_text, partial(screen.run_action, action))

    def on_unmount(self) -> None:
        self.backend.close()


def run_tui(args: argparse.Namespace) -> int:
    """Open the TUI for ``args.name`` (``--sim`` forces the simulated cluster)."""
    from k3dtui.ui.backend import CoreBackend

    backend = CoreBackend(
        getattr(args, "name", "simple-app-cluster"),
        force_sim=bool(getattr(args, "sim", False)),
        read_only=bool(getattr(args, "read_only", False)),
    )
    return _run(backend)


def _run(backend: Any) -> int:
    app = K3dtuiApp(backend)
    try:
        app.run()
    finally:
        backend.close()
    return int(app.return_code or 0)


def run_attached(attached: Any, *, read_only: bool = False, identity: str = "") -> int:
    """``k3dtui attach``: the live view on another cluster's app, no setup screens."""
    from k3dtui.ui.backend import AttachedBackend

    return _run(AttachedBackend(attached, read_only=read_only, identity=identity))
