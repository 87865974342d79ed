"""What every k3dtui screen shares: the header, read-only gating, palette titles, I/O helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Button, Input
from textual.worker import Worker

from k3dtui.ui.backend import Backend, HeaderInfo
from k3dtui.ui.widgets.header import ProviderHeader

if TYPE_CHECKING:
    from k3dtui.ui.app import K3dtuiApp


def action_name(action: str) -> str:
    """``concurrency(1)`` → ``concurrency``."""
    return action.split("(", 1)[0]


# never on an attached cluster (not k3dtui's): power its nodes, delete it, open the setup screens
ATTACHED_NEVER = frozenset({"stop_node", "start_node", "delete_cluster", "open_screen"})


class K3dScreen(Screen[None]):
    """Base screen: ``CHANGING`` actions are hidden and refused under ``--read-only``."""

    PAGE: ClassVar[str] = ""
    AUTO_FOCUS = None  # screens focus their first action themselves (focus_first_action), never a field
    BINDINGS = [
        Binding("escape", "back", "back", show=False, id="screen.back", tooltip="Leave the field, or go back a screen"),
    ]
    CHANGING: ClassVar[frozenset[str]] = frozenset()
    COMMAND_TITLES: ClassVar[dict[str, str]] = {}
    """Palette titles per action name (bindings without one use their description)."""
    PALETTE_ONLY: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    """(action, title, help) offered only in the command palette."""

    @property
    def k3d(self) -> K3dtuiApp:
        return cast("K3dtuiApp", self.app)

    @property
    def backend(self) -> Backend:
        return self.k3d.backend

    def focus_first_action(self) -> None:
        """Focus the first enabled, visible button (where a newcomer's first action is)."""
        for button in self.query(Button):
            if button.focusable and button.display and not button.disabled:
                button.focus(scroll_visible=False)  # the fields above it stay in view
                return
        self.set_focus(None)

    def action_back(self) -> None:
        """``esc``: out of a field first (so q quits again), else back a screen."""
        if isinstance(self.focused, Input):
            self.focus_first_action()
            return
        self.go_back()

    def go_back(self) -> None:
        """Screens that have a previous one open it (setup has none)."""

    def header_widget(self) -> ProviderHeader:
        return ProviderHeader(self.k3d.header_info, read_only=self.k3d.read_only, page=self.PAGE)

    def on_screen_resume(self) -> None:
        self.update_header(self.k3d.header_info)

    def update_header(self, info: HeaderInfo) -> None:
        for header in self.query(ProviderHeader):
            header.info = info

    def allowed(self, action: str) -> bool:
        name = action_name(action)
        if self.k3d.header_info.attached and name in ATTACHED_NEVER:
            return False
        return not (self.k3d.read_only and name in self.CHANGING)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.allowed(action):
            return False
        return self.action_state(action_name(action))

    def action_state(self, action: str) -> bool | None:
        """Screens refine: False hides a binding, None shows it greyed."""
        return True

    def run_io(self, fn: Callable[[], Any], *, name: str, exclusive: bool = False) -> Worker[Any]:
        """Run blocking I/O on a thread; a failure becomes a visible message (see ``K3dtuiApp``)."""
        return self.k3d.run_io(fn, name=name, group=f"{type(self).__name__}.{name}", exclusive=exclusive)

    def show_failure(self, what: str, message: str, hint: str) -> None:
        """Called (on the UI thread) when a worker of this app failed; screens show it in place."""
