"""`k3dtui scale N|+N|-N`, `k3dtui kill POD | --random [--force]` and `k3dtui watch`.

scale and kill act only on the app named by ``core.identity`` (its namespace, its Deployment
``fastapi-app``, pods labelled ``app=fastapi``), print what happened, and exit 1 with the reason when the cluster refused
or could not be reached, 2 for malformed input (nothing is sent then). watch prints the
app's pod changes as they happen, one line each, until interrupted (or --duration).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sys
import time
from typing import TYPE_CHECKING, Any

from k3dtui.commands.attach import attached_for, live_for, target_parser
from k3dtui.core.errors import EXIT_NO_RECONNECT, UsageError
from k3dtui.core.identity import APP
from k3dtui.core.spec import PODS_PER_NODE, REPLICA_CEILING

RECONNECT_WITHIN = 60.0  # s: `watch` gives up (exit 5) when the API is away longer

if TYPE_CHECKING:
    from k3dtui.core.actions import ActionResult


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    targets = target_parser()
    scale = sub.add_parser(
        "scale",
        parents=[common, targets],
        help="scale the app's Deployment: to N replicas, or by +N / -N",
        description=(
            "Scale the app's Deployment through its scale subresource. COUNT is N (scale to N), "
            "+N (N more) or -N (N fewer); the result must stay within 0..--max-replicas."
        ),
    )
    scale.add_argument("count", metavar="COUNT", help="N, +N or -N (e.g. 5, +1, -1)")
    scale.add_argument(
        "--max-replicas",
        type=int,
        default=APP.max_replicas,
        help=f"refuse to go above this many replicas (default: {APP.max_replicas}; at most "
        f"{REPLICA_CEILING}, the most the simulated cluster was measured to serve: Ready in about 10 s on 20 "
        f"nodes, its API answering meanwhile; a node holds {PODS_PER_NODE} pods, the rest stay Pending)",
    )
    scale.set_defaults(func=scale_command)

    kill = sub.add_parser(
        "kill",
        parents=[common, targets],
        help="delete one of the app's pods (graceful; --force for grace 0), or a random Running one",
        description=(
            "Delete a pod of the app. The Deployment replaces it; watch it with `k3dtui` or "
            "`kubectl get pods -w`. Pods that are not the app's are refused."
        ),
    )
    kill.add_argument("pod", nargs="?", metavar="POD", help="the pod's name (see `kubectl get pods`)")
    kill.add_argument("--random", action="store_true", help="kill a random Running pod of the app")
    kill.add_argument(
        "--force", action="store_true", help="delete at once (grace period 0): no Terminating phase"
    )
    kill.set_defaults(func=kill_command)

    watch = sub.add_parser(
        "watch",
        parents=[common, targets],
        help="print the app's pod changes as they happen (one line each) until interrupted",
        description=(
            "Follow the app's pods (list, then watch) and print one line per change with a "
            "timestamp: added, status changes, deleted; also when the connection drops and "
            "comes back. Changes are coalesced to at most 20 pictures a second."
        ),
    )
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: until Ctrl-C)"
    )
    watch.add_argument(
        "--reconnect-within", type=float, default=RECONNECT_WITHIN, metavar="S",
        help=f"exit {EXIT_NO_RECONNECT} when the connection is not back within S seconds, or is down at the "
        f"end of --duration (default {RECONNECT_WITHIN:g}); a restarted cluster's new address, token and CA "
        "are read from its kubeconfig",
    )
    watch.set_defaults(func=watch_command)


def _live(args: argparse.Namespace, max_replicas: int = APP.max_replicas, *, changing: str = "") -> Any:
    """The app's ``LiveCluster``: the attached app's when target options are given (a
    ``changing`` action refused before any request without --allow-changes), else k3dtui's own."""
    attached = attached_for(args, changing=changing)
    if attached is not None:
        return live_for(attached, max_replicas if changing == "scale" else None)
    from k3dtui.core.live import LiveCluster
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(args.name, args.sim)
    kubeconfig = asyncio.run(provider.kubeconfig())
    return LiveCluster(kubeconfig, max_replicas=max_replicas)


def _report(result: ActionResult) -> int:
    if result.ok:
        print(result.message)
        return 0
    print(f"k3dtui: {result.message}", file=sys.stderr)
    return 1


