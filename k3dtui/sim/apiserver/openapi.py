"""OpenAPI v2 (``/openapi/v2``) and v3 (``/openapi/v3`` and one document per group-version)
with the schemas of the kinds served, for ``kubectl explain`` and ``kubectl apply``.

Nothing here is written by hand; the schemas are generated, once, from two sources of truth:

- the Kubernetes Python client's models (``kubernetes.client.models``, generated from
  Kubernetes' own OpenAPI document): every field's JSON name, type, description and
  whether it is required (pydantic ``model_fields`` in client ≥ 35; ``openapi_types``,
  ``attribute_map`` and the property docstrings in older ones);
- :mod:`.pbschema` (generated from k8s.io/api's ``generated.proto`` and ``types.go``): the
  Go schema names (``io.k8s.api.apps.v1.Deployment``), integer formats, the
  ``IntOrString``/``Quantity``/``Time`` fields and the strategic-merge-patch extensions
  (``x-kubernetes-patch-strategy``, ``x-kubernetes-patch-merge-key``) client-side apply uses.

A CRD's kinds get the ``openAPIV3Schema`` it stores, with ``metadata`` as ObjectMeta, named
as kube-apiserver names them (the reversed group, the version and the kind:
``io.metallb.v1beta1.IPAddressPool``; k8s.io/apiextensions-apiserver
``pkg/controller/openapi/builder``). Every top-level schema carries
``x-kubernetes-group-version-kind``, which is how kubectl finds a kind's schema. The
operations declare the ``fieldValidation``, ``fieldManager`` and ``dryRun`` query parameters:
with them kubectl ≥ 1.27 validates on the server (``fieldValidation=Strict``) instead of
against these schemas (k8s.io/cli-runtime ``pkg/resource/query_param_verifier_v3.go``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import re
import threading
import types
import typing
from typing import Any

import orjson

from k3dtui.sim.apiserver import openapi_pb
from k3dtui.sim.apiserver.pbschema import MESSAGES, PATCH
from k3dtui.sim.apiserver.protobuf import message_for
from k3dtui.sim.kinds import Kind, Registry

Obj = dict[str, Any]
TITLE = {"title": "Kubernetes", "version": "v1.31.5+k3s1"}
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_INTSTR = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# the apimachinery types whose JSON is a scalar (k8s.io/apimachinery's OpenAPIDefinition of each)
_SCALAR_SCHEMAS: dict[str, Obj] = {
    _INTSTR: {"type": "string", "format": "int-or-string"},
    _QUANTITY: {"type": "string"},
    _META + "Time": {"type": "string", "format": "date-time"},
    _META + "MicroTime": {"type": "string", "format": "date-time"},
    _META + "Duration": {"type": "string"},
    _META + "FieldsV1": {"type": "object"},
    "io.k8s.apimachinery.pkg.runtime.RawExtension": {"type": "object"},
}
# in v3 these two are "one of" (k8s.io/apimachinery ``OpenAPIV3OneOfTypes``): no top-level
# type, so kubectl explain names them (``<IntOrString>``, ``map[string]Quantity``)
_V3_ONE_OF: dict[str, Obj] = {
    _INTSTR: {"oneOf": [{"type": "integer"}, {"type": "string"}], "format": "int-or-string"},
    _QUANTITY: {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


# -- the built-in kinds' schemas, from the Python client's models -------------------------------
def _models() -> Any:
    import kubernetes.client.models as models

    return models


def _model_class(kind: Kind) -> type | None:
    models = _models()
    v = kind.gvr.version[:1].upper() + kind.gvr.version[1:]
    names = ([f"Core{v}{kind.kind}"] if not kind.gvr.group else []) + [f"{v}{kind.kind}"]
    for name in names:
        cls = getattr(models, name, None)
        if isinstance(cls, type):
            return cls
    return None


def _go_name(proto: str) -> str:
    """``k8s.io.api.apps.v1.Deployment`` -> ``io.k8s.api.apps.v1.Deployment`` (the OpenAPI name)."""
    return "io.k8s." + proto.removeprefix("k8s.io.")


def _doc(cls: type) -> str:
    text = inspect.cleandoc(cls.__doc__ or "")
    text = text.split("Attributes:", 1)[0].split("NOTE: This class is auto generated", 1)[0]
    return " ".join(text.split())


def _proto_fields(proto: str | None) -> dict[str, tuple[str, int]]:
    """json name -> (proto type, flags), inlined messages flattened."""
    out: dict[str, tuple[str, int]] = {}
    for jname, typ, _pname, flags in (MESSAGES.get(proto or "") or {}).values():
        if flags & 4:
            out.update(_proto_fields(typ))
        else:
            out[jname] = (typ, flags)
    return out


def _strip(ann: Any) -> Any:
    """``Optional[Annotated[X, ...]]`` -> X (a Union of several stays a Union)."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
            return typing.Union[tuple(_strip(a) for a in args)]  # noqa: UP007
        return ann


