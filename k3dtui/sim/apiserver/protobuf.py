"""Request bodies in Kubernetes' protobuf encoding (``application/vnd.kubernetes.protobuf``),
decoded into the JSON form the rest of the API server works with.

kubectl ≥ 1.32 sends its ``create`` commands' objects this way, and client-go does for
every built-in kind when a client asks for it. The envelope (k8s.io/apimachinery
``pkg/runtime/serializer/protobuf/protobuf.go``): the 4-byte magic ``k8s\\x00``, then a
``runtime.Unknown`` message (``typeMeta`` = 1 {apiVersion = 1, kind = 2}, ``raw`` = 2,
``contentEncoding`` = 3, ``contentType`` = 4) whose ``raw`` is the object's message.

The field table (:mod:`.pbschema`) is generated from Kubernetes' ``generated.proto`` and
``types.go`` by ``scripts/gen_sim_protobuf.py``. What JSON a field becomes follows
k8s.io/apimachinery's JSON marshalling of the Go types:

- ``meta.v1.Time``/``MicroTime`` become RFC 3339 strings (the zero time is omitted),
  ``resource.Quantity`` its string, ``intstr.IntOrString`` an int or a string,
  ``runtime.RawExtension`` and ``meta.v1.FieldsV1`` the JSON they carry, ``bytes`` base64;
- the generated marshallers always write a non-pointer scalar field, so a zero ``""``, 0 or
  false is dropped unless the Go field is a pointer (``replicas: 0`` stays);
- an ``,inline`` field (a Volume's ``VolumeSource``, a Probe's ``ProbeHandler``) is merged
  into its parent object.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from typing import Any

import orjson

from k3dtui.sim.apiserver.pbschema import MESSAGES

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_TIME = _META + "Time"
_MICROTIME = _META + "MicroTime"
_DURATION = _META + "Duration"
_FIELDSV1 = _META + "FieldsV1"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INTSTR = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW = "k8s.io.apimachinery.pkg.runtime.RawExtension"

# API group -> the proto package of its version's messages (k8s.io/api <group>/<version>)
_PACKAGES = {
    "": "core", "apps": "apps", "batch": "batch", "policy": "policy", "autoscaling": "autoscaling",
    "coordination.k8s.io": "coordination", "discovery.k8s.io": "discovery",
    "networking.k8s.io": "networking", "rbac.authorization.k8s.io": "rbac",
    "scheduling.k8s.io": "scheduling", "storage.k8s.io": "storage",
    "authentication.k8s.io": "authentication", "authorization.k8s.io": "authorization",
    "admissionregistration.k8s.io": "admissionregistration",
}


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf message the simulated API server knows."""


def message_for(api_version: str, kind: str) -> str | None:
    """The full proto message name of ``kind`` in ``api_version``, if the table has it."""
    group, _, version = api_version.rpartition("/")
    if kind in ("DeleteOptions",):
        return _META + "DeleteOptions"
    package = _PACKAGES.get(group)
    if package is None:
        return None
    name = f"k8s.io.api.{package}.{version}.{kind}"
    return name if name in MESSAGES else None


