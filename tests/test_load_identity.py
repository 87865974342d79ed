"""Which pod answered, for apps other than k3dtui's: `load --identity header:NAME` and
`--identity json:FIELD`, and what the figures say when the responses name no pod."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from loadservers import ServerThread

from k3dtui.cli import main
from k3dtui.core.loadworker import identity_missing, json_field, parse_identity

PODS = ("web-1", "web-2", "web-3")


def foreign_app(servers: ServerThread, pod: str) -> int:
    """A whoami/podinfo-like server: the pod's name in ``X-Hostname`` and in a JSON body
    (``hostname`` and ``pod.name``), never in X-Pod; fixed-length and chunked bodies alternate."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        body = json.dumps({"hostname": pod, "pod": {"name": pod}, "version": "6.0"}).encode()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n += 1
                close = b"connection: close" in head.lower()
                tail = b"Connection: close\r\n" if close else b""
                base = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Hostname: " + pod.encode() + b"\r\n"
                if n % 2:
                    cut = len(body) // 2
                    writer.write(base + tail + b"Transfer-Encoding: chunked\r\n\r\n"
                                 + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (cut, body[:cut], len(body) - cut, body[cut:]))
                else:
                    writer.write(base + tail + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        with contextlib.suppress(Exception):
            writer.close()

    return servers._serve(handle)


@pytest.fixture(scope="module")
def relay() -> Iterator[int]:
    st = ServerThread()
    try:
        yield st.relay([foreign_app(st, pod) for pod in PODS])
    finally:
        st.close()


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["load", *argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.mark.parametrize("identity", ["header:X-Hostname", "header:x-hostname", "json:hostname", "json:pod.name"])
def test_per_pod_counts_from_the_named_identity(capsys: pytest.CaptureFixture[str], relay: int, identity: str) -> None:
    data = run_json(capsys, "--url", f"http://127.0.0.1:{relay}/", "--requests", "300", "--concurrency", "4",
                    "--new-connections", "--identity", identity)
    assert data["status"] == {"200": 300}
    assert set(data["per_pod"]) == set(PODS)  # a fair spread over 300 new connections reaches all three
    assert sum(data["per_pod"].values()) == 300
    assert data["identity_missing"] is None
    assert data["per_worker"] == {}


def test_keep_alive_with_a_json_identity_reads_every_body(capsys: pytest.CaptureFixture[str], relay: int) -> None:
    data = run_json(capsys, "--url", f"http://127.0.0.1:{relay}/", "--requests", "200", "--concurrency", "2",
                    "--identity", "json:hostname")
    assert sum(data["per_pod"].values()) == 200
    assert set(data["per_pod"]) <= set(PODS) and "unknown" not in data["per_pod"]
    assert 1 <= len(data["per_pod"]) <= 2  # two kept connections: at most two pods


def test_without_identity_the_figures_say_why_there_is_no_split(capsys: pytest.CaptureFixture[str], relay: int) -> None:
    data = run_json(capsys, "--url", f"http://127.0.0.1:{relay}/", "--requests", "60", "--concurrency", "2")
    assert data["per_pod"] == {"unknown": 60}
    assert data["requests"] == 60 and data["latency_ms"]["p50"] is not None
    assert "no X-Pod header" in data["identity_missing"]
    assert "--identity header:NAME" in data["identity_missing"]


def test_the_table_says_why_there_is_no_split(capsys: pytest.CaptureFixture[str], relay: int) -> None:
    code = main(["load", "--url", f"http://127.0.0.1:{relay}/", "--requests", "20", "--identity", "header:X-Nope"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no per-pod split: the responses carry no X-Nope header" in out


@pytest.mark.parametrize(("spec", "needle"), [
    ("hostname", "unknown identity 'hostname': use header:NAME or json:FIELD"),
    ("body:hostname", "unknown identity 'body:hostname'"),
    ("header:", "needs a header name"),
    ("header:X Pod", "needs a header name"),
    ("json:", "needs a JSON field"),
    ("json:pod..name", "needs a JSON field"),
])
def test_a_bad_identity_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], spec: str, needle: str) -> None:
    code = main(["load", "--url", "http://127.0.0.1:9/", "--identity", spec])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], captured.err


def test_json_field_paths() -> None:
    body = json.dumps({"hostname": "h-1", "pod": {"name": "p-1", "ips": ["10.0.0.1"]}, "n": 3, "ok": True}).encode()
    assert json_field(body, ("hostname",)) == b"h-1"
    assert json_field(body, ("pod", "name")) == b"p-1"
    assert json_field(body, ("pod", "ips", "0")) == b"10.0.0.1"
    assert json_field(body, ("n",)) == b"3"
    assert json_field(body, ("ok",)) == b"unknown"  # not a name
    assert json_field(body, ("pod",)) == b"unknown"  # an object, not a name
    assert json_field(body, ("missing",)) == b"unknown"
    assert json_field(b"<html>", ("hostname",)) == b"unknown"


def test_identity_missing_only_when_no_response_names_a_pod() -> None:
    assert identity_missing("", {}, 0) == ""
    assert identity_missing("", {"unknown": 3, "p-1": 1}, 4) == ""
    assert "no X-Pod header" in identity_missing("", {"unknown": 4}, 4)
    assert "no field 'pod.name'" in identity_missing("json:pod.name", {"unknown": 4}, 4)
    ident = parse_identity("header:X-Served-By")
    assert ident is not None and ident.header == b"\r\nx-served-by:" and ident.json_path is None
    assert parse_identity("") is None
