"""`k3dtui load`: send a bounded run of GETs to the app and count the responses per pod and node.

Without ``--url`` the target is the app's Service (``core.identity``: ``fastapi-service`` in
``default``): its external IP, turned by the provider into an address this machine can dial.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
from dataclasses import replace
from typing import Any

from k3dtui.core.errors import EXIT_LOAD_ERRORS, EXIT_TARGET_GONE, K3dtuiError, UsageError
from k3dtui.core.models import ConnectionMode, LoadSettings, LoadSnapshot

DEFAULT_DURATION = 10.0
DEFAULT_CONCURRENCY = 16
ERROR_KINDS = ("refused", "reset", "timeout", "other")
DEFAULT_MAX_ERROR_SHARE = 5.0  # percent; a pod killed every 2 s costs well under 1 %
GONE_WINDOW = 1.0  # s: requests and not one response over the run's last second = the target is gone


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from k3dtui.commands.attach import target_parser

    parser = sub.add_parser(
        "load",
        parents=[common, target_parser()],
        help="send bounded HTTP load to the app; count responses per pod and per node",
        description=(
            "Send GETs to the app's Service (or --url) for a duration or a number of requests, "
            "then print the responses per pod and per node, errors, req/s and latency. "
            "keep-alive (the default) keeps each connection, and a Service balances per "
            "connection, so each connection stays on one pod; --new-connections opens one "
            "connection per request and shows the even spread. Every pod of the app is "
            "listed, those that got no response with 0. (The TUI's live view starts with new "
            "connections, to show the balancing at once, and m switches; here keep-alive is "
            "the default because it is what most HTTP clients do.)"
        ),
    )
    bound = parser.add_argument_group("bound (one of; default --duration 10)")
    bound.add_argument("--duration", metavar="S", help="run for S seconds")
    bound.add_argument("--requests", metavar="N", help="send exactly N requests")
    parser.add_argument(
        "--concurrency", metavar="N", default=str(DEFAULT_CONCURRENCY),
        help=f"connections / requests in flight (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--rate", metavar="R", help="at most R requests per second in total")
    parser.add_argument("--timeout", metavar="S", default="2", help="per request (default 2 s)")
    parser.add_argument(
        "--new-connections", action="store_true",
        help="one connection per request (Connection: close) instead of keep-alive",
    )
    parser.add_argument("--url", help="any http:// endpoint instead of the cluster's Service "
                        "(with --in-cluster: as the worker pods reach it)")
    parser.add_argument(
        "--identity", metavar="SPEC",
        help="where each response names the pod that served it, for apps other than k3dtui's "
        "(which says so in X-Pod/X-Node): header:NAME (e.g. header:X-Hostname) or json:FIELD "
        "(a field of a JSON body, dotted for nested ones: json:hostname, json:pod.name)",
    )
    cluster = parser.add_argument_group("in-cluster load (a Kubernetes Job in the app's namespace)")
    cluster.add_argument(
        "--in-cluster", action="store_true",
        help="run the load as a Job of --workers pods inside the cluster (they target the Service's "
        "cluster DNS name, or --url); the Job, its pods and its ConfigMap are deleted at the end",
    )
    cluster.add_argument("--workers", metavar="N", help="worker pods of --in-cluster (1 to 50, default 2); "
                         "--concurrency, --rate and --requests are totals split between them")
    cluster.add_argument("--worker-image", metavar="IMG",
                         help="the workers' image: any with Python 3.11 or later (default python:3.13-slim)")
    parser.add_argument(
        "--max-error-share", metavar="PCT", default=str(DEFAULT_MAX_ERROR_SHARE),
        help=f"exit {EXIT_LOAD_ERRORS} when more than PCT %% of the requests failed "
        f"(default {DEFAULT_MAX_ERROR_SHARE:g}); exit {EXIT_TARGET_GONE} when the target stopped answering",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.set_defaults(func=run)


# --- input ---
def _number(text: str | None, flag: str, *, whole: bool = False) -> float | int | None:
    if text is None:
        return None
    try:
        value: float | int = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise UsageError(f"{flag} must be {kind}, not {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{flag} must be greater than 0, not {text}")
    return value


def settings_from_args(args: argparse.Namespace, url: str = "") -> LoadSettings:
    """The run's settings from the command line; ``UsageError`` (exit 2) on bad input."""
    if args.duration is not None and args.requests is not None:
        raise UsageError("give either --duration or --requests, not both")
    duration = _number(args.duration, "--duration")
    requests = _number(args.requests, "--requests", whole=True)
    if duration is None and requests is None:
        duration = DEFAULT_DURATION
    concurrency = _number(args.concurrency, "--concurrency", whole=True)
    rate = _number(args.rate, "--rate")
    timeout = _number(args.timeout, "--timeout")
    mode: ConnectionMode = "new-connection" if args.new_connections else "keep-alive"
    identity = str(getattr(args, "identity", None) or "")
    settings = LoadSettings(
        url=url,
        mode=mode,
        concurrency=int(concurrency or DEFAULT_CONCURRENCY),
        rate=None if rate is None else float(rate),
        duration=None if duration is None else float(duration),
        requests=None if requests is None else int(requests),
        timeout=float(timeout or 2.0),
        identity=identity,
    )
    from k3dtui.core.load import validate_settings

    validate_settings(settings, need_url=bool(url))
    return settings


