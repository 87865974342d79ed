"""Request and response plumbing the handlers share: bodies, content negotiation, field managers."""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml
from aiohttp import web

from k3dtui.sim.apiserver import protobuf
from k3dtui.sim.apiserver.errors import bad_request
from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import ApiError, Obj


def manager(request: web.Request | None) -> str:
    """The field manager of a write: ``fieldManager``, else the client's User-Agent name."""
    if request is None:
        return "k3dtui-sim"
    fm = request.query.get("fieldManager")
    if fm:
        return fm
    agent = request.headers.get("User-Agent", "").split("/", 1)[0].strip()
    return agent or "unknown"


WARNINGS = web.RequestKey("k3dtui_warnings", list[str])


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def wants_metadata(request: web.Request) -> bool:
    """``Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1``."""
    return "as=PartialObjectMetadata" in request.headers.get("Accept", "")


def partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


# -- bodies-----------------------------------------------------------------------
async def read_body(request: web.Request, *, allow_yaml: bool = False) -> Any:
    ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if ctype == protobuf.MEDIA_TYPE:
        try:
            return protobuf.decode(await request.read())
        except protobuf.ProtobufError as exc:
            raise bad_request(f"the object provided is unrecognized or malformed: {exc}") from exc
    if "protobuf" in ctype or "cbor" in ctype:
        raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, {protobuf.MEDIA_TYPE} (got "{ctype}")')
    raw = await request.read()
    if not raw.strip():
        raise bad_request("the object provided is unrecognized or malformed: empty request body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if allow_yaml or ctype.endswith("yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as yexc:
                raise bad_request(f"error decoding YAML: {yexc}") from yexc
        raise bad_request(f"the object provided is unrecognized or malformed: {exc}") from exc

def check_body(kind: Kind, body: Any, *, ns: str, name: str | None) -> Obj:
    if not isinstance(body, dict):
        raise bad_request("the object provided is unrecognized or malformed: expected a JSON object")
    if not body.get("kind"):
        raise bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
    if body.get("kind") != kind.kind or body.get("apiVersion", kind.api_version) != kind.api_version:
        raise bad_request(
            f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version "
            f"({kind.api_version})" if body.get("kind") == kind.kind else
            f"the kind in the data ({body.get('kind')}) does not match the expected kind ({kind.kind}) of {kind.qualified}"
        )
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("the object provided is unrecognized or malformed: metadata must be an object")
    if kind.namespaced:
        if meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    if name is not None and meta.get("name") and meta["name"] != name:
        raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    body["apiVersion"] = kind.api_version
    return body

def out(kind: Kind, obj: Obj) -> Obj:
    if "kind" not in obj or "apiVersion" not in obj:
        obj = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
    return obj

