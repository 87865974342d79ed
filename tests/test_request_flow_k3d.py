"""The request-flow commands on the k3d path, against the `k3d` stand-in (tests/fakes): its
nodes run no API server, so what can be checked is that `policy` finds the cluster through
k3d and fails in one line (exit 1, no traceback) instead of changing anything, and that
bad input is refused before k3d is asked anything."""

from __future__ import annotations

import time

import pytest
from fakes.fixtures import FakeK3d, fake_k3d  # noqa: F401

from k3dtui.cli import main
from k3dtui.core.k3d_provider import K3dProvider


@pytest.mark.docker
async def test_policy_on_a_k3d_cluster_without_an_api_fails_in_one_line(
    fake_k3d: FakeK3d, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    import asyncio

    name = f"t{fake_k3d.run_id}"
    await K3dProvider(name).create(1, 1, lambda _: None)
    capsys.readouterr()
    t0 = time.monotonic()
    code = await asyncio.to_thread(main, ["policy", "local", "--name", name, "--json"])
    out, err = capsys.readouterr()
    assert time.monotonic() - t0 < 60
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert any(a[:2] == ["kubeconfig", "get"] for a in fake_k3d.argvs())  # found through k3d
    import json

    data = json.loads(out)
    assert data["ok"] is False and data["traffic_policy"] is None
    assert data["message"].startswith("could not set the traffic policy of service fastapi-service")


def test_policy_bad_input_is_refused_before_any_k3d_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "both", "--name", "whatever"]) == 2
    err = capsys.readouterr().err
    assert "'both' is not a traffic policy: use cluster or local" in err and "Traceback" not in err