# --- the target ---
async def discover_url(name: str, sim: bool) -> str:
    """``http://host:port/`` that reaches the cluster's Service from this machine."""
    return (await discover(name, sim))[0]


async def discover(name: str, sim: bool) -> tuple[str, Any]:
    """(the Service's URL as the provider dials it, the provider)."""
    from k3dtui.core.deploy import read_external_ip
    from k3dtui.core.identity import APP
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(name, sim)
    info = await provider.find()
    flag = " --sim" if provider.kind == "sim" else ""
    if info is None:
        raise K3dtuiError(
            f"no {provider.kind} cluster named {name!r}",
            hint=f"create it with `k3dtui up{flag} --name {name}`, or aim at any endpoint with --url",
        )
    if not info.running:
        raise K3dtuiError(
            f"the {provider.kind} cluster {name!r} is not running",
            hint=f"start it with `k3dtui up{flag} --name {name}`",
        )
    kubeconfig = await provider.kubeconfig()
    ip = await asyncio.to_thread(read_external_ip, kubeconfig)
    host, port = provider.dial(ip, APP.service_port)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/", provider


async def app_pods(provider: Any, name: str) -> dict[str, str]:
    """Every pod of the app now: name → node ("" when unscheduled)."""
    from k3dtui.core.pipeline import Pipeline
    from k3dtui.core.spec import ClusterSpec

    pipeline = Pipeline(provider, ClusterSpec(name=name), lambda event: None)
    try:
        data = await pipeline.status()
    finally:
        pipeline.close()
    pods = {str(pod["name"]): str(node["name"]) for node in data.get("nodes") or [] for pod in node["pods"]}
    pods.update({str(pod["name"]): "" for pod in data.get("unscheduled") or []})
    return pods


def with_every_pod(snap: LoadSnapshot, pods: dict[str, str]) -> LoadSnapshot:
    """The counts with every pod of the app (and its node) listed, 0 where nothing answered:
    with keep-alive, the pods no connection landed on are the point."""
    per_pod = {**dict.fromkeys(pods, 0), **snap.per_pod}
    per_node = {**dict.fromkeys((n for n in pods.values() if n), 0), **snap.per_node}
    return replace(snap, per_pod=per_pod, per_node=per_node)


# --- output ---
def result_json(snap: LoadSnapshot) -> dict[str, Any]:
    lat = snap.latency_ms_total
    return {
        "mode": snap.mode,
        "duration_s": round(snap.elapsed, 3),
        "requests": snap.requests,
        "errors": {kind: int(snap.errors.get(kind, 0)) for kind in ERROR_KINDS},
        "status": {str(code): n for code, n in sorted(snap.status.items())},
        "rps": round(snap.requests / snap.elapsed, 1) if snap.elapsed > 0 else 0.0,
        "latency_ms": {k: lat.get(k) for k in ("p50", "p95", "p99")},
        "per_pod": dict(sorted(snap.per_pod.items())),
        "per_node": dict(sorted(snap.per_node.items())),
        # the request flow: the node announcing the address at the end, the share served on
        # another node than the announcer of their moment, announcer → serving node counts,
        # and the source addresses the pods saw (X-Client)
        "announcing_node": snap.announcing_node or None,
        "cross_node_share": None if snap.cross_node_share is None else round(snap.cross_node_share, 4),
        "paths": {a: dict(sorted(row.items())) for a, row in sorted(snap.paths.items())},
        "client_addrs": dict(sorted(snap.client_addrs.items())),
        # why there is no per-pod split (the responses name no pod: see --identity), else null
        "identity_missing": snap.identity_missing or None,
        # in-cluster load: each worker pod with its node and figures ({} for a local run)
        "per_worker": {
            pod: {"node": w.node or None, "requests": w.requests, "responses": w.responses,
                  "errors": w.errors, "rps": w.rps}
            for pod, w in sorted(snap.per_worker.items())
        },
    }


