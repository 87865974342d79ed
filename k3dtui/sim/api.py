"""The simulated cluster's Kubernetes API server (aiohttp, plain HTTP on 127.0.0.1).

Discovery (aggregated and legacy), an OpenAPI v3 stub, list/get/watch with selectors and
Table output, create/replace/patch/apply/delete, the scale and status subresources and
Kubernetes ``Status`` errors, over the generic :class:`~k3dtui.sim.store.Store`.

Everything runs on the event loop that called :meth:`ApiServer.start` (the store is not
thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import hmac
import json
import logging
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import yaml
from aiohttp import web

from k3dtui.sim import defaults, gvrs, openapi, tables
from k3dtui.sim.kinds import Kind, Registry
from k3dtui.sim.patch import (
    PatchError,
    apply_patch,
    changed_paths,
    comparable,
    conflicts,
    field_owners,
    json_patch,
    managed_fields,
    merge_patch,
    owned_paths,
    prune_for_apply,
    related,
    release_changed,
    strategic_merge,
)
from k3dtui.sim.selectors import (
    format_label_selector,
    parse_field_selector,
    parse_label_selector,
)
from k3dtui.sim.store import GVR, ApiError, Event, Store, not_found, now_rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Admission = Callable[[str, Obj, Obj | None], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VERSION_INFO: Obj = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.5+k3s1",
    "gitCommit": "56ec5dd4d012cd0f0c3e9d6bd16bbd2b6f1f3c3e",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.22.10",
    "compiler": "gc",
    "platform": "linux/amd64",
}
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Kinds whose DELETE answers with the object rather than a Status.
_RETURN_DELETED = {("", "pods"), ("", "services"), ("", "namespaces"), ("", "nodes")}
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "managedFields")
_NOT_FOUND_MSG = "the server could not find the requested resource"
_WATCH_DEFAULT_TIMEOUT = 1800.0
# What a real cluster lets anyone read (the system:public-info-viewer role).
_PUBLIC_PATHS = frozenset({"/version", "/version/", "/healthz", "/livez", "/readyz"})


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(obj: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=_dumps(obj), status=status, headers={"Content-Type": content_type})


def status_response(err: ApiError) -> web.Response:
    return json_response(err.status(), status=err.code)


def success_status(details: Obj) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Route:
    """A parsed resource path."""

    __slots__ = ("kind", "name", "namespace", "sub", "watch")

    def __init__(self, kind: Kind, namespace: str | None, name: str | None, sub: str | None, watch: bool) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.sub = sub
        self.watch = watch


def make_self_signed(host: str = "127.0.0.1") -> tuple[str, str]:
    """(certificate PEM, key PEM) for ``host``, self-signed with the openssl CLI.

    Raises ``RuntimeError`` when openssl is missing or fails.
    """
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl not found: install it, or run the simulated API without TLS")
    with tempfile.TemporaryDirectory(prefix="k3dtui-tls-") as tmp:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        san = f"IP:{host},DNS:localhost" if host[0].isdigit() else f"DNS:{host},IP:127.0.0.1"
        proc = subprocess.run(
            [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "3650", "-subj", "/CN=k3dtui-sim",
             "-addext", f"subjectAltName={san}"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"openssl failed: {proc.stderr.strip()}")
        with open(cert) as fc, open(key) as fk:
            return fc.read(), fk.read()


class ApiServer:
    """The API server. ``tls=True`` serves HTTPS with a fresh self-signed certificate
    (``ca_pem``): kubectl only sends the bearer token over TLS, so a kubeconfig for kubectl
    needs it. Plain HTTP (the default) serves the Python client, which sends it anyway.
    """

    def __init__(self, store: Store, registry: Registry, *, token: str, tls: bool = False) -> None:
        self.store = store
        self.registry = registry
        self.token = token
        self.ca_pem: str | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls:
            cert, key = make_self_signed()
            self.ca_pem = cert
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory(prefix="k3dtui-tls-") as tmp:
                cpath, kpath = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
                with open(cpath, "w") as fc, open(kpath, "w") as fk:
                    fc.write(cert)
                    fk.write(key)
                ctx.load_cert_chain(cpath, kpath)
            self._ssl = ctx
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
                kind = self.registry.get(gvrs.NAMESPACES)
                if kind is not None:
                    defaults.apply_defaults(kind, ns, self.store)
                self.store.create(gvrs.NAMESPACES, ns)

    # -- store follow-up -----------------------------------------------------------------
    def _on_store_event(self, ev: Event) -> None:
        if ev.gvr != gvrs.CRDS:
            return
        if ev.type == "DELETED":
            self.registry.unregister_crd(ev.obj)
        else:
            self.registry.register_crd(ev.obj)

    # -- plumbing ------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())

    def _checked(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                return status_response(ApiError(401, "Unauthorized", "Unauthorized"))
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
            warnings = request.get(_WARNINGS)
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
            return json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]})
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if head == "version" and len(parts) == 1:
            return json_response(VERSION_INFO)
        if head == "openapi":
            return self._openapi(parts)
        if head == "api":
            if len(parts) == 1:
                return self._discovery_root(request, core=True)
            if parts[1] != "v1":
                raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
            return await self._resource(request, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery_root(request, core=False)
            if len(parts) == 2:
                return self._api_group(parts[1])
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise ApiError(404, "NotFound", _NOT_FOUND_MSG)

    # -- discovery ---------------------------------------------------------------------
    def _discovery_root(self, request: web.Request, *, core: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "as=APIGroupDiscoveryList" in accept:
            v2 = "v=v2;" in accept or accept.endswith("v=v2") or "v=v2," in accept
            body = self._aggregated(core, "v2" if v2 else "v2beta1")
            return web.Response(body=body, headers={"Content-Type": AGGREGATED_V2 if v2 else AGGREGATED_V2BETA1})
        if core:
            host = f"{self._host}:{self._port}"
            return json_response({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            })
        groups: list[Obj] = []
        seen: dict[str, Obj] = {}
        for group, version in self.registry.group_versions():
            if not group:
                continue
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            if group in seen:
                seen[group]["versions"].append(gv)
                continue
            entry = {"name": group, "versions": [gv], "preferredVersion": dict(gv)}
            seen[group] = entry
            groups.append(entry)
        return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    def _api_group(self, group: str) -> web.Response:
        versions = [
            {"groupVersion": f"{g}/{v}", "version": v} for g, v in self.registry.group_versions() if g == group
        ]
        if not versions:
            raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
        return json_response({
            "kind": "APIGroup", "apiVersion": "v1", "name": group,
            "versions": versions, "preferredVersion": dict(versions[0]),
        })

    def _resource_list(self, group: str, version: str) -> Obj:
        resources: list[Obj] = []
        for k in self.registry.in_group_version(group, version):
            entry: Obj = {
                "name": k.gvr.resource, "singularName": k.singular, "namespaced": k.namespaced,
                "kind": k.kind, "verbs": list(k.verbs),
            }
            if k.short_names:
                entry["shortNames"] = list(k.short_names)
            if k.categories:
                entry["categories"] = list(k.categories)
            resources.append(entry)
            for sub in k.subresources:
                g, v, sk, verbs = _subresource_kind(k, sub)
                se: Obj = {"name": f"{k.gvr.resource}/{sub}", "singularName": "", "namespaced": k.namespaced,
                           "kind": sk, "verbs": verbs}
                if (g, v) != (k.gvr.group, k.gvr.version):
                    se["group"], se["version"] = g, v
                resources.append(se)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _aggregated(self, core: bool, version_tag: str) -> bytes:
        key = (f"{'core' if core else 'apis'}:{version_tag}", self.registry.generation)
        cached = self._discovery_cache.get(key)
        if cached is not None:
            return cached
        items: list[Obj] = []
        by_group: dict[str, Obj] = {}
        for group, version in self.registry.group_versions():
            if bool(group) == core:
                continue
            resources: list[Obj] = []
            for k in self.registry.in_group_version(group, version):
                r: Obj = {
                    "resource": k.gvr.resource,
                    "responseKind": {"group": group, "version": version, "kind": k.kind},
                    "scope": "Namespaced" if k.namespaced else "Cluster",
                    "singularResource": k.singular,
                    "verbs": list(k.verbs),
                }
                if k.short_names:
                    r["shortNames"] = list(k.short_names)
                if k.categories:
                    r["categories"] = list(k.categories)
                subs = []
                for sub in k.subresources:
                    g, v, sk, verbs = _subresource_kind(k, sub)
                    subs.append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": sk}, "verbs": verbs})
                if subs:
                    r["subresources"] = subs
                resources.append(r)
            entry = by_group.get(group)
            if entry is None:
                entry = {"metadata": {"name": group} if group else {}, "versions": []}
                by_group[group] = entry
                items.append(entry)
            entry["versions"].append({"version": version, "resources": resources, "freshness": "Current"})
        body = _dumps({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": f"apidiscovery.k8s.io/{version_tag}",
            "metadata": {},
            "items": items,
        })
        self._discovery_cache = {key: body} | {k: v for k, v in self._discovery_cache.items() if k[1] == key[1]}
        return body

    def _openapi(self, parts: list[str]) -> web.Response:
        if len(parts) >= 2 and parts[1] == "v3":
            if len(parts) == 2:
                return json_response(openapi.index(self.registry))
            rest = parts[2:]
            if rest[0] == "api" and len(rest) == 2:
                return json_response(openapi.gv_document(self.registry, "", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                if not self.registry.in_group_version(rest[1], rest[2]):
                    raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
                return json_response(openapi.gv_document(self.registry, rest[1], rest[2]))
        raise ApiError(404, "NotFound", _NOT_FOUND_MSG)

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
            raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
        kind = self.registry.get(GVR(group, version, rest[0]))
        if kind is None:
            raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
        if namespace is not None and not kind.namespaced:
            raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in kind.subresources:
            raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
        return _Route(kind, namespace, name, sub, watch)

    async def _resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        if not rest:
            if not self.registry.in_group_version(group, version):
                raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
            return json_response(self._resource_list(group, version))
        q = request.query
        route = self._parse(group, version, rest, q.get("watch") in ("true", "1"))
        kind, name, ns, sub = route.kind, route.name, route.namespace, route.sub
        method = request.method
        if kind.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
        if method == "GET":
            if name is None:
                if route.watch:
                    return await self._watch(request, kind, ns)
                return self._list(request, kind, ns)
            if sub == "scale":
                return json_response(self._scale_of(kind, self.store.require(kind.gvr, ns or "", name)))
            if sub == "log":
                return self._log(kind, ns or "", name, q.get("container"))
            if sub in ("binding", "eviction"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            obj = self.store.require(kind.gvr, ns or "", name)
            if _wants_table(request):
                return json_response(tables.to_table(kind, [self._out(kind, obj)], resource_version=obj["metadata"].get("resourceVersion", ""),
                                                     include_object=q.get("includeObject", "Metadata")))
            if _wants_metadata(request):
                return json_response(_partial(obj))
            return json_response(self._out(kind, obj))
        if method == "POST":
            body = await self._body(request)
            if name is None:
                if ns is None and kind.namespaced:
                    raise ApiError(404, "NotFound", _NOT_FOUND_MSG)
                obj, created = self._create(kind, ns or "", body, request), 201
                return json_response(obj, status=created)
            if sub == "binding":
                return json_response(self._bind(kind, ns or "", name, body), status=201)
            if sub == "eviction":
                opts = body.get("deleteOptions") if isinstance(body, dict) else None
                self._delete(kind, ns or "", name, opts if isinstance(opts, dict) else {}, request)
                return json_response(success_status({"name": name, "kind": "pods"}), status=201)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if method == "PUT":
            if name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            body = await self._body(request)
            return json_response(self._replace(kind, ns or "", name, sub, body, request))
        if method == "PATCH":
            if name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            return await self._patch(request, kind, ns or "", name, sub)
        if method == "DELETE":
            if name is None:
                return json_response(self._delete_collection(request, kind, ns))
            opts = await self._delete_options(request)
            status, out = self._delete(kind, ns or "", name, opts, request)
            return json_response(out, status=status)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # -- bodies --------------------------------------------------------------------------
    async def _body(self, request: web.Request, *, allow_yaml: bool = False) -> Any:
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        if "protobuf" in ctype or "cbor" in ctype:
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got "{ctype}")')
        raw = await request.read()
        if not raw.strip():
            raise _bad_request("the object provided is unrecognized or malformed: empty request body")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if allow_yaml or ctype.endswith("yaml"):
                try:
                    return yaml.safe_load(raw)
                except yaml.YAMLError as yexc:
                    raise _bad_request(f"error decoding YAML: {yexc}") from yexc
            raise _bad_request(f"the object provided is unrecognized or malformed: {exc}") from exc

    def _check_body(self, kind: Kind, body: Any, *, ns: str, name: str | None) -> Obj:
        if not isinstance(body, dict):
            raise _bad_request("the object provided is unrecognized or malformed: expected a JSON object")
        if not body.get("kind"):
            raise _bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
        if body.get("kind") != kind.kind or body.get("apiVersion", kind.api_version) != kind.api_version:
            raise _bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version "
                f"({kind.api_version})" if body.get("kind") == kind.kind else
                f"the kind in the data ({body.get('kind')}) does not match the expected kind ({kind.kind}) of {kind.qualified}"
            )
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad_request("the object provided is unrecognized or malformed: metadata must be an object")
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if name is not None and meta.get("name") and meta["name"] != name:
            raise _bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        body["apiVersion"] = kind.api_version
        return body

    def _out(self, kind: Kind, obj: Obj) -> Obj:
        if "kind" not in obj or "apiVersion" not in obj:
            obj = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        return obj

    def _strict(self, kind: Kind, obj: Any, request: web.Request | None) -> None:
        if request is None or not isinstance(obj, dict):
            return
        warnings = defaults.check_strict(kind, obj, request.query.get("fieldValidation"))
        if warnings:
            if _WARNINGS not in request:
                request[_WARNINGS] = []
            request[_WARNINGS].extend(warnings)

    def _admit(self, kind: Kind, op: str, new: Obj, old: Obj | None) -> None:
        for fn in self._admission.get(kind.gvr, ()):
            fn(op, new, old)

    def _require_namespace(self, kind: Kind, ns: str) -> None:
        if kind.namespaced and self.store.peek(gvrs.NAMESPACES, "", ns) is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})

    # -- create --------------------------------------------------------------------------
    def _create(self, kind: Kind, ns: str, body: Any, request: web.Request | None,
                managed: list[Obj] | None = None) -> Obj:
        obj = self._check_body(kind, body, ns=ns, name=None)
        self._strict(kind, obj, request)
        self._require_namespace(kind, ns)
        meta = obj["metadata"]
        for f in (*_SERVER_META, "resourceVersion", "selfLink"):
            meta.pop(f, None)
        if managed:
            meta["managedFields"] = managed
        elif request is not None:
            creator = {(_manager(request), "Update"): owned_paths(obj)}
            meta["managedFields"] = managed_fields(creator, kind.api_version, now_rfc3339())
        if not meta.get("name"):
            base = meta.get("generateName")
            if not base:
                raise ApiError(422, "Invalid", f"{kind.qualified_kind} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                               {"kind": kind.kind, "group": kind.gvr.group, "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]})
            for _ in range(8):
                meta["name"] = defaults.generate_name(str(base))
                if self.store.peek(kind.gvr, ns, meta["name"]) is None:
                    break
        defaults.reset_status_on_create(kind, obj)
        defaults.apply_defaults(kind, obj, self.store)
        if kind.gvr == gvrs.CRDS:
            _prepare_crd(obj)
        self._admit(kind, "CREATE", obj, None)
        if request is not None and request.query.get("dryRun") == "All":
            if self.store.peek(kind.gvr, ns, meta["name"]) is not None:
                raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{meta["name"]}" already exists',
                               {"name": meta["name"], "group": kind.gvr.group, "kind": kind.gvr.resource})
            meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.setdefault("generation", 1)
            return obj
        return self._out(kind, self.store.create(kind.gvr, obj))

    # -- update ---------------------------------------------------------------------------
    def _write(self, kind: Kind, new: Obj, old: Obj, *, expect_rv: str | None, request: web.Request | None,
               main: bool = True, applied: tuple[str, Obj] | None = None) -> Obj:
        """Common tail of replace/patch/apply on the main resource."""
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad_request("metadata must be an object")
        old_meta = old["metadata"]
        if meta.get("name") != old_meta["name"]:
            raise _bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({old_meta['name']})")
        if kind.namespaced and meta.get("namespace", old_meta.get("namespace")) != old_meta.get("namespace"):
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        client_fields = meta.get("managedFields")
        for f in _SERVER_META:
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        if kind.namespaced:
            meta["namespace"] = old_meta.get("namespace", "")
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if main and "status" in kind.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if kind.gvr == gvrs.CRDS:
            _prepare_crd(new)
        defaults.apply_defaults(kind, new, self.store, old=old)
        if applied is None and client_fields and client_fields != old_meta.get("managedFields"):
            # a client may rewrite managedFields (kubectl does, moving client-side apply to server-side)
            kept = [e for e in client_fields if isinstance(e, dict) and e]
            if kept:
                meta["managedFields"] = kept
            else:
                meta.pop("managedFields", None)
        else:
            self._track_owners(kind, new, old, applied, _manager(request))
        self._admit(kind, "UPDATE", new, old)
        if request is not None and request.query.get("dryRun") == "All":
            return new
        return self._out(kind, self.store.update(kind.gvr, new, expect_rv=expect_rv))

    def _track_owners(self, kind: Kind, new: Obj, old: Obj, applied: tuple[str, Obj] | None, manager: str) -> None:
        """Keep ``managedFields``: an apply owns what it set; any other write owns what it
        changed; either takes those fields away from the other managers."""
        owners = field_owners(old)
        changed = changed_paths(comparable(old), comparable(new))
        if applied is None:
            if not changed:
                return
            owners = release_changed(owners, changed)
            key = (manager, "Update")
            owners[key] = owners.get(key, set()) | changed
        else:
            applier, config = applied
            mine = owned_paths(config)
            owners = release_changed({o: ps for o, ps in owners.items() if o != (applier, "Apply")},
                                     {c for c in changed if any(related(c, p) for p in mine)})
            owners[(applier, "Apply")] = mine
        entries = managed_fields(owners, kind.api_version, now_rfc3339(), old["metadata"].get("managedFields"))
        if entries:
            new["metadata"]["managedFields"] = entries
        else:
            new["metadata"].pop("managedFields", None)

    def _replace(self, kind: Kind, ns: str, name: str, sub: str | None, body: Any, request: web.Request) -> Obj:
        old = self.store.require(kind.gvr, ns, name)
        if sub == "scale":
            return self._write_scale(kind, old, body, request)
        if sub in ("status", "finalize"):
            if not isinstance(body, dict):
                raise _bad_request("the object provided is unrecognized or malformed")
            new = copy.deepcopy(old)
            if sub == "status":
                new["status"] = body.get("status", {})
            else:
                new.setdefault("spec", {})["finalizers"] = (body.get("spec") or {}).get("finalizers") or []
            rv = (body.get("metadata") or {}).get("resourceVersion")
            return self._write(kind, new, old, expect_rv=rv, request=request, main=False)
        obj = self._check_body(kind, body, ns=ns, name=name)
        obj["metadata"].setdefault("name", name)
        self._strict(kind, obj, request)
        rv = obj["metadata"].get("resourceVersion")
        return self._write(kind, obj, old, expect_rv=str(rv) if rv else None, request=request)

    # -- patch ----------------------------------------------------------------------------
    async def _patch(self, request: web.Request, kind: Kind, ns: str, name: str, sub: str | None) -> web.Response:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        apply = ctype == "application/apply-patch+yaml"
        known = ("application/json-patch+json", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "application/apply-patch+yaml")
        if ctype not in known:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {', '.join(known)}")
        if ctype == "application/strategic-merge-patch+json" and kind.custom:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        if apply and not request.query.get("fieldManager"):
            raise _bad_request('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
        patch = await self._body(request, allow_yaml=apply)
        old = self.store.get(kind.gvr, ns, name)
        if old is None:
            if apply and sub is None:
                if not isinstance(patch, dict):
                    raise _bad_request("the object provided is unrecognized or malformed")
                if isinstance(patch.get("metadata"), dict) and patch["metadata"].get("name", name) != name:
                    raise _bad_request(f"the name of the object ({patch['metadata'].get('name')}) does not match the name on the URL ({name})")
                patch.setdefault("metadata", {})["name"] = name
                manager = str(request.query["fieldManager"])
                managed = managed_fields({(manager, "Apply"): owned_paths(patch)}, kind.api_version, now_rfc3339())
                return json_response(self._create(kind, ns, patch, request, managed=managed), status=201)
            raise not_found(kind.gvr, name)
        if apply:
            if not isinstance(patch, dict):
                raise _bad_request("the object provided is unrecognized or malformed")
            if patch.get("kind") != kind.kind or patch.get("apiVersion") != kind.api_version:
                raise _bad_request(
                    f"the kind or API version in the applied configuration ({patch.get('apiVersion')}, {patch.get('kind')}) "
                    f"does not match the resource ({kind.api_version}, {kind.kind})"
                )

        def run(target: Obj) -> Obj:
            if ctype == "application/json-patch+json":
                result = json_patch(target, patch)
            elif ctype == "application/merge-patch+json":
                result = merge_patch(target, patch)
            elif ctype == "application/strategic-merge-patch+json":
                result = strategic_merge(target, patch)
            else:
                result = apply_patch(target, patch, custom=kind.custom or sub == "scale")
            if not isinstance(result, dict):
                raise _bad_request("the patch must leave an object")
            return result

        if sub is None and ctype != "application/json-patch+json":
            self._strict(kind, patch, request)
        if sub == "scale":
            scale = run(self._scale_of(kind, old))
            return json_response(self._write_scale(kind, old, scale, request))
        if apply and sub is None:
            manager = str(request.query["fieldManager"])
            owners = field_owners(old)
            others: set[tuple[str, ...]] = set()
            for o, ps in owners.items():
                if o != (manager, "Apply"):
                    others |= ps
            patched = run(prune_for_apply(old, owners.get((manager, "Apply"), set()), others, patch))
            if request.query.get("force") not in ("true", "1"):
                found = conflicts(owners, manager, changed_paths(comparable(old), comparable(patched)), owned_paths(patch))
                found = _without_last_applied(old, found)
                if found:
                    raise _apply_conflict(kind, name, found)
            new_rv = (patch.get("metadata") or {}).get("resourceVersion")
            if new_rv and new_rv != old["metadata"].get("resourceVersion"):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been modified; please apply your changes to the latest version and try again',
                               {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource})
            return json_response(self._write(kind, patched, old, expect_rv=None, request=request, applied=(manager, patch)))
        patched = run(copy.deepcopy(old))
        new_rv = (patched.get("metadata") or {}).get("resourceVersion")
        expect = str(new_rv) if new_rv and new_rv != old["metadata"].get("resourceVersion") else None
        if expect:
            # a patch that names a resourceVersion is a precondition
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been modified; please apply your changes to the latest version and try again',
                           {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource})
        if sub in ("status", "finalize"):
            new = copy.deepcopy(old)
            if sub == "status":
                new["status"] = patched.get("status", {})
            else:
                new.setdefault("spec", {})["finalizers"] = (patched.get("spec") or {}).get("finalizers") or []
            return json_response(self._write(kind, new, old, expect_rv=None, request=request, main=False))
        return json_response(self._write(kind, patched, old, expect_rv=None, request=request))

    # -- scale -----------------------------------------------------------------------------
    def _scale_of(self, kind: Kind, obj: Obj) -> Obj:
        meta = obj["metadata"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        selector = format_label_selector(spec.get("selector"))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": int(spec.get("replicas", 0))},
            "status": {"replicas": int(status.get("replicas", 0) or 0), "selector": "" if selector == "<none>" else selector},
        }

    def _write_scale(self, kind: Kind, old: Obj, scale: Any, request: web.Request) -> Obj:
        name = old["metadata"]["name"]
        if not isinstance(scale, dict):
            raise _bad_request("the object provided is unrecognized or malformed")
        replicas = (scale.get("spec") or {}).get("replicas")
        if replicas is None:
            replicas = 0
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422, "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0',
                {"name": name, "group": "autoscaling", "kind": "Scale",
                 "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {replicas}: must be greater than or equal to 0", "field": "spec.replicas"}]},
            )
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been modified; please apply your changes to the latest version and try again',
                           {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource})
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["replicas"] = replicas
        stored = self._write(kind, new, old, expect_rv=None, request=request)
        return self._scale_of(kind, stored)

    # -- pods' subresources ---------------------------------------------------------------
    def _log(self, kind: Kind, ns: str, name: str, container: str | None) -> web.Response:
        self.store.require(kind.gvr, ns, name)
        text = self.log_provider(ns, name, container) if self.log_provider else ""
        return web.Response(text=text, content_type="text/plain")

    def _bind(self, kind: Kind, ns: str, name: str, body: Any) -> Obj:
        target = (body or {}).get("target") if isinstance(body, dict) else None
        node = (target or {}).get("name")
        if not node:
            raise ApiError(422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value')
        pod = self.store.require(kind.gvr, ns, name)
        if (pod.get("spec") or {}).get("nodeName"):
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{pod['spec']['nodeName']}\"")
        pod["spec"]["nodeName"] = node
        conds = pod.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()})
        self.store.update(kind.gvr, pod)
        return success_status({})

    # -- delete ------------------------------------------------------------------------------
    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await request.read() if request.can_read_body else b""
        opts: Obj = {}
        if raw.strip():
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise _bad_request(f"the object provided is unrecognized or malformed: {exc}") from exc
            if isinstance(parsed, dict):
                opts = parsed
        q = request.query
        if "gracePeriodSeconds" not in opts and "gracePeriodSeconds" in q:
            try:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError as exc:
                raise _bad_request(f"invalid gracePeriodSeconds: {q['gracePeriodSeconds']!r}") from exc
        if "propagationPolicy" not in opts and "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "dryRun" not in opts and "dryRun" in q:
            opts["dryRun"] = q.getall("dryRun")
        if "orphanDependents" in opts and "propagationPolicy" not in opts:
            opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
        return opts

    def _delete(self, kind: Kind, ns: str, name: str, opts: Obj, request: web.Request | None) -> tuple[int, Obj]:
        obj = self.store.require(kind.gvr, ns, name)
        meta = obj["metadata"]
        pre = opts.get("preconditions") or {}
        if (pre.get("uid") and pre["uid"] != meta.get("uid")) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion")
        ):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the precondition does not hold',
                           {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource})
        self._admit(kind, "DELETE", obj, obj)
        dry = opts.get("dryRun")
        if dry == "All" or (isinstance(dry, list) and "All" in dry):
            return 200, self._out(kind, obj)
        policy = opts.get("propagationPolicy")
        if kind.gvr == gvrs.PODS:
            return 200, self._out(kind, self._delete_pod(obj, opts.get("gracePeriodSeconds")))
        if kind.gvr == gvrs.NAMESPACES:
            if name in ("default", "kube-system", "kube-public"):
                raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                               {"name": name, "kind": "namespaces"})
            self._empty_namespace(name)
        if kind.gvr == gvrs.CRDS:
            for k in list(self.registry.kinds()):
                if k.custom and k.gvr.group == (obj.get("spec") or {}).get("group") and k.gvr.resource == ((obj.get("spec") or {}).get("names") or {}).get("plural"):
                    for cr in list(self.store.iter(k.gvr)):
                        self.store.delete(k.gvr, str(cr["metadata"].get("namespace", "")), str(cr["metadata"]["name"]))
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan":
            self._orphan_dependents(str(meta.get("uid", "")))
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return 200, self._out(kind, obj)
            meta["finalizers"] = finalizers
            meta.setdefault("deletionTimestamp", now_rfc3339())
            meta.setdefault("deletionGracePeriodSeconds", 0)
            stored = self.store.update(kind.gvr, obj)
            if "foregroundDeletion" in finalizers:
                self._start_foreground(kind, ns, name, str(meta.get("uid", "")))
            return 200, self._out(kind, stored)
        gone = self.store.delete(kind.gvr, ns, name)
        if (kind.gvr.group, kind.gvr.resource) in _RETURN_DELETED or kind.custom:
            return 200, self._out(kind, gone)
        return 200, success_status({"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource, "uid": meta.get("uid", "")})

    def _start_foreground(self, kind: Kind, ns: str, name: str, uid: str) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._finish_foreground(kind, ns, name, uid))
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dependents(self, uid: str) -> list[tuple[Kind, Obj]]:
        out: list[tuple[Kind, Obj]] = []
        for gvr in sorted(self.store.resources()):
            dep_kind = self.registry.get(gvr)
            if dep_kind is None:
                continue
            for dep in self.store.iter(gvr):
                if any(r.get("uid") == uid for r in dep["metadata"].get("ownerReferences") or []):
                    out.append((dep_kind, dep))
        return out

    async def _finish_foreground(self, kind: Kind, ns: str, name: str, uid: str) -> None:
        """Foreground deletion: delete the dependents (foreground too), wait until they are
        gone, then drop the ``foregroundDeletion`` finalizer so the owner goes."""
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            current = self.store.peek(kind.gvr, ns, name)
            if current is None or current["metadata"].get("uid") != uid:
                return
            deps = self._dependents(uid)
            if not deps:
                def drop(o: Obj) -> None:
                    o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]
                    if not o["metadata"]["finalizers"]:
                        del o["metadata"]["finalizers"]

                self.store.mutate(kind.gvr, ns, name, drop)
                return
            for dep_kind, dep in deps:
                if not dep["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(ApiError):
                        self._delete(dep_kind, str(dep["metadata"].get("namespace", "")), str(dep["metadata"]["name"]),
                                     {"propagationPolicy": "Foreground"}, None)
            await asyncio.sleep(0.05)

    def _delete_pod(self, pod: Obj, grace_opt: Any) -> Obj:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        ns, name = str(meta.get("namespace", "")), str(meta["name"])
        grace = grace_opt if isinstance(grace_opt, int) and not isinstance(grace_opt, bool) and grace_opt >= 0 else None
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds", 30) or 0)
        terminal = status.get("phase") in ("Succeeded", "Failed")
        if (not spec.get("nodeName") or terminal or grace == 0) and not meta.get("finalizers"):
            return self.store.delete(gvrs.PODS, ns, name)
        deadline = time.time() + grace
        if meta.get("deletionTimestamp"):
            current = tables.parse_time(meta["deletionTimestamp"])
            if current is not None and deadline >= current.timestamp():
                return pod
        meta["deletionTimestamp"] = _rfc3339(deadline)
        meta["deletionGracePeriodSeconds"] = grace
        return self.store.update(gvrs.PODS, pod, bump_generation=True)

    def _orphan_dependents(self, uid: str) -> None:
        if not uid:
            return
        for gvr in sorted(self.store.resources()):
            for dep in list(self.store.iter(gvr)):
                refs = dep["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    def strip(o: Obj) -> None:
                        kept = [r for r in o["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                        if kept:
                            o["metadata"]["ownerReferences"] = kept
                        else:
                            o["metadata"].pop("ownerReferences", None)
                    self.store.mutate(gvr, str(dep["metadata"].get("namespace", "")), str(dep["metadata"]["name"]), strip)

    def _empty_namespace(self, ns: str) -> None:
        for gvr in sorted(self.store.resources()):
            kind = self.registry.get(gvr)
            if kind is not None and not kind.namespaced:
                continue
            for obj in list(self.store.iter(gvr, ns)):
                with contextlib.suppress(ApiError):
                    self.store.delete(gvr, ns, str(obj["metadata"]["name"]))

    def _delete_collection(self, request: web.Request, kind: Kind, ns: str | None) -> Obj:
        opts: Obj = {}
        q = request.query
        if "gracePeriodSeconds" in q:
            with contextlib.suppress(ValueError):
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("dryRun") == "All":
            opts["dryRun"] = "All"
        for obj in self._select(request, kind, ns):
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):
                self._delete(kind, str(meta.get("namespace", "")), str(meta["name"]), dict(opts), request)
        return success_status({"kind": kind.gvr.resource, "group": kind.gvr.group})

    # -- reads ---------------------------------------------------------------------------------
    def _matcher(self, request: web.Request, kind: Kind) -> Callable[[Obj], bool]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), kind.gvr.resource)
        if labels.empty and fields is None:
            return lambda _o: True
        if fields is None:
            return labels.matches_obj
        return lambda o: labels.matches_obj(o) and fields(o)

    def _select(self, request: web.Request, kind: Kind, ns: str | None) -> list[Obj]:
        match = self._matcher(request, kind)
        items, _ = self.store.list_objects(kind.gvr, ns)
        return [o for o in items if match(o)]

    def _list(self, request: web.Request, kind: Kind, ns: str | None) -> web.Response:
        match = self._matcher(request, kind)
        items, rv = self.store.list_objects(kind.gvr, ns)
        items = [self._out(kind, o) for o in items if match(o)]
        if _wants_table(request):
            return json_response(tables.to_table(kind, items, resource_version=str(rv),
                                                 include_object=request.query.get("includeObject", "Metadata")))
        if _wants_metadata(request):
            return json_response({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(rv)}, "items": [_partial(o) for o in items],
            })
        return json_response({
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        })

    # -- watch ---------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, kind: Kind, ns: str | None) -> web.StreamResponse:
        q = request.query
        match = self._matcher(request, kind)
        table = _wants_table(request)
        metadata_only = _wants_metadata(request)
        include = q.get("includeObject", "Metadata")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = _WATCH_DEFAULT_TIMEOUT
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError as exc:
                raise _bad_request(f"invalid timeoutSeconds: {q['timeoutSeconds']!r}") from exc
        rv_text = q.get("resourceVersion", "")
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        gvr = kind.gvr

        def on_event(ev: Event) -> None:
            if ev.gvr == gvr and (ns is None or ev.namespace == ns):
                queue.put_nowait(ev)

        initial: list[tuple[str, Obj]] = []
        expired: str | None = None
        if rv_text in ("", "0"):
            items, _ = self.store.list_objects(gvr, ns)
            initial = [("ADDED", o) for o in items if match(o)]
        else:
            try:
                rv = int(rv_text)
            except ValueError as exc:
                raise _bad_request(f"invalid resource version: {rv_text!r}") from exc
            events = self.store.events_since(rv)
            if events is None:
                expired = f"too old resource version: {rv} ({self.store.oldest_rv + 1})"
            else:
                for past in events:
                    if past.gvr == gvr and (ns is None or past.namespace == ns):
                        t = _translate(past, match)
                        if t is not None:
                            initial.append(t)
        unsubscribe = self.store.subscribe(on_event) if expired is None else None
        self._watch_queues.add(queue)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired is not None:
                await resp.write(_dumps({"type": "ERROR", "object": ApiError(410, "Expired", expired).status()}) + b"\n")
                await resp.write_eof()
                return resp

            def encode(etype: str, obj: Obj) -> bytes:
                obj = self._out(kind, obj)
                if metadata_only:
                    obj = _partial(obj)
                elif table:
                    obj = tables.to_table(kind, [obj], resource_version=str(obj["metadata"].get("resourceVersion", "")),
                                          include_object=include)
                return _dumps({"type": etype, "object": obj}) + b"\n"

            if initial:
                await resp.write(b"".join(encode(t, o) for t, o in initial))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    ev = await asyncio.wait_for(_get(queue), timeout=wait)
                except TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_interval
                        bm = {"kind": kind.kind, "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(self.store.resource_version)}}
                        await resp.write(_dumps({"type": "BOOKMARK", "object": bm}) + b"\n")
                    continue
                if ev is None:
                    break
                chunk = []
                batch: list[Event | None] = [ev]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                stop = False
                for item in batch:
                    if item is None:
                        stop = True
                        break
                    t = _translate(item, match)
                    if t is not None:
                        chunk.append(encode(*t))
                if chunk:
                    await resp.write(b"".join(chunk))
                if stop:
                    break
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._watch_queues.discard(queue)
            if unsubscribe is not None:
                unsubscribe()
        return resp


# -- helpers -------------------------------------------------------------------------------


def _manager(request: web.Request | None) -> str:
    """The field manager of a write: ``fieldManager``, else the client's User-Agent name."""
    if request is None:
        return "k3dtui-sim"
    fm = request.query.get("fieldManager")
    if fm:
        return fm
    agent = request.headers.get("User-Agent", "").split("/", 1)[0].strip()
    return agent or "unknown"


