"""`k3dtui up`, `k3dtui down`, `k3dtui status`: the setup pipeline, headless."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from k3dtui.core.errors import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, K3dtuiError, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    up = sub.add_parser(
        "up",
        parents=[common],
        help="create the cluster, install MetalLB and the pool, build and deploy the app (reuses what exists)",
        description=(
            "From nothing to the app answering behind a MetalLB address: create the cluster "
            "(ServiceLB off), install MetalLB v0.15.2 (pinned, sha256-checked), apply an address "
            "pool from the cluster's network, build and import the app image, deploy it and wait "
            "for its external IP. Re-running finishes what is missing and never recreates the cluster."
        ),
    )
    up.add_argument("--servers", type=int, default=1, metavar="N", help="server nodes (default 1)")
    up.add_argument("--agents", type=int, default=2, metavar="N", help="agent nodes (default 2)")
    up.add_argument("--replicas", type=int, default=3, metavar="N", help="app replicas (default 3)")
    up.add_argument("--pool", metavar="A-B", help="the MetalLB address range (default: suggested from the network)")
    up.add_argument(
        "--metallb-manifest",
        metavar="PATH",
        help="a local metallb-native.yaml v0.15.2 (for offline use; sha256-checked)",
    )
    up.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="do not check the sha256 of --metallb-manifest",
    )
    up.add_argument("--json", action="store_true", help="one JSON object per line per event")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", parents=[common], help="delete the cluster (asks first)")
    down.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    down.set_defaults(func=cmd_down)

    from k3dtui.commands.attach import target_parser

    status = sub.add_parser(
        "status", parents=[common, target_parser()], help="nodes with their pods, the Deployment, the Service and its external IP"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)


# -- output -----------------------------------------------------------------------------------


class EventPrinter:
    """Prints pipeline events: readable lines, or one JSON object per line."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout

    def __call__(self, event: Any) -> None:
        if self.as_json:
            self.out.write(json.dumps(event.to_json(), default=str) + "\n")
        else:
            line = self.format(event)
            if line is None:
                return
            self.out.write(line + "\n")
        self.out.flush()

    @staticmethod
    def format(event: Any) -> str | None:
        step = f"{event.step:<8}"
        if event.kind == "start":
            return f"==> {step} {event.message}"
        if event.kind == "done":
            return f" ok {step} {event.elapsed:6.2f}s"
        if event.kind == "failed":
            return f"!!! {step} failed after {event.elapsed:.2f}s: {event.message}"
        if event.kind == "warning":
            return f"    {step} warning: {event.message}"
        return f"    {step} {event.message}"

    def line(self, text: str) -> None:
        if not self.as_json:
            self.out.write(text + "\n")
            self.out.flush()

    def record(self, obj: dict[str, Any]) -> None:
        if self.as_json:
            self.out.write(json.dumps(obj, default=str) + "\n")
            self.out.flush()


