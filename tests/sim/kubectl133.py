"""kubectl 1.33 against an in-process simulated cluster (API server and controllers on one
loop, no data plane), with a clock the test controls for the store's event window."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers.base import Runtime
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.store import Store
from k3dtui.sim.testing import ApiThread, run_api_in_thread


def _kubectl_133() -> str:
    """``$K3DTUI_KUBECTL``, else the ``kubectl.1.33`` installed beside ``kubectl``."""
    if os.environ.get("K3DTUI_KUBECTL"):
        return os.environ["K3DTUI_KUBECTL"]
    found = shutil.which("kubectl")
    if found is None:
        return ""
    candidate = Path(os.path.realpath(found)).parent / "kubectl.1.33"
    return str(candidate) if candidate.exists() else ""


KUBECTL = _kubectl_133()
# skipped without the binary, except in CI (CI=true), where a missing kubectl fails the tests
needs_kubectl = pytest.mark.skipif(not KUBECTL and os.environ.get("CI") != "true",
                                   reason="kubectl 1.33 is not installed (set K3DTUI_KUBECTL)")


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Cluster:
    def __init__(self, api: ApiThread, sim: SimCluster, clock: Clock, home: Path) -> None:
        self.api, self.sim, self.clock, self.home = api, sim, clock, home
        self.store = api.store

    def argv(self, *args: str) -> list[str]:
        assert KUBECTL, "kubectl 1.33 is not installed (set K3DTUI_KUBECTL)"
        return [KUBECTL, "--kubeconfig", str(self.api.kubeconfig), "--cache-dir", str(self.home / "cache"), *args]

    def run(self, *args: str, ok: bool = True, stdin: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home), "KUBECONFIG": str(self.api.kubeconfig)}
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, input=stdin, env=env,
                              timeout=timeout, check=False)
        if ok:
            assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
        return proc

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))

    def raw(self, path: str) -> Any:
        return json.loads(self("get", "--raw", path))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "HOME": str(self.home), "KUBECONFIG": str(self.api.kubeconfig)}
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.api.call(fn)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_cluster(directory: Path, settings: SimSettings | None = None, agents: int = 2,
                  runtime: Runtime | None = None) -> Iterator[Cluster]:
    """``runtime``: a data plane for the pods' servers (e.g. an in-process ``DataPlane``)."""
    clock = Clock()
    store = Store(clock=clock)
    with run_api_in_thread(directory / "api", store=store) as api:
        sim = SimCluster(store, "t", agents=agents, settings=settings or SimSettings.fast(), runtime=runtime)
        sim.ctx.ca_pem = api.server.ca_pem or ""
        api.call(sim.start)
        try:
            yield Cluster(api, sim, clock, directory / "home")
        finally:
            api.call(sim.stop)
