"""The load generator inside the cluster's network, for engines whose container addresses
this host cannot reach (Docker Desktop, colima, rootless, remote: see
``k3dtui.core.k3d_provider.reachability_for``).

The same worker as a local run (``k3dtui.core.loadworker``) runs in a container on the
cluster's Docker network (``k3d-<name>``), where the MetalLB address answers. Its image is
built from the app's own image (it already has Python, and uvloop) with the worker's two
files added. The container talks over its own stdio: snapshots come back as JSON lines on
its output, commands go in on its input, so ``InNetworkLoadGenerator`` is a
``LoadGenerator`` whose pipe and process are the container: the load panel and
``load --json`` read the same snapshots (per pod, per node, latency, errors).

The container is removed when the run ends (AutoRemove, and an explicit remove), ends by
itself when k3dtui dies (its stdin is attached with StdinOnce: EOF ends the worker; every
run is bounded anyway), and carries labels so that ``cleanup_stale`` removes any left over
on the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import docker.errors

from k3dtui.core import docker as dockerx
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.load import LoadGenerator, validate_settings
from k3dtui.core.models import LoadSettings
from k3dtui.core.process import pid_alive

LABEL = "k3dtui.role"
LABEL_VALUE = "load-generator"
OWNER_LABEL = "k3dtui.owner"  # "<hostname>:<pid>" of the k3dtui that started it
IMAGE_REPO = "k3dtui-loadgen"
WORKDIR = "/opt/k3dtui-load"
HERE = Path(__file__).resolve().parent
FILES = ("loadworker.py", "innetwork_worker.py")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
              "http_proxy", "https_proxy", "all_proxy", "no_proxy")

DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
HEALTHCHECK NONE
COPY {' '.join(FILES)} {WORKDIR}/
WORKDIR {WORKDIR}
ENTRYPOINT ["python", "-u", "{WORKDIR}/innetwork_worker.py"]
CMD []
"""


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def container_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """The generator container's whole environment: its settings and nothing else (no proxy
    variables: it dials the cluster's addresses itself)."""
    return {"K3DTUI_LOAD": json.dumps(dict(settings)), "PYTHONDONTWRITEBYTECODE": "1"}


# ---------------------------------------------------------------- image