def _error_record(exc: K3dtuiError) -> dict[str, Any]:
    return {"event": "error", "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}


# -- up -----------------------------------------------------------------------------------------


async def _exists(provider: Any) -> bool:
    try:
        return await provider.find() is not None
    except K3dtuiError:
        return False


def cmd_up(args: argparse.Namespace) -> int:
    from k3dtui.core.session import STEPS, SetupSession
    from k3dtui.core.spec import ClusterSpec, validate_spec

    printer = EventPrinter(bool(args.json))
    spec = ClusterSpec(
        name=args.name, servers=args.servers, agents=args.agents, replicas=args.replicas, pool=args.pool
    )
    manifest = Path(args.metallb_manifest).expanduser() if args.metallb_manifest else None
    try:
        # Everything that can be checked without a cluster, before choosing or touching one.
        validate_spec(spec)
        if manifest is not None:
            from k3dtui.core.metallb import read_user_manifest

            read_user_manifest(manifest, verify=not args.insecure_skip_verify)
        elif args.insecure_skip_verify:
            raise UsageError(
                "--insecure-skip-verify only applies to --metallb-manifest PATH",
                "give --metallb-manifest PATH, or leave --insecure-skip-verify out",
            )
        from k3dtui.providers import select_provider

        provider, reason = select_provider(spec.name, bool(args.sim))
        printer.line(f"k3dtui up: {spec.name} on {reason}")
        printer.record({"event": "provider", "provider": provider.kind, "reason": reason})
        session = SetupSession(
            provider,
            spec,
            printer,
            metallb_manifest=manifest,
            insecure_skip_verify=bool(args.insecure_skip_verify),
        )

        async def run() -> Any:
            try:
                return await session.up()
            finally:
                session.close()

        try:
            result = asyncio.run(run())
        except K3dtuiError as exc:
            # a cluster this run created was removed (session.up); one that existed before is
            # kept with what this run did: say so only when it is there
            if (exc.exit_code != 2 and not session.rolled_back and "cluster" in session.durations
                    and asyncio.run(_exists(provider))):
                done = [s for s in STEPS if s in session.durations]
                kept = (
                    f"the cluster {spec.name} is kept with what was done ({', '.join(done)}); "
                    f"run `k3dtui up{' --sim' if provider.kind == 'sim' else ''} --name {spec.name}` again to finish, "
                    f"or `k3dtui down{' --sim' if provider.kind == 'sim' else ''} --name {spec.name}` to remove it"
                )
                exc.hint = f"{exc.hint}; {kept}" if exc.hint else kept
            raise
    except K3dtuiError as exc:
        printer.record(_error_record(exc))
        raise
    if args.json:
        printer.record(result.to_json())
    else:
        steps = "  ".join(f"{k} {v:.2f}s" for k, v in result.durations.items())
        printer.line(f"done in {result.total:.2f}s: {steps}")
        printer.line(f"external IP: {result.external_ip}  (pool {result.pool})")
        for line in reach_lines(result.url, result.dial_url, result.external_ip, result.kubeconfig):
            printer.line(line)
    return 0


def reach_lines(url: str, dial_url: str, external_ip: str, kubeconfig: str, indent: str = "") -> list[str]:
    """One ``open`` line that works from this machine (the dial address when the external IP
    is not reachable from here, as for the simulated cluster) and the ``export KUBECONFIG``
    line that points kubectl at the cluster."""
    lines: list[str] = []
    if dial_url and dial_url.replace(":80/", "/") != url.replace(":80/", "/"):
        lines.append(
            f"{indent}open:        {dial_url}  (from this machine; {external_ip} is the cluster's own address)"
        )
    elif url or dial_url:
        lines.append(f"{indent}open:        {url or dial_url}")
    if kubeconfig:
        lines.append(f"{indent}kubectl:     export KUBECONFIG={kubeconfig}")
    return lines


# -- down ---------------------------------------------------------------------------------------


def _confirm(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_down(args: argparse.Namespace) -> int:
    from k3dtui.core.spec import validate_name

    validate_name(args.name)
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(args.name, bool(args.sim))
    clean_stale = getattr(provider, "clean_stale", None)  # a stale pid file: reported, removed, never signalled
    if callable(clean_stale):
        clean_stale(lambda line: print(f"k3dtui: {line.split(' ', 1)[1]}", file=sys.stderr))
    info = asyncio.run(provider.find())
    kept = getattr(provider, "kept", None)
    if info is None and callable(kept) and kept():  # a stopped simulated cluster's kept state
        asyncio.run(provider.delete(lambda line: None))
        print(f"k3dtui: deleted the kept state of the stopped {provider.kind} cluster {args.name}")
        return 0
    if info is None:
        print(f"k3dtui: no {provider.kind} cluster named {args.name}; nothing to delete")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to delete the {provider.kind} cluster {args.name} without confirmation "
                "(stdin is not a terminal)",
                "pass --yes to delete it",
            )
        nodes = f"{info.servers} server(s), {info.agents} agent(s)"
        if not _confirm(f"Delete the {provider.kind} cluster '{args.name}' ({nodes}) and everything in it? [y/N] "):
            print("k3dtui: not deleted")
            return 1
    from k3dtui.core.pipeline import Pipeline
    from k3dtui.core.spec import ClusterSpec

    printer = EventPrinter(False)
    pipeline = Pipeline(provider, ClusterSpec(name=args.name), printer)
    asyncio.run(pipeline.down())
    print(f"k3dtui: deleted the {provider.kind} cluster {args.name}")
    return 0


# -- status -------------------------------------------------------------------------------------


def cmd_attached_status(args: argparse.Namespace, attached: Any) -> int:
    """``status`` of an attached app: where it is, its pods per node, its Deployment and Service."""
    from k3dtui.core.status import attached_status

    data = attached_status(attached)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"attached · {data['context']} · ns {data['namespace']} · {data['app']} ({attached.mode_text})")
    print(f"  server {data['server']}")
    if data.get("nodes_from_pods"):
        print("  (no permission to list nodes: nodes are those the pods name)")
    _print_nodes_and_deployment(data)
    svc = data.get("service")
    if svc:
        print(f"  service {svc['name']}: EXTERNAL-IP {svc['external_ip'] or '<none>'} port {svc['port']}")
    else:
        print("  service: none selects the app's pods (load then needs --url or --in-cluster)")
    return 0


