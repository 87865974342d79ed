"""The app image into a k3d cluster's nodes without ``k3d image import``: ``docker save``
streamed into ``ctr -n k8s.io images import -`` inside each server and agent node container.

Why: with Docker's containerd image store (the default of fresh Docker Engine 29 installs)
``k3d image import`` can fail with "content digest … not found" (k3d-io/k3d#1538). k3d itself
imports the same way, through a tools node (k3d-io/k3d ``pkg/client/tools.go``,
``loadImageFromStream``: ``ctr image import --all-platforms -`` in every server and agent
node); k3dtui leaves out ``--all-platforms`` (the containerd store's save may list
platforms whose content is not there) and, when the engine can (API 1.48+), saves only the
nodes' platform.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import LineSink

CTR_IMPORT = ["ctr", "-n", "k8s.io", "images", "import", "-"]
NODE_ROLES = ("server", "agent")
CHUNK = 1024 * 1024
SEND_STALL = 120.0  # seconds a node's ctr may stop reading before k3dtui gives up on it
SEND_POLL = 1.0  # while a send is stalled, look this often whether ctr still runs


def _send(sock: socket.socket, data: bytes, running: Callable[[], bool]) -> bool:
    """Send all of ``data``; False when ctr stopped running, or stalled for ``SEND_STALL``."""
    view = memoryview(data)
    stalled = 0.0
    while view:
        try:
            sent = sock.send(view)
        except TimeoutError:
            stalled += SEND_POLL
            if stalled >= SEND_STALL or not running():
                return False
            continue
        view = view[sent:]
        stalled = 0.0
    return True
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def node_containers(cli: Any, cluster: str) -> list[Any]:
    """The cluster's server and agent containers (not its load balancer or tools node), by
    k3d's labels (``app=k3d``, ``k3d.cluster``, ``k3d.role``), sorted by name."""
    found = cli.containers.list(all=True, filters={"label": ["app=k3d", f"k3d.cluster={cluster}"]})
    nodes = [c for c in found if (c.labels or {}).get("k3d.role") in NODE_ROLES]
    return sorted(nodes, key=lambda c: str(c.name))


def _platform(engine: Mapping[str, Any]) -> dict[str, str] | None:
    arch = str(engine.get("Architecture") or "")
    os_type = str(engine.get("OSType") or "linux")
    if not arch:
        return None
    return {"os": os_type, "architecture": _ARCH.get(arch, arch)}


def _api_at_least(cli: Any, version: tuple[int, int]) -> bool:
    try:
        major, minor = (int(x) for x in str(cli.api.api_version).split(".")[:2])
    except (ValueError, AttributeError):
        return False
    return (major, minor) >= version


