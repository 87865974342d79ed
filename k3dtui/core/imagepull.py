"""Slow first runs: the images k3d needs (k3s, its load balancer, its tools) pulled through
the docker SDK before ``k3d cluster create``, with per-image progress, so that k3d's own
timeout is not spent downloading and the user sees what is happening.

The images are k3d's defaults (k3d-io/k3d ``pkg/types/images.go``): ``docker.io/rancher/k3s``
at the k3s version ``k3d version`` reports as the default, and ``ghcr.io/k3d-io/k3d-proxy``
and ``ghcr.io/k3d-io/k3d-tools`` at k3d's own version without the ``v``; the variables
``K3D_IMAGE_LOADBALANCER``, ``K3D_IMAGE_TOOLS`` and ``K3D_HELPER_IMAGE_TAG`` override them as
they do for k3d (``pkg/types/env.go``); ``K3DTUI_K3S_IMAGE`` picks the k3s image (k3dtui then
writes it into the cluster config's ``image``). k3d pulls an image only when creating a node
container from it fails with "not found" (``pkg/runtimes/docker/container.go``,
``createContainer``), so images pulled beforehand are used as they are.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import LineSink

K3S_REPO = "docker.io/rancher/k3s"
PROXY_REPO = "ghcr.io/k3d-io/k3d-proxy"
TOOLS_REPO = "ghcr.io/k3d-io/k3d-tools"
K3S_IMAGE_ENV = "K3DTUI_K3S_IMAGE"
REPORT_EVERY = 1.0  # seconds between two progress lines of one image

_K3S_RE = re.compile(r"k3s version (v\S+)")
_K3D_RE = re.compile(r"k3d version (v\S+)")


def k3s_image(version_output: str, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if env.get(K3S_IMAGE_ENV):
        return env[K3S_IMAGE_ENV]
    m = _K3S_RE.search(version_output)
    # k3d turns a "+" of the k3s version into "-" for the tag (k3s tags use "-k3s1")
    return f"{K3S_REPO}:{m.group(1).replace('+', '-')}" if m else None


def required_images(version_output: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The images ``k3d cluster create`` pulls, from ``k3d version``'s output."""
    env = os.environ if env is None else env
    out: list[str] = []
    k3s = k3s_image(version_output, env)
    if k3s:
        out.append(k3s)
    m = _K3D_RE.search(version_output)
    helper = env.get("K3D_HELPER_IMAGE_TAG") or (m.group(1).lstrip("v") if m else "latest")
    out.append(env.get("K3D_IMAGE_LOADBALANCER") or f"{PROXY_REPO}:{helper}")
    out.append(env.get("K3D_IMAGE_TOOLS") or f"{TOOLS_REPO}:{helper}")
    return out


def split_ref(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` → (repo, tag); a ``:`` in a registry's host:port is not a tag."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.split(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"


@dataclass
class PullProgress:
    """One image's pull, from the engine's JSON stream (one object per layer event)."""

    ref: str
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # id → (current, total)
    done: set[str] = field(default_factory=set)
    error: str = ""

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if chunk.get("error") or chunk.get("errorDetail"):
            detail = chunk.get("errorDetail") or {}
            self.error = " ".join(str(chunk.get("error") or detail.get("message") or "").split())
            return
        ident = str(chunk.get("id") or "")
        status = str(chunk.get("status") or "")
        if not ident or status.startswith("Pulling from"):
            return
        detail = chunk.get("progressDetail") or {}
        if status in ("Pulling fs layer", "Waiting") and ident not in self.layers:
            self.layers[ident] = (0, 0)
        elif status == "Downloading":
            self.layers[ident] = (int(detail.get("current") or 0), int(detail.get("total") or 0))
        elif status in ("Download complete", "Verifying Checksum"):
            cur, total = self.layers.get(ident, (0, 0))
            self.layers[ident] = (max(cur, total), total)
        elif status in ("Pull complete", "Already exists"):
            cur, total = self.layers.get(ident, (0, 0))
            self.layers[ident] = (max(cur, total), total)
            self.done.add(ident)

    def line(self) -> str:
        cur = sum(c for c, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        size = f"{cur / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{cur / 1e6:.1f} MB"
        return f"pulling {self.ref}: {size}, {len(self.done)}/{len(self.layers)} layers"


def present(cli: Any, ref: str) -> bool:
    try:
        cli.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError:
        return False


def pull(cli: Any, ref: str, log: LineSink, clock: Callable[[], float] = time.monotonic) -> None:
    """Pull ``ref`` through the SDK, a progress line at most every REPORT_EVERY seconds."""
    repo, tag = split_ref(ref)
    prog = PullProgress(ref)
    last = clock()
    log(f"pulling {ref}")
    try:
        for chunk in cli.api.pull(repo, tag=tag, stream=True, decode=True):
            if not isinstance(chunk, Mapping):
                continue
            prog.feed(chunk)
            if prog.error:
                break
            now = clock()
            if now - last >= REPORT_EVERY:
                last = now
                log(prog.line())
    except docker.errors.APIError as exc:
        prog.error = str(exc.explanation or exc)
    except (docker.errors.DockerException, OSError) as exc:
        prog.error = str(exc)
    if prog.error:
        raise K3dtuiError(f"cannot pull {ref}: {prog.error}",
                          "check this machine's access to the registry (proxy, login), or "
                          f"`docker pull {ref}` by hand")
    log(f"pulled {ref} ({prog.line().split(': ', 1)[1]})")


def pull_missing(cli: Any, refs: list[str], log: LineSink,
                 clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Pull each image not on the engine yet; a failed pull is said and left to k3d (it may
    have a registry mirror k3dtui does not know). The images that could not be pulled."""
    failed: list[str] = []
    for ref in refs:
        if present(cli, ref):
            log(f"image {ref} is present")
            continue
        try:
            pull(cli, ref, log, clock)
        except K3dtuiError as exc:
            log(f"warning: {exc.message}; k3d will try itself")
            failed.append(ref)
    return failed