def _share_rows(title: str, counts: dict[str, int], total: int, gone: frozenset[str]) -> list[str]:
    width = max([len(title), *(len(k) + (7 if k in gone else 0) for k in counts)])
    lines = [f"  {title:<{width}}  {'responses':>10}  {'share':>6}"]
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        label = f"{key} (gone)" if key in gone else key
        share = 100.0 * n / total if total else 0.0
        lines.append(f"  {label:<{width}}  {n:>10,}  {share:>5.1f}%")
    return lines


def result_table(snap: LoadSnapshot, url: str) -> str:
    data = result_json(snap)
    lines = [
        f"k3dtui load: {url}  {snap.mode}, {snap.concurrency} connections, {snap.elapsed:.1f} s"
        + (f" ({snap.finished_reason})" if snap.finished_reason not in ("duration", "requests") else ""),
        f"  {snap.requests:,} requests: {snap.responses:,} responses, "
        f"{sum(snap.errors.values()):,} errors, {data['rps']:,.1f} req/s",
    ]
    lat = data["latency_ms"]
    if lat["p50"] is not None:
        lines.append(f"  latency ms: p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  p99 {lat['p99']:.2f}")
    if snap.status:
        lines.append("  status: " + ", ".join(f"{c}: {n:,}" for c, n in sorted(snap.status.items())))
    lines.append("  errors: " + ", ".join(f"{k} {data['errors'][k]:,}" for k in ERROR_KINDS))
    if snap.per_pod:
        lines += ["", *_share_rows("pod", snap.per_pod, snap.responses, snap.gone_pods)]
    if snap.per_node:
        lines += ["", *_share_rows("node", snap.per_node, snap.responses, frozenset())]
    if snap.identity_missing:
        lines += ["", f"  no per-pod split: {snap.identity_missing}"]
    if snap.per_worker:
        width = max(len("worker"), *(len(p) for p in snap.per_worker))
        nw = max(len("node"), *(len(w.node or "-") for w in snap.per_worker.values()))
        lines += ["", f"  {'worker':<{width}}  {'node':<{nw}}  {'responses':>10}  {'errors':>7}  {'req/s':>8}"]
        for pod, w in sorted(snap.per_worker.items()):
            lines.append(f"  {pod:<{width}}  {w.node or '-':<{nw}}  {w.responses:>10,}  {w.errors:>7,}  {w.rps:>8,.1f}")
    if snap.announcing_node:
        share = snap.cross_node_share
        lines += ["", f"  announced from {snap.announcing_node}; served on another node: "
                      + ("-" if share is None else f"{100 * share:.1f}%")]
    if snap.client_addrs:
        lines.append("  pods saw: " + ", ".join(f"{a} {n:,}" for a, n in sorted(snap.client_addrs.items())))
    if snap.mode == "keep-alive":
        lines += [
            "",
            f"  keep-alive: each of the {snap.concurrency} connections stays on the pod the Service "
            "picked when it opened, so the shares show where connections landed; "
            "--new-connections balances every request.",
        ]
    return "\n".join(lines)


def _progress(snap: LoadSnapshot, settings: LoadSettings) -> str:
    if settings.duration:
        done = f"{snap.elapsed:5.1f}/{settings.duration:g} s  {snap.requests:,} req"
    else:
        done = f"{snap.elapsed:5.1f} s  {snap.requests:,}/{settings.requests or 0:,} req"
    p99 = snap.latency_ms.get("p99")
    errors = sum(snap.errors.values())
    text = f"  {done}  {snap.rps:,.0f} req/s"
    if p99 is not None:
        text += f"  p99 {p99:.1f} ms"
    text += f"  {len(snap.per_pod)} pods  errors {errors:,}"
    return text


