"""Pool choice and validation (pure ipaddress): /16, /24, /28, used IPs at the top, refusals."""

from __future__ import annotations

import ipaddress

import pytest

from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.pool import (
    NoRangeError,
    PoolChoice,
    PoolRangeError,
    suggest_range,
    validate_range,
)


def addrs(choice: PoolChoice) -> list[ipaddress.IPv4Address]:
    start, end = ipaddress.IPv4Address(choice.start), ipaddress.IPv4Address(choice.end)
    return [ipaddress.IPv4Address(i) for i in range(int(start), int(end) + 1)]


def test_default_on_slash16_is_the_conventional_block() -> None:
    choice = suggest_range("172.20.0.0/16", ["172.20.0.1", "172.20.0.2", "172.20.0.3"])
    assert choice.range == "172.20.255.200-172.20.255.250"
    assert choice.size == 51 == len(addrs(choice))
    assert choice.note == ""


def test_default_on_slash24() -> None:
    choice = suggest_range("10.9.8.0/24", ["10.9.8.1", "10.9.8.2"])
    assert choice.range == "10.9.8.200-10.9.8.250"
    assert choice.size == 51


def test_slash28_shrinks_and_stays_clear_of_everything() -> None:
    net = ipaddress.ip_network("10.0.0.16/28")
    used = ["10.0.0.17", "10.0.0.18", "10.0.0.19"]
    choice = suggest_range(str(net), used)
    got = addrs(choice)
    assert 1 <= choice.size < 51 and len(got) == choice.size
    assert "shrunk" in choice.note
    assert net.network_address not in got and net.broadcast_address not in got
    assert all(ipaddress.IPv4Address(u) not in got for u in used)
    assert all(ip in net for ip in got)
    assert got[-1] == ipaddress.IPv4Address("10.0.0.30"), "at the top of the host range"
    # half the free run is left below for new containers
    assert choice.size == 6


def test_full_slash28_is_refused_with_reason() -> None:
    used = [f"10.0.0.{i}" for i in range(17, 31)]  # all 14 hosts
    with pytest.raises(NoRangeError) as info:
        suggest_range("10.0.0.16/28", used)
    assert "no free run" in info.value.message and "10.0.0.16/28" in info.value.message
    assert info.value.hint
    assert info.value.exit_code == 1


def test_explicit_size_that_does_not_fit_is_refused() -> None:
    with pytest.raises(NoRangeError, match="no free run of 20 addresses"):
        suggest_range("10.0.0.16/28", ["10.0.0.17"], 20, min_size=20)


def test_used_ips_at_the_top_move_the_range_down() -> None:
    used = ["172.20.0.1", "172.20.255.230", "172.20.255.201"]
    choice = suggest_range("172.20.0.0/16", used)
    got = addrs(choice)
    assert choice.size == 51
    assert all(ipaddress.IPv4Address(u) not in got for u in used)
    assert got[-1] < ipaddress.IPv4Address("172.20.255.201")
    assert choice.range == "172.20.255.150-172.20.255.200"
    assert "moved down" in choice.note


def test_gateway_and_used_ips_at_the_top_of_slash24() -> None:
    used = ["10.9.8.254", "10.9.8.250", "10.9.8.1"]
    choice = suggest_range("10.9.8.0/24", used)
    assert choice.range == "10.9.8.199-10.9.8.249"


def test_used_outside_or_ipv6_are_ignored() -> None:
    choice = suggest_range("10.9.8.0/24", ["fd00::2", "192.168.1.1", "", "garbage", "10.9.8.3/24"])
    assert choice.range == "10.9.8.200-10.9.8.250"


def test_small_size_request() -> None:
    choice = suggest_range("10.9.8.0/24", ["10.9.8.1"], 5)
    assert choice.range == "10.9.8.246-10.9.8.250"


@pytest.mark.parametrize("subnet", ["fd00::/64", "not-a-net", "10.0.0.0/33"])
def test_bad_subnet(subnet: str) -> None:
    with pytest.raises(UsageError):
        suggest_range(subnet, [])


def test_slash31_has_nothing() -> None:
    with pytest.raises(NoRangeError):
        suggest_range("10.0.0.0/31", [])


