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
from k3dtui.core import k3d
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.process import INSTALL_HINTS, which

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


def check_docker() -> tuple[Check, dict[str, Any] | None]:
    fix = (
        f"start the Docker engine at {dockerx.engine_address()} or unset DOCKER_HOST"
        if os.environ.get("DOCKER_HOST")
        else "start Docker (`sudo systemctl start docker`, or open Docker Desktop), "
        "or set DOCKER_HOST"
    )
    try:
        cli = dockerx.connect(timeout=DOCKER_TIMEOUT)
        info = dockerx.info(cli)
    except K3dtuiError as exc:
        return Check("docker", False, exc.message, fix, True), None
    detail = (
        f"Docker {info.get('ServerVersion', '?')} ({info.get('OperatingSystem', '?')}) "
        f"at {dockerx.engine_address()}"
    )
    return Check("docker", True, detail, "", True), info


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


def check_routing(info: dict[str, Any] | None) -> Check:
    from k3dtui.core.k3d_provider import reachability_for

    system = platform.system()
    reach = reachability_for(system, info)
    detail = reach.explanation
    if info is None and reach.routable:
        detail += " (assumed: the engine did not answer)"
    if reach.routable:
        return Check("routing", True, detail, "", False)
    return Check(
        "routing",
        False,
        f"MetalLB IPs on the Docker network are not routable from this host ({system})",
        detail,
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
            "turn off the containerd image store in Docker's settings, or use --sim",
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


def run_checks() -> list[Check]:
    with ThreadPoolExecutor(3) as pool:  # independent probes, each with its own timeout
        docker_future = pool.submit(check_docker)
        k3d_future = pool.submit(check_k3d)
        kubectl_future = pool.submit(check_kubectl)
        docker_check, info = docker_future.result()
        k3d_check = k3d_future.result()
        kubectl_check = kubectl_future.result()
    checks = [docker_check, k3d_check, kubectl_check, check_routing(info)]
    store = check_image_store(info)
    if store is not None:
        checks.append(store)
    missing = [c.name for c in (docker_check, k3d_check) if not c.ok]
    why = ", ".join(f"{n} unavailable" for n in missing)
    checks.append(check_provider(docker_check.ok, k3d_check.ok, why))
    return checks


def k3d_usable(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def report_json(checks: list[Check]) -> dict[str, Any]:
    usable = k3d_usable(checks)
    return {
        "ok": usable,
        "provider": "k3d" if usable else "sim",
        "checks": [c.to_json() for c in checks],
    }
