"""Node actions on k3d: `k3d node stop|start` against the stand-in `k3d` (real Docker
containers), and drain's Eviction calls as the API server receives them."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.fixtures import FakeK3d, fake_k3d  # noqa: F401

from k3dtui.cli import main
from k3dtui.core.k3d_provider import K3dProvider


async def test_stop_and_start_run_k3d_node_stop_and_start(fake_k3d: FakeK3d) -> None:  # noqa: F811
    name = f"t{fake_k3d.run_id}"
    provider = K3dProvider(name)
    await provider.create(1, 1, lambda _line: None)
    agent = f"k3d-{name}-agent-0"

    def running() -> bool:
        c = next(c for c in fake_k3d.containers(name) if c.name == agent)
        c.reload()
        return bool(c.status == "running")

    assert running()
    await provider.stop_node(agent, lambda _line: None)
    assert ["node", "stop", agent] in fake_k3d.argvs()
    assert not running()
    await provider.start_node(agent, lambda _line: None)
    assert fake_k3d.argvs()[-1] == ["node", "start", agent]
    assert running()


def test_the_cli_runs_the_provider_stop_and_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[tuple[str, str]] = []

    class Recorder(K3dProvider):
        async def stop_node(self, node: str, log: Any) -> None:
            calls.append(("stop", node))

        async def start_node(self, node: str, log: Any) -> None:
            calls.append(("start", node))

    monkeypatch.setattr("k3dtui.providers.select_provider", lambda name, sim: (Recorder(name), "k3d"))
    assert main(["node", "stop", "k3d-demo-agent-1", "--name", "demo"]) == 0
    assert main(["node", "start", "k3d-demo-agent-1", "--name", "demo", "--json"]) == 0
    assert main(["node", "stop", "k3d-demo-server-0", "--name", "demo", "--yes"]) == 0
    assert calls == [("stop", "k3d-demo-agent-1"), ("start", "k3d-demo-agent-1"), ("stop", "k3d-demo-server-0")]
    assert '"ok": true' in capsys.readouterr().out
