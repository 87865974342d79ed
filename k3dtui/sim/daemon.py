"""The simulated cluster's process: ``python -m k3dtui.sim.daemon serve --name N ...``.

It serves the Kubernetes API on 127.0.0.1 (an ephemeral port), runs the controllers on the
same loop, and drives the data-plane process (pods' HTTP servers, load balancers). Its
state folder (``paths.cluster_dir("sim", name)``) holds:

- ``kubeconfig.yaml`` (mode 0600): cluster/context ``k3d-<name>``, user ``admin@k3d-<name>``,
  a random bearer token;
- ``pid`` (this process), ``state.json`` (pid, data-plane pid, port, node counts);
- ``network.json`` (``NetworkInfo.to_json()``), ``lb.json`` (external IP:port → loopback);
- ``cluster.json``: every object and the resourceVersion counter (``persist``), brought
  back by the next start (after a crash, a reboot or ``sim stop``); ``down`` removes it.

Control routes (token-checked, on the API server): ``POST /sim/images`` ``{"image": ...}``
records an imported image; ``GET /sim/status``; ``POST /sim/faults`` for fault injection
(``{"restart_api": true}``, ``{"expire": true}``, ``{"node": N, "ready": false}``,
``{"crash": POD, "namespace": NS}``, ``{"settings": {...}}``). SIGTERM/SIGINT stop everything, the data plane included.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from k3dtui.sim import gvrs, persist
from k3dtui.sim.apiserver import ApiServer
from k3dtui.sim.cluster import SimCluster
from k3dtui.sim.controllers.base import spawn
from k3dtui.sim.kinds import Registry
from k3dtui.sim.lb import ClusterIPController, LoadBalancerController
from k3dtui.sim.runtime import DataPlaneClient
from k3dtui.sim.settings import SimSettings
from k3dtui.sim.statefiles import pid_alive as pid_alive  # re-exported (tests, callers)
from k3dtui.sim.statefiles import (
    process_start,
    read_pid_file,
    running_pid,
    state_dir,
    write_json,
    write_pid_file,
)
from k3dtui.sim.store import Store

log = logging.getLogger("k3dtui.sim.daemon")


LIMITED_ROLES = ("viewer", "no-nodes")


def kubeconfig_text(name: str, port: int, token: str, ca_pem: str | None = None) -> str:
    ctx = f"k3d-{name}"
    user = f"admin@k3d-{name}"
    if ca_pem:
        ca = base64.b64encode(ca_pem.encode()).decode()
        cluster = f"    certificate-authority-data: {ca}\n    server: https://127.0.0.1:{port}\n"
    else:
        cluster = f"    server: http://127.0.0.1:{port}\n"
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {ctx}\n"
        "  cluster:\n"
        f"{cluster}"
        "contexts:\n"
        f"- name: {ctx}\n"
        "  context:\n"
        f"    cluster: {ctx}\n"
        f"    user: {user}\n"
        "    namespace: default\n"
        f"current-context: {ctx}\n"
        "preferences: {}\n"
        "users:\n"
        f"- name: {user}\n"
        "  user:\n"
        f"    token: {token}\n"
    )


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Daemon:
    def __init__(self, name: str, servers: int, agents: int, settings: SimSettings, port: int = 0) -> None:
        self.name = name
        self.folder = state_dir(name)
        self.settings = settings
        self.token = secrets.token_hex(24)
        self.store = Store()
        self.runtime = DataPlaneClient()
        self.cluster = SimCluster(self.store, name, servers=servers, agents=agents, settings=settings,
                                  runtime=self.runtime)
        # kubectl sends the bearer token only over TLS: always HTTPS, with a CA and a serving
        # certificate made in-process (apiserver.tls; no shell tool, no plain-HTTP fallback).
        self.api = ApiServer(self.store, Registry.builtin(), token=self.token, tls=True)
        # limited credentials, for trying k3dtui attach against RBAC: written beside the
        # kubeconfig as viewer-token and no-nodes-token (sim.testing.limited_kubeconfig)
        self.limited_tokens = {role: secrets.token_hex(24) for role in LIMITED_ROLES}
        for role, limited_token in self.limited_tokens.items():
            self.api.add_token(limited_token, role)
        self.api.bookmark_interval = settings.bookmark_interval
        self.lb = LoadBalancerController(self.cluster.ctx, self.cluster.kubelet.ports.get, self.folder / "lb.json")
        # process containers (the python image): their pods' folders, and the ClusterIP
        # listeners and names they reach Services by
        self.cluster_ips = ClusterIPController(self.cluster.ctx, self.cluster.kubelet.ports.get,
                                               self.folder / "services.json")
        self.cluster.kubelet.procs.root = self.folder / "pods"
        self.cluster.kubelet.procs.services_file = self.folder / "services.json"
        self.port = port
        self.started = time.time()
        self.identity = ""  # the token recorded in the pid file, answered at /sim/status
        self.keeper: persist.Keeper | None = None
        self.restored = 0  # objects brought back from the kept state
        self._stop = asyncio.Event()

    async def start(self) -> int:
        for gvr, fn in self.cluster.admission_hooks().items():
            self.api.add_admission(gvr, fn)
        self.api.add_route("POST", "/sim/images", self._images)
        self.api.add_route("GET", "/sim/status", self._status)
        self.api.add_route("POST", "/sim/faults", self._faults)
        self.api.add_route("POST", "/sim/nodes", self._node_power)
        self.api.log_source = self.runtime.read_logs  # the pods' real lines, from the data plane
        self.api.metrics_source = self.runtime.read_usage  # their requests and CPU time
        self.api.pod_port = self.cluster.kubelet.ports.get  # each pod's listener, for port-forward
        self.runtime.on_exit = self._data_plane_exited
        await self.runtime.start()  # requests queue in its pipe until it has started
        self.cluster.ctx.ca_pem = self.api.ca_pem or ""
        kept = persist.load(self.folder)
        if kept is not None:
            self._restore(kept)
        self.cluster.start(lb=self.lb, extra=[self.cluster_ips])
        if kept is not None:
            self._restart_pods()
        self.keeper = persist.Keeper(self.store, self.folder, lambda: {"images": self.cluster.images})
        self.keeper.start()
        self.port = await self.api.start("127.0.0.1", self.port)
        write_json(self.folder / "network.json", self.cluster.network().to_json())
        self.lb.published(changed=True)  # lb.json exists (empty) before anyone reads it
        write_json(self.folder / "state.json", self.state())
        if self.api.ca_pem:
            (self.folder / "ca.crt").write_text(self.api.ca_pem, encoding="utf-8")
        for role, limited_token in self.limited_tokens.items():
            write_private(self.folder / f"{role}-token", limited_token + "\n")
        write_private(self.folder / "kubeconfig.yaml",
                      kubeconfig_text(self.name, self.port, self.token, self.api.ca_pem))
        return self.port

    def _restore(self, kept: dict[str, Any]) -> None:
        """The cluster as it was kept: every object and the resourceVersion counter; the
        imported images; each pod keeps its IP."""
        self.restored = self.store.restore(kept)
        for crd in self.store.iter(gvrs.CRDS):  # the API serves the kept custom resources again
            self.api.registry.register_crd(crd)
        for image in kept.get("images") or []:
            self.cluster.ctx.import_image(str(image))
        kubelet = self.cluster.kubelet
        for pod in self.store.iter(gvrs.PODS):
            ip = (pod.get("status") or {}).get("podIP")
            uid = pod["metadata"].get("uid")
            if ip and uid and not (pod.get("spec") or {}).get("hostNetwork"):
                kubelet.pod_ips[str(uid)] = str(ip)
                kubelet._used_ips.add(str(ip))
        log.info("restored %d objects at resourceVersion %d from %s", self.restored,
                 self.store.resource_version, persist.path_in(self.folder))

    def _restart_pods(self) -> None:
        """As kubelets after a node reboot: every container that ran is started again (its
        restartCount grows); pending pods start as usual."""
        for pod in list(self.store.iter(gvrs.PODS)):
            meta = pod["metadata"]
            if (pod.get("status") or {}).get("phase") == "Running" and not meta.get("deletionTimestamp"):
                self.cluster.kubelet.crash(meta["namespace"], meta["name"])

    def _data_plane_exited(self) -> None:
        spawn(self._recover_data_plane())

    async def _recover_data_plane(self) -> None:
        """The data plane died: start a new one; app containers restart, listeners come back."""
        await self.runtime.start()
        write_json(self.folder / "state.json", self.state())
        kubelet = self.cluster.kubelet
        dead = list(kubelet.ports)
        kubelet.ports.clear()
        for uid in dead:
            for pod in list(self.store.iter(gvrs.PODS)):
                if pod["metadata"].get("uid") == uid:
                    kubelet.crash(pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.lb.forget()
        self.cluster_ips.forget()

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": os.getpid(),
            "dataplane_pid": self.runtime.pid,
            "dataplane_start": process_start(self.runtime.pid) if self.runtime.pid else "",
            "port": self.port,
            "servers": self.cluster.servers,
            "agents": self.cluster.agents,
            "started": self.started,
        }

    async def stop(self) -> None:
        if self.keeper is not None:
            await self.keeper.stop()  # the last picture, before the pods are stopped
        with contextlib.suppress(Exception):
            await self.api.stop()
        self.cluster.stop()
        await self.runtime.stop()
        for leftover in ("lb.json", "services.json", "state.json", "pid", "kubeconfig.yaml", "ca.crt"):
            with contextlib.suppress(OSError):
                (self.folder / leftover).unlink()
        from k3dtui.sim.controllers.containers import remove_tree

        remove_tree(self.folder / "pods")  # process containers' volumes (they are gone with the data plane)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    # -- control routes ---------------------------------------------------------------
    async def _images(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            image = str(body["image"]).strip()
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"image": "<name:tag>"}'}, status=400)
        if not image:
            return web.json_response({"error": "empty image name"}, status=400)
        self.cluster.import_image(image)
        return web.json_response({"images": self.cluster.images})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({
            **self.state(), "identity": self.identity, "images": self.cluster.images, "lb": self.lb.mapping,
            "processes": await self._process_pids(),
            "cluster_ip_backends": {k: len(v) for k, v in self.cluster_ips.backends.items()},
            "lb_backends": {k: len(v) for k, v in self.lb.backends.items()},
            "nodes": [
                {"name": n.name, "role": n.role, "ip": n.ip, "ready": self._node_ready(n.name),
                 "stopped": self.cluster.node_stopped(n.name),
                 "since_heartbeat": self.cluster.lifecycle.since_heartbeat(n.name)}
                for n in self.cluster.ctx.nodes
            ],
        })

    async def _process_pids(self) -> dict[str, int]:
        """The running process containers' pids by pod uid (the python image's)."""
        try:
            return await asyncio.wait_for(self.runtime.process_pids(), 5.0)
        except (RuntimeError, TimeoutError):
            return {}

    def _node_ready(self, name: str) -> bool:
        from k3dtui.sim.controllers.nodes import node_is_ready

        node = self.store.peek(gvrs.NODES, "", name)
        return node is not None and node_is_ready(node)

    async def _node_power(self, request: web.Request) -> web.Response:
        """``{"node": NAME, "action": "stop"|"start"}``: the node's container stops or starts
        (what ``k3d node stop|start`` does to a k3d node)."""
        try:
            body = await request.json()
            node, action = str(body["node"]), str(body["action"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"node": NAME, "action": "stop"|"start"}'}, status=400)
        if self.cluster.ctx.node(node) is None:
            return web.json_response({"error": f"no node {node}"}, status=404)
        if action == "stop":
            await self.cluster.stop_node(node)
        elif action == "start":
            self.cluster.start_node(node)
        else:
            return web.json_response({"error": f"unknown action {action!r} (stop or start)"}, status=400)
        return web.json_response({"node": node, "stopped": self.cluster.node_stopped(node)})

    async def _faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        done: list[str] = []
        if isinstance(body.get("settings"), dict):
            for k, v in body["settings"].items():
                if hasattr(self.settings, k):
                    setattr(self.settings, k, v)
                    done.append(f"settings.{k}")
        if "node" in body:
            node = str(body["node"])
            if self.cluster.ctx.node(node) is None:
                return web.json_response({"error": f"no node {node}"}, status=404)
            self.cluster.set_node_ready(node, bool(body.get("ready", True)))
            done.append(f"node {node} ready={bool(body.get('ready', True))}")
        if "crash" in body:
            pod, ns = str(body["crash"]), str(body.get("namespace", "default"))
            if not self.cluster.kubelet.crash(ns, pod):
                return web.json_response({"error": f"pod {ns}/{pod} is not running"}, status=409)
            done.append(f"crash {ns}/{pod}")
        if body.get("expire"):
            # forget the event window: every watch from an older resourceVersion gets 410
            expire = getattr(self.store, "expire", None)
            if callable(expire):
                expire()
            else:
                self.store._ring.clear()
            done.append("expire")
        if body.get("restart_api"):
            asyncio.get_running_loop().call_later(0.05, lambda: spawn(self._restart_api()))
            done.append("restart_api")
        return web.json_response({"done": done})

    async def _restart_api(self) -> None:
        await self.api.stop()
        await asyncio.sleep(0.1)
        await self.api.start("127.0.0.1", self.port)


async def serve(name: str, servers: int, agents: int, settings: SimSettings, port: int = 0) -> int:
    folder = state_dir(name, create=True)
    other = running_pid(folder)
    if other is not None and other != os.getpid():
        print(f"k3dtui: error: the simulated cluster {name!r} is already running (pid {other})", file=sys.stderr)
        return 1
    record = write_pid_file(folder)
    daemon = Daemon(name, servers, agents, settings, port)
    daemon.identity = record.token
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, daemon.request_stop)
    watchdog: asyncio.Task[None] | None = None
    try:
        bound = await daemon.start()
        log.info("simulated cluster %s serving on 127.0.0.1:%d", name, bound)
        watchdog = asyncio.create_task(_orphan_watch(folder, daemon))
        await daemon.wait()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await daemon.stop()
    return 0


async def _orphan_watch(folder: Path, daemon: Daemon, interval: float = 2.0) -> None:
    """Stop when the state folder no longer names this process: without its pid file and
    kubeconfig nobody can reach or stop the simulated cluster, so it must not linger."""
    me = os.getpid()
    while True:
        await asyncio.sleep(interval)
        rec = read_pid_file(folder)
        if rec is None or rec.pid != me:
            log.warning("state folder %s no longer names this process: stopping", folder)
            daemon.request_stop()
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k3dtui.sim.daemon")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the simulated cluster in the foreground")
    p.add_argument("--name", default="simple-app-cluster")
    p.add_argument("--servers", type=int, default=1)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--settings", default="", help="SimSettings as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = SimSettings.from_json(args.settings)
    try:
        import uvloop

        return int(uvloop.run(serve(args.name, args.servers, args.agents, settings, args.port)))
    except ImportError:
        return asyncio.run(serve(args.name, args.servers, args.agents, settings, args.port))


if __name__ == "__main__":
    sys.exit(main())
