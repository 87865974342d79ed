"""The API server: its aiohttp application, authentication and the routing of resource paths to the handlers."""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from k3dtui.sim import gvrs, tables
from k3dtui.sim import registry as rules
from k3dtui.sim.apiserver.authz import (
    ADMIN,
    PRINCIPAL,
    REVIEW_GROUPS,
    Authz,
    Principal,
    forbidden,
    limited,
)
from k3dtui.sim.apiserver.discovery import VERSION_INFO, Discovery
from k3dtui.sim.apiserver.errors import (
    NOT_FOUND_MSG,
    json_response,
    status_response,
    success_status,
)
from k3dtui.sim.apiserver.handlers import Admission
from k3dtui.sim.apiserver.http import (
    WARNINGS,
    out,
    partial,
    read_body,
    wants_metadata,
    wants_table,
)
from k3dtui.sim.apiserver.logs import Logs
from k3dtui.sim.apiserver.metrics import METRICS_GROUP, Metrics
from k3dtui.sim.apiserver.patching import Patching
from k3dtui.sim.apiserver.portforward import PortForward
from k3dtui.sim.apiserver.streams import PodStreams
from k3dtui.sim.apiserver.tls import server_context
from k3dtui.sim.apiserver.watch import Watch
from k3dtui.sim.kinds import Kind, Registry
from k3dtui.sim.patch import PatchError
from k3dtui.sim.registry import disruption
from k3dtui.sim.store import GVR, ApiError, Event, Obj, Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# What a real cluster lets anyone read (the system:public-info-viewer role).
_PUBLIC_PATHS = frozenset({"/version", "/version/", "/healthz", "/livez", "/readyz"})

log = logging.getLogger(__name__)


class _Route:
    """A parsed resource path."""

    __slots__ = ("kind", "name", "namespace", "sub", "watch")

    def __init__(self, kind: Kind, namespace: str | None, name: str | None, sub: str | None, watch: bool) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.sub = sub
        self.watch = watch