def scale_command(args: argparse.Namespace) -> int:
    try:
        from k3dtui.core.actions import parse_scale

        how, value = parse_scale(args.count)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.max_replicas < 0:
        raise UsageError(f"--max-replicas must be 0 or more (got {args.max_replicas})")
    if args.max_replicas > REPLICA_CEILING:
        raise UsageError(
            f"--max-replicas {args.max_replicas} is above k3dtui's ceiling of {REPLICA_CEILING} replicas",
            f"give --max-replicas {REPLICA_CEILING} or fewer (the most the simulated cluster was measured to serve)",
        )
    if how == "to" and value > args.max_replicas:
        raise UsageError(
            f"{value} replicas is above the limit of {args.max_replicas}; "
            "choose a smaller count or raise --max-replicas"
        )
    live = _live(args, args.max_replicas, changing="scale")
    result = live.scale_to(value) if how == "to" else live.scale_by(value)
    return _report(result)


def kill_command(args: argparse.Namespace) -> int:
    if args.random and args.pod:
        raise UsageError("give either a POD name or --random, not both")
    if not args.random and not args.pod:
        raise UsageError("name the pod to kill (k3dtui kill POD) or use --random")
    from k3dtui.core.actions import valid_pod_name

    if args.pod and not valid_pod_name(args.pod):
        raise UsageError(
            f"{args.pod!r} is not a valid pod name (lowercase letters, digits, '-' and '.')"
        )
    live = _live(args, changing="kill")
    result = live.kill_random(force=args.force) if args.random else live.kill(args.pod, force=args.force)
    return _report(result)


def _line(change: Any, at: float) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
    pod = change.pod
    where = pod.node or "(unscheduled)"
    if change.change == "added":
        what = f"added    {pod.status} {pod.ready_text}"
    elif change.change == "deleted":
        what = f"deleted  (was {change.previous})"
    else:
        arrow = f"{change.previous} -> {pod.status}" if change.previous != pod.status else pod.status
        what = f"changed  {arrow} {pod.ready_text}"
    ip = f" {pod.ip}" if pod.ip else ""
    return f"{stamp}  {pod.name}  {where}{ip}  {what}"


def watch_command(args: argparse.Namespace) -> int:
    from k3dtui.core.models import ClusterSnapshot
    from k3dtui.core.state import diff_nodes, diff_pods

    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be more than 0 seconds (got {args.duration})")
    bound = float(getattr(args, "reconnect_within", RECONNECT_WITHIN))
    if not bound > 0:
        raise UsageError(f"--reconnect-within must be more than 0 seconds (got {bound:g})", "e.g. --reconnect-within 30")
    live = _live(args)
    snaps: queue.Queue[ClusterSnapshot] = queue.Queue()
    live.start(snaps.put)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    previous: ClusterSnapshot | None = None
    down = False  # a disconnection was printed
    away_since: float | None = time.monotonic()  # not connected since (None while connected)
    server = ""
    code = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            if away_since is not None and time.monotonic() - away_since > bound:
                _emit(args, time.time(), {"event": "gave-up", "reason": f"not connected within {bound:g} s"},
                      f"gave up: the API server did not answer within {bound:g} s (--reconnect-within)")
                code = EXIT_NO_RECONNECT
                break
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                snap = snaps.get(timeout=wait)
            except queue.Empty:
                continue
            now = time.time()
            if not snap.connected:
                if away_since is None:
                    away_since = time.monotonic()
                if not down and snap.error != "connecting to the API server":
                    _emit(args, now, {"event": "disconnected", "reason": snap.error}, f"disconnected: {snap.error}")
                    down = True
                if previous is None:
                    continue  # wait for the first complete picture
            elif away_since is not None:
                now_server = str(getattr(live, "server", "") or "")
                new = bool(server) and now_server != server
                data: dict[str, Any] = {"event": "connected", "server": now_server}
                if new:
                    data["new_server"] = True
                text = ("reconnected to a new API server" if new else "connected again" if down else "connected")
                _emit(args, now, data, f"{text} ({now_server})" if now_server else text)
                server, down, away_since = now_server, False, None
            for change in diff_pods(previous, snap):
                if args.json:
                    print(json.dumps(change.to_json(now)), flush=True)
                else:
                    print(_line(change, now), flush=True)
            if previous is not None and snap.connected:
                for node in diff_nodes(previous, snap):
                    state = "Ready" if node["ready"] else "NotReady"
                    if node["unschedulable"]:
                        state += ",SchedulingDisabled"
                    taints = ",".join(node["taints"]) or "no taints"
                    _emit(args, now, node, f"node {node['node']} {state} ({taints})")
            previous = snap
    except KeyboardInterrupt:
        return 0
    finally:
        live.stop()
    if code == 0 and away_since is not None:
        code = EXIT_NO_RECONNECT  # --duration ended while the connection was down
    return code


def _emit(args: argparse.Namespace, at: float, data: dict[str, Any], text: str) -> None:
    if args.json:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
        print(json.dumps({"time": stamp, **data}), flush=True)
    else:
        stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
        print(f"{stamp}  watch: {text}", flush=True)
