"""ClusterSpec validation: bad names and counts are refused with one line naming the fix."""

from __future__ import annotations

import pytest

from k3dtui.core.errors import UsageError
from k3dtui.core.spec import ClusterSpec, validate_name, validate_spec


@pytest.mark.parametrize(
    "name", ["simple-app-cluster", "a", "demo-1", "x" * 32, "0abc"]
)
def test_good_names_pass(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("MyCluster", "capital letters"),
        ("x" * 33, "at most 32"),
        ("", "empty"),
        ("-lead", "not a valid host name"),
        ("trail-", "not a valid host name"),
        ("under_score", "not a valid host name"),
        ("sp ace", "not a valid host name"),
        ("a..b", "not a valid host name"),
        ("web.prod", "no dots"),
        ("../x", "no paths"),
        ("/tmp/x", "no paths"),
    ],
)
def test_bad_names_refused_with_reason(name: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_name(name)
    err = info.value
    assert needle in err.message
    assert err.hint, "every refusal names the fix"
    assert "\n" not in str(err)
    assert err.exit_code == 2


def test_capitals_suggest_lower_case() -> None:
    with pytest.raises(UsageError) as info:
        validate_name("MyCluster")
    assert "--name mycluster" in info.value.hint


def test_defaults_are_valid() -> None:
    spec = ClusterSpec()
    assert (spec.name, spec.servers, spec.agents, spec.replicas, spec.pool) == (
        "simple-app-cluster", 1, 2, 3, None,
    )
    validate_spec(spec)
    assert spec.network == "k3d-simple-app-cluster"
    assert spec.context == "k3d-simple-app-cluster"


@pytest.mark.parametrize(
    ("spec", "needle", "fix"),
    [
        (ClusterSpec(servers=0), "servers must be at least 1", "--servers 1"),
        (ClusterSpec(agents=-1), "agents must be at least 0", "--agents 0"),
        (ClusterSpec(replicas=-2), "replicas must be at least 0", "--replicas 0"),
        (ClusterSpec(replicas=51), "replicas must be at most 50", "--replicas 50"),
        (ClusterSpec(name="Bad"), "capital", "--name bad"),
        (ClusterSpec(pool="172.18.255.250-172.18.255.200"), "reversed", "172.18.255.200-"),
        (ClusterSpec(pool="fd00::1-fd00::9"), "IPv6", "IPv4"),
        (ClusterSpec(pool="nonsense"), "not an IP address", "two IPv4"),
    ],
)
def test_bad_specs_refused(spec: ClusterSpec, needle: str, fix: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_spec(spec)
    assert needle in info.value.message
    assert fix in info.value.hint


def test_replica_bounds_inclusive() -> None:
    validate_spec(ClusterSpec(replicas=0, agents=0))
    validate_spec(ClusterSpec(replicas=50))
    validate_spec(ClusterSpec(pool="172.18.255.200-172.18.255.250"))


def test_non_integer_counts_refused() -> None:
    with pytest.raises(UsageError, match="whole number"):
        validate_spec(ClusterSpec(servers=True))  # bool is not a count