def save_image(cli: Any, tag: str, dest: Path, engine: Mapping[str, Any]) -> int:
    """``docker save TAG`` into ``dest``; only the engine's own platform when the engine
    takes a platform (Docker API 1.48: ``GET /images/{name}/get?platform=``). Bytes written."""
    platform = _platform(engine) if _api_at_least(cli, (1, 48)) else None
    try:
        if platform is not None:
            url = cli.api._url("/images/{0}/get", tag)
            res = cli.api._get(url, params={"platform": json.dumps(platform)}, stream=True)
            cli.api._raise_for_status(res)
            chunks: Iterator[bytes] = res.iter_content(CHUNK)
        else:
            chunks = cli.api.get_image(tag, chunk_size=CHUNK)
        size = 0
        with open(dest, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
    except docker.errors.NotFound:
        raise K3dtuiError(f"image {tag} not found on the Docker engine",
                          "build it first (`k3dtui up` does)") from None
    except (docker.errors.DockerException, OSError) as exc:
        raise K3dtuiError(f"docker save {tag} failed: {exc}", "check the Docker engine") from None
    return size


def _frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """The exec's multiplexed output (no tty): 8-byte headers (stream, size) then payload
    (Docker Engine API, "Attach to a container": stream format)."""
    buf = b""

    def need(n: int) -> bytes | None:
        nonlocal buf
        while len(buf) < n:
            data = sock.recv(65536)
            if not data:
                return None
            buf += data
        out, buf = buf[:n], buf[n:]
        return out

    while True:
        header = need(8)
        if header is None:
            return
        stream, size = struct.unpack(">BxxxL", header)
        payload = need(size)
        if payload is None:
            return
        yield stream, payload


def _raw(sock: Any) -> socket.socket:
    raw = getattr(sock, "_sock", sock)
    return raw  # type: ignore[no-any-return]


def ctr_import(cli: Any, container: Any, tar: Path, log: LineSink) -> None:
    """Stream ``tar`` into ``ctr -n k8s.io images import -`` inside ``container``."""
    name = str(container.name)
    try:
        exec_id = cli.api.exec_create(container.id, CTR_IMPORT, stdin=True, stdout=True,
                                      stderr=True)["Id"]
        sock = _raw(cli.api.exec_start(exec_id, socket=True))
    except docker.errors.APIError as exc:
        raise K3dtuiError(f"cannot run ctr in node {name}: {exc.explanation or exc}",
                          "check that the node is running (`k3d cluster list`)") from None
    output: list[str] = []

    def reader() -> None:
        with contextlib.suppress(OSError):
            for _stream, payload in _frames(sock):
                output.append(payload.decode("utf-8", errors="replace"))

    thread = threading.Thread(target=reader, name=f"ctr-import-{name}", daemon=True)
    thread.start()
    try:
        # A ctr that stops reading (it failed) ends its output, breaks the pipe or stalls the
        # send: stop sending then, its exit code says why.
        # Docker keeps the hijacked stream open after ctr exits, so a send into a ctr that is
        # gone blocks: send with a short timeout and, while stalled, ask whether ctr still runs.
        sock.settimeout(SEND_POLL)
        with open(tar, "rb") as fh, contextlib.suppress(OSError):
            while thread.is_alive() and (chunk := fh.read(CHUNK)):
                if not _send(sock, chunk, lambda: bool(cli.api.exec_inspect(exec_id).get("Running"))):
                    break
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        thread.join(600)
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    state = cli.api.exec_inspect(exec_id)
    for _ in range(100):  # the output ended; the exit code follows within moments
        if not state.get("Running"):
            break
        time.sleep(0.05)
        state = cli.api.exec_inspect(exec_id)
    code = state.get("ExitCode")
    lines = [ln.strip() for ln in "".join(output).splitlines() if ln.strip()]
    for ln in lines:
        log(f"{name}: {ln}")
    if code != 0:
        last = lines[-1] if lines else "no output"
        raise K3dtuiError(
            f"`ctr -n k8s.io images import -` failed in node {name} (exit {code}): {last}",
            "see the lines above; `docker exec` into the node to look",
        )


def import_into_nodes(cli: Any, cluster: str, tag: str, log: LineSink,
                      engine: Mapping[str, Any]) -> list[str]:
    """``docker save TAG`` once, then into every server and agent node; the nodes' names."""
    nodes = node_containers(cli, cluster)
    if not nodes:
        raise K3dtuiError(f"k3d cluster {cluster!r} has no server or agent containers",
                          "check it with `k3d cluster list`")
    fd, path = tempfile.mkstemp(prefix="k3dtui-image-", suffix=".tar")
    os.close(fd)
    tar = Path(path)
    try:
        size = save_image(cli, tag, tar, engine)
        log(f"docker save {tag}: {size / 1e6:.1f} MB")
        for node in nodes:
            log(f"importing {tag} into node {node.name} (ctr -n k8s.io images import -)")
            ctr_import(cli, node, tar, log)
    finally:
        tar.unlink(missing_ok=True)
    return [str(n.name) for n in nodes]
