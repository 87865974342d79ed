"""The k3d CLI (v5): the generated cluster config, create/start/delete, ``cluster list -o
json``, ``image import -c``, ``kubeconfig get`` into k3dtui's own state folder.

Every call goes through ``k3dtui.core.process.run`` (argv lists, streamed lines).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from k3dtui.core import paths
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.process import (
    CommandError,
    ProcessResult,
    missing_executable,
    parse_log_line,
    run,
    which,
)
from k3dtui.core.provider import ClusterInfo, LineSink
from k3dtui.core.spec import ClusterSpec, validate_spec
from k3dtui.resources import manifest_text

K3D = "k3d"
SERVICELB_ARG = "--disable=servicelb"
SERVER_FILTER = "server:*"
CREATE_TIMEOUT = 900.0  # our own guard around `k3d cluster create` (k3d's is K3D_TIMEOUT)
K3D_TIMEOUT = "300s"  # k3d's options.k3d.timeout: long enough for a slow first pull of k3s
SHORT_TIMEOUT = 60.0

_VERSION_RE = re.compile(r"k3d version v?(\d+)\.(\d+)\.(\d+)\S*")


def _quiet(_: str) -> None:
    return None


def k3d_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment k3d runs in: colours off and the engine k3dtui's SDK uses.

    - ``LOG_COLORS=false``: k3d forces colours on every line otherwise (k3d-io/k3d
      ``cmd/root.go``, ``initLogging``: ``ForceColors: true`` unless LOG_COLORS parses false).
    - ``DOCKER_HOST``: the endpoint resolved as the Docker CLI does (``core.dockerctx``). k3d
      builds its client through the Docker CLI's code (k3d-io/k3d
      ``pkg/runtimes/docker/util.go``, ``GetDockerClient``), so it would follow the same
      context; giving it the endpoint explicitly makes that certain.
    """
    from k3dtui.core import dockerctx

    env = dict(os.environ if base is None else base)
    env["LOG_COLORS"] = "false"
    # a broken context: k3d reports it the same way the SDK check already does
    with contextlib.suppress(K3dtuiError):
        env = dockerctx.resolve(env).child_env(env)
    return env


def plain_sink(log: LineSink) -> LineSink:
    """A sink that gets k3d's lines as ``INFO[0003] message`` whatever shape k3d printed
    (coloured, logfmt without colours), escape codes gone."""
    start = time.monotonic()

    def sink(line: str) -> None:
        level, message = parse_log_line(line)
        if level is None:
            log(message)
        else:
            log(f"{level}[{int(time.monotonic() - start):04d}] {message}")

    return sink


async def _k3d(
    args: list[str],
    *,
    log: LineSink | None = None,
    timeout: float | None = SHORT_TIMEOUT,
    hint: str = "",
    check: bool = True,
) -> ProcessResult:
    return await run(
        [K3D, *args],
        on_line=plain_sink(log) if log is not None else None,
        timeout=timeout,
        env=k3d_env(),
        hint=hint,
        check=check,
    )


# ---------------------------------------------------------------- version


def parse_version(output: str) -> str:
    """``k3d version`` output → ``"v5.9.0"``. Raises K3dtuiError when it is not there."""
    m = _VERSION_RE.search(output)
    if not m:
        raise K3dtuiError(
            f"cannot read the k3d version from {output.strip()[:80]!r}",
            "check that `k3d version` works",
        )
    return "v" + m.group(0).split()[-1].lstrip("v")


def require_v5(version: str) -> None:
    major = int(version.lstrip("v").split(".")[0])
    if major != 5:
        raise K3dtuiError(
            f"k3d {version} is installed; k3dtui needs k3d v5",
            "install k3d v5 (https://k3d.io/#installation), or run with --sim",
        )


def version_sync(timeout: float = 10.0, env: Mapping[str, str] | None = None) -> str:
    """The installed k3d version (blocking; for doctor and provider selection)."""
    full_env = k3d_env(env)
    exe = which(K3D, full_env)
    if exe is None:
        raise missing_executable(K3D)
    try:
        out = subprocess.run(
            [exe, "version"], capture_output=True, text=True, timeout=timeout, env=full_env
        )
    except subprocess.TimeoutExpired:
        raise K3dtuiError(f"`k3d version` did not answer within {timeout:g} s",
                          "check the k3d installation") from None
    except OSError as exc:
        raise K3dtuiError(f"cannot run {exe}: {exc}", "check the k3d installation") from None
    if out.returncode != 0:
        raise CommandError([K3D, "version"], out.returncode, out.stderr or out.stdout)
    return parse_version(out.stdout)


async def version() -> str:
    res = await _k3d(["version"])
    return parse_version(res.stdout)


async def version_output() -> str:
    """``k3d version``'s whole output (k3d's version and its default k3s version)."""
    res = await _k3d(["version"])
    return res.stdout


# ---------------------------------------------------------------- config file


def render_config(name: str, servers: int, agents: int) -> str:
    """The ``k3d.io/v1alpha5`` Simple config from ``manifests/k3d-cluster.yaml`` with the
    cluster's name and node counts, ServiceLB disabled on every server."""
    doc: dict[str, Any] = yaml.safe_load(manifest_text("k3d-cluster.yaml"))
    doc.setdefault("metadata", {})["name"] = name
    doc["servers"] = servers
    doc["agents"] = agents
    options = doc.setdefault("options", {})
    k3d_opts = options.setdefault("k3d", {})
    k3d_opts["timeout"] = K3D_TIMEOUT  # a duration (k3d-io/k3d pkg/config/v1alpha5/schema.json)
    image = os.environ.get("K3DTUI_K3S_IMAGE")
    if image:  # the k3s image the nodes run (top-level `image` of the v1alpha5 schema)
        doc["image"] = image
    k3s = options.setdefault("k3s", {})
    extra: list[dict[str, Any]] = k3s.setdefault("extraArgs", []) or []
    k3s["extraArgs"] = extra
    for entry in extra:
        if entry.get("arg") == SERVICELB_ARG:
            filters = entry.setdefault("nodeFilters", [])
            if SERVER_FILTER not in filters:
                filters.append(SERVER_FILTER)
            break
    else:
        extra.append({"arg": SERVICELB_ARG, "nodeFilters": [SERVER_FILTER]})
    return yaml.safe_dump(doc, sort_keys=False)


