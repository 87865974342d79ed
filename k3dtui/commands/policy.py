"""`k3dtui policy cluster|local [--json]`: switch ``externalTrafficPolicy`` on the app's Service.

Under ``Cluster`` (Kubernetes' default) kube-proxy sends a connection to any ready pod, on
any node, and masquerades it: the pod sees an address of the node that forwarded it. Under
``Local`` only the pods on the node that received it serve, the pod sees the client's own
address, and MetalLB announces the address only from a node with a ready pod (the
Kubernetes docs "Using Source IP"; metallb.universe.tf, concepts/layer2). Exit 1 when the
cluster refused or could not be reached (or with ``--read-only``), 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from k3dtui.core.errors import UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from k3dtui.commands.attach import target_parser

    parser = sub.add_parser(
        "policy",
        parents=[common, target_parser()],
        help="set externalTrafficPolicy (cluster|local) on the app's Service",
        description=(
            "Switch the app Service's externalTrafficPolicy. cluster: any pod serves (possibly on "
            "another node than the announcing one) and pods see a node's address; local: only pods "
            "on the announcing node serve and pods see the client's address."
        ),
    )
    parser.add_argument("policy", metavar="POLICY", help="cluster or local")
    parser.add_argument("--json", action="store_true",
                        help="print {ok, message, traffic_policy, announcing_node} as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from k3dtui.core.flow import parse_policy

    try:
        policy = parse_policy(args.policy)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if getattr(args, "read_only", False):
        message = "refused: --read-only forbids changing the cluster (drop --read-only to switch the policy)"
        return _report(args, False, message, None, "")
    from k3dtui.commands.attach import attached_for, live_for

    attached = attached_for(args, changing="switching externalTrafficPolicy")
    if attached is not None:
        if not attached.identity.service:
            raise UsageError(f"no Service selects the pods of {attached.app_text}", "name it with --service NAME")
        result = live_for(attached).set_traffic_policy(policy)
        return _report(args, result.ok, result.message, policy if result.ok else None, "")
    from k3dtui.core.flow import read_announcer
    from k3dtui.core.kubeapply import Kube
    from k3dtui.core.live import LiveCluster
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(args.name, args.sim)
    kubeconfig = asyncio.run(provider.kubeconfig())
    live = LiveCluster(kubeconfig)
    result = live.set_traffic_policy(policy)
    announcer = ""
    if result.ok:
        kube = Kube(kubeconfig)
        try:
            announcer = read_announcer(kube)
        finally:
            kube.close()
    return _report(args, result.ok, result.message, policy if result.ok else None, announcer)


def _report(args: argparse.Namespace, ok: bool, message: str, policy: str | None, announcer: str) -> int:
    if args.json:
        print(json.dumps({"ok": ok, "message": message, "traffic_policy": policy,
                          "announcing_node": announcer or None}))
    elif ok:
        print(message)
    if not ok and not args.json:
        print(f"k3dtui: {message}", file=sys.stderr)
    return 0 if ok else 1


__all__ = ["register", "run"]
