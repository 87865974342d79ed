"""The shape of a cluster's network, whether inspected from Docker or declared by the simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Member:
    """A container (or simulated node) attached to the network."""

    name: str
    ip: str


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    subnet: str  # IPv4 CIDR, e.g. "172.18.0.0/16"
    gateway: str  # "" when the IPAM entry names none
    members: tuple[Member, ...] = field(default_factory=tuple)

    @property
    def used(self) -> list[str]:
        """Every address in use: the gateway and each member's IP."""
        out = [self.gateway] if self.gateway else []
        out.extend(m.ip for m in self.members if m.ip)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.name,
            "subnet": self.subnet,
            "gateway": self.gateway,
            "members": [{"name": m.name, "ip": m.ip} for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkInfo:
        return cls(
            name=str(data["network"]),
            subnet=str(data["subnet"]),
            gateway=str(data.get("gateway", "")),
            members=tuple(Member(str(m["name"]), str(m["ip"])) for m in data.get("members", [])),
        )