def write_config(name: str, servers: int, agents: int) -> Path:
    """The rendered config in a temporary file (the caller removes it)."""
    fd, path = tempfile.mkstemp(prefix=f"k3dtui-{name}-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_config(name, servers, agents))
    return Path(path)


# ---------------------------------------------------------------- cluster list


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _node_running(node: Mapping[str, Any]) -> bool:
    state = node.get("State") or node.get("state") or {}
    if isinstance(state, Mapping):
        running = state.get("Running", state.get("running"))
        if isinstance(running, bool):
            return running
        status = str(state.get("Status", state.get("status", ""))).lower()
        return status == "running"
    return False


def parse_cluster_list(text: str) -> list[ClusterInfo]:
    """``k3d cluster list -o json`` (an array; mixed-case fields) → ClusterInfo per cluster."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise K3dtuiError(
            f"`k3d cluster list -o json` printed something that is not JSON ({exc.msg})",
            "check the k3d version (v5 required)",
        ) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise K3dtuiError(
            "`k3d cluster list -o json` did not print a list", "check the k3d version (v5 required)"
        )
    out: list[ClusterInfo] = []
    for item in data:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        nodes = [n for n in (item.get("nodes") or []) if isinstance(n, Mapping)]

        def count(role: str, running_only: bool, nodes: list[Mapping[str, Any]] = nodes) -> int:
            return sum(
                1
                for n in nodes
                if str(n.get("role", n.get("Role", ""))) == role
                and (not running_only or _node_running(n))
            )

        servers = _as_int(item.get("serversCount"))
        agents = _as_int(item.get("agentsCount"))
        s_run = _as_int(item.get("serversRunning"))
        a_run = _as_int(item.get("agentsRunning"))
        out.append(
            ClusterInfo(
                name=str(item["name"]),
                servers=servers if servers is not None else count("server", False),
                agents=agents if agents is not None else count("agent", False),
                servers_running=s_run if s_run is not None else count("server", True),
                agents_running=a_run if a_run is not None else count("agent", True),
            )
        )
    return out


async def cluster_list() -> list[ClusterInfo]:
    res = await _k3d(["cluster", "list", "-o", "json"])
    return parse_cluster_list(res.stdout)


async def cluster_get(name: str) -> ClusterInfo | None:
    for info in await cluster_list():
        if info.name == name:
            return info
    return None


# ---------------------------------------------------------------- lifecycle


async def cluster_create(
    name: str, servers: int, agents: int, log: LineSink, *, timeout: float = CREATE_TIMEOUT
) -> None:
    """``k3d cluster create --config FILE``, k3d's output streamed to ``log``."""
    validate_spec(ClusterSpec(name=name, servers=servers, agents=agents))
    config = write_config(name, servers, agents)
    try:
        await _k3d(
            ["cluster", "create", "--config", str(config)],
            log=log,
            timeout=timeout,
            hint=f"k3d could not create cluster {name!r}; fix what its output says, then "
            f"run `k3d cluster delete {name}` if anything was left and try again",
        )
    finally:
        config.unlink(missing_ok=True)


async def cluster_start(name: str, log: LineSink, *, timeout: float = CREATE_TIMEOUT) -> None:
    await _k3d(["cluster", "start", name], log=log, timeout=timeout)


async def node_stop(node: str, log: LineSink, *, timeout: float = 120.0) -> None:
    """``k3d node stop k3d-<cluster>-<role>-<n>``: the node's container stops."""
    await _k3d(["node", "stop", node], log=log, timeout=timeout, hint=f"the node {node} could not be stopped")


async def node_start(node: str, log: LineSink, *, timeout: float = 120.0) -> None:
    """``k3d node start k3d-<cluster>-<role>-<n>``: the node's container starts; k3s
    registers again and the node turns Ready."""
    await _k3d(["node", "start", node], log=log, timeout=timeout, hint=f"the node {node} could not be started")


async def cluster_delete(name: str, log: LineSink, *, timeout: float = 300.0) -> None:
    await _k3d(["cluster", "delete", name], log=log, timeout=timeout)


async def image_import(tag: str, name: str, log: LineSink, *, timeout: float = 600.0) -> None:
    """``k3d image import TAG -c NAME``: always ``-c`` (k3d's default is k3s-default)."""
    await _k3d(
        ["image", "import", tag, "-c", name],
        log=log,
        timeout=timeout,
        hint=f"the image {tag} could not be imported into cluster {name!r}",
    )


def kubeconfig_path(name: str) -> Path:
    return paths.cluster_dir("k3d", name) / "kubeconfig.yaml"


async def kubeconfig_get(name: str) -> Path:
    """``k3d kubeconfig get NAME`` into k3dtui's state folder (mode 0600); the user's
    ~/.kube/config is not touched here."""
    res = await _k3d(["kubeconfig", "get", name])
    text = res.stdout.strip()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict) or "clusters" not in doc:
        raise K3dtuiError(
            f"`k3d kubeconfig get {name}` did not print a kubeconfig",
            f"check that cluster {name!r} exists and is running (`k3d cluster list`)",
        )
    path = kubeconfig_path(name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
