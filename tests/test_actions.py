"""Actions without a cluster: input checks, bounds, an unreachable API, the CLI's exit codes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from k3dtui.cli import main
from k3dtui.core.actions import ActionResult, parse_scale, valid_pod_name
from k3dtui.core.live import LiveCluster


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_kubeconfig(tmp_path: Path) -> tuple[Path, int]:
    port = closed_port()
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: sim}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
        "current-context: c\n"
    )
    return path, port


def test_parse_scale() -> None:
    assert parse_scale("5") == ("to", 5)
    assert parse_scale("0") == ("to", 0)
    assert parse_scale("+1") == ("by", 1)
    assert parse_scale("-2") == ("by", -2)
    for bad in ("abc", "", "1.5", "+", "--1", "5x", "1e3"):
        with pytest.raises(ValueError, match="not a replica count"):
            parse_scale(bad)


def test_valid_pod_name() -> None:
    assert valid_pod_name("fastapi-7d4b9c8f5d-x2k9p")
    for bad in ("", "Fastapi", "a_b", "-a", "a-", "x" * 254, "../etc"):
        assert not valid_pod_name(bad)


def test_scale_out_of_bounds_is_refused_before_any_request(tmp_path: Path) -> None:
    kubeconfig, _ = unreachable_kubeconfig(tmp_path)
    live = LiveCluster(kubeconfig, max_replicas=10)
    # The API is unreachable: a refusal that mentions the bounds proves nothing was sent.
    for n in (-1, 11):
        r = live.scale_to(n)
        assert r == ActionResult(False, f"refused: {n} replicas is outside 0..10; nothing changed")


def test_kill_refuses_a_malformed_name_without_a_request(tmp_path: Path) -> None:
    kubeconfig, _ = unreachable_kubeconfig(tmp_path)
    r = LiveCluster(kubeconfig).kill("../../nodes/x")
    assert not r.ok and "not a valid pod name" in r.message


def test_unreachable_api_gives_a_clear_result(tmp_path: Path) -> None:
    kubeconfig, port = unreachable_kubeconfig(tmp_path)
    live = LiveCluster(kubeconfig)
    for result in (live.kill("fastapi-abc-aaaaa"), live.kill_random(), live.scale_to(3), live.scale_by(1)):
        assert not result.ok
        assert "connection refused" in result.message
        assert f"127.0.0.1:{port}" in result.message
        assert "\n" not in result.message


def test_bad_kubeconfig_gives_a_clear_result(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    r = LiveCluster(missing).scale_to(2)
    assert not r.ok and "kubeconfig" in r.message and str(missing) in r.message


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["scale", "abc"], "not a replica count"),
        (["scale", "1.5"], "not a replica count"),
        (["scale", "51"], "above the limit of 50"),
        (["scale", "7", "--max-replicas", "5"], "above the limit of 5"),
        (["scale", "99999", "--max-replicas", "100000"], "--max-replicas 100000 is above k3dtui's ceiling of 2000"),
        (["kill"], "name the pod to kill"),
        (["kill", "fastapi-x", "--random"], "either a POD name or --random"),
        (["kill", "Not_A_Pod"], "not a valid pod name"),
    ],
)
def test_cli_malformed_input_exits_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--sim"]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_cli_watch_rejects_a_non_positive_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--sim", "--duration", "0"]) == 2
    assert "--duration must be more than 0" in capsys.readouterr().err


def test_start_with_a_bad_kubeconfig_raises_one_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    import threading

    from k3dtui.core.errors import K3dtuiError

    before = threading.active_count()
    live = LiveCluster(tmp_path / "missing.yaml")
    with pytest.raises(K3dtuiError, match="cannot use the kubeconfig"):
        live.start(lambda snap: None)
    assert threading.active_count() == before and live.watchers == ()