def in_cluster_options(args: argparse.Namespace) -> tuple[int, str] | None:
    """(workers, image) of --in-cluster (None without it); UsageError on bad input."""
    from k3dtui.core.incluster import DEFAULT_WORKER_IMAGE, validate_image, validate_workers

    workers_text = getattr(args, "workers", None)
    image = getattr(args, "worker_image", None)
    if not getattr(args, "in_cluster", False):
        if workers_text is not None or image is not None:
            flag = "--workers" if workers_text is not None else "--worker-image"
            raise UsageError(f"{flag} is an option of --in-cluster: add --in-cluster, or drop {flag}")
        return None
    workers = 2
    if workers_text is not None:
        try:
            workers = int(workers_text)
        except ValueError:
            raise UsageError(f"--workers must be a whole number, not {workers_text!r}: e.g. --workers 2") from None
    return validate_workers(workers), validate_image(DEFAULT_WORKER_IMAGE if image is None else image)


def run(args: argparse.Namespace) -> int:
    from k3dtui.commands.attach import attached_for
    from k3dtui.core.load import LoadGenerator, preflight
    from k3dtui.core.loadplan import DIRECT, make_generator, plan_load

    # attached: in-cluster load (a Job in the app's namespace) changes the cluster
    inside = bool(getattr(args, "in_cluster", False))
    args.attached = attached_for(args, changing="in-cluster load" if inside else "")
    if args.attached is not None and not args.url and not inside:
        # the attached app's Service at its external address (through the map of a simulated cluster of k3dtui's)
        from k3dtui.core.target import service_url
        from k3dtui.providers import sim_dial_for

        args.url = service_url(args.attached, sim_dial_for(args.attached.server))
    settings = settings_from_args(args, url=args.url or "")
    max_share = _share(args)
    in_cluster = in_cluster_options(args)
    if in_cluster is not None:
        if args.attached is not None:  # the attached app's namespace, Service and credentials
            target = args.attached
            return run_in_cluster(args, settings, max_share, *in_cluster, kubeconfig=target.kubeconfig,
                                  context=target.context, app=target.identity, allow_changes=target.allow_changes)
        return run_in_cluster(args, settings, max_share, *in_cluster)
    plan = None
    kube: Any = None
    if args.url:
        url = args.url
    else:
        url, provider = asyncio.run(discover(args.name, args.sim))
        plan = plan_load(provider)  # reachability first: direct, or inside the cluster's network
        print(plan.says, file=sys.stderr)
        from k3dtui.core.kubeapply import Kube

        kube = Kube(asyncio.run(provider.kubeconfig()))
    settings = settings_from_args(args, url=url)
    if plan is None or plan.where == DIRECT:
        try:
            preflight(url, settings.timeout)
        except K3dtuiError as exc:
            if args.attached is None:
                raise
            raise K3dtuiError(exc.message, "this machine may not reach the cluster's load balancer: run the load "
                              "inside the cluster (--in-cluster --allow-changes), or give --url") from None
    live = sys.stderr.isatty() and not args.json
    interrupted = False
    trail = Trail()
    # The cluster's Service may move (a restarted cluster: a new dial address): when the
    # target stops answering, look the Service up again and follow it for the rest of the run.
    follow = plan is not None and plan.where == DIRECT
    done: LoadSnapshot | None = None  # the finished segments, summed
    looked = 0.0
    while True:
        moved = ""
        with (LoadGenerator(settings) if plan is None else make_generator(plan, settings)) as gen:
            watch = None
            if kube is not None:
                from k3dtui.core.flow import AnnouncerWatch, read_announcer

                watch = AnnouncerWatch(lambda: read_announcer(kube), gen.set_announcer)
                watch.start()  # the first read before the run: its first responses are attributed
            gen.start()
            try:
                while gen.running:
                    snap = _plus(done, gen.wait(0.25))
                    trail.add(snap)
                    if follow and trail.gone() and snap.elapsed - looked >= 1.0:
                        looked = snap.elapsed
                        moved = _moved(args, url)
                        if moved:
                            gen.stop()
                            break
                    if live and gen.running:
                        sys.stderr.write("\r\033[K" + _progress(snap, settings))
                        sys.stderr.flush()
            except KeyboardInterrupt:
                interrupted = True
                gen.stop()
            finally:
                if live:
                    sys.stderr.write("\r\033[K")
                    sys.stderr.flush()
            snap = _plus(done, gen.wait(5.0))
            trail.add(snap)
            if watch is not None:
                watch.stop()
        rest = _rest(settings, snap, done)
        if not moved or interrupted or rest is None:
            break
        print(f"k3dtui: the Service moved: {url} -> {moved} (a restarted cluster); following it", file=sys.stderr)
        import dataclasses

        url, done, settings = moved, snap, dataclasses.replace(rest, url=moved)
        looked = snap.elapsed
    if kube is not None:
        kube.close()
    if plan is not None:  # the cluster's app, not --url: list its pods that got nothing too
        with contextlib.suppress(K3dtuiError):  # else the counts alone
            snap = with_every_pod(snap, asyncio.run(app_pods(provider, args.name)))
    return report(args, snap, url, trail, interrupted, max_share)


