"""What makes a process container of the simulated cluster see its pod's world.

Python imports ``sitecustomize`` at start-up; the simulated kubelet puts this folder first
on the child's ``PYTHONPATH`` and names a per-pod JSON file in ``K3DTUI_SIM_POD``. This
module (standard library only: it runs in the container's process, not in k3dtui):

- removes its own traces from the environment and ``sys.path`` (the container's
  ``PYTHONPATH``, if it had one, is restored), and the interpreter's installed packages and
  what their ``.pth`` files add (an official ``python`` image has only the standard library);
- maps the container's ``volumeMounts`` onto the pod's folders on this machine for the
  file functions (``open``, ``os.stat``, ``os.listdir``, ``os.scandir``, ``os.chdir``...);
- cluster DNS as a pod's resolver (``search <ns>.svc.cluster.local svc.cluster.local
  cluster.local``) for ``socket.getaddrinfo``: ``<svc>``, ``<svc>.<ns>``, ``<svc>.<ns>.svc``,
  ``<svc>.<ns>.svc.cluster.local`` and the Service's ClusterIP, on a Service port, resolve
  to the simulated Service's loopback listener (kube-proxy's ClusterIP rules: a ready
  endpoint chosen per connection); other ``cluster.local`` names do not exist; every other
  name resolves as on this machine. The table is the simulator's ``services.json``,
  reread when it changes;
- a connection to such a listener leaves from ``127.42.N.H`` (the pod IP ``10.42.N.H`` on
  the loopback), so the serving pod sees the client pod's address, as without masquerade.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import socket
import sys
from typing import Any

_CONFIG: dict[str, Any] = {}
_MOUNTS: list[tuple[str, str]] = []
_TABLE: dict[str, Any] = {"services": {}, "ips": {}}
_TABLE_STAMP: tuple[int, int] = (0, 0)
_LISTENERS: set[int] = set()
_open = open  # before the mounts are mapped (the simulator's own files are never under them)


def _load_config() -> None:
    path = os.environ.pop("K3DTUI_SIM_POD", "")
    if not path:
        return
    with _open(path, encoding="utf-8") as fh:
        _CONFIG.update(json.load(fh))
    user_path = _CONFIG.get("pythonpath")
    if user_path:
        os.environ["PYTHONPATH"] = str(user_path)
    else:
        os.environ.pop("PYTHONPATH", None)
    # the standard library and the container's own PYTHONPATH; not this folder, nor what
    # the interpreter's site-packages (and their .pth files) added (the script's folder
    # comes after this module ran)
    keep = {os.path.abspath(p) for p in (user_path or "").split(os.pathsep) if p}
    base = os.path.abspath(sys.base_prefix) + os.sep
    sys.path[:] = [p for p in sys.path
                   if os.path.abspath(p or ".") in keep
                   or (os.path.abspath(p or ".").startswith(base)
                       and "site-packages" not in p and "dist-packages" not in p)]
    sys.dont_write_bytecode = True  # volumes are read-only, as a configMap mount is
    for mount, host in _CONFIG.get("mounts") or []:
        _MOUNTS.append((str(mount).rstrip("/") or "/", str(host)))
    _MOUNTS.sort(key=lambda m: -len(m[0]))


# -- volumeMounts -------------------------------------------------------------------------
def _host(path: Any) -> Any:
    if isinstance(path, int) or not _MOUNTS:
        return path
    try:
        text = os.fspath(path)
    except TypeError:
        return path
    if not isinstance(text, str):
        return path
    for mount, host in _MOUNTS:
        if text == mount or text.startswith(mount + "/"):
            return host + text[len(mount):]
    return path


def _wrap_path(fn: Any) -> Any:
    def wrapped(path: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(_host(path), *args, **kwargs)

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = getattr(fn, "__doc__", None)
    return wrapped


def _install_mounts() -> None:
    if not _MOUNTS:
        return
    opener = _wrap_path(io.open)
    builtins.open = opener
    io.open = opener
    for name in ("open", "stat", "lstat", "listdir", "scandir", "access", "chdir", "readlink"):
        fn = getattr(os, name, None)
        if fn is not None:
            setattr(os, name, _wrap_path(fn))


# -- cluster DNS and ClusterIP ----------------------------------------------------------------
def _table() -> dict[str, Any]:
    global _TABLE_STAMP
    path = _CONFIG.get("services_file")
    if not path:
        return _TABLE
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != _TABLE_STAMP:
            with _open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            _TABLE.clear()
            _TABLE.update(data)
            _TABLE_STAMP = stamp
            _LISTENERS.clear()
            for svc in (_TABLE.get("services") or {}).values():
                _LISTENERS.update(int(p) for p in (svc.get("ports") or {}).values())
    except (OSError, ValueError):
        pass
    return _TABLE


def _service_key(host: str) -> str | None:
    """``<svc>.<ns>`` for a name the pod's resolver would find in cluster DNS, else None."""
    ns = str(_CONFIG.get("namespace") or "default")
    name = host.lower().rstrip(".")
    table = _table()
    if name in (table.get("ips") or {}):
        return str(table["ips"][name])
    for suffix in (".svc.cluster.local", ".svc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            return name if name.count(".") == 1 else "?"
    if "." not in name:
        candidate = f"{name}.{ns}"
    elif name.count(".") == 1:
        candidate = name
    else:
        return None
    return candidate if candidate in (table.get("services") or {}) else None


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> Any:
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    if isinstance(text, str) and text:
        key = _service_key(text)
        if key is not None:
            svc = (_table().get("services") or {}).get(key)
            if svc is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if family not in (0, socket.AF_INET) or type not in (0, socket.SOCK_STREAM):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            listener = (svc.get("ports") or {}).get(str(port))
            # a port the Service does not have: the ClusterIP itself (nothing answers there)
            addr = ("127.0.0.1", int(listener)) if listener else (str(svc.get("ip")), int(port or 0))
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr)]
        if text.lower().rstrip(".").endswith(".cluster.local"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _getaddrinfo(host, port, family, type, proto, flags)


def _from_pod(sock: socket.socket, address: Any) -> None:
    source = str(_CONFIG.get("source") or "")
    if not source or sock.family != socket.AF_INET or not isinstance(address, tuple):
        return
    if address[0] != "127.0.0.1" or int(address[1]) not in _LISTENERS:
        return
    try:
        if sock.getsockname()[1] == 0:
            sock.bind((source, 0))
    except OSError:
        pass


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _install_network() -> None:
    if not _CONFIG.get("services_file"):
        return

    def connect(self: socket.socket, address: Any) -> None:
        _from_pod(self, address)
        _connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _from_pod(self, address)
        return _connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


try:
    _load_config()
    _install_mounts()
    _install_network()
except Exception as exc:  # never keep the container's program from starting
    print(f"k3dtui simulated cluster: pod bootstrap failed: {exc}", file=sys.stderr)
