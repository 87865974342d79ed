"""``SimProvider``: the embedded simulated cluster behind the ``Provider`` interface.

``create`` starts the simulator daemon in the background (its own session) and returns
once its API answers; ``delete`` stops it (SIGTERM, then SIGKILL) and checks by pid that
neither it nor its data-plane process is left. The network, image import and the
external-IP → loopback map come from the daemon's state folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.network import NetworkInfo
from k3dtui.core.provider import ClusterInfo, LineSink, Reachability
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.statefiles import (
    PidRecord,
    clean_stale,
    is_same_process,
    pid_status,
    read_lb_file,
    running_pid,
    stale_message,
    state_dir,
)

if TYPE_CHECKING:
    import httpx

START_TIMEOUT = 30.0
RUN_FILES = ("kubeconfig.yaml", "state.json", "lb.json", "ca.crt")
_children: dict[int, subprocess.Popen[bytes]] = {}


class SimProvider:
    kind = "sim"

    def __init__(self, name: str = "simple-app-cluster", *, settings: SimSettings | None = None) -> None:
        self.name = name
        self.settings = settings or SimSettings()
        self.restarted = False  # the last create started the cluster again from its kept state

    # -- paths -------------------------------------------------------------------------
    @property
    def context(self) -> str:
        return f"k3d-{self.name}"

    @property
    def folder(self) -> Path:
        return state_dir(self.name)

    @property
    def kubeconfig_path(self) -> Path:
        return self.folder / "kubeconfig.yaml"

    def pid(self) -> int | None:
        """The daemon's pid while it runs (the pid file's process, checked to be the one
        recorded: same start time and boot)."""
        return running_pid(self.folder)

    def clean_stale(self, log: LineSink) -> bool:
        """A stale pid file (its process gone, or another process now) is reported and
        removed with the run files; nothing is signalled. True when there was one."""
        status, rec = pid_status(self.folder)
        if status != "stale" or rec is None:
            return False
        log(f"WARN[0000] the simulated cluster {self.name!r} is not running: {stale_message(rec)}; "
            f"removed the stale pid file from {self.folder}")
        clean_stale(self.folder, RUN_FILES)
        return True

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _client(self, timeout: float) -> httpx.AsyncClient:
        import httpx  # imported while the daemon starts, not with the CLI

        ca = self.folder / "ca.crt"
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
        return httpx.AsyncClient(timeout=timeout, verify=verify)

    def server(self) -> str:
        """Its API server's URL ("" when it is not running)."""
        try:
            return self._server_and_token()[0]
        except K3dtuiError:
            return ""

    def _server_and_token(self) -> tuple[str, str]:
        try:
            cfg = yaml.safe_load(self.kubeconfig_path.read_text(encoding="utf-8"))
            return str(cfg["clusters"][0]["cluster"]["server"]), str(cfg["users"][0]["user"]["token"])
        except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
            raise K3dtuiError(
                f"the simulated cluster {self.name!r} is not running",
                f"start it with `k3dtui sim start --name {self.name}`",
            ) from None

    # -- Provider ---------------------------------------------------------------------
    async def find(self) -> ClusterInfo | None:
        if self.pid() is None:
            return None
        st = self.state()
        servers, agents = int(st.get("servers", 1)), int(st.get("agents", 0))
        return ClusterInfo(self.name, servers, agents, servers, agents)

    async def create(self, servers: int, agents: int, log: LineSink) -> None:
        running = self.pid()
        if running is not None:
            raise K3dtuiError(
                f"the simulated cluster {self.name!r} is already running (pid {running})",
                f"stop it first with `k3dtui sim stop --name {self.name}`, or use it as it is",
            )
        if servers < 1 or agents < 0:
            raise K3dtuiError(f"a cluster needs at least 1 server and 0 or more agents (got {servers}/{agents})")
        folder = state_dir(self.name, create=True)
        self.clean_stale(log)
        for stale in ("kubeconfig.yaml", "state.json", "lb.json", "pid", "pid.tmp", "ca.crt"):
            with contextlib.suppress(OSError):
                (folder / stale).unlink()
        _check_writable(folder, self.name)
        self.restarted = self.kept()
        if self.restarted:
            log(f"INFO[0000] Starting simulated cluster '{self.name}' again from its kept state "
                f"({folder / 'cluster.json'}); its pods restart")
        else:
            log(f"INFO[0000] Creating simulated cluster '{self.name}' ({servers} server, {agents} agents)")
        argv = [
            sys.executable, "-m", "k3dtui.sim.daemon", "serve",
            "--name", self.name, "--servers", str(servers), "--agents", str(agents),
            "--settings", self.settings.to_json(),
        ]
        logfile = open(folder / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                start_new_session=True, env=dict(os.environ), close_fds=True,
            )
        finally:
            logfile.close()
        _children[proc.pid] = proc
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                _children.pop(proc.pid, None)
                tail = _tail(folder / "daemon.log")
                if not tail:  # it could not even write its log: say why, not an empty reason
                    _check_writable(folder, self.name)
                    tail = "it wrote nothing to its log"
                raise K3dtuiError(
                    f"the simulated cluster {self.name!r} failed to start (exit {proc.returncode}): {tail}",
                    f"see {folder / 'daemon.log'}",
                )
            if self.kubeconfig_path.exists() and await self._answers():
                break
            if time.monotonic() > deadline:
                _terminate(proc.pid)
                raise K3dtuiError(f"the simulated cluster {self.name!r} did not answer within {START_TIMEOUT:.0f}s",
                                  f"see {folder / 'daemon.log'}")
            await asyncio.sleep(0.02)
        for n in range(servers):
            log(f"INFO[0000] Node 'k3d-{self.name}-server-{n}' is ready")
        for n in range(agents):
            log(f"INFO[0000] Node 'k3d-{self.name}-agent-{n}' is ready")
        log(f"INFO[0000] Cluster '{self.name}' created successfully!")

    async def _answers(self) -> bool:
        import httpx

        try:
            server, token = self._server_and_token()
        except K3dtuiError:
            return False
        try:
            async with self._client(1.0) as client:
                res = await client.get(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"})
                return res.status_code == 200
        except (httpx.HTTPError, ssl.SSLError, OSError):
            return False

    async def delete(self, log: LineSink) -> None:
        """Stop the cluster and forget it: its kept state goes too (``down``)."""
        await self.stop(log)
        from k3dtui.sim import persist

        persist.forget(self.folder)

    def kept(self) -> bool:
        """Whether a stopped (or crashed) cluster's state is kept for the next start."""
        return (self.folder / "cluster.json").is_file()

    def start_hint(self) -> str:
        """How to bring back a stopped (or crashed) cluster whose state is kept."""
        return (f"start it with `k3dtui --sim sim start --name {self.name}` or `k3dtui --sim up --name {self.name}` "
                f"(its state is kept in {self.folder / 'cluster.json'})")

    async def stop(self, log: LineSink) -> None:
        """Stop the cluster's processes; its state stays for the next start (``sim stop``)."""
        st = self.state()
        pid = None if self.clean_stale(log) else self.pid()
        if pid is None:
            log(f"INFO[0000] No simulated cluster '{self.name}' is running")
        else:
            log(f"INFO[0000] Deleting simulated cluster '{self.name}' (pid {pid})")
            await asyncio.get_running_loop().run_in_executor(None, _terminate, pid)
        # the data plane only when it is still the process the daemon recorded
        dp, dp_start = st.get("dataplane_pid"), st.get("dataplane_start")
        if isinstance(dp, int) and isinstance(dp_start, str) and is_same_process(PidRecord(dp, dp_start, "", "")):
            await asyncio.get_running_loop().run_in_executor(None, _terminate, dp)
        for leftover in ("kubeconfig.yaml", "state.json", "lb.json", "pid", "network.json", "ca.crt"):
            with contextlib.suppress(OSError):
                (self.folder / leftover).unlink()
        if pid is not None:
            log(f"INFO[0000] Successfully deleted cluster {self.name}!")

    async def kubeconfig(self) -> Path:
        if not self.kubeconfig_path.exists() or self.pid() is None:
            raise K3dtuiError(
                f"the simulated cluster {self.name!r} is not running",
                f"start it with `k3dtui sim start --name {self.name}`",
            )
        return self.kubeconfig_path

    async def network(self) -> NetworkInfo:
        try:
            return NetworkInfo.from_json(json.loads((self.folder / "network.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            raise K3dtuiError(
                f"the simulated cluster {self.name!r} has no network (is it running?)",
                f"start it with `k3dtui sim start --name {self.name}`",
            ) from None

    async def build_image(self, tag: str, log: LineSink) -> None:
        from k3dtui import resources

        with resources.app_dir() as folder:
            steps = [
                line.strip() for line in (folder / "Dockerfile").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#") and line.split()[0].isupper()
            ]
        log(f"(simulated) building {tag} from the app's Dockerfile; the simulated nodes run app/ directly")
        for i, step in enumerate(steps, 1):
            log(f"Step {i}/{len(steps)} : {step}")
            await asyncio.sleep(0)
        log(f"Successfully tagged {tag}")

    async def import_image(self, tag: str, log: LineSink) -> None:
        import httpx

        server, token = self._server_and_token()
        log(f"INFO[0000] Importing image(s) into cluster '{self.name}'")
        try:
            async with self._client(10.0) as client:
                res = await client.post(
                    f"{server}/sim/images", json={"image": tag}, headers={"Authorization": f"Bearer {token}"}
                )
        except httpx.HTTPError as exc:
            raise K3dtuiError(f"could not reach the simulated cluster {self.name!r}: {exc}") from None
        if res.status_code != 200:
            raise K3dtuiError(f"the simulated cluster refused the image {tag!r}: {res.text.strip()}")
        log(f"INFO[0000] Importing images '{tag}' into node 'k3d-{self.name}-*'")
        log("INFO[0000] Successfully imported 1 image(s) into 1 cluster(s)")

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        mapping = read_lb_file(self.folder / "lb.json")
        target = mapping.get(f"{ip}:{port}")
        if not isinstance(target, str) or ":" not in target:
            raise K3dtuiError(
                f"the simulated cluster {self.name!r} has no load balancer for {ip}:{port}",
                "wait until the Service has an external IP and ready endpoints",
            )
        host, _, p = target.rpartition(":")
        return host, int(p)

    def reachability(self) -> Reachability:
        return Reachability(
            True,
            "the simulated cluster's load balancers listen on 127.0.0.1; each external IP maps to one of them",
        )

    # -- control --------------------------------------------------------------------------
    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a daemon control route (``/sim/status``, ``/sim/faults``)."""
        server, token = self._server_and_token()
        async with self._client(10.0) as client:
            res = await client.request(method, f"{server}{path}", json=body,
                                       headers={"Authorization": f"Bearer {token}"})
        data = res.json()
        if res.status_code != 200:
            raise K3dtuiError(f"the simulated cluster refused {path}: {data.get('error', res.text)}")
        return data if isinstance(data, dict) else {}


    async def stop_node(self, node: str, log: LineSink) -> None:
        """The node's container stops (the simulated ``k3d node stop``)."""
        log(f"stopping node {node}")
        await self.control("POST", "/sim/nodes", {"node": node, "action": "stop"})

    async def start_node(self, node: str, log: LineSink) -> None:
        """The node's container starts again (the simulated ``k3d node start``)."""
        log(f"starting node {node}")
        await self.control("POST", "/sim/nodes", {"node": node, "action": "start"})

    async def fault(self, **body: Any) -> list[str]:
        """Fault injection (the daemon's ``/sim/faults``): ``restart_api=True``, ``expire=True``,
        ``node="k3d-<name>-agent-0", ready=False``, ``crash="<pod>"`` (``namespace=``),
        ``settings={...}`` (e.g. ``{"ignore_sigterm": True}``). Returns what was done."""
        data = await self.control("POST", "/sim/faults", body)
        return [str(x) for x in data.get("done") or []]


PROBE_BYTES = 256 * 1024  # the state files, the log's first lines and some room


def _check_writable(folder: Path, name: str) -> None:
    """Refuse to start when the state folder cannot take the daemon's files (read-only,
    permission denied, disk full): one line naming the folder and the fix."""
    from k3dtui.core.errors import file_error

    probe = folder / ".write-probe"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()  # a full disk refuses the write itself (no fsync: a start stays fast)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(folder)
        raise file_error(exc, f"the simulated cluster {name!r} cannot start") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _alive(pid: int) -> bool:
    from k3dtui.sim.statefiles import pid_alive

    return pid_alive(pid)


def _terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, wait, SIGKILL; reap when it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    child = _children.pop(pid, None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=5)
    else:
        for _ in range(100):
            if not _alive(pid):
                return
            time.sleep(0.02)
