"""The live view after the cluster restarted on a new API server: "reconnecting" while the
watches are away, then "reconnected to a new API server" once they listed from the new one."""

from __future__ import annotations

import dataclasses

from tests.ui.helpers import make_app, settle
from tests.ui.test_behaviour import to_live


async def test_the_live_view_says_it_reconnected_to_a_new_api_server() -> None:
    app, fixed = make_app(stage="deployed")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_live(pilot)
        status = screen.query_one("#live-status")
        assert "reconnected" not in str(status.render())
        fixed.set_connected(False)
        await settle(pilot)
        assert "reconnecting" in str(status.render())
        plain = fixed.snapshot
        fixed.snapshot = lambda: dataclasses.replace(plain(), server_generation=1)  # type: ignore[method-assign]
        fixed.set_connected(True)
        await settle(pilot)
        rendered = str(status.render())
        assert "reconnected to a new API server" in rendered and "reconnecting" not in rendered
        assert not screen.query_one("#nodes").has_class("-disconnected")
