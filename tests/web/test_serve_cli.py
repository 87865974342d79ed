"""`k3dtui serve` refuses bad input with one line and exit 2, before anything is served;
the guard's pieces (host check, token, page template) on their own."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from k3dtui.commands.serve import app_command, local_template, public_url
from k3dtui.core.errors import UsageError
from k3dtui.core.webguard import bind_socket, token_matches
from tests.web.serving import ROOT, env


def serve_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k3dtui", "serve", *args], capture_output=True, text=True,
                          timeout=30, env=env(), cwd=ROOT)


@pytest.mark.parametrize(("args", "says"), [
    (["--host", "300.1.1.1"], "not a valid IPv4 address"),
    (["--host", "bad_host!"], "not an IP address or a host name"),
    (["--host", "0.0.0.0"], "add --public"),
    (["--port", "abc"], "not a port number"),
    (["--port", "70000"], "between 1 and 65535"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--public", "--token", "x"], "unrecognized arguments: --token"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    res = serve_cli(*args)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert says in lines[0] and "Traceback" not in res.stderr
    assert res.stdout == ""  # nothing served, no URL printed


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = serve_cli("--port", str(port))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"k3dtui: error: port {port} on 127.0.0.1 is already in use: pick another with --port (or --port 0 for any free port)"
    ]


def test_loopback_needs_no_public_and_other_addresses_do() -> None:
    bound = bind_socket("127.0.0.1", 0, public=False)
    try:
        assert bound.loopback and bound.port > 0
    finally:
        bound.sock.close()
    with pytest.raises(UsageError, match="--public"):
        bind_socket("0.0.0.0", 0, public=False)
    bound = bind_socket("0.0.0.0", 0, public=True)
    try:
        assert not bound.loopback
    finally:
        bound.sock.close()


def test_token_compare() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", "")
    assert not token_matches("abc", None)


def test_each_tab_runs_k3dtui_with_the_served_options() -> None:
    import argparse

    cmd = app_command(argparse.Namespace(name="demo", sim=True, read_only=True))
    assert cmd.startswith("exec ") and cmd.endswith("-m k3dtui --name demo --sim --read-only")
    cmd = app_command(argparse.Namespace(name="demo", sim=False, read_only=False))
    assert "--sim" not in cmd and "--read-only" not in cmd


def test_public_url_carries_the_token() -> None:
    assert public_url("127.0.0.1", 8000, None) == "http://127.0.0.1:8000/"
    assert public_url("::1", 8000, "t0k") == "http://[::1]:8000/?token=t0k"
    assert public_url("0.0.0.0", 8000, "t").startswith(f"http://{socket.gethostname()}:8000/")


def test_the_page_template_loads_nothing_from_other_sites() -> None:
    import textual_serve

    original = (Path(textual_serve.__file__).parent / "templates" / "app_index.html").read_text(encoding="utf-8")
    page = local_template(original)
    assert "https://" not in page.replace("http://www.w3.org", "")
    assert "fonts/RobotoMono-VariableFont_wght.ttf" in page


async def test_the_guard_over_http_and_websocket() -> None:
    """Below the browser: a public server refuses page, assets and websocket without the
    token (no app started), takes the token from the URL or the cookie it sets, and refuses a
    websocket from another origin; a loopback server refuses a Host that is not this machine."""
    import aiohttp

    from tests.web.serving import serve

    with serve("--sim", "--public", "--read-only") as served:
        assert "read-only: the page cannot change the cluster" in served.first_line
        token = served.url.split("token=", 1)[1]
        base = served.base()
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/static/js/textual.js", f"/?token={token}x", "/ws"):
                async with http.get(base + path) as res:
                    assert res.status == 403, path
            try:
                await http.ws_connect(f"{base}/ws?width=80&height=24")
                raise AssertionError("a websocket without the token was accepted")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 403
            assert served.apps() == []
            async with http.get(f"{base}/static/js/textual.js?token={token}") as res:
                assert res.status == 200
            async with http.get(f"{base}/?token={token}") as res:
                assert res.status == 200
                assert res.cookies[f"k3dtui_token_{served.port}"].value == token
        async with aiohttp.ClientSession(cookies={f"k3dtui_token_{served.port}": token}) as http:
            try:
                await http.ws_connect(f"{base}/ws", headers={"Origin": "http://elsewhere.example"})
                raise AssertionError("a websocket from another origin was accepted")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 403
            assert served.apps() == []
            ws = await http.ws_connect(f"{base}/ws?width=80&height=24", headers={"Origin": base})
            for _ in range(100):
                if served.apps():
                    break
                await _pause()
            assert len(served.apps()) == 1
            await ws.close()
            for _ in range(100):
                if not served.apps():
                    break
                await _pause()
            assert served.apps() == []

    with serve("--sim") as served:
        async with aiohttp.ClientSession() as http:
            async with http.get(served.base() + "/", headers={"Host": f"rebound.example:{served.port}"}) as res:
                assert res.status == 403
            async with http.get(served.base() + "/", headers={"Host": f"localhost:{served.port}"}) as res:
                assert res.status == 200
            async with http.get(served.base() + "/") as res:
                assert res.status == 200


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.1)


@pytest.mark.parametrize("argv", [["serve", "--read-only"], ["--read-only", "serve"]])
def test_read_only_reaches_the_tabs_wherever_it_is_given(argv: list[str]) -> None:
    from k3dtui.cli import build_parser

    args = build_parser().parse_args(argv)
    assert app_command(args).endswith("--read-only")
    assert not app_command(build_parser().parse_args(["serve"])).endswith("--read-only")
