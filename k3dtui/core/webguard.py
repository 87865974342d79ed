"""What `k3dtui serve` checks before and while it serves the TUI to browsers.

- ``bind_socket``: the address to listen on, refused unless it is loopback or ``--public``
  was given; a malformed host, a port out of range or a port in use is a ``UsageError``
  (one line, exit 2). The socket is bound here and handed to the web server, so the port
  checked is the port served.
- ``new_token`` / ``token_middleware``: with ``--public`` every request must carry the
  token, as ``?token=`` (the printed URL) or as the cookie the page sets from it; anything
  else gets 403 and starts no app. Compared in constant time.
- ``same_origin``: a websocket must come from a page this server served (a page on another
  site cannot drive the TUI through the visitor's browser).
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from k3dtui.core.errors import UsageError

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Bound:
    sock: socket.socket
    host: str
    port: int
    loopback: bool


def _usage(problem: str, fix: str) -> UsageError:
    """One line: what is wrong and what to do."""
    return UsageError(f"{problem}: {fix}")


def resolve(host: str) -> list[tuple[int, str]]:
    """(family, address) for ``host``: an IP literal, or a name the resolver knows."""
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        ip = None
    if ip is not None:
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))]
    if re.fullmatch(r"[0-9.]+", host):
        raise _usage(f"--host {host!r} is not a valid IPv4 address", "pass e.g. --host 127.0.0.1")
    if not _HOSTNAME.match(host):
        raise _usage(f"--host {host!r} is not an IP address or a host name", "pass e.g. --host 127.0.0.1 (this machine only) or --host 0.0.0.0 --public")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise _usage(f"--host {host!r} does not resolve to an address of this machine", "pass an IP address, e.g. --host 127.0.0.1") from None
    out: list[tuple[int, str]] = []
    for family, _type, _proto, _name, addr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, str(addr[0])) not in out:
            out.append((family, str(addr[0])))
    if not out:
        raise _usage(f"--host {host!r} has no IPv4 or IPv6 address", "pass e.g. --host 127.0.0.1")
    return out


def is_loopback(addresses: list[tuple[int, str]]) -> bool:
    return all(ipaddress.ip_address(addr).is_loopback for _family, addr in addresses)


def bind_socket(host: str, port: int, *, public: bool) -> Bound:
    """A listening socket on ``host:port`` (port 0: any free port), or a ``UsageError``."""
    if not 0 <= port <= 65535:
        raise _usage(f"--port must be between 1 and 65535 (got {port})", "pass e.g. --port 8000")
    addresses = resolve(host)
    loopback = is_loopback(addresses)
    if not loopback and not public:
        raise _usage(f"--host {host} lets other machines reach the TUI", "add --public to serve it beyond this machine (a token is then required), "
            "or keep the default --host 127.0.0.1")
    family, address = addresses[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise _usage(f"port {port} on {host} is already in use", "pick another with --port (or --port 0 for any free port)") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise _usage(f"--host {host} is not an address of this machine", "pass one of its addresses, 127.0.0.1, or 0.0.0.0 for all of them") from None
        if exc.errno == errno.EACCES:
            raise _usage(f"not allowed to listen on port {port}", "pick a port above 1023") from None
        raise _usage(f"cannot listen on {host}:{port}: {exc.strerror}", "try another --host or --port") from None
    sock.setblocking(False)
    real_port = int(sock.getsockname()[1])
    return Bound(sock, host, real_port, loopback)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_name(port: int) -> str:
    """Per port: cookies are shared by every port of a host."""
    return f"k3dtui_token_{port}"


def token_matches(expected: str, given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def same_origin(request: web.Request) -> bool:
    """True when the request has no Origin (not a browser page) or one naming this server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


def loopback_host(request: web.Request) -> bool:
    """The Host the browser asked for is this machine by name or address (``localhost``,
    127.0.0.1, [::1]): a page whose own name merely resolves to 127.0.0.1 (DNS rebinding)
    gets no session."""
    name = urlsplit(f"//{request.host or ''}").hostname or ""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


FORBIDDEN_TEXT = "403: this k3dtui server needs its token; open the URL it printed (with ?token=...)\n"
CROSS_ORIGIN_TEXT = "403: a page from another site may not open this k3dtui session\n"
LOOPBACK_TEXT = "403: this k3dtui server serves this machine only; open http://127.0.0.1:{port}/\n"


def token_middleware(token: str | None, port: int) -> Middleware:
    """Refuse (403) any request without ``token`` and any websocket from another origin; a
    request that brings the right ``?token=`` gets the cookie so the page's own requests
    (styles, script, websocket) carry it. Without a token (a loopback server) the request
    must name this machine as its Host."""
    name = cookie_name(port)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket" and not same_origin(request):
            return web.Response(status=403, text=CROSS_ORIGIN_TEXT)
        if token is None:
            if not loopback_host(request):
                return web.Response(status=403, text=LOOPBACK_TEXT.format(port=port))
            return await handler(request)
        from_query = request.query.get("token")
        if token_matches(token, from_query) or (
            from_query is None and token_matches(token, request.cookies.get(name))
        ):
            response = await handler(request)
            if from_query is not None and not response.prepared:
                response.set_cookie(name, token, httponly=True, samesite="Strict", path="/")
            return response
        return web.Response(status=403, text=FORBIDDEN_TEXT)

    return guard
