"""The OpenAPI v2 document in the protobuf form client-go asks for
(``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf``: client-go
``discovery.OpenAPISchema()``, used by ``kubectl explain --output=plaintext-openapiv2``).

The messages are gnostic's ``openapi.v2`` (github.com/google/gnostic ``openapiv2/OpenAPIv2.proto``);
the field numbers below are that file's. Vendor extensions (``x-kubernetes-*``) and the
``default``/``enum`` values are ``Any`` messages carrying YAML (JSON is YAML), as gnostic
writes them. JSON Schema keywords that ``openapi.v2.Schema`` has no field for (``oneOf``,
``anyOf``, ``nullable``...) are left out, as in kube-apiserver's own protobuf document.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# what kube-openapi answers it with ("@" is not valid in a Content-Type: Go's mime parser
# refuses it; k8s.io/kube-openapi pkg/handler/handler.go)
CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

# openapi.v2.Schema: JSON key -> (field number, kind)
_SCHEMA_FIELDS: dict[str, tuple[int, str]] = {
    "$ref": (1, "string"), "format": (2, "string"), "title": (3, "string"), "description": (4, "string"),
    "default": (5, "any"), "multipleOf": (6, "double"), "maximum": (7, "double"), "exclusiveMaximum": (8, "bool"),
    "minimum": (9, "double"), "exclusiveMinimum": (10, "bool"), "maxLength": (11, "int"), "minLength": (12, "int"),
    "pattern": (13, "string"), "maxItems": (14, "int"), "minItems": (15, "int"), "uniqueItems": (16, "bool"),
    "maxProperties": (17, "int"), "minProperties": (18, "int"), "required": (19, "strings"), "enum": (20, "anys"),
    "discriminator": (26, "string"), "readOnly": (27, "bool"), "example": (30, "any"),
}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str(number: int, value: str) -> bytes:
    return _bytes(number, value.encode()) if value else b""


def _any(number: int, value: Any) -> bytes:
    """An ``openapi.v2.Any`` with ``yaml`` = 2."""
    return _bytes(number, _str(2, orjson.dumps(value).decode()))


def _named_any(number: int, name: str, value: Any) -> bytes:
    return _bytes(number, _str(1, name) + _any(2, value))


def schema(node: dict[str, Any]) -> bytes:
    out = bytearray()
    for key, value in node.items():
        if key in _SCHEMA_FIELDS:
            number, kind = _SCHEMA_FIELDS[key]
            if kind == "string" and isinstance(value, str):
                out += _str(number, value)
            elif kind == "bool" and isinstance(value, bool) and value:
                out += _varint(number << 3) + b"\x01"
            elif kind == "int" and isinstance(value, int) and not isinstance(value, bool):
                out += _varint(number << 3) + _varint(value)
            elif kind == "double" and isinstance(value, int | float) and not isinstance(value, bool):
                out += _varint(number << 3 | 1) + struct.pack("<d", float(value))
            elif kind == "strings" and isinstance(value, list):
                for v in value:
                    out += _str(number, str(v))
            elif kind == "any":
                out += _any(number, value)
            elif kind == "anys" and isinstance(value, list):
                for v in value:
                    out += _any(number, v)
        elif key == "additionalProperties":
            item = _bytes(1, schema(value)) if isinstance(value, dict) else (b"\x10\x01" if value else b"")
            out += _bytes(21, item)
        elif key == "type":
            types = value if isinstance(value, list) else [value]
            out += _bytes(22, b"".join(_str(1, str(t)) for t in types))
        elif key == "items":
            items = value if isinstance(value, list) else [value]
            out += _bytes(23, b"".join(_bytes(1, schema(i)) for i in items if isinstance(i, dict)))
        elif key == "allOf" and isinstance(value, list):
            for s in value:
                out += _bytes(24, schema(s))
        elif key == "properties" and isinstance(value, dict):
            named = b"".join(_bytes(1, _str(1, name) + _bytes(2, schema(s))) for name, s in value.items())
            out += _bytes(25, named)
        elif key.startswith("x-"):
            out += _named_any(31, key, value)
    return bytes(out)


def _query_parameter(param: dict[str, Any]) -> bytes:
    """ParametersItem{parameter = 1: Parameter{non_body_parameter = 2: NonBodyParameter{
    query_parameter_sub_schema = 3: {in = 2, name = 4, type = 6, unique_items = 20}}}}."""
    sub = _str(2, str(param.get("in", "query"))) + _str(4, str(param.get("name", ""))) + \
        _str(6, str(param.get("type", "string"))) + (_varint(20 << 3) + b"\x01" if param.get("uniqueItems") else b"")
    return _bytes(1, _bytes(2, _bytes(3, sub)))


def _operation(op: dict[str, Any]) -> bytes:
    out = bytearray()
    for param in op.get("parameters") or []:
        out += _bytes(8, _query_parameter(param))
    codes = b""
    for code, response in (op.get("responses") or {}).items():
        body = _str(1, str(response.get("description", "")))
        if isinstance(response.get("schema"), dict):
            body += _bytes(2, _bytes(1, schema(response["schema"])))
        codes += _bytes(1, _str(1, str(code)) + _bytes(2, _bytes(1, body)))
    out += _bytes(9, codes)
    for key, value in op.items():
        if key.startswith("x-"):
            out += _named_any(13, key, value)
    return bytes(out)


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def document(doc: dict[str, Any]) -> bytes:
    """openapi.v2.Document {swagger = 1, info = 2, paths = 8, definitions = 9}."""
    info = doc.get("info") or {}
    out = bytearray(_str(1, str(doc.get("swagger", "2.0"))))
    out += _bytes(2, _str(1, str(info.get("title", ""))) + _str(2, str(info.get("version", ""))))
    paths = b""
    for path, item in (doc.get("paths") or {}).items():
        body = b"".join(_bytes(_METHODS[m], _operation(op)) for m, op in item.items() if m in _METHODS)
        paths += _bytes(2, _str(1, path) + _bytes(2, body))
    out += _bytes(8, paths)
    definitions = b"".join(_bytes(1, _str(1, name) + _bytes(2, schema(s)))
                           for name, s in (doc.get("definitions") or {}).items())
    out += _bytes(9, definitions)
    return bytes(out)