# -- the wire format -----------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(number, wire type, raw value) of every field in ``buf``, in order."""
    out: list[tuple[int, int, Any]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise ProtobufError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ProtobufError("truncated length-delimited field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > end:
                raise ProtobufError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return value


def _scalar(typ: str, wire: int, raw: Any) -> Any:
    if typ == "string":
        if wire != 2:
            raise ProtobufError("a string field with a non length-delimited wire type")
        return bytes(raw).decode("utf-8", errors="replace")
    if typ == "bytes":
        return base64.b64encode(bytes(raw)).decode()
    if typ == "bool":
        return bool(raw)
    if typ in ("int64", "uint64", "uint32"):
        return _signed(raw, 64) if typ == "int64" else raw
    if typ == "int32":
        return _signed(raw, 32)
    if typ == "sint32" or typ == "sint64":
        return (raw >> 1) ^ -(raw & 1)
    if typ == "double":
        return struct.unpack("<d", raw)[0]
    if typ == "float":
        return struct.unpack("<f", raw)[0]
    if typ == "fixed64":
        return struct.unpack("<Q", raw)[0]
    if typ == "fixed32":
        return struct.unpack("<I", raw)[0]
    raise ProtobufError(f"unknown scalar type {typ}")


def _repeated_scalars(typ: str, wire: int, raw: Any) -> list[Any]:
    """A repeated scalar: one value, or a packed run of them."""
    if wire != 2 or typ in ("string", "bytes"):
        return [_scalar(typ, wire, raw)]
    buf, pos, out = bytes(raw), 0, []
    while pos < len(buf):
        if typ in ("double", "fixed64"):
            out.append(_scalar(typ, 1, buf[pos:pos + 8]))
            pos += 8
        elif typ in ("float", "fixed32"):
            out.append(_scalar(typ, 5, buf[pos:pos + 4]))
            pos += 4
        else:
            v, pos = _varint(buf, pos)
            out.append(_scalar(typ, 0, v))
    return out


def _rfc3339(seconds: int, nanos: int, micro: bool) -> str | None:
    if seconds == 0 and nanos == 0:
        return None
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos // 1000:06d}Z" if micro else f"{base}Z"


def _duration(nanos: int) -> str:
    """Go's ``time.Duration.String()`` for whole and fractional seconds."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    h, rest = divmod(nanos, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    s = rest / 10**9
    text = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{sign}{h}h{m}m{text}"
    if m:
        return f"{sign}{m}m{text}"
    return sign + text


def _special(name: str, buf: bytes) -> tuple[bool, Any]:
    """(handled, value) for the apimachinery types whose JSON form is not an object."""
    if name in (_TIME, _MICROTIME):
        seconds = nanos = 0
        for number, _wire, raw in _fields(buf):
            if number == 1:
                seconds = _signed(raw, 64)
            elif number == 2:
                nanos = _signed(raw, 32)
        return True, _rfc3339(seconds, nanos, name == _MICROTIME)
    if name == _QUANTITY:
        for number, _wire, raw in _fields(buf):
            if number == 1:
                return True, bytes(raw).decode()
        return True, "0"
    if name == _INTSTR:
        kind, ival, sval = 0, 0, ""
        for number, _wire, raw in _fields(buf):
            if number == 1:
                kind = raw
            elif number == 2:
                ival = _signed(raw, 32)
            elif number == 3:
                sval = bytes(raw).decode()
        return True, sval if kind == 1 else ival
    if name in (_RAW, _FIELDSV1):
        for number, _wire, raw in _fields(buf):
            if number == 1:
                try:
                    return True, orjson.loads(bytes(raw))
                except orjson.JSONDecodeError as exc:
                    raise ProtobufError(f"{name.rsplit('.', 1)[1]} does not hold JSON") from exc
        return True, None
    if name == _DURATION:
        for number, _wire, raw in _fields(buf):
            if number == 1:
                return True, _duration(_signed(raw, 64))
        return True, "0s"
    return False, None


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or (value == 0 and not isinstance(value, bool))


def decode_message(name: str, buf: bytes) -> Any:
    """The JSON form of one message of type ``name``."""
    handled, value = _special(name, buf)
    if handled:
        return value
    table = MESSAGES.get(name)
    if table is None:
        raise ProtobufError(f"no protobuf schema for {name}")
    obj: dict[str, Any] = {}
    for number, wire, raw in _fields(buf):
        field = table.get(number)
        if field is None:
            continue  # an unknown field: proto2 readers skip it
        jname, typ, _pname, flags = field
        if flags & 2:  # map<k, v>: repeated entries {key = 1, value = 2}
            _, ktype, vtype = typ.split(":", 2)
            key: Any = "" if ktype == "string" else 0
            val: Any = None
            for n, w, r in _fields(bytes(raw)):
                if n == 1:
                    key = _scalar(ktype, w, r)
                elif n == 2:
                    val = decode_message(vtype, bytes(r)) if vtype not in _SCALAR_TYPES else _scalar(vtype, w, r)
            if val is None:
                val = "" if vtype in ("string", "bytes") else ({} if vtype not in _SCALAR_TYPES else 0)
            obj.setdefault(jname, {})[str(key)] = val
            continue
        is_message = typ not in _SCALAR_TYPES
        if flags & 1:
            values = [decode_message(typ, bytes(raw))] if is_message else _repeated_scalars(typ, wire, raw)
            obj.setdefault(jname, []).extend(values)
            continue
        if is_message:
            if wire != 2:
                raise ProtobufError(f"{jname}: a message field with wire type {wire}")
            value = decode_message(typ, bytes(raw))
            if flags & 4 and isinstance(value, dict):
                obj.update(value)
                continue
            if value is None:
                continue
        else:
            value = _scalar(typ, wire, raw)
            if _is_zero(value) and not flags & 8:
                continue
        obj[jname] = value
    return obj


_SCALAR_TYPES = frozenset({"string", "bytes", "int32", "int64", "bool", "double", "float", "uint32",
                           "uint64", "sint32", "sint64", "fixed32", "fixed64"})


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a protobuf request body carries; :class:`ProtobufError` if it cannot be read."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix k8s\\x00")
    api_version = kind = ""
    raw = b""
    encoding = ""
    for number, _wire, value in _fields(body[len(MAGIC):]):
        if number == 1:
            for n, _w, v in _fields(bytes(value)):
                if n == 1:
                    api_version = bytes(v).decode()
                elif n == 2:
                    kind = bytes(v).decode()
        elif number == 2:
            raw = bytes(value)
        elif number == 3:
            encoding = bytes(value).decode()
    if encoding:
        raise ProtobufError(f"content encoding {encoding!r} is not supported")
    if not kind:
        raise ProtobufError("the protobuf envelope names no kind")
    name = message_for(api_version, kind)
    if name is None:
        raise ProtobufError(f"no protobuf schema for {kind} in {api_version or 'v1'}")
    obj = decode_message(name, raw)
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    out.update(obj)
    return out
