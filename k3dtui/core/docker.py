"""The Docker engine through the docker SDK: the engine the user's Docker CLI uses
(``DOCKER_HOST``, ``DOCKER_CONTEXT``, the current context: ``k3dtui.core.dockerctx``), network
inspection for the MetalLB pool, the app image build, engine facts for doctor."""

from __future__ import annotations

import ipaddress
import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from k3dtui.core import dockerctx
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.network import Member, NetworkInfo
from k3dtui.core.provider import LineSink

DEFAULT_TIMEOUT = 10.0
_STEP_RE = re.compile(r"^Step \d+/\d+ : ")


def endpoint() -> dockerctx.Endpoint:
    """The engine the Docker CLI would use (raises K3dtuiError for a broken context)."""
    return dockerctx.resolve()


def engine_address() -> str:
    try:
        return endpoint().host
    except K3dtuiError:
        return os.environ.get("DOCKER_HOST") or dockerctx.DEFAULT_HOST


_REASONS = (
    ("connection refused", "connection refused"),
    ("no such file or directory", "no socket there"),
    ("filenotfounderror", "no socket there"),
    ("permission denied", "permission denied (is this user in the docker group?)"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("name or service not known", "unknown host"),
)


def _short_reason(reason: object) -> str:
    text = " ".join(str(reason).split())
    low = text.lower()
    for needle, short in _REASONS:
        if needle in low:
            return short
    return text[:160] or "no answer"


def not_reachable(reason: object) -> K3dtuiError:
    text = _short_reason(reason)
    try:
        ep: dockerctx.Endpoint | None = endpoint()
    except K3dtuiError:
        ep = None
    if os.environ.get("DOCKER_HOST"):
        hint = (
            f"start the Docker engine DOCKER_HOST points at ({engine_address()}), or unset "
            "DOCKER_HOST; without Docker, run with --sim"
        )
    elif ep is not None and ep.context != dockerctx.DEFAULT_CONTEXT:
        hint = (
            f"start the engine of Docker context {ep.context!r} (colima start, OrbStack, "
            "Docker Desktop...), or pick another with `docker context use NAME`; without "
            "Docker, run with --sim"
        )
    else:
        hint = (
            "start Docker (e.g. `sudo systemctl start docker`, or open Docker Desktop) or set "
            "DOCKER_HOST; without Docker, run with --sim"
        )
    where = engine_address()
    if ep is not None and ep.context != dockerctx.DEFAULT_CONTEXT:
        where = f"{where} (Docker context {ep.context!r})"
    return K3dtuiError(f"Docker engine not reachable at {where}: {text}", hint)


def client_for(ep: dockerctx.Endpoint, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A docker SDK client for ``ep`` (not yet pinged). The endpoint is passed explicitly:
    the SDK's own ``from_env`` reads only DOCKER_HOST before docker-py 7.2."""
    return docker.DockerClient(timeout=timeout, **ep.sdk_kwargs())


def connect(timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A Docker SDK client that has answered a ping, else K3dtuiError (never a traceback)."""
    ep = endpoint()  # a broken context is its own clear error
    try:
        cli = client_for(ep, timeout)
        cli.ping()
    except Exception as exc:  # the SDK raises DockerException, requests' and OS errors
        raise not_reachable(exc) from None
    return cli


def info(cli: Any = None) -> dict[str, Any]:
    cli = cli or connect()
    try:
        data: dict[str, Any] = cli.info()
    except Exception as exc:
        raise not_reachable(exc) from None
    return data


def is_docker_desktop(engine_info: Mapping[str, Any], system: str | None = None) -> bool:
    """Docker Desktop (its containers live in a VM): macOS/Windows, or the engine says so."""
    system = system or platform.system()
    if system in ("Darwin", "Windows"):
        return True
    os_name = str(engine_info.get("OperatingSystem", ""))
    return "Docker Desktop" in os_name


def containerd_image_store(engine_info: Mapping[str, Any]) -> bool:
    """Docker's containerd image store is on (``k3d image import`` can fail with it)."""
    for pair in engine_info.get("DriverStatus") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and "containerd" in str(pair[1]):
            return True
    return False


# ---------------------------------------------------------------- network


def _ipv4_entry(config: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for entry in config:
        try:
            net = ipaddress.ip_network(str(entry.get("Subnet", "")), strict=False)
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network):
            return entry
    return None


def network_info_from_attrs(attrs: Mapping[str, Any]) -> NetworkInfo:
    """``docker network inspect`` data → NetworkInfo (the IPv4 IPAM entry wherever it is)."""
    name = str(attrs.get("Name", ""))
    config = list((attrs.get("IPAM") or {}).get("Config") or [])
    entry = _ipv4_entry(config)
    if entry is None:
        raise K3dtuiError(
            f"Docker network {name} has no IPv4 subnet",
            "MetalLB needs an IPv4 subnet: recreate the cluster on a network with one",
        )
    subnet = ipaddress.ip_network(str(entry["Subnet"]), strict=False)
    gateway = str(entry.get("Gateway") or "").split("/")[0]
    if not gateway and attrs.get("Driver") == "bridge":
        # A bridge without an explicit gateway gets the subnet's first host address.
        gateway = str(subnet.network_address + 1)
    members: list[Member] = []
    for cid, c in (attrs.get("Containers") or {}).items():
        ip = str((c or {}).get("IPv4Address") or "").split("/")[0]
        if not ip:
            continue
        members.append(Member(str((c or {}).get("Name") or cid[:12]), ip))
    members.sort(key=lambda m: ipaddress.ip_address(m.ip))
    return NetworkInfo(name=name, subnet=str(subnet), gateway=gateway, members=tuple(members))


def inspect_network(name: str, client: Any = None) -> NetworkInfo:
    """The network's IPv4 subnet, gateway and every attached container's IPv4 address."""
    cli = client if client is not None else connect()
    try:
        net = cli.networks.get(name)
        net.reload()
    except docker.errors.NotFound:
        raise K3dtuiError(
            f"Docker network {name} not found",
            "check the name with `docker network ls` (k3d names it k3d-<cluster>)",
        ) from None
    except docker.errors.APIError as exc:
        raise K3dtuiError(f"cannot inspect Docker network {name}: {exc.explanation or exc}",
                          "check the Docker engine") from None
    except (docker.errors.DockerException, OSError) as exc:
        raise not_reachable(exc) from None
    return network_info_from_attrs(net.attrs)


def cluster_network_name(cluster: str, client: Any = None) -> str:
    """The Docker network of a k3d cluster, read from its nodes' labels
    (``app=k3d``, ``k3d.cluster=<name>`` → ``k3d.cluster.network``); ``k3d-<name>`` when the
    cluster has no containers to ask."""
    cli = client if client is not None else connect()
    try:
        found = cli.containers.list(
            all=True, filters={"label": ["app=k3d", f"k3d.cluster={cluster}"]}
        )
    except (docker.errors.DockerException, OSError) as exc:
        raise not_reachable(exc) from None
    for c in found:
        name = str((c.labels or {}).get("k3d.cluster.network") or "")
        if name:
            return name
    return f"k3d-{cluster}"


# ---------------------------------------------------------------- image build


def build_image(
    context: Path,
    tag: str,
    log: LineSink,
    client: Any = None,
    *,
    buildargs: Mapping[str, str] | None = None,
    timeout: float = 900.0,
) -> None:
    """Build ``context`` (its Dockerfile) as ``tag``, streaming the build log line by line.

    A failing step → K3dtuiError naming the step and the error.
    """
    cli = client if client is not None else connect()
    if not (Path(context) / "Dockerfile").is_file():
        raise K3dtuiError(f"no Dockerfile in {context}", "the app build context is incomplete")
    step = ""
    try:
        stream = cli.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            buildargs=dict(buildargs or {}),
            timeout=int(timeout),
        )
        for chunk in stream:
            if not isinstance(chunk, Mapping):
                continue
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    line = line.rstrip()
                    if not line:
                        continue
                    if _STEP_RE.match(line):
                        step = line
                    log(line)
            elif "status" in chunk:
                status = str(chunk["status"])
                if chunk.get("progress") is None:
                    ident = chunk.get("id")
                    log(f"{ident}: {status}" if ident else status)
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                message = str(chunk.get("error") or detail.get("message") or "unknown error")
                message = " ".join(message.split())
                log(message)
                where = f" at {step}" if step else ""
                if _STEP_RE.sub("", step).upper().startswith("FROM"):
                    hint = (
                        "the base image could not be had: check this machine's access to the "
                        "registry, or load the base image locally (docker pull / docker load)"
                    )
                else:
                    hint = "fix the Dockerfile step above (the build log shows its output)"
                raise K3dtuiError(f"docker build of {tag} failed{where}: {message}", hint)
    except K3dtuiError:
        raise
    except docker.errors.BuildError as exc:
        raise K3dtuiError(f"docker build of {tag} failed: {exc.msg}", "see the build log") from None
    except docker.errors.APIError as exc:
        where = f" at {step}" if step else ""
        raise K3dtuiError(
            f"docker build of {tag} failed{where}: {exc.explanation or exc}",
            "see the build log above",
        ) from None
    except (docker.errors.DockerException, OSError) as exc:
        raise not_reachable(exc) from None
