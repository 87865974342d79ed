"""An OpenAPI v3 stub: enough for ``kubectl apply`` to validate and to send fieldValidation.

``GET /openapi/v3`` lists one document per group-version; each document names the kinds
it serves (``x-kubernetes-group-version-kind``) on their item paths and declares the
``fieldValidation`` query parameter.
"""

from __future__ import annotations

import hashlib
from typing import Any

from k3dtui.sim.kinds import Registry

Obj = dict[str, Any]


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def gv_document(registry: Registry, group: str, version: str) -> Obj:
    paths: Obj = {}
    base = "/" + gv_path(group, version)
    for kind in registry.in_group_version(group, version):
        gvk = {"group": group, "version": version, "kind": kind.kind}
        params = [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        ]
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}}
        res = kind.gvr.resource
        coll = f"{base}/namespaces/{{namespace}}/{res}" if kind.namespaced else f"{base}/{res}"
        paths[coll] = {"post": dict(op, **{"x-kubernetes-action": "post"}), "get": dict(op, **{"x-kubernetes-action": "list"})}
        paths[f"{coll}/{{name}}"] = {
            "get": dict(op, **{"x-kubernetes-action": "get"}),
            "put": dict(op, **{"x-kubernetes-action": "put"}),
            "patch": dict(op, **{"x-kubernetes-action": "patch"}),
            "delete": dict(op, **{"x-kubernetes-action": "delete"}),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.5+k3s1"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _hash(registry: Registry, group: str, version: str) -> str:
    names = ",".join(sorted(k.kind for k in registry.in_group_version(group, version)))
    return hashlib.sha256(f"{group}/{version}:{names}".encode()).hexdigest()[:32].upper()


def index(registry: Registry) -> Obj:
    paths: Obj = {}
    for group, version in registry.group_versions():
        p = gv_path(group, version)
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={_hash(registry, group, version)}"}
    return {"paths": paths}
