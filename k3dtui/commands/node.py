"""`k3dtui node list|stop|start|cordon|uncordon|drain [NODE] [--json]`.

stop/start stop and start the node's container (``k3d node stop|start`` on k3d); cordon
and uncordon set and clear ``spec.unschedulable``; drain cordons, then evicts the app's pods
on the node through the Eviction API, honouring PodDisruptionBudgets and skipping DaemonSet
pods. Exit 0 when done, 1 when the cluster refused or could not be reached (or the drain
timed out), 2 for malformed input (nothing is sent then).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from k3dtui.core.errors import UsageError

ACTIONS = ("list", "stop", "start", "cordon", "uncordon", "drain")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from k3dtui.commands.attach import target_parser

    node = sub.add_parser(
        "node",
        parents=[common, target_parser()],
        help="list the nodes; stop, start, cordon, uncordon or drain one",
        description=(
            "Nodes fail and come back. `stop` stops the node's container (k3d node stop): its "
            "Lease is no longer renewed, after the node monitor grace period (40 s) it is "
            "NotReady with the unreachable taints, and its pods are evicted when their "
            "tolerationSeconds end (15 s for the app). `start` brings it back. `cordon` marks it "
            "unschedulable; `drain` cordons it and evicts the app's pods through the Eviction "
            "API, honouring the app's PodDisruptionBudget and skipping DaemonSet pods."
        ),
    )
    node.add_argument("action", choices=ACTIONS, metavar="ACTION", help=" | ".join(ACTIONS))
    node.add_argument("node", nargs="?", metavar="NODE", help="the node, e.g. k3d-simple-app-cluster-agent-0")
    node.add_argument("--json", action="store_true", help="print JSON")
    node.add_argument("--timeout", type=float, default=120.0, metavar="S",
                      help="drain: give up after S seconds (default: 120)")
    node.add_argument("--yes", action="store_true",
                      help="stop: do not ask before stopping a server node (the API goes away)")
    node.set_defaults(func=node_command)


def _print(args: argparse.Namespace, ok: bool, message: str, node: str) -> int:
    if args.json:
        print(json.dumps({"action": args.action, "node": node, "ok": ok, "message": message}))
    elif ok:
        print(message)
    else:
        print(f"k3dtui: {message}", file=sys.stderr)
    return 0 if ok else 1


def _confirm_server_stop(args: argparse.Namespace, node: str) -> None:
    warning = (f"{node} is a server node: stopping it stops the Kubernetes API, so k3dtui (and "
               "kubectl) cannot watch or act until it is started again")
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{warning}; give --yes to stop it anyway")
    print(f"{warning}.", file=sys.stderr)
    answer = input("Stop it? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("not stopped (answer y to stop it)")


def attached_node_command(args: argparse.Namespace) -> int:
    """``node`` on an attached cluster: list; cordon/uncordon/drain with --allow-changes;
    never stop/start (they stop a node's container: k3dtui's own k3d or simulated cluster only)."""
    from k3dtui.commands.attach import attached_for, refuse_unless_allowed
    from k3dtui.core import nodes

    if args.action in ("stop", "start"):
        raise UsageError(f"refused: node {args.action} stops or starts a node's container, which only k3dtui's own "
                         "k3d or simulated cluster has; an attached cluster's nodes are not k3dtui's to power",
                         "use cordon or drain (with --allow-changes) to move the app's pods off a node")
    if args.action == "list":
        if args.node:
            raise UsageError("`node list` takes no NODE")
    elif not args.node:
        raise UsageError(f"name the node: k3dtui node {args.action} NODE (see `k3dtui node list`)")
    elif not nodes.valid_node_name(args.node):
        raise UsageError(f"{args.node!r} is not a valid node name (lowercase letters, digits, '-' and '.')")
    if args.action != "list":
        refuse_unless_allowed(args, f"node {args.action}")
    attached = attached_for(args)
    assert attached is not None
    from k3dtui.core.kube import make_api_client

    actions = nodes.NodeActions(lambda: make_api_client(attached.kubeconfig, attached.context), "",
                                attached.identity)
    return _run_node_action(args, actions)


def node_command(args: argparse.Namespace) -> int:
    from k3dtui.commands.attach import target_given
    from k3dtui.core import nodes

    if target_given(args):
        if args.sim:
            from k3dtui.commands.attach import attached_for

            attached_for(args)  # the usage error
        return attached_node_command(args)

    if args.action == "list":
        if args.node:
            raise UsageError("`node list` takes no NODE")
    else:
        if not args.node:
            raise UsageError(f"name the node: k3dtui node {args.action} NODE (see `k3dtui node list`)")
        refusal = nodes.check_node_name(args.name, args.node)
        if refusal:
            raise UsageError(refusal)
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be more than 0 seconds (got {args.timeout:g})")
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(args.name, args.sim)
    if args.action in ("stop", "start"):
        if args.action == "stop" and nodes.is_server(args.node):
            _confirm_server_stop(args, args.node)
        power: Any = provider
        lines: list[str] = []
        if args.action == "stop":
            asyncio.run(power.stop_node(args.node, lines.append))
            message = (f"node {args.node} stopped: it goes NotReady after the node monitor grace period, "
                       "and its pods are evicted when their tolerationSeconds end")
        else:
            asyncio.run(power.start_node(args.node, lines.append))
            message = f"node {args.node} started: it turns Ready once its kubelet reports"
        return _print(args, True, message, args.node)
    from k3dtui.core.kube import make_api_client

    kubeconfig = asyncio.run(provider.kubeconfig())
    actions = nodes.NodeActions(lambda: make_api_client(kubeconfig, provider.context), args.name)
    return _run_node_action(args, actions)


def _run_node_action(args: argparse.Namespace, actions: Any) -> int:
    if args.action == "list":
        views = actions.list()
        if args.json:
            print(json.dumps({"nodes": [v.to_json() for v in views]}))
            return 0
        print(f"{'NAME':<40} {'ROLE':<7} {'STATUS':<28} {'HEARTBEAT':>9} {'APP PODS':>8}  TAINTS")
        for v in views:
            beat = "-" if v.heartbeat_age is None else f"{v.heartbeat_age:.0f}s ago"
            print(f"{v.name:<40} {v.role:<7} {v.state:<28} {beat:>9} {v.app_pods:>8}  {','.join(v.taints) or '-'}")
        return 0
    if args.action in ("cordon", "uncordon"):
        result = actions.cordon(args.node, args.action == "cordon")
        return _print(args, result.ok, result.message, args.node)
    say = (lambda _line: None) if args.json else (lambda line: print(line, flush=True))
    result = actions.drain(args.node, timeout=args.timeout, log=say)
    return _print(args, result.ok, result.message, args.node)