def _verb(method: str, name: str | None, watch: bool) -> str:
    """The authorizer's verb of a resource request (k8s.io/apiserver pkg/endpoints/request
    requestinfo.go: GET → get/list/watch, POST → create, PUT → update, DELETE of a
    collection → deletecollection)."""
    if method in ("GET", "HEAD"):
        return "watch" if watch else ("get" if name else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class ApiServer(Patching, Watch, Discovery, Authz, PodStreams, Logs, Metrics, PortForward):
    """The API server. ``tls=True`` serves HTTPS with a certificate signed by a fresh CA of
    its own (``ca_pem``, made in-process by ``apiserver.tls``): kubectl only sends the bearer token over TLS, so a kubeconfig for kubectl
    needs it. Plain HTTP (the default) serves the Python client, which sends it anyway.
    """

    def __init__(self, store: Store, registry: Registry, *, token: str, tls: bool = False) -> None:
        self.store = store
        self.registry = registry
        self.token = token
        self.limited_tokens: dict[str, Principal] = {}  # add_token(): viewers of the cluster
        self.ca_pem: str | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls:
            self.ca_pem, self._ssl = server_context()
        self.bookmark_interval: float = 60.0
        self.log_provider: Callable[[str, str, str | None], str] | None = None
        self._admission: dict[GVR, list[Admission]] = {}
        self._extra_routes: list[tuple[str, str, Handler]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._host = "127.0.0.1"
        self._watch_queues: set[asyncio.Queue[Event | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._discovery_cache: dict[tuple[str, int], bytes] = {}
        for crd in store.iter(gvrs.CRDS):
            registry.register_crd(crd)
        self._unsubscribe = store.subscribe(self._on_store_event)

    # -- public interface --------------------------------------------------------------
    def add_admission(self, gvr: GVR, fn: Admission) -> None:
        """Call ``fn(operation, new_obj, old_obj)`` before a write; it raises ``ApiError`` to refuse.

        For DELETE both objects are the stored one.
        """
        self._admission.setdefault(gvr, []).append(fn)

    def add_token(self, token: str, role: str) -> None:
        """Accept ``token`` as a limited user ``k3dtui:<role>`` (``viewer``: get/list/watch all
        but Secrets; ``no-nodes``: the same without Nodes)."""
        self.limited_tokens[token] = limited(role)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """An extra aiohttp route (token-checked), registered before :meth:`start`."""
        self._extra_routes.append((method, path, handler))

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    @property
    def url(self) -> str:
        """``http(s)://host:port`` once started."""
        return f"{self.scheme}://{self._host}:{self._port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._host = host
        self.ensure_namespaces()
        self.ensure_apiservices()
        app = web.Application(client_max_size=64 * 1024 * 1024, handler_args={"max_field_size": 65536})
        for method, path, handler in self._extra_routes:
            app.router.add_route(method, path, self._checked(handler))
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._port = int(sockets[0].getsockname()[1]) if sockets else port
        return self._port

    async def stop(self) -> None:
        for q in list(self._watch_queues):
            q.put_nowait(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.sleep(0)
            await runner.cleanup()

    def close(self) -> None:
        """Stop following the store (after :meth:`stop`, when the server is gone for good)."""
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()

    def ensure_namespaces(self) -> None:
        for name in DEFAULT_NAMESPACES:
            if self.store.peek(gvrs.NAMESPACES, "", name) is None:
                ns: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                rules.create(self.store, self.registry.get(gvrs.NAMESPACES) or gvrs.NAMESPACES, ns)

    # -- store follow-up -----------------------------------------------------------------
    def _on_store_event(self, ev: Event) -> None:
        if ev.gvr != gvrs.CRDS:
            return
        if ev.type == "DELETED":
            self.registry.unregister_crd(ev.obj)
        else:
            self.registry.register_crd(ev.obj)

    # -- plumbing ------------------------------------------------------------------------
    def _principal(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        sent = header[7:].strip().encode()
        if hmac.compare_digest(sent, self.token.encode()):
            return ADMIN
        for token, who in self.limited_tokens.items():
            if hmac.compare_digest(sent, token.encode()):
                return who
        return None

    def _authorized(self, request: web.Request) -> bool:
        who = self._principal(request)
        if who is not None:
            request[PRINCIPAL] = who
        return who is not None

    def _checked(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            who = self._principal(request)
            if who is None:
                return status_response(ApiError(401, "Unauthorized", "Unauthorized"))
            if not who.admin:  # the simulator's own control routes are the admin's
                return status_response(ApiError(403, "Forbidden", f'forbidden: User "{who.username}" cannot '
                                                f'{request.method.lower()} path "{request.path}"'))
            return await handler(request)

        return wrapped

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request) and not (
            # anonymous (no credentials at all) may read what a real cluster shows everyone
            request.method == "GET" and request.path in _PUBLIC_PATHS and "Authorization" not in request.headers
        ):
            return status_response(ApiError(401, "Unauthorized", "Unauthorized"))
        try:
            response = await self._route(request)
            warnings = request.get(WARNINGS)
            if warnings and not response.prepared:
                for w in warnings:
                    response.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
            return response
        except ApiError as err:
            return status_response(err)
        except PatchError as err:
            return status_response(ApiError(422, "Invalid", str(err)))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("sim api: %s %s failed", request.method, request.path)
            return status_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]})
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if head == "version" and len(parts) == 1:
            return json_response(VERSION_INFO)
        if head == "openapi":
            return await self._openapi(request, parts)
        if head == "api":
            if len(parts) == 1:
                return self._discovery_root(request, core=True)
            if parts[1] != "v1":
                raise ApiError(404, "NotFound", NOT_FOUND_MSG)
            return await self._resource(request, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery_root(request, core=False)
            if len(parts) == 2:
                return self._api_group(parts[1])
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise ApiError(404, "NotFound", NOT_FOUND_MSG)

    # -- resources: routing ------------------------------------------------------------
    def _parse(self, group: str, version: str, rest: list[str], watch: bool) -> _Route:
        if rest and rest[0] == "watch":
            watch = True
            rest = rest[1:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace = rest[1]
            rest = rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        kind = self.registry.get(GVR(group, version, rest[0]))
        if kind is None:
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        if namespace is not None and not kind.namespaced:
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in kind.subresources:
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        return _Route(kind, namespace, name, sub, watch)

    async def _resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        if rest and group in REVIEW_GROUPS:
            return await self._review(request, group, version, rest)
        if rest and group == METRICS_GROUP:
            return await self._metrics(request, version, rest)
        if not rest:
            if not self.registry.in_group_version(group, version):
                raise ApiError(404, "NotFound", NOT_FOUND_MSG)
            return json_response(self._resource_list(group, version))
        q = request.query
        route = self._parse(group, version, rest, q.get("watch") in ("true", "1"))
        kind, name, ns, sub = route.kind, route.name, route.namespace, route.sub
        method = request.method
        who: Principal = request.get(PRINCIPAL, ADMIN)
        if not who.admin:
            verb = _verb(method, name, route.watch)
            if not who.allows(verb, group, kind.gvr.resource, sub or ""):
                raise forbidden(who, verb, group, kind.gvr.resource, sub or "", ns or "", name or "")
        if kind.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        if sub in ("exec", "attach") and name is not None and method in ("GET", "POST"):
            return await self._exec(request, kind, ns or "", name, sub)
        if sub == "portforward" and name is not None and method in ("GET", "POST"):
            return await self._portforward(request, kind, ns or "", name)
        if method == "GET":
            if name is None:
                if route.watch:
                    return await self._watch(request, kind, ns)
                return self._list(request, kind, ns)
            if sub == "scale":
                return json_response(self._scale_of(kind, self.store.require(kind.gvr, ns or "", name)))
            if sub == "log":
                return await self._pod_log(request, kind, ns or "", name)
            if sub in ("binding", "eviction"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            obj = self.store.require(kind.gvr, ns or "", name)
            if wants_table(request):
                return json_response(tables.to_table(kind, [out(kind, obj)], resource_version=obj["metadata"].get("resourceVersion", ""),
                                                     include_object=q.get("includeObject", "Metadata")))
            if wants_metadata(request):
                return json_response(partial(obj))
            return json_response(out(kind, obj))
        if method == "POST":
            body = await read_body(request)
            if name is None:
                if ns is None and kind.namespaced:
                    raise ApiError(404, "NotFound", NOT_FOUND_MSG)
                obj, created = self._create(kind, ns or "", body, request), 201
                return json_response(obj, status=created)
            if sub == "binding":
                return json_response(self._bind(kind, ns or "", name, body), status=201)
            if sub == "eviction":
                disruption.check_eviction(self.store, ns or "", name)
                opts = body.get("deleteOptions") if isinstance(body, dict) else None
                self._delete(kind, ns or "", name, opts if isinstance(opts, dict) else {}, request)
                return json_response(success_status({"name": name, "kind": "pods"}), status=201)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if method == "PUT":
            if name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            body = await read_body(request)
            if sub in ("scale", "status", "finalize"):
                return json_response(self._replace_sub(kind, ns or "", name, sub, body, request))
            return json_response(self._replace(kind, ns or "", name, body, request))
        if method == "PATCH":
            if name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            return await self._patch(request, kind, ns or "", name, sub)
        if method == "DELETE":
            if name is None:
                return json_response(self._delete_collection(request, kind, ns))
            opts = await self._delete_options(request)
            status, deleted = self._delete(kind, ns or "", name, opts, request)
            return json_response(deleted, status=status)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