async def own_cluster(name: str, sim: bool) -> tuple[Any, Any]:
    """(k3dtui's cluster's provider, its kubeconfig path); K3dtuiError when it is not there."""
    from k3dtui.providers import select_provider

    provider, _reason = select_provider(name, sim)
    info = await provider.find()
    flag = " --sim" if provider.kind == "sim" else ""
    if info is None or not info.running:
        what = "no" if info is None else "not running:"
        raise K3dtuiError(f"{what} {provider.kind} cluster named {name!r}",
                          hint=f"create or start it with `k3dtui up{flag} --name {name}`")
    return provider, await provider.kubeconfig()


def run_in_cluster(args: argparse.Namespace, settings: LoadSettings, max_share: float, workers: int,
                   image: str, *, kubeconfig: Any = None, context: str | None = None, app: Any = None,
                   allow_changes: bool = True) -> int:
    """``load --in-cluster``: the load as a Job of ``workers`` pods (k3dtui.core.incluster).

    Without ``kubeconfig``, k3dtui's own cluster (``--name``/``--sim``) and app; an attached
    target passes its kubeconfig, context, ``AppIdentity`` and whether changes are allowed."""
    from k3dtui.core.identity import APP
    from k3dtui.core.incluster import InClusterLoad

    app = app or APP
    provider = None
    load = InClusterLoad(settings, kubeconfig=kubeconfig or "-", context=context, app=app, workers=workers,
                         image=image, url=args.url or None, allow_changes=allow_changes,
                         on_status=lambda text: print(f"k3dtui: {text}", file=sys.stderr))
    if kubeconfig is None:
        provider, kubeconfig = asyncio.run(own_cluster(args.name, args.sim))
        load.kubeconfig, load.context = kubeconfig, provider.context
    settings = load.settings
    url = settings.url
    live = sys.stderr.isatty() and not args.json
    interrupted = False
    trail = Trail()
    try:
        load.start()
    except KeyboardInterrupt:
        print(f"k3dtui: interrupted; deleted the load Job {load.job_name}", file=sys.stderr)
        return 130
    if load.deleted:
        print(f"k3dtui: deleted what an earlier run left: {', '.join(load.deleted)}", file=sys.stderr)
    print(f"k3dtui: load runs inside the cluster: Job {load.job_name}, {workers} worker pods -> {url}",
          file=sys.stderr)
    try:
        try:
            while load.running:
                snap = load.wait(0.25)
                trail.add(snap)
                if live and load.running:
                    sys.stderr.write("\r\033[K" + _progress(snap, settings) + f"  {len(snap.per_worker)} workers")
                    sys.stderr.flush()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if live:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
    finally:
        load.stop()  # deletes the Job (and with it its pods) and the ConfigMap
        if load.cleanup_problem:
            print(f"k3dtui: warning: {load.cleanup_problem}", file=sys.stderr)
    snap = load.latest()
    trail.add(snap)
    if provider is not None:  # k3dtui's app: list its pods that got nothing too
        with contextlib.suppress(K3dtuiError):
            snap = with_every_pod(snap, asyncio.run(app_pods(provider, args.name)))
    return report(args, snap, url, trail, interrupted, max_share)