def _print_nodes_and_deployment(data: dict[str, Any]) -> None:
    """``status``'s lines of each node with its pods, the unscheduled pods and the Deployment."""
    for node in data["nodes"]:
        ready = "Ready" if node["ready"] else "NotReady"
        print(f"  node {node['name']:<28} {','.join(node['roles']):<22} {ready:<9} {node['ip']}")
        for pod in node["pods"]:
            flag = "ready" if pod["ready"] else "not ready"
            print(f"      pod {pod['name']:<34} {pod['status']:<18} {flag:<10} {pod['ip']}")
    for pod in data.get("unscheduled") or []:
        print(f"  unscheduled pod {pod['name']} {pod['status']}")
    dep = data.get("deployment")
    if dep:
        print(f"  deployment {dep['name']}: {dep['ready']}/{dep['replicas']} ready")


def cmd_status(args: argparse.Namespace) -> int:
    from k3dtui.commands.attach import attached_for

    attached = attached_for(args)
    if attached is not None:
        return cmd_attached_status(args, attached)
    from k3dtui.core.pipeline import Pipeline
    from k3dtui.core.spec import ClusterSpec, validate_name

    validate_name(args.name)
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(args.name, bool(args.sim))
    pipeline = Pipeline(provider, ClusterSpec(name=args.name), lambda event: None)

    async def run() -> dict[str, Any]:
        try:
            return await pipeline.status()
        finally:
            pipeline.close()

    data = asyncio.run(run())
    kubeconfig = ""
    if not args.json and data["stage"] not in ("absent", "stopped"):
        try:
            kubeconfig = str(asyncio.run(provider.kubeconfig()))
        except K3dtuiError:
            kubeconfig = ""
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return {"absent": EXIT_FAILED, "stopped": EXIT_STOPPED}.get(data["stage"], EXIT_OK)
    print(f"cluster {data['cluster']} ({data['provider']}, context {data['context']}): {data['stage']}")
    if data["stage"] == "absent":
        print(f"  no cluster named {data['cluster']}; create it with `k3dtui up`")
        return 1
    if data["stage"] == "stopped":
        print("  the cluster exists but is stopped")
        print(f"  {data['fix']}")
        return EXIT_STOPPED
    _print_nodes_and_deployment(data)
    if not data.get("deployment"):
        print("  deployment: not deployed")
    svc = data.get("service")
    if svc:
        ip = svc["external_ip"] or "<pending>"
        print(f"  service {svc['name']}: EXTERNAL-IP {ip} port {svc['port']}")
        announcer = svc.get("announcing_node")
        if announcer:
            where = f"announced from {announcer} (MetalLB layer 2)"
        elif svc.get("external_ip") and svc.get("traffic_policy") == "Local":
            where = "no node announces it: under Local only a node with a ready pod may"
        else:
            where = "no announcing node known"
        print(f"    externalTrafficPolicy {svc.get('traffic_policy', 'Cluster')}; {where}")
    if data.get("pool"):
        print(f"  MetalLB pool: {data['pool']}")
    if svc and svc["external_ip"]:
        port = "" if svc["port"] == 80 else f":{svc['port']}"
        url = f"http://{svc['external_ip']}{port}/"
        for line in reach_lines(url, svc.get("url") or "", svc["external_ip"], "", indent="  "):
            print(line)
    if kubeconfig:
        print(f"  kubectl:     export KUBECONFIG={kubeconfig}")
    return 0
