"""Run the simulated API server in a background thread (for tests and tools).

``run_api_in_thread()`` starts an :class:`~k3dtui.sim.apiserver.ApiServer` on 127.0.0.1 with its
own event loop and writes a kubeconfig (mode 0600) holding its random token::

    with run_api_in_thread(tmp_path) as api:
        client = make_api_client(api.kubeconfig)
        api.call(lambda: api.store.create(...))   # runs on the server's loop
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import secrets
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from k3dtui.sim.apiserver import ApiServer
from k3dtui.sim.kinds import Registry
from k3dtui.sim.store import Store

T = TypeVar("T")


def kubeconfig_dict(
    server: str, token: str, name: str = "sim", namespace: str = "default", ca_pem: str | None = None
) -> dict[str, Any]:
    """A kubeconfig for one cluster, user and context, all called ``name``.

    ``ca_pem`` (the server's self-signed certificate) goes in ``certificate-authority-data``.
    """
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"admin@{name}", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"admin@{name}", "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path, server: str, token: str, name: str = "sim", ca_pem: str | None = None
) -> Path:
    """Write a kubeconfig readable only by its owner (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(kubeconfig_dict(server, token, name, ca_pem=ca_pem), fh, sort_keys=False)
    os.chmod(path, 0o600)
    return path


def limited_kubeconfig(kubeconfig: Path, dest: Path, role: str = "viewer", token: str | None = None) -> Path:
    """A copy of a simulated cluster's ``kubeconfig`` whose user is the limited ``role``
    (``viewer``: get/list/watch all but Secrets; ``no-nodes``: nor Nodes), with the token the
    cluster wrote beside it (``<role>-token``) unless ``token`` is given. Written 0600."""
    data = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))
    secret = token if token is not None else (Path(kubeconfig).parent / f"{role}-token").read_text(encoding="utf-8").strip()
    user = f"{role}@k3dtui"
    data["users"] = [{"name": user, "user": {"token": secret}}]
    for ctx in data.get("contexts") or []:
        ctx["context"]["user"] = user
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return dest


class ApiThread:
    """A running API server on its own loop thread."""

    def __init__(
        self,
        directory: Path,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        token: str | None = None,
        name: str = "sim",
        setup: Callable[[ApiServer], None] | None = None,
        tls: bool = True,
    ) -> None:
        self.store = store if store is not None else Store()
        self.registry = registry if registry is not None else Registry.builtin()
        self.token = token or secrets.token_urlsafe(24)
        self.name = name
        self.server = ApiServer(self.store, self.registry, token=self.token, tls=tls)
        if setup is not None:
            setup(self.server)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sim-api", daemon=True)
        self._thread.start()
        self.port: int = self.run(self.server.start("127.0.0.1", 0))
        self.url = self.server.url
        self.kubeconfig = write_kubeconfig(
            Path(directory) / "kubeconfig.yaml", self.url, self.token, name, ca_pem=self.server.ca_pem
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        """Await ``coro`` on the server's loop; return its result."""

        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn()`` on the server's loop (where the store lives); return its result."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def runner() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(runner)
        return fut.result(timeout)

    def restart(self) -> None:
        """Stop and start again on the same port (every watch is dropped)."""
        self.run(self.server.stop())
        self.run(self.server.start("127.0.0.1", self.port))

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        try:
            self.run(self.server.stop(), timeout=10)
        finally:
            self.server.close()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self.loop.close()

    def __enter__(self) -> ApiThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_api_in_thread(
    directory: Path,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    token: str | None = None,
    name: str = "sim",
    setup: Callable[[ApiServer], None] | None = None,
    tls: bool = True,
) -> ApiThread:
    """Start an API server on 127.0.0.1 (ephemeral port) in a thread; kubeconfig in ``directory``.

    ``tls=True`` (the default) serves HTTPS with a self-signed certificate written into the
    kubeconfig, so kubectl sends the token too; ``tls=False`` serves plain HTTP.
    """
    return ApiThread(directory, store=store, registry=registry, token=token, name=name, setup=setup, tls=tls)