def report(args: argparse.Namespace, snap: LoadSnapshot, url: str, trail: Trail, interrupted: bool,
           max_share: float) -> int:
    """Print the result (JSON or the table) and choose the exit code (README, "Exit codes")."""
    if args.json:
        print(json.dumps(result_json(snap)))
    else:
        print(result_table(snap, url))
    if snap.finished_reason.startswith("error"):
        raise K3dtuiError(f"the load run failed: {snap.finished_reason}")
    if snap.finished_reason == "worker exited":
        raise K3dtuiError("the load worker exited before the end of the run (the figures above are partial)")
    if snap.responses == 0:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(snap.errors.items()) if n) or "none"
        raise K3dtuiError(f"no response from {url} ({snap.requests} requests; errors: {kinds})")
    if interrupted:
        return 130
    errors = sum(snap.errors.values())
    if trail.gone():
        print(f"k3dtui: error: {url} stopped answering: no response in the last {GONE_WINDOW:g} s of the run "
              f"({errors:,} of {snap.requests:,} requests failed)", file=sys.stderr)
        print("k3dtui: check the app and its Service (`k3dtui status`), then run the load again", file=sys.stderr)
        return EXIT_TARGET_GONE
    if snap.requests and 100.0 * errors / snap.requests > max_share:
        print(f"k3dtui: error: {errors:,} of {snap.requests:,} requests failed "
              f"({100.0 * errors / snap.requests:.1f} %, more than --max-error-share {max_share:g} %)", file=sys.stderr)
        print("k3dtui: see the errors by kind above; `k3dtui status` shows the app's pods", file=sys.stderr)
        return EXIT_LOAD_ERRORS
    return 0


def _moved(args: argparse.Namespace, url: str) -> str:
    """The Service's dial URL when it is not ``url`` any more ("" when the same or unknown)."""
    try:
        new = asyncio.run(discover(args.name, args.sim))[0]
    except K3dtuiError:
        return ""
    return new if new != url else ""


def _rest(settings: LoadSettings, snap: LoadSnapshot, done: LoadSnapshot | None) -> LoadSettings | None:
    """The settings for the rest of the run after ``snap`` (None when nothing is left)."""
    import dataclasses

    if settings.duration is not None:
        left = settings.duration - (snap.elapsed - (done.elapsed if done else 0.0))
        return dataclasses.replace(settings, duration=left) if left > 0.2 else None
    if settings.requests is not None:
        left_n = settings.requests - (snap.requests - (done.requests if done else 0))
        return dataclasses.replace(settings, requests=left_n) if left_n > 0 else None
    return None


def _plus(done: LoadSnapshot | None, snap: LoadSnapshot) -> LoadSnapshot:
    """A segment's snapshot on top of the finished segments' (counts summed, the latest
    window's rates and latencies)."""
    if done is None:
        return snap
    import dataclasses

    def add(a: dict[Any, int], b: dict[Any, int]) -> dict[Any, int]:
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + v
        return out

    return dataclasses.replace(
        snap, elapsed=done.elapsed + snap.elapsed, requests=done.requests + snap.requests,
        responses=done.responses + snap.responses, status=add(done.status, snap.status),
        errors=add(done.errors, snap.errors), per_pod=add(done.per_pod, snap.per_pod),
        per_node=add(done.per_node, snap.per_node), gone_pods=done.gone_pods | snap.gone_pods,
        paths={a: add(done.paths.get(a, {}), snap.paths.get(a, {})) for a in {*done.paths, *snap.paths}},
        cross_node=done.cross_node + snap.cross_node, client_addrs=add(done.client_addrs, snap.client_addrs),
    )


def _share(args: argparse.Namespace) -> float:
    text = getattr(args, "max_error_share", None) or str(DEFAULT_MAX_ERROR_SHARE)
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--max-error-share must be a number of percent, not {text!r}", "e.g. --max-error-share 5") from None
    if not (0 <= value <= 100):
        raise UsageError(f"--max-error-share must be between 0 and 100 (got {text})", "e.g. --max-error-share 5")
    return value


class Trail:
    """(elapsed, requests, responses) of the run's snapshots: whether the target answered
    at all over its last ``GONE_WINDOW`` seconds."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int, int]] = []

    def add(self, snap: LoadSnapshot) -> None:
        self.points.append((snap.elapsed, snap.requests, snap.responses))
        if len(self.points) > 256:
            del self.points[: len(self.points) - 256]

    def gone(self, window: float = GONE_WINDOW) -> bool:
        if not self.points:
            return False
        end, requests, responses = self.points[-1]
        if end < window:
            return False
        start = next(((r, s) for t, r, s in reversed(self.points) if end - t >= window), None)
        if start is None:
            return False
        return requests > start[0] and responses == start[1]


__all__ = ["discover_url", "register", "result_json", "run", "settings_from_args"]
