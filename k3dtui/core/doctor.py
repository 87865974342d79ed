"""`k3dtui doctor`: what this machine has for the real (k3d) path, each with its fix."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from k3dtui.core import docker as dockerx
from k3dtui.core import dockerctx, k3d
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.process import INSTALL_HINTS, which
from k3dtui.core.provider import Reachability

DOCKER_TIMEOUT = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str  # "" when ok
    required: bool  # required for the k3d provider

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Engine:
    """The engine doctor looked at: the Docker CLI's context and endpoint, and its kind."""

    context: str | None
    endpoint: str | None
    source: str | None
    kind: str | None


def check_docker() -> tuple[Check, dict[str, Any] | None, Engine]:
    try:
        ep = dockerctx.resolve()
    except K3dtuiError as exc:  # a context that does not exist, a broken config.json
        return Check("docker", False, exc.message, exc.hint, True), None, Engine(None, None, None, None)
    where = ep.describe()
    if os.environ.get("DOCKER_HOST"):
        fix = f"start the Docker engine at {ep.host} or unset DOCKER_HOST"
    elif ep.context != dockerctx.DEFAULT_CONTEXT:
        fix = (f"start the engine of Docker context {ep.context!r} (colima start, OrbStack, "
               "Docker Desktop...) or switch with `docker context use NAME`")
    else:
        fix = ("start Docker (`sudo systemctl start docker`, or open Docker Desktop), "
               "or set DOCKER_HOST")
    try:
        cli = dockerx.connect(timeout=DOCKER_TIMEOUT)
        info = dockerx.info(cli)
    except K3dtuiError as exc:
        kind = dockerctx.engine_kind(ep, None, platform.system())
        return Check("docker", False, exc.message, fix, True), None, Engine(ep.context, ep.host, ep.source, kind)
    kind = dockerctx.engine_kind(ep, info, platform.system())
    detail = (
        f"Docker {info.get('ServerVersion', '?')} ({info.get('OperatingSystem', '?')}), "
        f"{dockerctx.KIND_NAMES.get(kind, kind)}, {where}"
    )
    return Check("docker", True, detail, "", True), info, Engine(ep.context, ep.host, ep.source, kind)


def check_k3d() -> Check:
    fix = INSTALL_HINTS["k3d"]
    try:
        version = k3d.version_sync(timeout=10)
    except K3dtuiError as exc:
        return Check("k3d", False, exc.message, fix, True)
    try:
        k3d.require_v5(version)
    except K3dtuiError as exc:
        return Check("k3d", False, exc.message, exc.hint, True)
    return Check("k3d", True, f"k3d {version} at {which('k3d')}", "", True)


def check_kubectl() -> Check:
    fix = INSTALL_HINTS["kubectl"] + " (optional: k3dtui itself does not need it)"
    exe = which("kubectl")
    if exe is None:
        return Check("kubectl", False, "kubectl not found on PATH (optional)", fix, False)
    try:
        out = subprocess.run(
            [exe, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=10
        )
        version = str(json.loads(out.stdout)["clientVersion"]["gitVersion"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return Check("kubectl", False, f"{exe} does not report its version", fix, False)
    return Check("kubectl", True, f"kubectl {version} at {exe}", "", False)


def check_routing(reach: Reachability, system: str | None = None) -> Check:
    system = system or platform.system()
    if reach.routable:
        return Check("routing", True, reach.explanation, "", False)
    return Check(
        "routing",
        False,
        f"MetalLB IPs on the Docker network are not routable from this host ({system})",
        reach.explanation,
        False,
    )


def check_image_store(info: dict[str, Any] | None) -> Check | None:
    if info is None:
        return None
    if dockerx.containerd_image_store(info):
        return Check(
            "image-store",
            False,
            "Docker uses the containerd image store; `k3d image import` can fail with "
            "'content digest not found'",
            "nothing to do: k3dtui then imports the image with `docker save` into each node's "
            "`ctr -n k8s.io images import` instead",
            False,
        )
    return Check("image-store", True, "classic Docker image store (k3d image import works)", "", False)


def check_provider(docker_ok: bool, k3d_ok: bool, why: str) -> Check:
    if docker_ok and k3d_ok:
        return Check("provider", True, "k3dtui will use k3d (Docker and k3d v5 found)", "", False)
    return Check(
        "provider",
        False,
        f"k3dtui will use the simulated cluster ({why})",
        "fix the failing required checks above to use k3d, or keep the simulated cluster (--sim)",
        False,
    )


def routability(engine: Engine, docker_ok: bool, cluster: str | None) -> Reachability:
    from k3dtui.core.k3d_provider import engine_reachability, reachability_for

    if docker_ok:
        return engine_reachability(cluster)
    system = platform.system()
    reach = reachability_for(engine.kind or dockerctx.OTHER, system)
    if reach.routable:
        return Reachability(True, reach.explanation + " (assumed: the engine did not answer)",
                            reach.engine_kind)
    return reach


@dataclass(frozen=True)
class Report:
    checks: list[Check]
    engine: Engine
    reach: Reachability


def run_checks(cluster: str | None = None) -> list[Check]:
    return run_doctor(cluster).checks


def run_doctor(cluster: str | None = None) -> Report:
    """Every check; ``cluster`` (when it exists) gives routing a node address to probe."""
    with ThreadPoolExecutor(3) as pool:  # independent probes, each with its own timeout
        docker_future = pool.submit(check_docker)
        k3d_future = pool.submit(check_k3d)
        kubectl_future = pool.submit(check_kubectl)
        docker_check, info, engine = docker_future.result()
        k3d_check = k3d_future.result()
        kubectl_check = kubectl_future.result()
    reach = routability(engine, docker_check.ok, cluster)
    checks = [docker_check, k3d_check, kubectl_check, check_routing(reach)]
    store = check_image_store(info)
    if store is not None:
        checks.append(store)
    missing = [c.name for c in (docker_check, k3d_check) if not c.ok]
    why = ", ".join(f"{n} unavailable" for n in missing)
    checks.append(check_provider(docker_check.ok, k3d_check.ok, why))
    return Report(checks, engine, reach)


def k3d_usable(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def report_json(
    checks: list[Check], engine: Engine | None = None, reach: Reachability | None = None
) -> dict[str, Any]:
    """The checks, plus the engine's context, endpoint and kind and whether MetalLB IPs are
    routable (with the reason)."""
    usable = k3d_usable(checks)
    engine = engine or Engine(None, None, None, None)
    return {
        "ok": usable,
        "provider": "k3d" if usable else "sim",
        "context": engine.context,
        "endpoint": engine.endpoint,
        "engine_kind": engine.kind,
        "routable": None if reach is None else reach.routable,
        "routable_reason": None if reach is None else reach.explanation,
        "load": None if reach is None else ("direct" if reach.routable else "in-network"),
        "checks": [c.to_json() for c in checks],
    }
