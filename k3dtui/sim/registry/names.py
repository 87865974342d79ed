"""Object names: ``generateName`` expansion and the DNS rules a name must follow."""

from __future__ import annotations

import random
import re

from k3dtui.sim.kinds import Kind
from k3dtui.sim.registry.validation import Invalid
from k3dtui.sim.store import ApiError, Obj, Store

# apimachinery util/rand: no vowels, no confusable digits
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_BASE = 58
_ATTEMPTS = 8

_rng = random.Random()


def random_suffix(n: int = 5) -> str:
    return "".join(_rng.choice(NAME_ALPHABET) for _ in range(n))


def generate_name(base: str) -> str:
    """``generateName`` as the API server expands it: base[:58] + 5 random chars."""
    return base[:MAX_GENERATED_BASE] + random_suffix()


def assign_name(kind: Kind, obj: Obj, store: Store) -> str:
    """The name of an object being created: ``metadata.name``, else one generated from
    ``metadata.generateName`` that no stored object has (422 when there is neither)."""
    meta = obj["metadata"]
    if meta.get("name"):
        return str(meta["name"])
    base = meta.get("generateName")
    if not base:
        raise ApiError(
            422, "Invalid",
            f'{kind.qualified_kind} "" is invalid: metadata.name: Required value: name or generateName is required',
            {"kind": kind.kind, "group": kind.gvr.group,
             "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required",
                         "field": "metadata.name"}]},
        )
    ns = str(meta.get("namespace", ""))
    for _ in range(_ATTEMPTS):
        meta["name"] = generate_name(str(base))
        if store.peek(kind.gvr, ns, meta["name"]) is None:
            break
    return str(meta["name"])


_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def validate_name(kind: Kind, obj: Obj, errs: Invalid) -> None:
    name = str(obj["metadata"].get("name", ""))
    if kind.gvr.resource in ("services", "namespaces"):
        pattern, limit, what = (
            (_DNS1035_LABEL, 63, "a DNS-1035 label")
            if kind.gvr.resource == "services"
            else (_DNS1123_LABEL, 63, "a lowercase RFC 1123 label")
        )
    elif kind.gvr.resource in ("clusterroles", "clusterrolebindings", "roles", "rolebindings"):
        return  # RBAC names are path segments, not DNS names
    else:
        pattern, limit, what = _DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain"
    if len(name) > limit or not pattern.fullmatch(name):
        errs.invalid(
            "metadata.name", name,
            f"must be {what} (lowercase alphanumerics and '-', starting and ending with an alphanumeric)",
        )