def _context(base: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("Dockerfile", DOCKERFILE.encode())] + [
            (f, (HERE / f).read_bytes()) for f in FILES
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_tag(cli: Any, base: str) -> str:
    """``k3dtui-loadgen:<digest>`` of the base image's id and the worker's files."""
    try:
        base_id = str(cli.images.get(base).id)
    except docker.errors.ImageNotFound:
        raise K3dtuiError(
            f"the app image {base} is not on the Docker engine",
            "build it first: `k3dtui up` builds and imports it",
        ) from None
    h = hashlib.sha256(base_id.encode())
    h.update(DOCKERFILE.encode())
    for f in FILES:
        h.update((HERE / f).read_bytes())
    return f"{IMAGE_REPO}:{h.hexdigest()[:16]}"


def ensure_image(cli: Any, base: str) -> str:
    """The generator image for ``base`` (built once per base image and worker code)."""
    tag = image_tag(cli, base)
    with contextlib.suppress(docker.errors.ImageNotFound):
        cli.images.get(tag)
        return tag
    try:
        for chunk in cli.api.build(fileobj=io.BytesIO(_context(base)), custom_context=True,
                                   tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True,
                                   decode=True, labels={LABEL: "load-generator-image"}):
            if isinstance(chunk, Mapping) and (chunk.get("error") or chunk.get("errorDetail")):
                detail = chunk.get("errorDetail") or {}
                raise K3dtuiError(
                    f"cannot build the in-network load generator image from {base}: "
                    f"{chunk.get('error') or detail.get('message')}",
                    "check the Docker engine (`docker build` works?)",
                )
    except docker.errors.APIError as exc:
        raise K3dtuiError(f"cannot build the in-network load generator image: {exc.explanation or exc}",
                          "check the Docker engine") from None
    return tag


# ---------------------------------------------------------------- the container as a pipe


class _Link:
    """The container's attached stdio as ``multiprocessing.Connection``'s poll/recv/send/close:
    snapshots parsed from its stdout (multiplexed frames), commands written to its stdin."""

    def __init__(self, sock: Any) -> None:
        self.sock = getattr(sock, "_sock", sock)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.peeked: list[Any] = []
        self.stderr: list[str] = []
        self.ended = threading.Event()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, name="k3dtui-inload-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        buf = b""
        out = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 8:
                    stream, size = struct.unpack(">BxxxL", buf[:8])
                    if len(buf) < 8 + size:
                        break
                    payload, buf = buf[8:8 + size], buf[8 + size:]
                    if stream == 2:
                        self.stderr.extend(payload.decode("utf-8", "replace").splitlines())
                        del self.stderr[:-20]
                        continue
                    out += payload
                    while b"\n" in out:
                        line, _, out = out.partition(b"\n")
                        self._line(line)
        except OSError:
            pass
        finally:
            self.ended.set()
            self.queue.put(EOFError)

    def _line(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            self.stderr.append(line.decode("utf-8", "replace"))
            return
        if isinstance(msg, dict):
            # the container's monotonic clock is not ours (a VM's, on Docker Desktop): the
            # freshness the generator judges is the time the snapshot reached k3dtui
            msg["sent_at"] = time.monotonic()
            self.queue.put(msg)

    def poll(self, timeout: float | None = 0.0) -> bool:
        if self.peeked:
            return True
        try:
            if timeout is None:  # as Connection.poll(None): wait for as long as it takes
                item = self.queue.get()
            elif timeout > 0:
                item = self.queue.get(timeout=timeout)
            else:
                item = self.queue.get_nowait()
        except queue.Empty:
            return False
        self.peeked.append(item)
        return True

    def recv(self) -> Any:
        item = self.peeked.pop(0) if self.peeked else self.queue.get()
        if item is EOFError:
            self.peeked.insert(0, EOFError)  # stays at EOF
            raise EOFError
        return item

    def send(self, obj: Any) -> None:
        data = (json.dumps(list(obj) if isinstance(obj, tuple) else obj) + "\n").encode()
        with self.lock:
            self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class _Container:
    """The container as the generator's "process": alive while its output flows."""

    pid = None

    def __init__(self, cli: Any, container_id: str, link: _Link) -> None:
        self.cli = cli
        self.id = container_id
        self.link = link

    def is_alive(self) -> bool:
        return not self.link.ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self.link.ended.wait(timeout)
        if self.link.ended.is_set():
            self.remove()

    def kill(self) -> None:
        self.remove()

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.cli.api.remove_container(self.id, force=True)


class _Stop:
    def __init__(self, link: _Link) -> None:
        self.link = link

    def set(self) -> None:
        with contextlib.suppress(OSError):
            self.link.send(("stop",))


def cleanup_stale(cli: Any) -> list[str]:
    """Remove generator containers whose k3dtui is gone (killed before it could): those of
    this host whose owner pid is not running. Their names."""
    removed: list[str] = []
    host = socket.gethostname()
    try:
        found = cli.containers.list(all=True, filters={"label": [f"{LABEL}={LABEL_VALUE}"]})
    except (docker.errors.DockerException, OSError):
        return removed
    for c in found:
        who = str((c.labels or {}).get(OWNER_LABEL, ""))
        h, _, pid = who.rpartition(":")
        if h == host and pid.isdigit() and pid_alive(int(pid)):
            continue
        with contextlib.suppress(docker.errors.DockerException):
            c.remove(force=True)
            removed.append(str(c.name))
    return removed


class InNetworkLoadGenerator(LoadGenerator):
    """A ``LoadGenerator`` whose worker runs in a container on ``network``."""

    def __init__(self, settings: LoadSettings, *, network: str, base_image: str,
                 cli: Any = None) -> None:
        super().__init__(settings)
        self.network = network
        self.base_image = base_image
        self._cli = cli
        self.container_name = ""

    def _client(self) -> Any:
        if self._cli is None:
            self._cli = dockerx.connect()
        return self._cli

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this LoadGenerator is closed")
            self._poll()
            if self.running:
                return
            self._reap()
            validate_settings(self.settings)
            cli = self._client()
            cleanup_stale(cli)
            image = ensure_image(cli, self.base_image)
            name = f"k3dtui-load-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
            try:
                created = cli.api.create_container(
                    image,
                    name=name,
                    # stdin open and not detached: docker-py sets StdinOnce (docker-py
                    # docker/types/containers.py, ContainerConfig): EOF when k3dtui detaches
                    # or dies, and the run ends
                    stdin_open=True,
                    environment=container_env(asdict(self.settings)),
                    labels={LABEL: LABEL_VALUE, OWNER_LABEL: owner(), "k3dtui.network": self.network},
                    host_config=cli.api.create_host_config(auto_remove=True, network_mode=self.network),
                )
                cid = str(created["Id"])
                sock = cli.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                cli.api.start(cid)
            except docker.errors.NotFound as exc:
                raise K3dtuiError(f"cannot run the load generator on Docker network {self.network}: "
                                  f"{exc.explanation or exc}",
                                  "check that the cluster is running (`k3d cluster list`)") from None
            except docker.errors.APIError as exc:
                raise K3dtuiError(f"cannot start the in-network load generator: {exc.explanation or exc}",
                                  "check the Docker engine") from None
            link = _Link(sock)
            self.container_name = name
            self._conn = link  # type: ignore[assignment]
            self._proc = _Container(cli, cid, link)
            self._stop_event = _Stop(link)
            self.running = True
            self._epoch = 0
            self._sent_at = time.monotonic() + 5.0
            from k3dtui.core.load import _empty

            self._last = _empty(self.settings, running=True)
            self._send_announcer()

    def stderr_tail(self) -> list[str]:
        link = self._conn
        return list(getattr(link, "stderr", []))
