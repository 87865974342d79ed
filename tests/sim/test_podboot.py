"""The bootstrap a process container starts with (k3dtui.sim.podboot.sitecustomize), in a
real child interpreter: mounts, cluster DNS, the pod's source address, a clean environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from k3dtui.sim.controllers.containers import BOOT_DIR

CHILD = textwrap.dedent('''
    import asyncio, http.client, json, os, pathlib, socket, sys
    out = {}
    out["file"] = open("/opt/code/data.txt").read()
    out["pathlib"] = pathlib.Path("/opt/code/data.txt").read_text()
    out["listdir"] = sorted(os.listdir("/opt/code"))
    out["exists"] = os.path.exists("/opt/code/data.txt")
    out["env"] = sorted(k for k in os.environ if k.startswith(("K3DTUI", "PYTHONPATH")))
    def get(host, port):
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/")
        return c.getresponse().read().decode()
    out["fqdn"] = get("web.demo.svc.cluster.local", 80)
    out["short"] = get("web", 80)
    out["ip"] = get("10.43.0.77", 80)
    async def via_asyncio():
        r, w = await asyncio.open_connection("web.demo.svc", 80)
        w.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = await r.read()
        w.close()
        return data.decode().split("\\r\\n\\r\\n", 1)[1]
    out["asyncio"] = asyncio.run(via_asyncio())
    for name in ("other.demo.svc.cluster.local", "web.elsewhere.svc"):
        try:
            socket.getaddrinfo(name, 80)
            out[name] = "resolved"
        except socket.gaierror:
            out[name] = "NXDOMAIN"
    print(json.dumps(out))
''')


def _server() -> tuple[socket.socket, list[str]]:
    """A tiny HTTP server on the loopback that answers with the peer address it saw."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, peer = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                seen.append(peer[0])
                body = peer[0].encode()
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    threading.Thread(target=serve, daemon=True).start()
    return srv, seen


def test_the_child_sees_its_pod(tmp_path: Path) -> None:
    srv, seen = _server()
    port = srv.getsockname()[1]
    code = tmp_path / "volumes" / "code"
    code.mkdir(parents=True)
    (code / "data.txt").write_text("from the configmap")
    table = tmp_path / "services.json"
    table.write_text(json.dumps({"services": {"web.demo": {"ip": "10.43.0.77", "ports": {"80": port}}},
                                 "ips": {"10.43.0.77": "web.demo"}}))
    boot = tmp_path / "boot.json"
    boot.write_text(json.dumps({"namespace": "demo", "mounts": [["/opt/code", str(code)]],
                                "services_file": str(table), "source": "127.42.1.9", "pythonpath": ""}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(BOOT_DIR), "K3DTUI_SIM_POD": str(boot)}
    try:
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
    finally:
        srv.close()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["file"] == out["pathlib"] == "from the configmap"
    assert out["listdir"] == ["data.txt"] and out["exists"] is True
    assert out["env"] == []
    # every name of the Service, and its ClusterIP, reached the listener; the server saw the
    # pod's loopback alias (which the listener turns into the pod IP)
    assert out["fqdn"] == out["short"] == out["ip"] == out["asyncio"] == "127.42.1.9"
    assert seen == ["127.42.1.9"] * 4
    assert out["other.demo.svc.cluster.local"] == "NXDOMAIN" and out["web.elsewhere.svc"] == "NXDOMAIN"


def test_pod_address_from_the_alias() -> None:
    from k3dtui.sim.lb import pod_address

    assert pod_address(("127.42.1.9", 5555)) == "10.42.1.9"
    assert pod_address(("127.0.0.1", 5555)) is None
    assert pod_address(None) is None
