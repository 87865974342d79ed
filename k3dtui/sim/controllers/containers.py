"""The simulated kubelet's process containers: what a container of the emulated ``python``
image runs on this machine, and its life (start, exit, restart, stop).

The kubelet (:mod:`k3dtui.sim.controllers.kubelet`) hands such a container here; the
process itself lives in the data plane (:mod:`k3dtui.sim.procpods`). What it gets, as
kubelet and containerd would give it (``pkg/kubelet/kubelet_pods.go`` ``makeEnvironmentVariables``,
``makeMounts``):

- argv: ``command`` + ``args`` (``$(VAR)`` expanded from its environment); without a
  command, ``args``, else the image's ``CMD`` (``python3``). ``python``/``python3[.X]``
  is this machine's interpreter (the one running the simulator); any other program is
  looked up on this machine's ``PATH``. An argument that starts with a ``mountPath`` is
  rewritten to the pod's folder for that volume.
- environment: the image's (``PATH``, ``LANG``, ``HOME=/root``), ``HOSTNAME`` (the pod's
  hostname: ``spec.hostname`` or its name), the ``kubernetes`` Service's
  ``KUBERNETES_SERVICE_HOST``/``_PORT`` variables, then ``envFrom`` and ``env`` (values,
  ``$(VAR)`` references, ``fieldRef``, ``configMapKeyRef``, ``secretKeyRef``). Nothing else of
  the simulator's own environment.
- volumes, under ``<state>/pods/<pod uid>/volumes/<volume>``: ``configMap``, ``secret``
  and ``projected`` (configMap, secret and downwardAPI sources) as read-only files,
  ``emptyDir`` as a writable folder, ``downwardAPI`` items; ``subPath`` honoured; others
  are not mounted. ``/root`` (``HOME``) is the pod's own writable folder, and the working
  directory (``workingDir`` mapped like a path, else ``/root``).
- a bootstrap (:mod:`k3dtui.sim.podboot.sitecustomize`) that maps the mounts for file
  functions and resolves cluster DNS names and ClusterIPs to the simulated Services.

Exit 0 → ``Completed``, else ``Error`` (killed by a signal: 128 + N); then ``restartPolicy``:
``Never`` ends the pod (``Succeeded`` when 0, else ``Failed``), ``OnFailure``/``Always``
restart it after a back-off. A pod holds one process container (its first ``python``
one); its other containers are emulated as before.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from k3dtui.sim import gvrs, images
from k3dtui.sim.controllers import util
from k3dtui.sim.store import Obj, Store

log = logging.getLogger("k3dtui.sim.containers")

BOOT_DIR = Path(__file__).resolve().parent.parent / "podboot"
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessRuntime(Protocol):
    """What the data plane offers for process containers (``runtime.DataPlaneClient``)."""

    async def start_process(self, uid: str, argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]: ...

    async def wait_process(self, uid: str) -> dict[str, Any]: ...

    async def stop_process(self, uid: str, grace: float) -> dict[str, Any]: ...

    async def forget_process(self, uid: str) -> None: ...


def process_runtime(runtime: Any) -> ProcessRuntime | None:
    names = ("start_process", "wait_process", "stop_process", "forget_process")
    return runtime if runtime is not None and all(hasattr(runtime, n) for n in names) else None


def runs_as_process(container: dict[str, Any]) -> bool:
    return images.emulation(str(container.get("image", ""))) == "python"


class MountError(Exception):
    """A volume cannot be set up yet (its ConfigMap or Secret does not exist)."""


# -- environment ------------------------------------------------------------------------------
def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined variable is replaced, an undefined
    reference stays as written, ``$$`` is a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, text)


def field_value(pod: Obj, path: str) -> str:
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"), "status.podIP": st.get("podIP"),
        "status.hostIP": st.get("hostIP"),
        "status.podIPs": ",".join(str(i.get("ip")) for i in st.get("podIPs") or []),
        "status.hostIPs": ",".join(str(i.get("ip")) for i in st.get("hostIPs") or []),
    }
    return str(simple.get(path) or "")


def _key_value(store: Store, gvr: Any, ns: str, ref: dict[str, Any]) -> str | None:
    obj = store.peek(gvr, ns, str(ref.get("name", "")))
    if obj is None:
        return None
    key = str(ref.get("key", ""))
    if gvr == gvrs.SECRETS:
        raw = (obj.get("data") or {}).get(key)
        if raw is None:
            text = (obj.get("stringData") or {}).get(key)
            return None if text is None else str(text)
        return base64.b64decode(str(raw)).decode("utf-8", "replace")
    value = (obj.get("data") or {}).get(key)
    return None if value is None else str(value)


def container_env(store: Store, pod: Obj, container: dict[str, Any]) -> dict[str, str]:
    """The environment kubelet gives the container: the image's, ``HOSTNAME``, the
    ``kubernetes`` Service's variables, then ``envFrom`` and ``env`` in order."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    ns = str(meta.get("namespace", "default"))
    env: dict[str, str] = {"PATH": IMAGE_PATH, "LANG": "C.UTF-8", "HOME": "/root",
                           "HOSTNAME": str(spec.get("hostname") or meta.get("name", ""))}
    api = store.peek(gvrs.SERVICES, "default", "kubernetes")
    if api is not None:
        ip = str((api.get("spec") or {}).get("clusterIP") or "")
        port = str(((api.get("spec") or {}).get("ports") or [{}])[0].get("port", 443))
        env.update({
            "KUBERNETES_SERVICE_HOST": ip, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{ip}:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://{ip}:{port}", f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_PORT": port, f"KUBERNETES_PORT_{port}_TCP_ADDR": ip,
        })
    for src in container.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        if "configMapRef" in src:
            cm = store.peek(gvrs.CONFIGMAPS, ns, str(src["configMapRef"].get("name", "")))
            for k, v in ((cm or {}).get("data") or {}).items():
                env[prefix + str(k)] = str(v)
        elif "secretRef" in src:
            sec = store.peek(gvrs.SECRETS, ns, str(src["secretRef"].get("name", "")))
            for k, v in ((sec or {}).get("data") or {}).items():
                env[prefix + str(k)] = base64.b64decode(str(v)).decode("utf-8", "replace")
    for item in container.get("env") or []:
        name = str(item.get("name", ""))
        if not name:
            continue
        source = item.get("valueFrom")
        if not source:
            env[name] = expand(str(item.get("value", "")), env)
        elif "fieldRef" in source:
            env[name] = field_value(pod, str(source["fieldRef"].get("fieldPath", "")))
        elif "configMapKeyRef" in source:
            value = _key_value(store, gvrs.CONFIGMAPS, ns, source["configMapKeyRef"])
            if value is not None:
                env[name] = value
        elif "secretKeyRef" in source:
            value = _key_value(store, gvrs.SECRETS, ns, source["secretKeyRef"])
            if value is not None:
                env[name] = value
        else:  # resourceFieldRef: no resources are accounted here
            env[name] = ""
    return env


