"""The load-balancing listener: a random ready pod per connection, pinned keep-alive, resets."""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import socket

import httpx
import pytest
from kubernetes import client

from k3dtui.sim.lb import Listener
from tests.simfixtures import SimHandle, app_backends, wait_for


def external(handle: SimHandle) -> tuple[str, tuple[str, int]]:
    svc = client.CoreV1Api(handle.api_client()).read_namespaced_service("fastapi-service", "default")
    ip = svc.status.load_balancer.ingress[0].ip
    return ip, handle.provider.dial(ip, 80)


def test_per_connection_spread_keepalive_pinning_and_lb_file(sim_app: SimHandle) -> None:
    ip, (host, port) = external(sim_app)
    mapping = json.loads((sim_app.kubeconfig.parent / "lb.json").read_text())
    assert mapping[f"{ip}:80"] == f"127.0.0.1:{port}"
    # the app is at the pool's second address: k3s's Traefik (80 and 443) has the first
    traefik = str(ipaddress.ip_address(ip) - 1)
    assert set(mapping) == {f"{ip}:80", f"{traefik}:80", f"{traefik}:443"}
    assert host == "127.0.0.1"
    # a new connection per request: every pod gets a fair share
    counts: collections.Counter[str] = collections.Counter()
    n = 300
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=5) as http:
        for _ in range(n):
            counts[http.get(f"http://{host}:{port}/").json()["pod"]] += 1
    assert len(counts) == 3
    # binomial(300, 1/3): mean 100, sd ~8.2; 55 is more than 5 sd below the mean
    assert all(c >= 55 for c in counts.values()), counts
    # one keep-alive connection: one pod, every time
    with httpx.Client(timeout=5) as http:
        pods = {http.get(f"http://{host}:{port}/").json()["pod"] for _ in range(50)}
    assert len(pods) == 1


def test_connection_to_a_dying_pod_is_reset(sim_app: SimHandle) -> None:
    _, (host, port) = external(sim_app)
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    pod = json.loads(body[:length])["pod"]
    api = client.CoreV1Api(sim_app.api_client())
    api.delete_namespaced_pod(pod, "default", grace_period_seconds=0)
    wait_for(lambda: all(p.metadata.name != pod for p in api.list_namespaced_pod("default").items), 10, "pod gone")
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        for _ in range(20):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if not sock.recv(4096):
                raise AssertionError("closed without a reset")
            asyncio.run(asyncio.sleep(0.05))
    sock.close()
    # new connections go to the survivors and the replacement
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=5) as http:
        assert all(http.get(f"http://{host}:{port}/").json()["pod"] != pod for _ in range(20))


async def test_listener_without_backends_refuses_and_relays_once_set() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    backend = await asyncio.start_server(echo, "127.0.0.1", 0)
    bport = backend.sockets[0].getsockname()[1]
    lb = Listener("x")
    port = await lb.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(ConnectionResetError):  # no endpoints: the connection is reset
        if await reader.read(10) == b"":
            raise AssertionError("closed without a reset")
    writer.close()
    lb.set_backends([bport])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await writer.drain()
    assert await reader.read(10) == b"ping"
    writer.close()
    await lb.close()
    backend.close()


def test_external_traffic_policy_local_keeps_traffic_on_the_announcing_node(sim_app: SimHandle) -> None:
    api = client.CoreV1Api(sim_app.api_client())
    api.patch_namespaced_service("fastapi-service", "default", {"spec": {"externalTrafficPolicy": "Local"}})
    wait_for(lambda: app_backends(sim_app) == 1, 10,
             "one local endpoint behind the load balancer")
    with sim_app.http() as http:
        statuses = [s for s in http.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses")
                    .json()["items"] if s["status"]["serviceName"] == "fastapi-service"]  # not Traefik's
    assert len(statuses) == 1
    announcing = statuses[0]["status"]["node"]
    _, (host, port) = external(sim_app)
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=5) as http:
        nodes = {http.get(f"http://{host}:{port}/").json()["node"] for _ in range(30)}
    assert nodes == {announcing}
    api.patch_namespaced_service("fastapi-service", "default", {"spec": {"externalTrafficPolicy": "Cluster"}})
    wait_for(lambda: app_backends(sim_app) == 3, 10,
             "every endpoint again")


async def test_data_plane_serves_the_app_and_stop_wins_over_a_start_in_flight() -> None:
    from k3dtui.sim.runtime import DataPlane

    plane = DataPlane()
    port = await plane.start_pod("uid-1", "web-abc12", "k3d-x-agent-0")
    async with httpx.AsyncClient() as http:
        res = await http.get(f"http://127.0.0.1:{port}/")
        assert res.json()["pod"] == "web-abc12" and res.headers["x-node"] == "k3d-x-agent-0"
    await plane.stop_pod("uid-1")
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    # a stop that arrives while the start is in flight leaves nothing behind
    start = asyncio.ensure_future(plane.start_pod("uid-2", "web-def34", "k3d-x-agent-1"))
    await asyncio.sleep(0)
    await plane.stop_pod("uid-2")
    with pytest.raises(RuntimeError):
        await start
    assert plane.pods == {}


def test_masquerade_address_is_the_entry_nodes_cni0_or_flannel_vtep() -> None:
    from k3dtui.sim.lb import flannel_addresses, masquerade_address

    assert flannel_addresses("10.42.2.0/24") == ("10.42.2.1", "10.42.2.0")
    assert masquerade_address("10.42.2.0/24", "agent-1", "agent-1") == "10.42.2.1"  # same node: cni0
    assert masquerade_address("10.42.2.0/24", "agent-0", "agent-1") == "10.42.2.0"  # across: flannel.1
    assert flannel_addresses("not a cidr") == ("", "")
