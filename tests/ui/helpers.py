"""Shared bits for the UI tests: an app over the fixed-data backend, and a settle helper."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from k3dtui.ui.app import K3dtuiApp
from tests.ui.fixed import FixedBackend


def make_app(**backend: Any) -> tuple[K3dtuiApp, FixedBackend]:
    fixed = FixedBackend(**backend)
    return K3dtuiApp(fixed), fixed


async def settle(pilot: Pilot[Any], rounds: int = 2) -> None:
    """Let thread workers finish and their messages land."""
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    still_cursor(pilot.app)
    await pilot.pause()


def still_cursor(app: Any) -> None:
    """Input cursors blink on a timer; snapshots want them still (and visible)."""
    from textual.widgets import Input

    for screen in app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False


async def until(pilot: Pilot[Any], predicate: Any, timeout: float = 5.0) -> None:
    """Pause until ``predicate()`` holds (or fail after ``timeout`` seconds)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.02)
