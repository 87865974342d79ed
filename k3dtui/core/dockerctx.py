"""Which Docker engine to use: resolved as the Docker CLI resolves it, so that k3dtui's SDK
calls, k3d and the user's own ``docker`` commands all talk to the same engine.

The Docker CLI's order (docker/cli ``cli/command/cli.go``, ``resolveContextName``):

1. ``DOCKER_HOST`` (then the ``default`` context is used, with that host);
2. ``DOCKER_CONTEXT``;
3. ``currentContext`` in ``config.json`` under ``DOCKER_CONFIG`` (default ``~/.docker``;
   docker/cli ``cli/config/config.go``);
4. the ``default`` context: ``unix:///var/run/docker.sock``.

A named context's endpoint is ``Endpoints.docker.Host`` in
``<config dir>/contexts/meta/<sha256 of the name>/meta.json`` (docker/cli
``cli/context/store/metadatastore.go``, ``contextdirOf`` = sha256 digest of the name), and its
TLS material, when there is any, is in ``contexts/tls/<same digest>/docker/{ca,cert,key}.pem``
(docker/cli ``cli/context/store/tlsstore.go``).

The docker SDK reads only ``DOCKER_HOST`` before 7.2 (docker/docker-py
``docker/utils/utils.py``, ``kwargs_from_env``), so k3dtui passes the resolved endpoint to it
explicitly, and gives k3d the same endpoint as ``DOCKER_HOST``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from k3dtui.core.errors import K3dtuiError

# the default context's endpoint (docker/cli opts/hosts.go: defaultUnixSocket, and defaultNamedPipe
# on Windows)
DEFAULT_HOST = "npipe:////./pipe/docker_engine" if os.name == "nt" else "unix:///var/run/docker.sock"
DEFAULT_CONTEXT = "default"


@dataclass(frozen=True)
class TLSFiles:
    ca: str | None
    cert: str | None
    key: str | None
    verify: bool
    folder: str  # holds ca.pem/cert.pem/key.pem (for DOCKER_CERT_PATH)


@dataclass(frozen=True)
class Endpoint:
    """The engine the Docker CLI would use, and how k3dtui got to it."""

    context: str  # "default" or the context's name
    host: str  # unix:///…, tcp://…, ssh://…, npipe://…
    source: str  # "DOCKER_HOST", "DOCKER_CONTEXT", "config.json currentContext", "default"
    tls: TLSFiles | None = None

    @property
    def scheme(self) -> str:
        return urlparse(self.host).scheme or "unix"

    @property
    def remote(self) -> bool:
        """An engine reached over the network (``tcp://`` to another host, or ``ssh://``)."""
        if self.scheme == "ssh":
            return True
        if self.scheme in ("tcp", "http", "https"):
            host = urlparse(self.host).hostname or ""
            return host not in ("localhost", "127.0.0.1", "::1", "")
        return False

    @property
    def socket_path(self) -> str | None:
        if self.scheme == "unix":
            return urlparse(self.host).path or None
        return None

    def describe(self) -> str:
        how = {
            "DOCKER_HOST": "from DOCKER_HOST",
            "DOCKER_CONTEXT": "from DOCKER_CONTEXT",
            "config": "the current context in the Docker config",
            "default": "the default",
        }.get(self.source, self.source)
        return f"context {self.context!r} ({how}) at {self.host}"

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``docker.DockerClient`` that reach this engine."""
        kwargs: dict[str, Any] = {"base_url": self.host}
        if self.scheme == "ssh":
            # the system's ssh client, as the Docker CLI uses (docker-py: use_ssh_client)
            kwargs["use_ssh_client"] = True
        if self.tls is not None and self.scheme in ("tcp", "https"):
            from docker.tls import TLSConfig

            cert = (self.tls.cert, self.tls.key) if self.tls.cert and self.tls.key else None
            kwargs["tls"] = TLSConfig(
                client_cert=cert, ca_cert=self.tls.ca, verify=self.tls.verify
            )
        return kwargs

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) with ``DOCKER_HOST`` set to this engine, for
        programs k3dtui starts (k3d): they then use the engine the SDK uses."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)  # DOCKER_HOST wins anyway; leave no contradiction
        if self.tls is not None and "DOCKER_CERT_PATH" not in env:
            env["DOCKER_CERT_PATH"] = self.tls.folder
            if self.tls.verify:
                env["DOCKER_TLS_VERIFY"] = "1"
        return env


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    given = env.get("DOCKER_CONFIG")
    if given:
        return Path(given)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker"


def context_digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def _current_context(folder: Path) -> str | None:
    path = folder / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise K3dtuiError(f"cannot read {path}: {exc.strerror}",
                          f"check the permissions of {path}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise K3dtuiError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})",
                          f"fix or remove {path}") from None
    value = data.get("currentContext") if isinstance(data, dict) else None
    return str(value) if value else None


def _tls_files(folder: Path, digest: str, skip_verify: bool) -> TLSFiles | None:
    tls_dir = folder / "contexts" / "tls" / digest / "docker"
    found = {n: str(tls_dir / f"{n}.pem") for n in ("ca", "cert", "key")
             if (tls_dir / f"{n}.pem").is_file()}
    if not found and not skip_verify:
        return None
    return TLSFiles(found.get("ca"), found.get("cert"), found.get("key"),
                    verify=not skip_verify, folder=str(tls_dir))


def context_endpoint(name: str, source: str, folder: Path) -> Endpoint:
    """The endpoint of the named context (``default`` → the default socket)."""
    if name == DEFAULT_CONTEXT:
        return Endpoint(DEFAULT_CONTEXT, DEFAULT_HOST, source)
    digest = context_digest(name)
    meta = folder / "contexts" / "meta" / digest / "meta.json"
    where = "DOCKER_CONTEXT" if source == "DOCKER_CONTEXT" else f"{folder / 'config.json'}"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise K3dtuiError(
            f"Docker context {name!r} (named by {where}) does not exist: no {meta}",
            "list the contexts with `docker context ls` and pick one with "
            "`docker context use NAME` (or unset DOCKER_CONTEXT)",
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise K3dtuiError(f"cannot read Docker context {name!r} from {meta}: {exc}",
                          "recreate the context with `docker context create`") from None
    docker_ep = ((data.get("Endpoints") or {}).get("docker") or {}) if isinstance(data, dict) else {}
    host = str(docker_ep.get("Host") or "")
    if not host:
        raise K3dtuiError(
            f"Docker context {name!r} has no Docker endpoint ({meta})",
            f"recreate it: `docker context create {name} --docker host=...`",
        )
    tls = _tls_files(folder, digest, bool(docker_ep.get("SkipTLSVerify")))
    return Endpoint(name, host, source, tls)


def resolve(env: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the Docker CLI would use under ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST")
    if host:
        tls = None
        cert_path = env.get("DOCKER_CERT_PATH")
        verify = env.get("DOCKER_TLS_VERIFY", "") != ""
        if cert_path or verify:  # as docker-py's kwargs_from_env and the Docker CLI do
            folder = Path(cert_path) if cert_path else config_dir(env)
            tls = TLSFiles(str(folder / "ca.pem"), str(folder / "cert.pem"),
                           str(folder / "key.pem"), verify, str(folder))
        return Endpoint(DEFAULT_CONTEXT, host, "DOCKER_HOST", tls)
    folder = config_dir(env)
    name = env.get("DOCKER_CONTEXT")
    if name:
        return context_endpoint(name, "DOCKER_CONTEXT", folder)
    name = _current_context(folder)
    if name:
        return context_endpoint(name, "config", folder)
    return Endpoint(DEFAULT_CONTEXT, DEFAULT_HOST, "default")


# ---------------------------------------------------------------- the kind of engine

NATIVE = "native-linux"
DESKTOP = "docker-desktop"
COLIMA = "colima"
ORBSTACK = "orbstack"
ROOTLESS = "rootless"
REMOTE = "remote"
OTHER = "other"

KIND_NAMES = {
    NATIVE: "native Linux engine",
    DESKTOP: "Docker Desktop",
    COLIMA: "colima",
    ORBSTACK: "OrbStack",
    ROOTLESS: "rootless Docker",
    REMOTE: "remote engine",
    OTHER: "Docker in a VM",
}


def engine_kind(endpoint: Endpoint, info: Mapping[str, Any] | None, system: str) -> str:
    """native-linux, docker-desktop, colima, orbstack, rootless, remote or other.

    What tells them apart:
    - a ``tcp://`` engine on another host or an ``ssh://`` one: remote;
    - ``name=rootless`` in the engine's SecurityOptions (moby ``daemon/info.go`` adds it when
      the daemon runs under RootlessKit): rootless;
    - OperatingSystem ``Docker Desktop`` (the same test k3d makes: k3d-io/k3d
      ``pkg/runtimes/docker/util.go``, ``IsDockerDesktop``): Docker Desktop;
    - OperatingSystem ``OrbStack`` or a socket under ``~/.orbstack``: OrbStack;
    - engine name ``colima`` (its VM's hostname), a socket under ``~/.colima`` or a context
      named ``colima*``: colima;
    - anything else on Linux: a native engine; elsewhere: a VM k3dtui does not know.
    """
    info = info or {}
    if endpoint.remote:
        return REMOTE
    security = [str(s) for s in (info.get("SecurityOptions") or [])]
    if any("name=rootless" in s for s in security):
        return ROOTLESS
    os_name = str(info.get("OperatingSystem") or "").lower()
    sock = (endpoint.socket_path or "").lower()
    if "docker desktop" in os_name or "/.docker/run/" in sock or "/.docker/desktop/" in sock:
        return DESKTOP
    if "orbstack" in os_name or "/.orbstack/" in sock or endpoint.context == "orbstack":
        return ORBSTACK
    name = str(info.get("Name") or "").lower()
    if name == "colima" or "/.colima/" in sock or endpoint.context.startswith("colima"):
        return COLIMA
    if "/run/user/" in sock:  # $XDG_RUNTIME_DIR/docker.sock: the rootless daemon's socket
        return ROOTLESS
    if system == "Linux":
        return NATIVE
    return OTHER
