"""Small helpers the simulated controllers share: selectors, pod predicates, conditions, images.

Names (``generateName``) and every per-kind rule are the registry's (:mod:`k3dtui.sim.registry`)."""

from __future__ import annotations

from typing import Any

from k3dtui.sim.registry.names import NAME_ALPHABET as ALPHABET
from k3dtui.sim.selectors import (
    match_selector as match_selector,  # the controllers use it from here
)
from k3dtui.sim.store import Obj, now_rfc3339, parse_rfc3339


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(ALPHABET[ord(c) % len(ALPHABET)] for c in text)


def now() -> str:
    return now_rfc3339()


def parse_time(text: str | None) -> float:
    """A timestamp as Unix time; 0.0 when absent or malformed."""
    return parse_rfc3339(text) or 0.0


def meta(obj: Obj) -> dict[str, Any]:
    m: dict[str, Any] = obj.setdefault("metadata", {})
    return m


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def match_labels(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """A Service-style selector (a plain map). An empty or absent selector matches nothing."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def owner_ref(owner: Obj, *, controller: bool = True) -> dict[str, Any]:
    m = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": m["name"],
        "uid": m["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def is_terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_active(pod: Obj) -> bool:
    """Counts toward a ReplicaSet: not being deleted and not finished."""
    return not is_terminating(pod) and phase(pod) not in ("Succeeded", "Failed")


def condition(obj: Obj, ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def is_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def set_condition(
    obj: Obj, ctype: str, status: str, reason: str | None = None, message: str | None = None,
    *, probe_time: bool = True,
) -> None:
    conds: list[dict[str, Any]] = obj.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now()
            c["status"] = status
            _set_opt(c, "reason", reason)
            _set_opt(c, "message", message)
            return
    new: dict[str, Any] = {"type": ctype, "status": status}
    if probe_time:
        new["lastProbeTime"] = None
    new["lastTransitionTime"] = now()
    _set_opt(new, "reason", reason)
    _set_opt(new, "message", message)
    conds.append(new)


def _set_opt(d: dict[str, Any], key: str, value: str | None) -> None:
    if value is None:
        d.pop(key, None)
    else:
        d[key] = value


def image_repository(image: str) -> str:
    """``quay.io/metallb/controller:v0.15.2`` → ``quay.io/metallb/controller``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name


def image_basename(image: str) -> str:
    return image_repository(image).rsplit("/", 1)[-1]


def normalize_image(image: str) -> str:
    """The fully qualified reference containerd stores: ``docker.io/library/x:latest``."""
    ref = image.strip()
    name = ref.split("@", 1)[0]
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        ref = "docker.io/" + (ref if "/" in name else "library/" + ref)
    repo = image_repository(ref)
    if "@" not in ref and ref == repo:
        ref += ":latest"
    return ref


def in_registry(image: str) -> bool:
    """Whether a registry would serve the image: only fully qualified names are simulated
    as pullable (an unqualified name, like the app's, exists only where it was imported)."""
    name = image.split("@", 1)[0]
    first = name.split("/", 1)[0]
    return "/" in name and ("." in first or ":" in first or first == "localhost")