_LEGACY_TYPES = {"int": int, "str": str, "bool": bool, "float": float, "datetime": dt.datetime,
                 "date": dt.date, "object": object}


def _legacy_annotation(text: str) -> Any:
    """An ``openapi_types`` string of an older client (``list[V1Container]``, ``dict(str, str)``)."""
    if text.startswith("list["):
        return list[_legacy_annotation(text[5:-1])]  # type: ignore[misc]
    m = re.fullmatch(r"dict\((\w+), (.+)\)", text)
    if m:
        return dict[str, _legacy_annotation(m.group(2))]  # type: ignore[misc]
    return _LEGACY_TYPES.get(text) or getattr(_models(), text, object)


def _fields(cls: type) -> list[tuple[str, Any, str, bool]]:
    """(json name, annotation, description, required) of a model's fields."""
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict):
        return [(str(f.serialization_alias or f.alias or name), f.annotation, " ".join((f.description or "").split()),
                 bool(f.is_required())) for name, f in model_fields.items()]
    out = []
    attribute_map = getattr(cls, "attribute_map", {})
    for name, text in getattr(cls, "openapi_types", {}).items():
        prop = getattr(cls, name, None)
        doc = inspect.cleandoc(getattr(prop, "__doc__", "") or "")
        parts = [p for p in doc.split("\n\n") if p and not p.startswith(("Gets the", ":return:"))]
        desc = " ".join(" ".join(parts[:1]).replace("# noqa: E501", "").split())
        setter = getattr(prop, "fset", None)
        consts = getattr(getattr(setter, "__code__", None), "co_consts", ()) or ()
        required = any(isinstance(c, str) and c.endswith("must not be `None`") for c in consts)
        out.append((attribute_map.get(name, name), _legacy_annotation(text), desc, required))
    return out


class _Builder:
    """Walks the models from the kinds down, naming each schema as Kubernetes does."""

    def __init__(self) -> None:
        self.schemas: dict[str, Obj] = dict(_SCALAR_SCHEMAS)
        self.names: dict[type, str] = {}

    def model(self, cls: type, proto: str | None, prefix: str) -> str:
        if cls in self.names:
            return self.names[cls]
        if proto:
            name = _go_name(proto)
        else:
            short = re.sub(r"^(?:[A-Z][a-z]+)?V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])", "", cls.__name__)
            name = f"{prefix}.{short}"
        self.names[cls] = name
        pfields = _proto_fields(proto)
        patches = PATCH.get(proto or "", {})
        props: Obj = {}
        required: list[str] = []
        for jname, ann, desc, req in _fields(cls):
            if proto and jname not in pfields:
                continue  # a field newer than Kubernetes 1.31 (the client may be newer)
            ptype, _flags = pfields.get(jname, ("", 0))
            schema = self.type_of(ann, ptype, prefix)
            if desc:
                schema["description"] = desc
            if jname in patches:
                strategy, key = patches[jname]
                schema["x-kubernetes-patch-strategy"] = strategy
                if key:
                    schema["x-kubernetes-patch-merge-key"] = key
            props[jname] = schema
            if req:
                required.append(jname)
        out: Obj = {"type": "object", "properties": props}
        if required:
            out["required"] = required
        description = _doc(cls)
        if description:
            out["description"] = description
        self.schemas[name] = out
        return name

    def type_of(self, ann: Any, ptype: str, prefix: str) -> Obj:
        ann = _strip(ann)
        origin = typing.get_origin(ann)
        if ptype and _go_name(ptype) in _SCALAR_SCHEMAS:
            return {"$ref": _go_name(ptype)}
        if ptype.startswith("map:"):
            ptype = ptype.split(":", 2)[2]
        if origin in (typing.Union, types.UnionType):
            members = set(typing.get_args(ann))
            if members >= {int, str}:
                return {"$ref": _INTSTR}
            if bytes in members:
                return {"type": "string", "format": "byte"}
            ann = next(iter(typing.get_args(ann)))
            origin = typing.get_origin(ann)
        if origin in (list, typing.List):  # noqa: UP006
            return {"type": "array", "items": self.type_of(typing.get_args(ann)[0], ptype, prefix)}
        if origin in (dict, typing.Dict):  # noqa: UP006
            args = typing.get_args(ann)
            value = args[1] if len(args) == 2 else object
            if value is typing.Any or value is object:
                return {"type": "object"}
            return {"type": "object", "additionalProperties": self.type_of(value, ptype, prefix)}
        if isinstance(ann, type) and (hasattr(ann, "model_fields") or hasattr(ann, "openapi_types")):
            return {"$ref": self.model(ann, ptype if ptype in MESSAGES else None, prefix)}
        if ann is bool:
            return {"type": "boolean"}
        if ann is int:
            return {"type": "integer", "format": ptype if ptype in ("int32", "int64") else "int32"}
        if ann is float:
            return {"type": "number", "format": "double"}
        if ann is bytes:
            return {"type": "string", "format": "byte"}
        if ann is str:
            return {"type": "string", "format": "byte"} if ptype == "bytes" else {"type": "string"}
        if ann is dt.datetime:
            return {"$ref": _META + "Time"}
        if ann is dt.date:
            return {"type": "string", "format": "date"}
        return {"type": "object"}

    def kind(self, kind: Kind) -> str | None:
        cls = _model_class(kind)
        if cls is None:
            return None
        proto = message_for(kind.api_version, kind.kind)
        group = kind.gvr.group.split(".")[0] if kind.gvr.group else "core"
        if kind.gvr.group == "apiextensions.k8s.io":
            prefix = f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{kind.gvr.version}"
        else:
            prefix = f"io.k8s.api.{group}.{kind.gvr.version}"
        name = self.model(cls, proto, prefix)
        self.schemas[name]["x-kubernetes-group-version-kind"] = [
            {"group": kind.gvr.group, "kind": kind.kind, "version": kind.gvr.version}]
        return name


