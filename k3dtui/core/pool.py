"""Choosing and checking a MetalLB address range inside a Docker network's IPv4 subnet.

Pure: ``ipaddress`` only. Docker hands out container addresses from the bottom of a
subnet, so the suggested pool sits at the top: ``x.y.255.200-x.y.255.250`` on a /16,
``x.y.z.200-x.y.z.250`` on a /24, and the top of the host range on smaller subnets. It
never includes the network or broadcast address, the gateway, or any address in use; it
moves down past used addresses and shrinks when the subnet is too small for the size
asked, and refuses with the reason when nothing fits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from k3dtui.core.errors import K3dtuiError, UsageError

DEFAULT_SIZE = 51
_TOP_MARGIN = 5  # on subnets of 256+ addresses the pool ends at .250 of the last /24

IPv4 = ipaddress.IPv4Address


@dataclass(frozen=True)
class PoolChoice:
    start: str
    end: str
    size: int
    note: str = ""  # why the range is smaller or lower than the default, when it is

    @property
    def range(self) -> str:
        return f"{self.start}-{self.end}"


class PoolRangeError(UsageError):
    """A user's range refused. ``malformed`` when it is not two addresses (exit 2);
    otherwise it is well-formed but does not fit the network (the pool command exits 1)."""

    def __init__(self, message: str, hint: str = "", *, malformed: bool = False) -> None:
        super().__init__(message, hint)
        self.malformed = malformed


class NoRangeError(K3dtuiError):
    """No free run of addresses of the requested size exists in the subnet (exit 1)."""


_EXAMPLE = "e.g. 172.18.255.200-172.18.255.250"


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(subnet.strip(), strict=False)
    except ValueError:
        raise UsageError(
            f"subnet {subnet!r} is not a network address", "give an IPv4 CIDR like 172.18.0.0/16"
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise UsageError(
            f"subnet {subnet} is IPv6; MetalLB pools here come from the IPv4 subnet",
            "use the network's IPv4 IPAM entry",
        )
    return net


def parse_range(text: str) -> tuple[IPv4, IPv4]:
    """``"A-B"`` (or one address ``"A"``) → two IPv4 addresses, start <= end.

    Raises ``PoolRangeError``: malformed text or IPv6 (``malformed=True``), reversed order.
    """
    raw = text.strip()
    parts = [p.strip() for p in raw.split("-")]
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2 or not all(parts):
        raise PoolRangeError(
            f"pool range {text!r} is not of the form A-B", f"write two addresses, {_EXAMPLE}",
            malformed=True,
        )
    addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for part in parts:
        try:
            addrs.append(ipaddress.ip_address(part))
        except ValueError:
            raise PoolRangeError(
                f"pool range {text!r}: {part!r} is not an IP address",
                f"write two IPv4 addresses, {_EXAMPLE}",
                malformed=True,
            ) from None
    start, end = addrs
    if not isinstance(start, IPv4) or not isinstance(end, IPv4):
        raise PoolRangeError(
            f"pool range {text!r} is IPv6; the pool must be IPv4 addresses",
            f"write IPv4 addresses from the network's IPv4 subnet, {_EXAMPLE}",
            malformed=True,
        )
    if start > end:
        raise PoolRangeError(
            f"pool range {text!r} is reversed: {start} comes after {end}",
            f"write the lower address first: {end}-{start}",
        )
    return start, end


def _used_set(net: ipaddress.IPv4Network, used: Iterable[str]) -> set[int]:
    out: set[int] = set()
    for text in used:
        if not text:
            continue
        try:
            ip = ipaddress.ip_address(text.split("/")[0].strip())
        except ValueError:
            continue
        if isinstance(ip, IPv4) and ip in net:
            out.add(int(ip))
    return out


def _free_runs(lo: int, hi: int, used: set[int]) -> list[tuple[int, int]]:
    """Maximal runs of free addresses within [lo, hi], highest first."""
    runs: list[tuple[int, int]] = []
    top = hi
    for u in sorted((u for u in used if lo <= u <= hi), reverse=True):
        if u < top:
            runs.append((u + 1, top))
        top = min(top, u - 1)
    if top >= lo:
        runs.append((lo, top))
    return [r for r in runs if r[0] <= r[1]]


def _hosts(net: ipaddress.IPv4Network) -> tuple[int, int]:
    """First and last usable host (no network, no broadcast address)."""
    return int(net.network_address) + 1, int(net.broadcast_address) - 1


def suggest_range(
    subnet: str, used: Iterable[str], size: int = DEFAULT_SIZE, *, min_size: int = 1
) -> PoolChoice:
    """The highest free run of ``size`` addresses (shrunk down to ``min_size`` when nothing
    larger fits). ``used`` holds the gateway and every container IP on the network.

    Raises ``UsageError`` for a bad subnet or size, ``NoRangeError`` when nothing fits.
    """
    net = parse_subnet(subnet)
    if size < 1 or min_size < 1:
        raise UsageError(f"pool size must be at least 1 (got {min(size, min_size)})", "give --size 1 or more")
    min_size = min(min_size, size)
    taken = _used_set(net, used)
    lo, hi = _hosts(net)
    if hi < lo:
        raise NoRangeError(
            f"subnet {net} has no host addresses for a pool",
            "use a network with a larger subnet (a /28 or bigger)",
        )
    # On 256+ addresses keep the convention .200-.250 of the last /24.
    cap = int(net.broadcast_address) - _TOP_MARGIN if net.num_addresses >= 256 else hi
    runs = _free_runs(lo, hi, taken)
    free_total = sum(b - a + 1 for a, b in runs)

    for limit in (cap, hi):
        for a, b in runs:
            end = min(b, limit)
            if end - a + 1 >= size:
                start = end - size + 1
                note = ""
                if end < cap:
                    note = f"moved down below used addresses (the top of {net} is taken)"
                elif end > cap:
                    note = f"placed in the last addresses of {net} (nothing fits lower)"
                return PoolChoice(str(IPv4(start)), str(IPv4(end)), size, note)

    # Nothing of the full size: shrink, taking at most half of the largest free run
    # (its upper part) so Docker keeps room for new containers below it.
    if runs:
        a, b = max(runs, key=lambda r: (r[1] - r[0], r[1]))
        length = b - a + 1
        take = min(size, max(min_size, (length + 1) // 2))
        if take <= length and take >= min_size:
            start = b - take + 1
            note = (
                f"shrunk to {take} addresses: {net} has no free run of {size} "
                f"({free_total} free in all, the largest run {length})"
            )
            return PoolChoice(str(IPv4(start)), str(IPv4(b)), take, note)
    largest = max((b - a + 1 for a, b in runs), default=0)
    raise NoRangeError(
        f"no free run of {min_size} address{'es' if min_size != 1 else ''} in {net}: "
        f"{len(taken)} in use, the largest free run is {largest}",
        "ask for a smaller --size, remove containers from the network, or create the "
        "cluster on a larger subnet",
    )


def validate_range(text: str, subnet: str, used: Iterable[str]) -> PoolChoice:
    """Check a user's ``A-B`` against the network. Raises ``PoolRangeError`` (a UsageError)."""
    start, end = parse_range(text)
    net = parse_subnet(subnet)
    used_list = list(used)
    taken = _used_set(net, used_list)

    def hint() -> str:
        try:
            choice = suggest_range(str(net), used_list)
        except K3dtuiError:
            return f"pick free addresses inside {net}"
        return f"pick free addresses inside {net}, e.g. {choice.range}"

    for ip in (start, end):
        if ip not in net:
            raise PoolRangeError(f"pool range {text.strip()} is not inside the subnet {net}", hint())
    lo, hi = int(start), int(end)
    if lo == int(net.network_address) or hi == int(net.broadcast_address):
        which = net.network_address if lo == int(net.network_address) else net.broadcast_address
        kind = "network" if which == net.network_address else "broadcast"
        raise PoolRangeError(
            f"pool range {text.strip()} includes the {kind} address {which} of {net}", hint()
        )
    inside = sorted(u for u in taken if lo <= u <= hi)
    if inside:
        shown = ", ".join(str(IPv4(u)) for u in inside[:3]) + (" ..." if len(inside) > 3 else "")
        raise PoolRangeError(
            f"pool range {text.strip()} includes {len(inside)} address"
            f"{'es' if len(inside) != 1 else ''} in use on the network ({shown})",
            hint(),
        )
    return PoolChoice(str(start), str(end), hi - lo + 1)
