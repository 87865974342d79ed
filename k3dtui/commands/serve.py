"""`k3dtui serve`: the TUI in a browser, one k3dtui process per browser tab.

Binds 127.0.0.1 by default. Any other address needs ``--public``, and then every request
must carry a token made at start (printed in the URL); without it: 403, no app started.
The page and everything it loads (script, styles, fonts) come from this server: nothing is
fetched from elsewhere. Closing a tab ends its process; Ctrl+C stops serving and ends all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from k3dtui.core.errors import K3dtuiError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
STOP_TIMEOUT = 5.0  # seconds a tab's process gets to quit before it is killed

log = logging.getLogger("k3dtui.serve")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the TUI to web browsers (127.0.0.1 only unless --public)",
        description=(
            "Serve the TUI to web browsers: each tab runs its own k3dtui with these options, "
            "ended when the tab closes. Binds 127.0.0.1 unless --public is given; a public "
            "server requires the token in the URL it prints."
        ),
    )
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--public", action="store_true",
                        help="allow an address other machines can reach; every request then needs the printed token")
    # SUPPRESS: `k3dtui --read-only serve` keeps the top-level flag (a default here would reset it)
    parser.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS,
                        help="the served TUI cannot change the cluster (recommended with --public)")
    parser.set_defaults(func=run)
    _one_line_errors(parser)


def _port(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Bad options of `serve` (unknown ones too) print one line and exit 2."""

    def error(message: str) -> Any:
        parser.exit(2, f"k3dtui serve: error: {message} (see `k3dtui serve --help`)\n")

    parse_known = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = parse_known(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def app_command(args: argparse.Namespace) -> str:
    """The shell command each tab runs: this Python, this k3dtui, the same options."""
    argv = [sys.executable, "-m", "k3dtui", "--name", args.name]
    if args.sim:
        argv.append("--sim")
    if getattr(args, "read_only", False):
        argv.append("--read-only")
    return "exec " + shlex.join(argv)


def public_url(host: str, port: int, token: str | None) -> str:
    if host in ("0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    query = f"?token={token}" if token else ""
    return f"http://{host}:{port}/{query}"


def run(args: argparse.Namespace) -> int:
    from k3dtui.core.spec import validate_name
    from k3dtui.core.webguard import bind_socket, new_token

    validate_name(args.name)
    try:
        import textual_serve  # noqa: F401
    except ImportError:
        raise K3dtuiError("serving to a browser needs the textual-serve package",
                         "install it: pip install textual-serve") from None
    bound = bind_socket(args.host, args.port, public=args.public)
    token = new_token() if args.public else None
    url = public_url(args.host, bound.port, token)
    if token is None:
        print(f"k3dtui: serving the TUI at {url} (this machine only; each browser tab runs its own k3dtui; Ctrl+C stops)",
              flush=True)
    else:
        advice = ("read-only: the page cannot change the cluster" if getattr(args, "read_only", False)
                  else "anyone with this URL can change the cluster: --read-only is recommended")
        print(f"k3dtui: serving the TUI publicly at {url} ({advice}; Ctrl+C stops)", flush=True)
    server = make_server(app_command(args), bound.sock, token, title=f"k3dtui {args.name}")
    server.run()
    print("k3dtui: stopped serving", file=sys.stderr, flush=True)
    return 0


# -- the web server ------------------------------------------------------------------------

_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*/?>", re.IGNORECASE | re.DOTALL)
_LOCAL_FONT = """<style>
      @font-face { font-family: "Roboto Mono"; font-style: normal;
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype"); }
      @font-face { font-family: "Roboto Mono"; font-style: italic;
        src: url("{{ config.static.url }}fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype"); }
    </style>"""


def local_template(text: str) -> str:
    """The page template with every stylesheet from another site replaced by the fonts the
    package ships (a browser here may have no internet, and a served page should not call out)."""
    return _REMOTE_LINK.sub(_LOCAL_FONT, text)


def make_server(command: str, sock: socket.socket, token: str | None, *, title: str) -> Any:
    import aiohttp_jinja2
    import jinja2
    import textual_serve.server as ts
    from aiohttp import WSMsgType, web
    from aiohttp.web_runner import GracefulExit
    from textual_serve.app_service import AppService

    from k3dtui.core.webguard import token_middleware

    package = Path(ts.__file__).resolve().parent
    template = local_template((package / "templates" / "app_index.html").read_text(encoding="utf-8"))
    port = int(sock.getsockname()[1])

    class Server(ts.Server):
        def __init__(self) -> None:
            super().__init__(command, host="127.0.0.1", port=port, title=title)
            self.sessions: set[AppService] = set()

        async def _make_app(self) -> web.Application:
            app: web.Application = await super()._make_app()
            aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({"app_index.html": template}))
            app.middlewares.append(token_middleware(token, port))
            return app

        async def on_startup(self, app: web.Application) -> None:
            return None

        async def on_shutdown(self, app: web.Application) -> None:
            await asyncio.gather(*(self._end(service) for service in list(self.sessions)))

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            scheme = "wss" if request.secure else "ws"
            context = {
                "font_size": ts.to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{scheme}://{request.host}/ws",
                "config": {"static": {"url": "/static/"}},
                "application": {"name": self.title},
            }
            response: web.StreamResponse = aiohttp_jinja2.render_template("app_index.html", request, context)
            return response

        async def _end(self, service: AppService) -> None:
            """Ask the tab's process to quit; kill it if it has not within STOP_TIMEOUT."""
            process = service._process
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop(), STOP_TIMEOUT)
            if process is not None and process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            self.sessions.discard(service)

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            websocket = web.WebSocketResponse(heartbeat=15)
            width = ts.to_int(request.query.get("width", "80"), 80)
            height = ts.to_int(request.query.get("height", "24"), 24)
            await websocket.prepare(request)

            async def close() -> None:
                await websocket.close()

            service = AppService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=close,
                download_manager=self.download_manager,
                debug=False,
            )
            self.sessions.add(service)
            try:
                await service.start(width, height)
                async for message in websocket:
                    if message.type != WSMsgType.TEXT:
                        continue
                    envelope = message.json()
                    if not isinstance(envelope, list) or not envelope:
                        continue
                    kind = envelope[0]
                    data = envelope[1] if len(envelope) > 1 else None
                    if kind == "stdin" and isinstance(data, str):
                        await service.send_bytes(data.encode("utf-8"))
                    elif kind == "resize" and isinstance(data, dict):
                        await service.set_terminal_size(ts.to_int(str(data.get("width")), width),
                                                        ts.to_int(str(data.get("height")), height))
                    elif kind == "ping":
                        await websocket.send_json(["pong", data])
                    elif kind == "blur":
                        await service.blur()
                    elif kind == "focus":
                        await service.focus()
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.warning("a browser session failed: %s", exc)
            finally:
                await asyncio.shield(self._end(service))
                with contextlib.suppress(Exception):
                    await websocket.close()
            return websocket

        def run(self) -> None:
            logging.basicConfig(level=logging.WARNING, format="k3dtui: %(message)s")
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)

            def stop() -> None:
                raise GracefulExit()

            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop)
            web.run_app(self._make_app(), sock=sock, handle_signals=False, loop=loop,
                        print=None, access_log=None, shutdown_timeout=STOP_TIMEOUT)

    return Server()
