"""The kubelet of every simulated node.

A bound pod walks Pending → ContainerCreating (hostIP, then podIP) → Running → Ready; on
deletion it is Terminating until its container exits (promptly, or at the end of the grace
period when it ignores SIGTERM), then phase Succeeded/Failed, then it is removed. A pod runs
only if its images are on the node: imported (``import_image``) or in a registry (a fully
qualified name); otherwise it waits with ``ErrImageNeverPull`` (pull policy Never) or
``ErrImagePull``/``ImagePullBackOff``, and starts once the image is imported. Pods of the
app image serve real HTTP through the runtime (the data-plane process); containers of the
emulated ``python`` image run their command as a real process there
(:mod:`k3dtui.sim.controllers.containers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from k3dtui.sim import gvrs, images
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx, spawn
from k3dtui.sim.controllers.containers import ProcessContainers
from k3dtui.sim.registry import pods
from k3dtui.sim.store import ApiError, Event, Obj

log = logging.getLogger("k3dtui.sim.kubelet")

APP_REPOSITORY = "fastapi-random"


def is_app_image(image: str) -> bool:
    return util.image_basename(image) == APP_REPOSITORY


def image_id(image: str) -> str:
    ref = util.normalize_image(image)
    digest = hashlib.sha256(ref.encode()).hexdigest()
    return f"{util.image_repository(ref)}@sha256:{digest}"


class _Gone(Exception):
    """The pod was deleted, replaced or marked for deletion: stop driving it."""


class Kubelet(Controller):
    watches = frozenset({gvrs.PODS, gvrs.NODES})

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.terminating: dict[str, asyncio.Task[None]] = {}
        self.ports: dict[str, int] = {}  # pod uid → loopback port of its HTTP server
        self._starting: set[str] = set()  # pod uids whose server is being started
        self.pod_ips: dict[str, str] = {}
        self._next_ip: dict[str, int] = {}
        self._used_ips: set[str] = set()
        self._image_waiters: list[asyncio.Future[None]] = []
        ctx.on_images.append(self._images_changed)
        # process containers (the python image); the daemon sets procs.root to run them
        self.procs = ProcessContainers(ctx.store, ctx.runtime, ctx.settings, self._update, self._event)

    # -- events ------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if event.gvr == gvrs.NODES:
            if event.type == "MODIFIED" and event.old is not None:
                was = util.condition(event.old, "Ready") or {}
                now = util.condition(event.obj, "Ready") or {}
                if was.get("status") != now.get("status"):
                    self.enqueue((event.name, now.get("status") == "True"))
            return
        pod = event.obj
        uid = str(pod["metadata"].get("uid", ""))
        if event.type == "DELETED":
            for tasks in (self.running, self.terminating, self.procs.watchers):
                task = tasks.pop(uid, None)
                if task is not None:
                    task.cancel()
            spawn(self._cleanup(uid))
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or self.ctx.node(str(node)) is None:
            return
        if str(node) in self.ctx.stopped:
            return  # the node's kubelet is not running: nothing happens there until it starts
        if util.is_terminating(pod):
            if uid not in self.terminating:
                task = self.running.pop(uid, None)
                if task is not None:
                    task.cancel()
                self.terminating[uid] = asyncio.get_running_loop().create_task(
                    self._terminate(event.namespace, event.name, uid)
                )
            return
        if uid not in self.running and uid not in self.terminating and util.phase(pod) == "Pending":
            self.running[uid] = asyncio.get_running_loop().create_task(
                self._run(event.namespace, event.name, uid)
            )

    def start(self) -> None:
        for pod in list(self.store.iter(gvrs.PODS)):
            self.on_event(Event("ADDED", gvrs.PODS, pod, 0))

    def reconcile(self, key: tuple[str, bool]) -> None:
        """A node stopped or came back: its running pods turn not ready, or ready again."""
        node, node_ready = key
        if node in self.ctx.stopped:
            return

        def fn(p: Obj) -> None:
            statuses = (p.get("status") or {}).get("containerStatuses") or []
            for cs in statuses:
                cs["ready"] = node_ready and "running" in (cs.get("state") or {})
            ok = "True" if statuses and all(cs["ready"] for cs in statuses) else "False"
            util.set_condition(p, "Ready", ok)
            util.set_condition(p, "ContainersReady", ok)

        for pod in list(self.store.iter(gvrs.PODS)):
            if (pod.get("spec") or {}).get("nodeName") != node or util.is_terminating(pod):
                continue
            if util.phase(pod) != "Running":
                continue
            self.store.mutate(gvrs.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], fn)

    # -- a node's container stopped and started (k3d node stop|start) -------------------
    def _pods_on(self, node: str) -> list[Obj]:
        return [p for p in list(self.store.iter(gvrs.PODS)) if (p.get("spec") or {}).get("nodeName") == node]

    async def stop_node(self, node: str) -> None:
        """The node's container stops: its kubelet no longer acts and its pods' servers are
        gone (connections to them fail); the API still shows the pods as they were."""
        self.ctx.stopped.add(node)
        for pod in self._pods_on(node):
            uid = str(pod["metadata"].get("uid", ""))
            for tasks in (self.running, self.terminating):
                task = tasks.pop(uid, None)
                if task is not None:
                    task.cancel()
            await self._stop_containers(uid)

    def start_node(self, node: str) -> None:
        """The node's container starts again: pods deleted meanwhile finish terminating, the
        others' containers start again (restartCount + 1) and turn Ready as at first."""
        self.ctx.stopped.discard(node)

        def restarting(p: Obj) -> None:
            st = p.setdefault("status", {})
            st["phase"] = "Pending"
            for cs in st.get("containerStatuses") or []:
                state = cs.get("state") or {}
                if "running" in state:
                    cs["lastState"] = {"terminated": {
                        "exitCode": 255, "reason": "Unknown", "finishedAt": util.now(),
                        "startedAt": state["running"].get("startedAt")}}
                    cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
                cs["ready"] = False
                cs["started"] = False
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            util.set_condition(p, "Ready", "False", "ContainersNotReady")
            util.set_condition(p, "ContainersReady", "False", "ContainersNotReady")

        for pod in self._pods_on(node):
            m = pod["metadata"]
            if util.is_terminating(pod) or util.phase(pod) in ("Succeeded", "Failed"):
                self.on_event(Event("MODIFIED", gvrs.PODS, pod, 0))
                continue
            with contextlib.suppress(ApiError):
                updated = self.store.mutate(gvrs.PODS, str(m["namespace"]), str(m["name"]), restarting)
                if updated is not None:
                    self.on_event(Event("MODIFIED", gvrs.PODS, updated, 0))

    def _images_changed(self) -> None:
        waiters, self._image_waiters = self._image_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _wait_for_import(self, timeout: float | None = None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._image_waiters.append(fut)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fut, timeout)

    # -- helpers -----------------------------------------------------------------
    def _update(self, ns: str, name: str, uid: str, fn: Any, *, allow_terminating: bool = False) -> Obj:
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or pod["metadata"].get("uid") != uid:
            raise _Gone
        if util.is_terminating(pod) and not allow_terminating:
            raise _Gone
        updated = self.store.mutate(gvrs.PODS, ns, name, fn)
        if updated is None:
            raise _Gone
        return updated

    def _event(self, ns: str, name: str, reason: str, message: str, *, warning: bool = False,
               container: str | None = None) -> None:
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None:
            return
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        self.ctx.record(
            pod, reason, message, component="kubelet", host=node, warning=warning,
            field_path=f"spec.containers{{{container}}}" if container else None,
        )

    def _allocate_ip(self, uid: str, node: str, host_network: bool) -> str:
        spec = self.ctx.node(node)
        if spec is None:
            raise _Gone
        if host_network:
            return spec.ip
        if uid in self.pod_ips:
            return self.pod_ips[uid]
        start = self._next_ip.get(node, 2)
        for i in range(253):
            host = 2 + (start - 2 + i) % 253
            ip = f"10.42.{spec.index}.{host}"
            if ip not in self._used_ips:
                self._used_ips.add(ip)
                self.pod_ips[uid] = ip
                self._next_ip[node] = host + 1
                return ip
        raise _Gone

    async def _cleanup(self, uid: str) -> None:
        ip = self.pod_ips.pop(uid, None)
        if ip:
            self._used_ips.discard(ip)
        await self._stop_containers(uid)
        self.procs.remove_folder(uid)

    async def _stop_containers(self, uid: str) -> None:
        """The pod's process container, and its HTTP server in the data plane, gone."""
        await self.procs.forget(uid)
        had_server = self.ports.pop(uid, None) is not None or uid in self._starting
        self._starting.discard(uid)
        if had_server and self.ctx.runtime is not None:
            try:
                await self.ctx.runtime.stop_pod(uid)
            except Exception:
                log.exception("stop_pod %s", uid)

    # -- the pod's life --------------------------------------------------------------
    async def _guarded(self, what: str, tasks: dict[str, asyncio.Task[None]], ns: str, name: str,
                       uid: str, body: Coroutine[Any, Any, None]) -> None:
        """Run one of a pod's tasks (``what``): the pod going away ends it quietly, an API
        refusal is a race with that and only logged, and the task leaves ``tasks`` when done."""
        try:
            await body
        except (_Gone, asyncio.CancelledError):
            pass
        except ApiError as exc:
            log.debug("kubelet %s %s/%s: %s", what, ns, name, exc.message)
        except Exception:
            log.exception("kubelet %s %s/%s", what, ns, name)
        finally:
            if tasks.get(uid) is asyncio.current_task():
                del tasks[uid]

    async def _run(self, ns: str, name: str, uid: str) -> None:
        await self._guarded("run", self.running, ns, name, uid, self._run_inner(ns, name, uid))

    async def _run_inner(self, ns: str, name: str, uid: str) -> None:
        s = self.ctx.settings
        await asyncio.sleep(s.accept_delay + s.api_delay)
        await self.ctx.pace()
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or pod["metadata"].get("uid") != uid:
            return
        spec = pod.get("spec") or {}
        node = str(spec["nodeName"])
        node_spec = self.ctx.node(node)
        if node_spec is None:
            return
        containers: list[dict[str, Any]] = list(spec.get("containers") or [])
        process = self.procs.container_of(pod)  # runs as a real process (no probes: Ready once started)
        has_probe = any("readinessProbe" in c and c != process for c in containers)

        def waiting(c: dict[str, Any], reason: str, message: str | None = None) -> dict[str, Any]:
            w: dict[str, Any] = {"reason": reason}
            if message:
                w["message"] = message
            return {
                "name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                "ready": False, "restartCount": 0, "started": False, "state": {"waiting": w},
            }

        def accept(p: Obj) -> None:
            st = p.setdefault("status", {})
            st["phase"] = "Pending"
            st["hostIP"] = node_spec.ip
            st["hostIPs"] = [{"ip": node_spec.ip}]
            st.setdefault("startTime", util.now())
            util.set_condition(p, "PodReadyToStartContainers", "False")
            util.set_condition(p, "Initialized", "True")
            names = ", ".join(c.get("name", "") for c in containers)
            util.set_condition(p, "Ready", "False", "ContainersNotReady", f"containers with unready status: [{names}]")
            util.set_condition(p, "ContainersReady", "False", "ContainersNotReady", f"containers with unready status: [{names}]")
            util.set_condition(p, "PodScheduled", "True")
            _order_conditions(p)
            before = {cs.get("name"): cs for cs in st.get("containerStatuses") or []}
            st["containerStatuses"] = [waiting(c, "ContainerCreating") for c in containers]
            for cs in st["containerStatuses"]:  # a restarted node's containers keep their count
                prev = before.get(cs["name"]) or {}
                cs["restartCount"] = int(prev.get("restartCount", 0))
                if prev.get("lastState"):
                    cs["lastState"] = prev["lastState"]

        self._update(ns, name, uid, accept)
        await asyncio.sleep(s.sandbox_delay)
        await self.ctx.pace()
        ip = self._allocate_ip(uid, node, bool(spec.get("hostNetwork")))

        def sandbox(p: Obj) -> None:
            st = p["status"]
            st["podIP"] = ip
            st["podIPs"] = [{"ip": ip}]
            util.set_condition(p, "PodReadyToStartContainers", "True")

        self._update(ns, name, uid, sandbox)

        # images
        for i, c in enumerate(containers):
            await self._ensure_image(ns, name, uid, i, c, waiting)

        await asyncio.sleep(s.start_delay)
        await self.ctx.pace()
        for c in containers:
            image = str(c.get("image", ""))
            if image in s.crash_images or util.image_repository(image) in s.crash_images:
                await self._crash_loop(ns, name, uid, c)
                return
        port: int | None = None
        for c in containers:
            cname = str(c.get("name", ""))
            self._event(ns, name, "Created", f"Created container: {cname}", container=cname)
            if process is not None and c == process:
                await self.procs.start(ns, name, uid, c)
                current = self.store.peek(gvrs.PODS, ns, name)
                if current is None or current["metadata"].get("uid") != uid or util.is_terminating(current):
                    raise _Gone
            elif self._serves(c) and self.ctx.runtime is not None and port is None:
                port = await self._start_server(ns, name, uid, node, c)
                current = self.store.peek(gvrs.PODS, ns, name)
                if current is None or current["metadata"].get("uid") != uid or util.is_terminating(current):
                    raise _Gone
            self._event(ns, name, "Started", f"Started container {cname}", container=cname)
        started_at = util.now()

        def run(p: Obj) -> None:
            st = p["status"]
            st["phase"] = "Running"
            before = {cs.get("name"): cs for cs in st.get("containerStatuses") or []}
            statuses = []
            for c in containers:
                ready = "readinessProbe" not in c or c == process
                prev = before.get(c.get("name")) or {}
                cs: dict[str, Any] = {
                    "name": c.get("name", ""), "image": c.get("image", ""),
                    "imageID": image_id(str(c.get("image", ""))),
                    "containerID": "containerd://" + secrets.token_hex(32),
                    "ready": ready, "restartCount": int(prev.get("restartCount", 0)), "started": True,
                    "state": {"running": {"startedAt": started_at}},
                }
                if prev.get("lastState"):
                    cs["lastState"] = prev["lastState"]
                statuses.append(cs)
            st["containerStatuses"] = statuses
            if not has_probe:
                util.set_condition(p, "Ready", "True")
                util.set_condition(p, "ContainersReady", "True")

        self._update(ns, name, uid, run)
        if process is not None:
            self._follow(ns, name, uid, process)
        if has_probe:
            await asyncio.sleep(s.ready_delay)
            await self.ctx.pace()

            def ready(p: Obj) -> None:
                for cs in p["status"]["containerStatuses"]:
                    cs["ready"] = True
                util.set_condition(p, "Ready", "True")
                util.set_condition(p, "ContainersReady", "True")

            self._update(ns, name, uid, ready)

    async def _ensure_image(self, ns: str, name: str, uid: str, index: int, c: dict[str, Any], waiting: Any) -> None:
        s = self.ctx.settings
        image = str(c.get("image", ""))
        cname = str(c.get("name", ""))
        policy = str(c.get("imagePullPolicy", "IfNotPresent"))
        announced_failure = False
        while True:
            present = self.ctx.has_image(image)
            pullable = images.emulation(image) is not None
            if present and policy != "Always":
                self._event(ns, name, "Pulled", f'Container image "{image}" already present on machine',
                            container=cname)
                return
            if pullable and policy != "Never":
                self._event(ns, name, "Pulling", f'Pulling image "{image}"', container=cname)
                await asyncio.sleep(s.pull_delay)
                size = 20_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16)
                self._event(
                    ns, name, "Pulled",
                    f'Successfully pulled image "{image}" in {s.pull_delay:.3f}s '
                    f"({s.pull_delay:.3f}s including waiting). Image size: {size} bytes.",
                    container=cname,
                )
                self.ctx.images.add(util.normalize_image(image))
                return
            if policy == "Never":
                msg = f'Container image "{image}" is not present with pull policy of Never'

                def never(p: Obj, msg: str = msg) -> None:
                    p["status"]["containerStatuses"][index] = waiting(c, "ErrImageNeverPull", msg)

                self._update(ns, name, uid, never)
                if not announced_failure:
                    self._event(ns, name, "ErrImageNeverPull", msg, warning=True, container=cname)
                    announced_failure = True
                await self._wait_for_import()
                continue
            # the truth: the simulated cluster has no registry to pull from
            reason = images.cannot_pull(image)
            pull_msg = f'Failed to pull image "{image}": {reason}'

            def err_pull(p: Obj, reason: str = reason) -> None:
                p["status"]["containerStatuses"][index] = waiting(c, "ErrImagePull", reason)

            self._update(ns, name, uid, err_pull)
            if not announced_failure:
                self._event(ns, name, "Pulling", f'Pulling image "{image}"', container=cname)
                self._event(ns, name, "Failed", pull_msg, warning=True, container=cname)
                self._event(ns, name, "Failed", "Error: ErrImagePull", warning=True, container=cname)
            await asyncio.sleep(s.backoff_delay)
            backoff_msg = f'Back-off pulling image "{image}": ErrImagePull: {reason}'

            def backoff(p: Obj, backoff_msg: str = backoff_msg) -> None:
                p["status"]["containerStatuses"][index] = waiting(c, "ImagePullBackOff", backoff_msg)

            self._update(ns, name, uid, backoff)
            if not announced_failure:
                self._event(ns, name, "BackOff", backoff_msg, container=cname)
                self._event(ns, name, "Failed", "Error: ImagePullBackOff", warning=True, container=cname)
                announced_failure = True
            await self._wait_for_import()
            if policy == "Always" and not pullable:
                continue

    @staticmethod
    def _serves(c: dict[str, Any]) -> bool:
        """Whether the container runs an HTTP server: the app, or an emulated nginx."""
        image = str(c.get("image", ""))
        return is_app_image(image) or images.emulation(image) == "nginx"

    def crash(self, ns: str, name: str) -> bool:
        """Fault injection: the pod's running container exits with 1 and is restarted."""
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or util.is_terminating(pod) or util.phase(pod) != "Running":
            return False
        uid = str(pod["metadata"]["uid"])
        if uid in self.running:
            return False
        self.running[uid] = asyncio.get_running_loop().create_task(self._restart(ns, name, uid))
        return True

    async def _restart(self, ns: str, name: str, uid: str) -> None:
        await self._guarded("restart", self.running, ns, name, uid, self._restart_inner(ns, name, uid))

    def _follow(self, ns: str, name: str, uid: str, c: dict[str, Any], first: dict[str, Any] | None = None) -> None:
        """Follow a process container to its end (its pod's phase, or a restart)."""
        old = self.procs.watchers.pop(uid, None)
        if old is not None:
            old.cancel()
        self.procs.watchers[uid] = asyncio.get_running_loop().create_task(
            self._guarded("process", self.procs.watchers, ns, name, uid, self.procs.follow(ns, name, uid, c, first)))

    async def _restart_inner(self, ns: str, name: str, uid: str) -> None:
        s = self.ctx.settings
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None:
            return
        process = self.procs.container_of(pod)
        if process is not None:
            # its process is killed (or already gone, after a restart of the simulator): the
            # container exited, and its restartPolicy decides
            end = await self.procs.stop(uid, 0)
            self._follow(ns, name, uid, process, end or {"exitCode": 255, "reason": "Unknown"})
            return
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        containers = list((pod.get("spec") or {}).get("containers") or [])
        if self.ports.pop(uid, None) is not None and self.ctx.runtime is not None:
            await self.ctx.runtime.stop_pod(uid)
        finished = util.now()

        def exited(p: Obj) -> None:
            for cs in p["status"].get("containerStatuses") or []:
                started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", finished)
                term = {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": finished,
                        "containerID": cs.get("containerID", "")}
                cs["lastState"] = {"terminated": dict(term)}
                cs["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": f"back-off 10s restarting failed container={cs.get('name')} pod={name}"}}
                cs["ready"] = False
                cs["started"] = False
                cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
            util.set_condition(p, "Ready", "False", "ContainersNotReady")
            util.set_condition(p, "ContainersReady", "False", "ContainersNotReady")

        self._update(ns, name, uid, exited)
        for c in containers:
            self._event(ns, name, "BackOff", f"Back-off restarting failed container {c.get('name')} in pod {name}",
                        warning=True, container=str(c.get("name")))
        await asyncio.sleep(s.backoff_delay)
        served = next((c for c in containers if self._serves(c)), None)
        if served is not None and self.ctx.runtime is not None:
            if is_app_image(str(served.get("image", ""))):
                self.ports[uid] = await self.ctx.runtime.start_pod(uid, name, node)
            else:
                self.ports[uid] = await self.ctx.runtime.start_pod(uid, name, node, app="nginx")
        for c in containers:
            self._event(ns, name, "Started", f"Started container {c.get('name')}", container=str(c.get("name")))
        started_at = util.now()
        has_probe = any("readinessProbe" in c for c in containers)

        def running(p: Obj) -> None:
            for cs in p["status"].get("containerStatuses") or []:
                cs["state"] = {"running": {"startedAt": started_at}}
                cs["containerID"] = "containerd://" + secrets.token_hex(32)
                cs["started"] = True
                cs["ready"] = not has_probe
            if not has_probe:
                util.set_condition(p, "Ready", "True")
                util.set_condition(p, "ContainersReady", "True")

        self._update(ns, name, uid, running)
        if has_probe:
            await asyncio.sleep(s.ready_delay)
            await self.ctx.pace()

            def ready(p: Obj) -> None:
                for cs in p["status"].get("containerStatuses") or []:
                    cs["ready"] = True
                util.set_condition(p, "Ready", "True")
                util.set_condition(p, "ContainersReady", "True")

            self._update(ns, name, uid, ready)

    async def _start_server(self, ns: str, name: str, uid: str, node: str, c: dict[str, Any]) -> int:
        """Start the pod's HTTP server; while that fails, the container is in CrashLoopBackOff."""
        assert self.ctx.runtime is not None
        restarts = 0
        cname = str(c.get("name", ""))
        while True:
            self._starting.add(uid)
            try:
                if is_app_image(str(c.get("image", ""))):
                    port = await self.ctx.runtime.start_pod(uid, name, node)
                else:  # an emulated web server (nginx's default page)
                    port = await self.ctx.runtime.start_pod(uid, name, node, app="nginx")
            except RuntimeError as exc:
                self._starting.discard(uid)
                log.warning("pod %s/%s: the app did not start: %s", ns, name, exc)
                restarts += 1
                finished = util.now()

                def failed(p: Obj, restarts: int = restarts, finished: str = finished, msg: str = str(exc)) -> None:
                    for cs in p["status"].get("containerStatuses") or []:
                        if cs.get("name") != cname:
                            continue
                        cs["restartCount"] = restarts
                        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "message": msg,
                                                          "startedAt": finished, "finishedAt": finished}}
                        cs["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                                   "message": f"back-off restarting failed container={cname} pod={name}"}}

                self._update(ns, name, uid, failed)
                self._event(ns, name, "BackOff", f"Back-off restarting failed container {cname} in pod {name}",
                            warning=True, container=cname)
                await asyncio.sleep(max(0.2, self.ctx.settings.backoff_delay) * min(2 ** restarts, 30))
                continue
            self._starting.discard(uid)
            self.ports[uid] = port
            return port

    async def _crash_loop(self, ns: str, name: str, uid: str, c: dict[str, Any]) -> None:
        """Fault injection: the container exits with 1 at every start (CrashLoopBackOff)."""
        s = self.ctx.settings
        cname = str(c.get("name", ""))
        restarts = 0
        while True:
            finished = util.now()

            def crashed(p: Obj, restarts: int = restarts, finished: str = finished) -> None:
                st = p["status"]
                st["phase"] = "Running"
                st["containerStatuses"] = [{
                    "name": cname, "image": c.get("image", ""), "imageID": image_id(str(c.get("image", ""))),
                    "containerID": "containerd://" + secrets.token_hex(32),
                    "ready": False, "restartCount": restarts, "started": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": f"back-off restarting failed container {cname}"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": finished,
                                                 "finishedAt": finished}},
                }]

            self._update(ns, name, uid, crashed)
            self._event(ns, name, "BackOff", f"Back-off restarting failed container {cname}",
                        warning=True, container=cname)
            restarts += 1
            await asyncio.sleep(max(s.backoff_delay, 0.05) * min(2 ** restarts, 32))

    async def _terminate(self, ns: str, name: str, uid: str) -> None:
        await self._guarded("terminate", self.terminating, ns, name, uid,
                            self._terminate_inner(ns, name, uid))

    async def _terminate_inner(self, ns: str, name: str, uid: str) -> None:
        s = self.ctx.settings
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or pod["metadata"].get("uid") != uid:
            return
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds", 30))
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        was_running = any("running" in (cs.get("state") or {}) for cs in statuses)
        # a process container waiting to restart (OnFailure, Always) ends the pod Failed too
        was_running = was_running or (self.procs.container_of(pod) is not None and util.phase(pod) == "Running")
        for c in (pod.get("spec") or {}).get("containers") or []:
            cname = str(c.get("name", ""))
            self._event(ns, name, "Killing", f"Stopping container {cname}", container=cname)
        killed = s.ignore_sigterm and was_running
        # a process container gets SIGTERM, then SIGKILL at the end of the grace period
        end = await self.procs.stop(uid, grace)
        if end is None:
            await asyncio.sleep(grace if killed else min(s.terminate_delay, grace))
        await self.ctx.pace()
        if self.ports.pop(uid, None) is not None and self.ctx.runtime is not None:
            await self.ctx.runtime.stop_pod(uid)
        finished = util.now()
        exit_code, reason = (137, "Error") if killed else (0, "Completed")
        if end is not None:
            exit_code, reason = int(end["exitCode"]), str(end.get("reason") or "Error")
            finished = str(end.get("finishedAt") or finished)
        elif self.procs.container_of(pod) is not None and was_running:
            # it was waiting to restart: it ends with its last exit
            last = next((((cs.get("lastState") or {}).get("terminated") or {}) for cs in statuses), {})
            exit_code, reason = int(last.get("exitCode", 137)) or 137, "Error"

        def terminated(p: Obj) -> None:
            st = p.setdefault("status", {})
            if was_running:
                st["phase"] = "Failed" if exit_code != 0 else "Succeeded"
            for cs in st.get("containerStatuses") or []:
                state = cs.get("state") or {}
                started = (state.get("running") or {}).get("startedAt")
                if "running" in state or was_running:
                    term: dict[str, Any] = {"exitCode": exit_code, "reason": reason, "finishedAt": finished}
                    if started:
                        term["startedAt"] = started
                    if cs.get("containerID"):
                        term["containerID"] = cs["containerID"]
                    cs["state"] = {"terminated": term}
                cs["ready"] = False
                cs["started"] = False
            util.set_condition(p, "Ready", "False", "PodCompleted" if was_running else None)
            util.set_condition(p, "ContainersReady", "False", "PodCompleted" if was_running else None)
            util.set_condition(p, "PodReadyToStartContainers", "False")

        self._update(ns, name, uid, terminated, allow_terminating=True)
        await asyncio.sleep(s.remove_delay)
        await self.ctx.pace()
        current = self.store.peek(gvrs.PODS, ns, name)
        if current is not None and current["metadata"].get("uid") == uid:
            # the kubelet's final delete has grace 0: finalizers still hold the pod
            pods.delete_pod(self.store, copy.deepcopy(current), 0)


_CONDITION_ORDER = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]


def _order_conditions(p: Obj) -> None:
    conds = p["status"].get("conditions") or []
    conds.sort(key=lambda c: _CONDITION_ORDER.index(c["type"]) if c["type"] in _CONDITION_ORDER else 99)
