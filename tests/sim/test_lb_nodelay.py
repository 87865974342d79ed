"""The pods' servers and the load balancer answer keep-alive requests without Nagle stalls."""

from __future__ import annotations

import asyncio
import socket
import time

from k3dtui.sim.runtime import DataPlane, tcp_listen_socket


async def test_listen_socket_is_tcp_with_nodelay_and_accepted_sockets_inherit_it() -> None:
    sock = tcp_listen_socket()
    assert sock.proto == socket.IPPROTO_TCP
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("socket")
        accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_client, sock=sock)
    try:
        _, w = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        assert await asyncio.wait_for(accepted, 5) != 0
        w.close()
    finally:
        server.close()


async def _keep_alive_gets(port: int, count: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    try:
        for _ in range(count):
            writer.write(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
            length = 0
            while True:
                line = await asyncio.wait_for(reader.readline(), 5)
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await asyncio.wait_for(reader.readexactly(length), 5)
            assert b"nodelay-pod" in body
        return time.monotonic() - start
    finally:
        writer.close()


async def test_keep_alive_requests_through_the_lb_do_not_wait_for_delayed_acks() -> None:
    # pytest's loop is plain asyncio: it sets TCP_NODELAY only on sockets it knows are TCP,
    # so a pod listener made with protocol 0 stalls ~40 ms per request (50 requests >= 2 s).
    plane = DataPlane()
    pod_port = await plane.start_pod("uid-nodelay", "nodelay-pod", "node-0")
    lb_port = await plane.set_lb("10.0.0.1:80", [pod_port])
    try:
        await _keep_alive_gets(lb_port, 5)  # warm-up
        took = await _keep_alive_gets(lb_port, 50)
    finally:
        await plane.remove_lb("10.0.0.1:80")
        await plane.stop_pod("uid-nodelay")
    assert took < 1.0, f"50 keep-alive requests took {took:.2f}s"
