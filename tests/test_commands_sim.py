"""`k3dtui sim ...` reaches the simulated cluster through the provider layer only."""

from __future__ import annotations

import pytest

from k3dtui.cli import main


def test_sim_serve_runs_through_providers(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, int, int]] = []

    def serve(name: str, servers: int, agents: int) -> int:
        calls.append((name, servers, agents))
        return 0

    monkeypatch.setattr("k3dtui.providers.serve_sim", serve)
    assert main(["sim", "serve", "--name", "demo", "--agents", "3"]) == 0
    assert calls == [("demo", 1, 3)]
    assert "serving the simulated cluster 'demo'" in capsys.readouterr().out


def test_sim_status_and_stop_of_a_cluster_that_is_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "status", "--name", "demo"]) == 1
    assert capsys.readouterr().out.strip() == "simulated cluster 'demo': not running"
    assert main(["sim", "stop", "--name", "demo"]) == 1
    err = capsys.readouterr().err
    assert "the simulated cluster 'demo' is not running" in err and "k3dtui sim start --name demo" in err
    assert "Traceback" not in err