_BUILT: dict[tuple[Kind, ...], tuple[dict[str, Obj], dict[Kind, str]]] = {}
_BUILDING = threading.Lock()


def builtin_schemas(kinds: list[Kind]) -> tuple[dict[str, Obj], dict[Kind, str]]:
    """Schemas of the built-in kinds (those with a Python client model), built once (any thread)."""
    key = tuple(sorted(kinds, key=lambda k: str(k.gvr)))
    with _BUILDING:
        return _build_once(key)


def _build_once(key: tuple[Kind, ...]) -> tuple[dict[str, Obj], dict[Kind, str]]:
    if key not in _BUILT:
        builder = _Builder()
        names: dict[Kind, str] = {}
        # kinds with a protobuf message first, so shared models get their Go names
        for k in sorted(key, key=lambda k: message_for(k.api_version, k.kind) is None):
            name = builder.kind(k)
            if name is not None:
                names[k] = name
        _BUILT.clear()
        _BUILT[key] = (builder.schemas, names)
    return _BUILT[key]


# -- CRDs -------------------------------------------------------------------------------------
def _reverse_group(group: str) -> str:
    return ".".join(reversed(group.split(".")))


def crd_schema(kind: Kind, crds: list[Obj]) -> Obj:
    schema: Obj = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("group") != kind.gvr.group or (spec.get("names") or {}).get("plural") != kind.gvr.resource:
            continue
        for v in spec.get("versions") or []:
            if v.get("name") == kind.gvr.version:
                stored = ((v.get("schema") or {}).get("openAPIV3Schema"))
                if isinstance(stored, dict):
                    schema = orjson.loads(orjson.dumps(stored))
    props = schema.setdefault("properties", {})
    if schema.get("type", "object") == "object" and isinstance(props, dict):
        props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}
        props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}
        props["metadata"] = {"$ref": _META + "ObjectMeta",
                             "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}
    schema["x-kubernetes-group-version-kind"] = [{"group": kind.gvr.group, "kind": kind.kind, "version": kind.gvr.version}]
    return schema


# -- documents --------------------------------------------------------------------------------
def _render(node: Any, v3: bool) -> Any:
    """Neutral schemas (``{"$ref": name}``) as v2 (``#/definitions/``) or v3
    (``#/components/schemas/``, a ref with siblings wrapped in ``allOf``)."""
    if isinstance(node, list):
        return [_render(n, v3) for n in node]
    if not isinstance(node, dict):
        return node
    is_ref = isinstance(node.get("$ref"), str)
    out = {k: _render(v, v3) for k, v in node.items() if k != "$ref" or not is_ref}
    if is_ref:
        ref = ("#/components/schemas/" if v3 else "#/definitions/") + node["$ref"]
        if v3 and out:
            return {"allOf": [{"$ref": ref}], **out}
        return {"$ref": ref, **out}
    return out


def _closure(schemas: dict[str, Obj], roots: list[str]) -> dict[str, Obj]:
    found: dict[str, Obj] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found or name not in schemas:
            continue
        found[name] = schemas[name]
        stack: list[Any] = [schemas[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    todo.append(node["$ref"])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return found


def _params(v3: bool) -> list[Obj]:
    names = ("fieldValidation", "fieldManager", "dryRun")
    if v3:
        return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]
    return [{"name": n, "in": "query", "type": "string", "uniqueItems": True} for n in names]


def _paths(kinds: list[Kind], names: dict[Kind, str], v3: bool) -> Obj:
    paths: Obj = {}
    for kind in kinds:
        base = "/" + gv_path(kind.gvr.group, kind.gvr.version)
        gvk = {"group": kind.gvr.group, "version": kind.gvr.version, "kind": kind.kind}
        ok: Obj = {"description": "OK"}
        if kind in names:
            ref = ("#/components/schemas/" if v3 else "#/definitions/") + names[kind]
            ok = ({"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}} if v3
                  else {"description": "OK", "schema": {"$ref": ref}})

        def op(action: str, gvk: Obj = gvk, ok: Obj = ok) -> Obj:
            return {"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                    "parameters": _params(v3), "responses": {"200": ok}}

        res = kind.gvr.resource
        coll = f"{base}/namespaces/{{namespace}}/{res}" if kind.namespaced else f"{base}/{res}"
        verbs = set(kind.verbs)
        entry: Obj = {}
        if "create" in verbs:
            entry["post"] = op("post")
        if "list" in verbs:
            entry["get"] = op("list")
        if entry:
            paths[coll] = entry
        item: Obj = {}
        for verb, method, action in (("get", "get", "get"), ("update", "put", "put"), ("patch", "patch", "patch"),
                                     ("delete", "delete", "delete")):
            if verb in verbs:
                item[method] = op(action)
        if item:
            paths[f"{coll}/{{name}}"] = item
    return paths


class OpenAPI:
    """The documents of one registry and the CRDs stored, rebuilt when either changes."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._schemas: dict[str, Obj] = {}
        self._names: dict[Kind, str] = {}
        self._docs: dict[str, bytes] = {}

    def _refresh(self, registry: Registry, crds: list[Obj]) -> None:
        key = (registry.generation, tuple(str((c.get("metadata") or {}).get("resourceVersion")) for c in crds))
        if key == self._key:
            return
        kinds = registry.kinds()
        builtin, names = builtin_schemas([k for k in kinds if not k.custom])
        schemas = dict(builtin)
        names = dict(names)
        for kind in kinds:
            if kind.custom:
                name = f"{_reverse_group(kind.gvr.group)}.{kind.gvr.version}.{kind.kind}"
                schemas[name] = crd_schema(kind, crds)
                names[kind] = name
            elif kind not in names:  # no model (metrics.k8s.io): the kind, open-ended
                name = f"io.k8s.{kind.gvr.group.split('.')[0] or 'core'}.pkg.apis.{kind.gvr.version}.{kind.kind}"
                schemas[name] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                 "x-kubernetes-group-version-kind": [
                                     {"group": kind.gvr.group, "kind": kind.kind, "version": kind.gvr.version}]}
                names[kind] = name
        self._key, self._schemas, self._names, self._docs = key, schemas, names, {}

    def v2(self, registry: Registry, crds: list[Obj]) -> bytes:
        self._refresh(registry, crds)
        if "v2" not in self._docs:
            kinds = registry.kinds()
            doc = {"swagger": "2.0", "info": TITLE, "paths": _paths(kinds, self._names, v3=False),
                   "definitions": _render(self._schemas, v3=False)}
            self._docs["v2"] = orjson.dumps(doc)
        return self._docs["v2"]

    def v2_protobuf(self, registry: Registry, crds: list[Obj]) -> bytes:
        """The v2 document as gnostic's ``openapi.v2.Document`` (:mod:`.openapi_pb`)."""
        body = self.v2(registry, crds)
        if "v2pb" not in self._docs:
            self._docs["v2pb"] = openapi_pb.document(orjson.loads(body))
        return self._docs["v2pb"]

    def v3(self, registry: Registry, crds: list[Obj], group: str, version: str) -> bytes | None:
        self._refresh(registry, crds)
        kinds = registry.in_group_version(group, version)
        if not kinds:
            return None
        key = f"v3:{group}/{version}"
        if key not in self._docs:
            used = _closure(self._schemas, [self._names[k] for k in kinds if k in self._names])
            used = {name: _V3_ONE_OF.get(name, s) for name, s in used.items()}
            doc = {"openapi": "3.0.0", "info": TITLE, "paths": _paths(kinds, self._names, v3=True),
                   "components": {"schemas": _render(used, v3=True)}}
            self._docs[key] = orjson.dumps(doc)
        return self._docs[key]

    def index(self, registry: Registry, crds: list[Obj]) -> Obj:
        paths: Obj = {}
        for group, version in registry.group_versions():
            body = self.v3(registry, crds, group, version) or b""
            digest = hashlib.sha512(body).hexdigest()[:128].upper()
            p = gv_path(group, version)
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
        return {"paths": paths}
