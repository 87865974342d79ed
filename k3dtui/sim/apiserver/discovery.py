"""Discovery (aggregated and legacy) and the OpenAPI v3 stub."""

from __future__ import annotations

import asyncio

from aiohttp import web

from k3dtui.sim import gvrs
from k3dtui.sim.apiserver import openapi, openapi_pb
from k3dtui.sim.apiserver.errors import NOT_FOUND_MSG, dumps, json_response
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import ApiError, Obj

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
# the options kinds of pods' streaming subresources, as kube-apiserver's discovery names them
_POD_STREAMS = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


class Discovery(Handlers):
    """Discovery documents, cached by the kinds registry's generation."""

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
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
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
        body = dumps({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": f"apidiscovery.k8s.io/{version_tag}",
            "metadata": {},
            "items": items,
        })
        self._discovery_cache = {key: body} | {k: v for k, v in self._discovery_cache.items() if k[1] == key[1]}
        return body

    _openapi_docs: openapi.OpenAPI | None = None

    async def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        if self._openapi_docs is None:
            self._openapi_docs = openapi.OpenAPI()
        # the built-in kinds' schemas take a moment to build: not on the loop the watches use
        await asyncio.to_thread(openapi.builtin_schemas, [k for k in self.registry.kinds() if not k.custom])
        docs, crds = self._openapi_docs, list(self.store.iter(gvrs.CRDS))
        if parts[1:] == ["v2"]:
            accept = request.headers.get("Accept", "")
            if "protobuf" in accept and "json" not in accept and "*/*" not in accept:
                # the gnostic protobuf form client-go's discovery.OpenAPISchema() asks for
                return web.Response(body=docs.v2_protobuf(self.registry, crds),
                                    headers={"Content-Type": openapi_pb.CONTENT_TYPE})
            return web.Response(body=docs.v2(self.registry, crds), headers={"Content-Type": "application/json"})
        if len(parts) >= 2 and parts[1] == "v3":
            if len(parts) == 2:
                return json_response(docs.index(self.registry, crds))
            rest = parts[2:]
            body = None
            if rest[0] == "api" and len(rest) == 2:
                body = docs.v3(self.registry, crds, "", rest[1])
            elif rest[0] == "apis" and len(rest) == 3:
                body = docs.v3(self.registry, crds, rest[1], rest[2])
            if body is not None:
                return web.Response(body=body, headers={"Content-Type": "application/json"})
        raise ApiError(404, "NotFound", NOT_FOUND_MSG)


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
    if sub in _POD_STREAMS:
        return "", "v1", _POD_STREAMS[sub], ["create", "get"]
    if sub == "finalize":
        return k.gvr.group, k.gvr.version, k.kind, ["update"]
    return k.gvr.group, k.gvr.version, k.kind, ["get", "patch", "update"]

