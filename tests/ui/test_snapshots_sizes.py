"""The live view at 80x24, 100x30, 120x40 and 200x60 (issue 14's acceptance): under load,
with a pod terminating, after scaling to 6 with 2 killed, and 40 pods on 6 nodes. The
layout (pod cards, or the compact list) is the one the size picks by itself."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.ui.helpers import make_app, settle, until

SIZES = [(80, 24), (100, 30), (120, 40), (200, 60)]
SCENARIOS = ["load", "terminating", "six_two_killed", "forty_on_six"]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_live_at_size(snap_compare: Any, scenario: str, size: tuple[int, int]) -> None:
    app, fixed = make_app(stage="deployed", agents=5 if scenario == "forty_on_six" else 2)

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "LiveScreen")
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        if scenario == "terminating":
            await pilot.press("right", "k")
        elif scenario == "six_two_killed":
            fixed.scale_to(6)
            for name in [p.name for p in fixed.pods if not p.deleting][:2]:
                fixed.kill(name, force=False)
            fixed.finish_pending()
        elif scenario == "forty_on_six":
            fixed.scale_to(40)
            fixed.finish_pending()
        await settle(pilot)
        await pilot.pause(0.3)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
