"""The attached live view's look, from fixed data (the header: attached · context · ns · app, READ-ONLY,
no changing keys in the footer). Update after a deliberate visual change: ``--snapshot-update``."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from k3dtui.ui.backend import HeaderInfo
from tests.ui.helpers import make_app, settle, until

WIDE = (120, 40)


def test_live_attached_read_only(snap_compare: Any) -> None:
    app, _ = make_app(stage="deployed", read_only=True)
    app.header_info = HeaderInfo(provider="attached", name="kind-kind", context="kind-kind", reason="attached",
                                 attached=True, namespace="shop", app_text="deployment/web (app=web) svc/web")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "LiveScreen")
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