def test_zero_size_is_usage_error() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        suggest_range("10.0.0.0/24", [], 0)


# ------------------------------------------------------------------ validation

NET = "172.20.0.0/16"
USED = ["172.20.0.1", "172.20.0.2", "172.20.0.3", "172.20.255.220"]


def test_valid_range_accepted() -> None:
    choice = validate_range(" 172.20.255.100-172.20.255.150 ", NET, USED)
    assert (choice.start, choice.end, choice.size) == ("172.20.255.100", "172.20.255.150", 51)


def test_single_address_is_a_range_of_one() -> None:
    assert validate_range("172.20.9.9", NET, USED).size == 1


@pytest.mark.parametrize(
    ("text", "needle", "malformed"),
    [
        ("172.20.255.250-172.20.255.200", "reversed", False),
        ("10.1.1.1-10.1.1.9", "not inside the subnet 172.20.0.0/16", False),
        ("172.20.255.200-172.20.255.230", "in use on the network (172.20.255.220)", False),
        ("172.20.0.1-172.20.0.10", "3 addresses in use", False),
        ("172.20.0.0-172.20.0.0", "network address", False),
        ("172.20.255.250-172.20.255.255", "broadcast address", False),
        ("fd00::10-fd00::20", "IPv6", True),
        ("172.20.255.200-", "not of the form A-B", True),
        ("172.20.255.200-172.20.255.300", "not an IP address", True),
        ("a-b-c", "not of the form A-B", True),
        ("", "not of the form A-B", True),
    ],
)
def test_bad_ranges(text: str, needle: str, malformed: bool) -> None:
    with pytest.raises(PoolRangeError) as info:
        validate_range(text, NET, USED)
    err = info.value
    assert needle in err.message
    assert err.malformed is malformed
    assert isinstance(err, UsageError) and err.exit_code == 2
    assert err.hint


def test_refusal_offers_a_range_that_fits() -> None:
    with pytest.raises(PoolRangeError) as info:
        validate_range("172.20.255.200-172.20.255.230", NET, USED)
    suggested = info.value.hint.rsplit("e.g. ", 1)[1]
    assert validate_range(suggested, NET, USED).size == 51


def test_suggested_ranges_always_validate() -> None:
    for subnet, used in [
        ("172.20.0.0/16", USED),
        ("10.9.8.0/24", ["10.9.8.1", "10.9.8.200"]),
        ("10.0.0.16/28", ["10.0.0.17", "10.0.0.29"]),
    ]:
        choice = suggest_range(subnet, used)
        assert validate_range(choice.range, subnet, used) == PoolChoice(
            choice.start, choice.end, choice.size
        )


def test_no_range_error_is_a_k3dtui_error() -> None:
    assert issubclass(NoRangeError, K3dtuiError)


# ------------------------------------------------------------------ `k3dtui pool --sim`


def test_pool_command_reads_the_simulated_network(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from k3dtui.cli import main
    from k3dtui.core import paths
    from k3dtui.core.network import Member, NetworkInfo

    net = NetworkInfo("k3d-demo", "172.30.0.0/16", "172.30.0.1",
                      (Member("k3d-demo-server-0", "172.30.0.2"), Member("k3d-demo-agent-0", "172.30.255.240")))
    (paths.cluster_dir("sim", "demo", create=True) / "network.json").write_text(json.dumps(net.to_json()))
    assert main(["pool", "--sim", "--name", "demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {
        "network": "k3d-demo", "subnet": "172.30.0.0/16", "gateway": "172.30.0.1",
        "used": ["172.30.0.1", "172.30.0.2", "172.30.255.240"],
        "range": "172.30.255.189-172.30.255.239", "size": 51,
    }
    assert main(["pool", "--sim", "--name", "demo", "--range", "172.30.255.230-172.30.255.245"]) == 1
    err = capsys.readouterr().err
    assert "172.30.255.240" in err and "e.g. 172.30.255.189-172.30.255.239" in err


def test_pool_command_without_a_simulated_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    from k3dtui.cli import main

    assert main(["pool", "--sim", "--name", "nothing-here"]) == 1
    err = capsys.readouterr().err
    assert "is not running" in err and "k3dtui up --sim" in err
