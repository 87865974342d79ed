"""`k3dtui load` exit codes: 0, 3 when more than --max-error-share of the requests failed,
4 when the target stopped answering; the trail that tells a vanished target."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from loadservers import ServerThread, closed_port

from k3dtui.cli import main
from k3dtui.commands.load import Trail
from k3dtui.core.models import LoadSnapshot


@pytest.fixture(scope="module")
def servers() -> Iterator[ServerThread]:
    st = ServerThread()
    try:
        yield st
    finally:
        st.close()


def snap(elapsed: float, requests: int, responses: int) -> LoadSnapshot:
    return LoadSnapshot(running=True, mode="new-connection", concurrency=1, elapsed=elapsed,
                        requests=requests, responses=responses, rps=0.0)


def test_the_trail_tells_a_vanished_target() -> None:
    trail = Trail()
    for t, req, resp in ((0.5, 50, 50), (1.0, 100, 100), (1.5, 150, 150), (2.0, 200, 150), (2.5, 250, 150)):
        trail.add(snap(t, req, resp))
    assert trail.gone()  # requests and not one response over the last second
    trail.add(snap(3.0, 300, 151))
    assert not trail.gone()  # one answered
    short = Trail()
    short.add(snap(0.5, 10, 0))
    assert not short.gone()  # less than a second run: nothing to say


def test_more_errors_than_the_share_exit_3(servers: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    hold, dead = closed_port()
    try:
        app = servers.app("pod-a", "node-1")
        url = f"http://127.0.0.1:{servers.relay([app, dead])}/"  # about half the connections fail
        assert main(["load", "--url", url, "--requests", "200", "--new-connections", "--concurrency", "4"]) == 3
        err = capsys.readouterr().err
        assert "more than --max-error-share 5 %" in err and "Traceback" not in err
        assert main(["load", "--url", url, "--requests", "200", "--new-connections", "--concurrency", "4",
                     "--max-error-share", "90"]) == 0
    finally:
        hold.close()


def test_a_target_that_vanishes_mid_run_exits_4(servers: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    hold, dead = closed_port()
    try:
        app = servers.app("pod-b", "node-1")
        backends = [app]
        url = f"http://127.0.0.1:{servers.relay(backends)}/"
        timer = threading.Timer(1.0, lambda: backends.__setitem__(0, dead))  # the Service loses its pods
        timer.start()
        try:
            code = main(["load", "--url", url, "--duration", "3", "--new-connections", "--concurrency", "2",
                         "--max-error-share", "100"])
        finally:
            timer.cancel()
        err = capsys.readouterr().err
        assert code == 4, err
        assert "stopped answering: no response in the last 1 s of the run" in err
    finally:
        hold.close()


def test_a_bad_share_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--url", "http://127.0.0.1:9/", "--max-error-share", "150"]) == 2
    assert "--max-error-share must be between 0 and 100" in capsys.readouterr().err
