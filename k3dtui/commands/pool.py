"""`k3dtui pool --network NAME [--range A-B] [--size N] [--json]`: inspect a Docker network
and print its subnet, gateway, used addresses and a suggested (or checked) MetalLB range.

Exit 0 with a range; 1 when the given range does not fit the network or none fits;
2 for malformed input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from k3dtui.core.errors import K3dtuiError, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "pool",
        parents=[common],
        help="suggest or check a MetalLB address range on a Docker network",
        description="Inspect a Docker network (the IPv4 IPAM entry, the gateway, every "
        "container's address) and print a free MetalLB range at the top of the subnet, or "
        "check the one given with --range. Exit 1 when the range does not fit or none fits.",
    )
    parser.add_argument(
        "--network", help="the Docker network (default: k3d-<name>; with --sim, the simulated one)"
    )
    parser.add_argument("--range", dest="pool_range", metavar="A-B", help="check this range")
    parser.add_argument(
        "--size", type=int, default=None, metavar="N",
        help="the number of addresses wanted (default 51, smaller when the subnet is small)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _network(args: argparse.Namespace) -> Any:
    from k3dtui.core.network import NetworkInfo

    if args.sim and not args.network:
        from k3dtui.core import paths

        path = paths.cluster_dir("sim", args.name) / "network.json"
        if not path.is_file():
            raise K3dtuiError(
                f"the simulated cluster {args.name!r} is not running",
                f"start it with `k3dtui sim start --name {args.name}` or `k3dtui up --sim`",
            )
        return NetworkInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
    from k3dtui.core.docker import inspect_network

    return inspect_network(args.network or f"k3d-{args.name}")


def run(args: argparse.Namespace) -> int:
    from k3dtui.core.pool import (
        DEFAULT_SIZE,
        PoolRangeError,
        parse_range,
        suggest_range,
        validate_range,
    )

    if args.size is not None and args.size < 1:
        raise UsageError(f"--size must be at least 1 (got {args.size})", "give --size 1 or more")
    if args.pool_range is not None:
        parse_range(args.pool_range)  # malformed input is refused before Docker is asked
    net = _network(args)
    try:
        if args.pool_range is not None:
            choice = validate_range(args.pool_range, net.subnet, net.used)
        elif args.size is not None:
            choice = suggest_range(net.subnet, net.used, args.size, min_size=args.size)
        else:
            choice = suggest_range(net.subnet, net.used, DEFAULT_SIZE)
    except PoolRangeError as exc:
        if exc.malformed:
            raise
        print(f"k3dtui: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"k3dtui: {exc.hint}", file=sys.stderr)
        return 1
    used = sorted(set(net.used), key=lambda ip: tuple(int(p) for p in ip.split(".")))
    if args.json:
        print(json.dumps({
            "network": net.name,
            "subnet": net.subnet,
            "gateway": net.gateway,
            "used": used,
            "range": choice.range,
            "size": choice.size,
        }))
        return 0
    print(f"network  {net.name}")
    print(f"subnet   {net.subnet}")
    print(f"gateway  {net.gateway or '(none)'}")
    print(f"used     {', '.join(used) if used else '(none)'}")
    verb = "checked " if args.pool_range is not None else "suggested"
    print(f"range    {choice.range}  ({choice.size} addresses, {verb.strip()})")
    if choice.note:
        print(f"note     {choice.note}")
    return 0