_WARNINGS = web.RequestKey("k3dtui_warnings", list[str])
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _without_last_applied(live: Obj, found: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
    """Conflicts with client-side apply over fields its last-applied annotation names are
    not conflicts (the server lets server-side apply take them over, as a real one does)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(_LAST_APPLIED)
    if not text or not found:
        return found
    try:
        last = json.loads(text)
    except ValueError:
        return found
    paths = owned_paths(last)
    return [
        (m, p) for m, p in found
        if not (m in ("kubectl-client-side-apply", "before-first-apply") and any(related(p, q) for q in paths))
    ]


def _apply_conflict(kind: Kind, name: str, found: list[tuple[str, tuple[str, ...]]]) -> ApiError:
    n = len(found)
    parts = [f'conflict with "{m}" using {kind.api_version}: .{".".join(p)}' for m, p in found]
    return ApiError(
        409, "Conflict",
        f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "\n".join(parts),
        {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource,
         "causes": [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {kind.api_version}',
                     "field": "." + ".".join(p)} for m, p in found]},
    )


async def _get(queue: asyncio.Queue[Event | None]) -> Event | None:
    return await queue.get()


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _wants_metadata(request: web.Request) -> bool:
    """``Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1``."""
    return "as=PartialObjectMetadata" in request.headers.get("Accept", "")


def _partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def _translate(ev: Event, match: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """What a selector-filtered watcher sees of one store event."""
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if match(ev.obj) else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if match(ev.obj) else None
    new = match(ev.obj)
    old = match(ev.old) if ev.old is not None else new
    if new and old:
        return ("MODIFIED", ev.obj)
    if new:
        return ("ADDED", ev.obj)
    if old:
        return ("DELETED", ev.obj)
    return None


def _subresource_kind(k: Kind, sub: str) -> tuple[str, str, str, list[str]]:
    """(group, version, kind, verbs) of a subresource in discovery."""
    if sub == "scale":
        return "autoscaling", "v1", "Scale", ["get", "patch", "update"]
    if sub == "binding":
        return "", "v1", "Binding", ["create"]
    if sub == "eviction":
        return "policy", "v1", "Eviction", ["create"]
    if sub == "log":
        return "", "v1", "Pod", ["get"]
    if sub == "finalize":
        return k.gvr.group, k.gvr.version, k.kind, ["update"]
    return k.gvr.group, k.gvr.version, k.kind, ["get", "patch", "update"]


def _prepare_crd(crd: Obj) -> None:
    """Validate a CRD (422) and fill in its defaults and an Established status."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = str(crd["metadata"].get("name", ""))
    causes: list[str] = []
    if not spec.get("group"):
        causes.append("spec.group: Required value")
    if not names.get("plural"):
        causes.append("spec.names.plural: Required value")
    if not names.get("kind"):
        causes.append("spec.names.kind: Required value")
    if not spec.get("versions"):
        causes.append("spec.versions: Invalid value: null: must have exactly one version marked as storage version")
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        causes.append(f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    if causes:
        raise ApiError(422, "Invalid", f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: '
                       + ("; ".join(causes) if len(causes) == 1 else "[" + ", ".join(causes) + "]"),
                       {"name": name, "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition"})
    names.setdefault("singular", str(names["kind"]).lower())
    names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("conversion", {"strategy": "None"})
    spec.setdefault("scope", "Namespaced")
    old_status = crd.get("status") or {}
    if old_status.get("acceptedNames") == names and old_status.get("conditions"):
        return
    now = now_rfc3339()
    storage = [str(v.get("name")) for v in spec.get("versions") or [] if v.get("storage")]
    crd["status"] = {
        "acceptedNames": copy.deepcopy(names),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": storage or [str((spec.get("versions") or [{}])[0].get("name", "v1"))],
    }