# -- volumes ------------------------------------------------------------------------------------
def remove_tree(path: Path) -> None:
    """Remove a pod's folder, read-only volume folders included."""
    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o755)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    remove_tree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        rel = rel.lstrip("/")
        if not rel or ".." in Path(rel).parts:
            continue
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, 0o444)
    for root, dirs, _files in os.walk(folder, topdown=False):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o555)
    os.chmod(folder, 0o555)


def _keyed(data: dict[str, bytes], items: list[dict[str, Any]] | None, what: str, optional: bool) -> dict[str, bytes]:
    if not items:
        return data
    out: dict[str, bytes] = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise MountError(f'{what}: no key "{key}"')
        out[str(item.get("path") or key)] = data[key]
    return out


def _configmap_files(store: Store, ns: str, src: dict[str, Any]) -> dict[str, bytes] | None:
    cm = store.peek(gvrs.CONFIGMAPS, ns, str(src.get("name", "")))
    if cm is None:
        return None
    data = {str(k): str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({str(k): base64.b64decode(str(v)) for k, v in (cm.get("binaryData") or {}).items()})
    return _keyed(data, src.get("items"), f'configmap "{src.get("name")}"', bool(src.get("optional")))


def _secret_files(store: Store, ns: str, src: dict[str, Any], name_key: str) -> dict[str, bytes] | None:
    sec = store.peek(gvrs.SECRETS, ns, str(src.get(name_key, "")))
    if sec is None:
        return None
    data = {str(k): base64.b64decode(str(v)) for k, v in (sec.get("data") or {}).items()}
    data.update({str(k): str(v).encode() for k, v in (sec.get("stringData") or {}).items()})
    return _keyed(data, src.get("items"), f'secret "{src.get(name_key)}"', bool(src.get("optional")))


def _downward_files(pod: Obj, items: list[dict[str, Any]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in items or []:
        ref = item.get("fieldRef")
        if ref:
            out[str(item.get("path", ""))] = field_value(pod, str(ref.get("fieldPath", ""))).encode()
    return out


def volume_files(store: Store, pod: Obj, volume: dict[str, Any]) -> dict[str, bytes] | None:
    """The files of a file-backed volume; ``None`` for an ``emptyDir`` (a writable folder).
    ``MountError`` when what it needs does not exist; ``KeyError`` for a kind not mounted."""
    ns = str(pod["metadata"].get("namespace", "default"))
    vname = str(volume.get("name", ""))
    if "configMap" in volume:
        src = volume["configMap"] or {}
        files = _configmap_files(store, ns, src)
        if files is None:
            if src.get("optional"):
                return {}
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : configmap "{src.get("name")}" not found')
        return files
    if "secret" in volume:
        src = volume["secret"] or {}
        files = _secret_files(store, ns, src, "secretName")
        if files is None:
            if src.get("optional"):
                return {}
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : secret "{src.get("secretName")}" not found')
        return files
    if "downwardAPI" in volume:
        return _downward_files(pod, (volume["downwardAPI"] or {}).get("items") or [])
    if "projected" in volume:
        out: dict[str, bytes] = {}
        for source in (volume["projected"] or {}).get("sources") or []:
            if "configMap" in source:
                out.update(_configmap_files(store, ns, source["configMap"] or {}) or {})
            elif "secret" in source:
                out.update(_secret_files(store, ns, source["secret"] or {}, "name") or {})
            elif "downwardAPI" in source:
                out.update(_downward_files(pod, (source["downwardAPI"] or {}).get("items") or []))
        return out
    if "emptyDir" in volume:
        return None
    raise KeyError(vname)


def mount_volumes(store: Store, pod: Obj, container: dict[str, Any], pod_dir: Path) -> list[tuple[str, str]]:
    """Write the container's volumes under ``pod_dir``; its mounts as (mountPath, folder)."""
    volumes = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: list[tuple[str, str]] = []
    done: set[str] = set()
    for vm in container.get("volumeMounts") or []:
        vname = str(vm.get("name", ""))
        volume = volumes.get(vname)
        if volume is None:
            continue
        folder = pod_dir / "volumes" / vname
        if vname not in done:
            try:
                files = volume_files(store, pod, volume)
            except KeyError:
                continue  # hostPath, persistentVolumeClaim...: not mounted here
            if files is None:
                folder.mkdir(parents=True, exist_ok=True)
            else:
                _write_files(folder, files)
            done.add(vname)
        sub = str(vm.get("subPath") or "").strip("/")
        target = folder / sub if sub and ".." not in Path(sub).parts else folder
        mounts.append((str(vm.get("mountPath", "")).rstrip("/") or "/", str(target)))
    return mounts


def map_path(text: str, mounts: list[tuple[str, str]]) -> str:
    for mount, host in sorted(mounts, key=lambda m: -len(m[0])):
        if text == mount or text.startswith(mount + "/"):
            return host + text[len(mount):]
    return text


# -- the plan -------------------------------------------------------------------------------------
def plan(store: Store, pod: Obj, container: dict[str, Any], pod_dir: Path,
         services_file: Path | None) -> tuple[list[str], dict[str, str], str]:
    """(argv, environment, working directory) of the container's process; writes its
    volumes and its bootstrap file under ``pod_dir``."""
    env = container_env(store, pod, container)
    home = pod_dir / "root"
    home.mkdir(parents=True, exist_ok=True)
    mounts = [*mount_volumes(store, pod, container, pod_dir), ("/root", str(home))]
    command = [expand(str(a), env) for a in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    argv = command + args if command else (args or ["python3"])
    argv = [map_path(a, mounts) for a in argv]
    program = os.path.basename(argv[0])
    if _PYTHON.match(program):
        argv[0] = sys.executable
    elif "/" not in argv[0]:
        found = shutil.which(argv[0], path=os.environ.get("PATH", IMAGE_PATH))
        if found:
            argv[0] = found
    workdir = str(container.get("workingDir") or "/root")
    cwd = map_path(workdir, mounts)
    if not os.path.isdir(cwd):
        cwd = str(home)
    pod_ip = str((pod.get("status") or {}).get("podIP") or "")
    source = "127." + pod_ip.split(".", 1)[1] if pod_ip.startswith("10.42.") else ""
    user_pythonpath = ":".join(map_path(p, mounts) for p in env.get("PYTHONPATH", "").split(":") if p)
    config = {"namespace": pod["metadata"].get("namespace", "default"), "mounts": mounts,
              "services_file": str(services_file) if services_file else "", "source": source,
              "pythonpath": user_pythonpath}
    boot = pod_dir / "boot.json"
    boot.write_text(json.dumps(config), encoding="utf-8")
    child = dict(env)
    if not any(e.get("name") == "PATH" for e in container.get("env") or []):
        # the interpreter's folder and this machine's programs (no image content here)
        child["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", IMAGE_PATH)])
    child["PYTHONPATH"] = os.pathsep.join([str(BOOT_DIR)] + ([user_pythonpath] if user_pythonpath else []))
    child["K3DTUI_SIM_POD"] = str(boot)
    return argv, child, cwd


# -- the container's life ----------------------------------------------------------------------
Update = Callable[..., Obj]
Record = Callable[..., None]


def _terminated(end: dict[str, Any], container_id: str = "") -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": int(end.get("exitCode", 137)), "reason": str(end.get("reason") or "Error"),
                            "startedAt": end.get("startedAt") or util.now(), "finishedAt": end.get("finishedAt") or util.now()}
    if end.get("message"):
        term["message"] = str(end["message"])
    if container_id:
        term["containerID"] = container_id
    return term


class ProcessContainers:
    """The kubelet's side of process containers: plans them, starts them through the data
    plane, follows them to their end and applies ``restartPolicy``."""

    def __init__(self, store: Store, runtime: Any, settings: Any, update: Update, record: Record) -> None:
        self.store = store
        self._runtime = runtime
        self.settings = settings
        self.update = update  # kubelet._update(ns, name, uid, fn, allow_terminating=False)
        self.record = record  # kubelet._event(ns, name, reason, message, warning=, container=)
        self.root: Path | None = None  # <state>/pods: set by the daemon; None: not run as processes
        self.services_file: Path | None = None
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self.live: set[str] = set()  # pod uids whose process may be running

    @property
    def runtime(self) -> ProcessRuntime | None:
        return process_runtime(self._runtime)

    def container_of(self, pod: Obj) -> dict[str, Any] | None:
        """The pod's process container, when this cluster runs them."""
        if self.root is None or self.runtime is None:
            return None
        for c in (pod.get("spec") or {}).get("containers") or []:
            if runs_as_process(c):
                return dict(c)
        return None

    def pod_dir(self, uid: str) -> Path:
        assert self.root is not None
        return self.root / uid

    async def start(self, ns: str, name: str, uid: str, c: dict[str, Any]) -> dict[str, Any]:
        """Mount, plan and start; waits (and says why in events) while a volume's source is
        missing or the data plane refuses. ``{pid, startedAt}``."""
        runtime = self.runtime
        assert runtime is not None
        cname = str(c.get("name", ""))
        warned: set[str] = set()
        while True:
            pod = self.store.peek(gvrs.PODS, ns, name)
            if pod is None or pod["metadata"].get("uid") != uid:
                self.update(ns, name, uid, lambda p: None)  # raises: the pod is gone
            assert pod is not None
            try:
                argv, env, cwd = plan(self.store, pod, c, self.pod_dir(uid), self.services_file)
                self.live.add(uid)
                return await runtime.start_process(uid, argv, env, cwd)
            except MountError as exc:
                if str(exc) not in warned:
                    self.record(ns, name, "FailedMount", str(exc), warning=True)
                    warned.add(str(exc))
                await asyncio.sleep(1.0)
            except (RuntimeError, OSError) as exc:
                self.live.discard(uid)
                msg = str(exc)

                def refused(p: Obj, msg: str = msg) -> None:
                    for cs in (p.get("status") or {}).get("containerStatuses") or []:
                        if cs.get("name") == cname:
                            cs["state"] = {"waiting": {"reason": "CreateContainerError", "message": msg}}

                self.update(ns, name, uid, refused)
                if msg not in warned:
                    self.record(ns, name, "Failed", f"Error: {msg}", warning=True, container=cname)
                    warned.add(msg)
                await asyncio.sleep(max(1.0, float(self.settings.backoff_delay)))

    async def follow(self, ns: str, name: str, uid: str, c: dict[str, Any],
                     first: dict[str, Any] | None = None) -> None:
        """From the container's end to the pod's: terminated state and phase, or a restart."""
        runtime = self.runtime
        assert runtime is not None
        cname = str(c.get("name", ""))
        end = first
        while True:
            if end is None:
                try:
                    end = await runtime.wait_process(uid)
                except RuntimeError as exc:  # the data plane died, and the process with it
                    end = {"exitCode": 137, "reason": "Error", "message": str(exc)}
                if "exitCode" not in end:
                    end = {"exitCode": 137, "reason": "Error"}
            self.live.discard(uid)
            pod = self.store.peek(gvrs.PODS, ns, name)
            if pod is None or pod["metadata"].get("uid") != uid:
                return
            policy = str((pod.get("spec") or {}).get("restartPolicy") or "Always")
            code = int(end.get("exitCode", 137))
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self._finish(ns, name, uid, cname, end)
                return
            restarts = await self._back_off(ns, name, uid, cname, end)
            await asyncio.sleep(min(300.0, max(0.05, float(self.settings.backoff_delay)) * 10 * 2 ** min(restarts - 1, 5)))
            started = await self.start(ns, name, uid, c)
            self._running(ns, name, uid, cname, str(started.get("startedAt") or util.now()))
            end = None

    def _finish(self, ns: str, name: str, uid: str, cname: str, end: dict[str, Any]) -> None:
        code = int(end.get("exitCode", 137))

        def finished(p: Obj) -> None:
            st = p.setdefault("status", {})
            st["phase"] = "Succeeded" if code == 0 else "Failed"
            for cs in st.get("containerStatuses") or []:
                mine = cs.get("name") == cname
                state = cs.get("state") or {}
                if mine or "running" in state:
                    other = {"exitCode": 0, "reason": "Completed",
                             "startedAt": (state.get("running") or {}).get("startedAt"), "finishedAt": util.now()}
                    cs["state"] = {"terminated": _terminated(end if mine else other, str(cs.get("containerID") or ""))}
                cs["ready"] = False
                cs["started"] = False
            util.set_condition(p, "Ready", "False", "PodCompleted")
            util.set_condition(p, "ContainersReady", "False", "PodCompleted")
            util.set_condition(p, "PodReadyToStartContainers", "False")

        self.update(ns, name, uid, finished)

    async def _back_off(self, ns: str, name: str, uid: str, cname: str, end: dict[str, Any]) -> int:
        restarts = 0

        def exited(p: Obj) -> None:
            nonlocal restarts
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if cs.get("name") != cname:
                    continue
                cs["lastState"] = {"terminated": _terminated(end, str(cs.get("containerID") or ""))}
                cs["restartCount"] = restarts = int(cs.get("restartCount", 0)) + 1
                cs["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": f"back-off restarting failed container={cname} pod={name}_{ns}({uid})"}}
                cs["ready"] = False
                cs["started"] = False
            util.set_condition(p, "Ready", "False", "ContainersNotReady")
            util.set_condition(p, "ContainersReady", "False", "ContainersNotReady")

        self.update(ns, name, uid, exited)
        self.record(ns, name, "BackOff", f"Back-off restarting failed container {cname} in pod {name}_{ns}({uid})",
                    warning=True, container=cname)
        return max(restarts, 1)

    def _running(self, ns: str, name: str, uid: str, cname: str, started_at: str) -> None:
        import secrets

        def running(p: Obj) -> None:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if cs.get("name") == cname:
                    cs["state"] = {"running": {"startedAt": started_at}}
                    cs["containerID"] = "containerd://" + secrets.token_hex(32)
                    cs["started"] = True
                    cs["ready"] = True
            if all(cs.get("ready") for cs in (p.get("status") or {}).get("containerStatuses") or []):
                util.set_condition(p, "Ready", "True")
                util.set_condition(p, "ContainersReady", "True")

        self.update(ns, name, uid, running)
        self.record(ns, name, "Started", f"Started container {cname}", container=cname)

    async def stop(self, uid: str, grace: float) -> dict[str, Any] | None:
        """SIGTERM, then SIGKILL after ``grace``: the container's end, or None when no
        process of the pod runs."""
        runtime = self.runtime
        if uid not in self.live or runtime is None:
            return None
        watcher = self.watchers.pop(uid, None)
        if watcher is not None:
            watcher.cancel()
        try:
            end = await runtime.stop_process(uid, grace)
        except RuntimeError:
            end = {}
        self.live.discard(uid)
        return end if "exitCode" in end else None

    async def forget(self, uid: str) -> None:
        """The pod is gone (or its node stopped): kill its process, remove its folder."""
        watcher = self.watchers.pop(uid, None)
        if watcher is not None:
            watcher.cancel()
        runtime = self.runtime
        if runtime is not None and self.root is not None:
            self.live.discard(uid)
            with contextlib.suppress(RuntimeError):
                await runtime.forget_process(uid)

    def remove_folder(self, uid: str) -> None:
        if self.root is not None:
            remove_tree(self.pod_dir(uid))

