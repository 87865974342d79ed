"""The cluster k3dtui builds, and the checks that refuse bad input before anything is created."""

from __future__ import annotations

import re
from dataclasses import dataclass

from k3dtui.core.errors import UsageError
from k3dtui.core.identity import APP

DEFAULT_NAME = "simple-app-cluster"
MAX_NAME = 32  # k3d refuses longer cluster names (they become host names)
MAX_NODES = 20  # a sanity bound: every node is a container on this machine
# The most replicas `scale --max-replicas` may allow: measured on the simulated cluster (2
# shared cores, tests/benchmarks/bench_scale.py): 2,000 replicas on 20 nodes are Ready about
# 10 s after the scale, its API answering /healthz meanwhile (within 0.8 s) and a watch
# opened before receiving events throughout; back to 3 in another 3 s. A node holds at most
# 110 pods (the kubelet's --max-pods, on k3d as on the simulated cluster), so on the default
# 3 nodes about 320 replicas run and the others stay Pending ("Too many pods").
REPLICA_CEILING = 2000
PODS_PER_NODE = 110

# One DNS label: k3d makes host and container names of it (k3d-<name>-server-0), so no dots,
# and never a path (the name is also a folder under k3dtui's state folder).
_NAME_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ClusterSpec:
    name: str = DEFAULT_NAME
    servers: int = 1
    agents: int = 2
    replicas: int = 3
    pool: str | None = None  # "A-B"; None = suggested from the Docker subnet

    @property
    def network(self) -> str:
        """The Docker network k3d creates for the cluster."""
        return f"k3d-{self.name}"

    @property
    def context(self) -> str:
        """The kube context k3d names after the cluster."""
        return f"k3d-{self.name}"


def validate_name(name: str) -> None:
    """A k3d cluster name: one RFC-1123 label (lower-case letters, digits and '-', no dots,
    no '/'), at most 32 characters. Every command taking ``--name`` checks it (``cli.main``)."""
    if not name:
        raise UsageError("the cluster name is empty", "give one with --name, e.g. --name demo")
    if len(name) > MAX_NAME:
        raise UsageError(
            f"cluster name {name!r} is {len(name)} characters long; k3d allows at most {MAX_NAME}",
            "choose a shorter --name",
        )
    if name != name.lower():
        fix = f"use lower case, e.g. --name {name.lower()}" if _NAME_RE.match(name.lower()) else (
            "use lower-case letters, digits and '-'"
        )
        raise UsageError(f"cluster name {name!r} has capital letters", fix)
    if not _NAME_RE.match(name):
        raise UsageError(
            f"cluster name {name!r} is not a valid host name"
            + (" (no dots)" if "." in name and "/" not in name else " (no paths)" if "/" in name else ""),
            "use lower-case letters, digits and '-', starting and ending with a letter or digit",
        )


def _count(value: object, what: str, flag: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what} must be a whole number, not {value!r}", f"give {flag} N")
    if value < low:
        raise UsageError(
            f"{what} must be at least {low} (got {value})", f"give {flag} {low} or more"
        )
    if value > high:
        raise UsageError(
            f"{what} must be at most {high} (got {value})", f"give {flag} {high} or fewer"
        )


def validate_spec(spec: ClusterSpec) -> None:
    """Refuse a spec k3dtui cannot build, with one line naming the problem and the fix."""
    validate_name(spec.name)
    _count(spec.servers, "servers", "--servers", 1, MAX_NODES)
    _count(spec.agents, "agents", "--agents", 0, MAX_NODES)
    _count(spec.replicas, "replicas", "--replicas", APP.min_replicas, APP.max_replicas)
    if spec.pool is not None:
        from k3dtui.core.pool import parse_range

        parse_range(spec.pool)
