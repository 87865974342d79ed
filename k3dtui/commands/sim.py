"""`k3dtui sim start|stop|status|serve`: the embedded simulated cluster, by hand."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from k3dtui.core.errors import K3dtuiError, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "sim",
        parents=[common],
        help="start, stop or inspect the embedded simulated cluster",
        description=(
            "The simulated cluster speaks the Kubernetes API on 127.0.0.1 (kubectl works with the "
            "kubeconfig it prints); its pods serve real HTTP behind a loopback load balancer."
        ),
    )
    parser.add_argument("action", choices=("start", "stop", "status", "serve"),
                        help="start in the background, stop, show its state, or serve in the foreground")
    parser.add_argument("--servers", type=int, default=1, help="server nodes (default 1)")
    parser.add_argument("--agents", type=int, default=2, help="agent nodes (default 2)")
    parser.set_defaults(func=run)


def _check_counts(args: argparse.Namespace) -> None:
    if args.servers < 1:
        raise UsageError(f"--servers must be at least 1 (got {args.servers})", "pass --servers 1")
    if args.agents < 0 or args.agents > 20:
        raise UsageError(f"--agents must be between 0 and 20 (got {args.agents})", "pass e.g. --agents 2")
    from k3dtui.core.spec import validate_name

    validate_name(args.name)


def run(args: argparse.Namespace) -> int:
    from k3dtui.sim.provider import SimProvider

    _check_counts(args)
    provider = SimProvider(args.name)
    if args.action == "serve":
        from k3dtui.providers import serve_sim

        if provider.pid() is not None:
            raise K3dtuiError(f"the simulated cluster {args.name!r} is already running (pid {provider.pid()})",
                              f"stop it with `k3dtui sim stop --name {args.name}`")
        print(f"serving the simulated cluster {args.name!r}; kubeconfig: {provider.kubeconfig_path} (Ctrl+C stops it)")
        return serve_sim(args.name, args.servers, args.agents)
    if args.action == "start":
        asyncio.run(provider.create(args.servers, args.agents, lambda line: print(line, file=sys.stderr)))
        print(f"kubeconfig: {provider.kubeconfig_path}")
        print(f"context:    {provider.context}")
        print(f"try:        kubectl --kubeconfig {provider.kubeconfig_path} get nodes -o wide")
        return 0
    if args.action == "stop":
        # a stale pid file (a crash, a reboot, a reused pid) is reported and removed, never signalled
        provider.clean_stale(lambda line: print(f"k3dtui: {line.split(' ', 1)[1]}", file=sys.stderr))
        if provider.pid() is None:
            raise K3dtuiError(f"the simulated cluster {args.name!r} is not running",
                              f"start it with `k3dtui sim start --name {args.name}`")
        asyncio.run(provider.stop(lambda line: print(line, file=sys.stderr)))
        print(f"stopped the simulated cluster {args.name!r} (its state is kept: `k3dtui sim start --name "
              f"{args.name}` brings it back, `k3dtui down --sim --name {args.name}` deletes it)")
        return 0
    # status
    if provider.pid() is None:
        print(f"simulated cluster {args.name!r}: not running")
        return 1
    status = asyncio.run(provider.control("GET", "/sim/status"))
    print(f"simulated cluster {args.name!r}: running (pid {status.get('pid')}, API port {status.get('port')})")
    print(f"kubeconfig: {provider.kubeconfig_path}")
    print(f"context:    {provider.context}")
    for node in status.get("nodes") or []:
        state = "Ready" if node.get("ready", True) else "NotReady"
        print(f"node        {node['name']:<40} {node['role']:<7} {node['ip']:<15} {state}")
    images = status.get("images") or []
    print(f"images:     {', '.join(images) if images else '(none imported)'}")
    for key, target in sorted((status.get("lb") or {}).items()):
        backends = (status.get("lb_backends") or {}).get(key, 0)
        print(f"lb          {key} -> {target} ({backends} ready endpoints)")
    return 0
