"""Label and field selectors as the API server parses them from query strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from k3dtui.core.identity import split_selector  # the one split of a selector string into its terms
from k3dtui.sim.store import ApiError

Obj = dict[str, Any]

# -- label selectors ------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return has and value == self.values[0]
        if self.op == "!=":
            return not has or value != self.values[0]
        if self.op == "in":
            return has and value in self.values
        if self.op == "notin":
            return not has or value not in self.values
        if self.op == "exists":
            return has
        return not has  # "!"


class LabelSelector:
    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = requirements

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def matches_obj(self, obj: Obj) -> bool:
        return self.matches((obj.get("metadata") or {}).get("labels"))

    @property
    def empty(self) -> bool:
        return not self.requirements


def _check_key(key: str, text: str) -> str:
    if not re.fullmatch(_KEY, key) or len(key) > 316:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if not re.fullmatch(_VALUE, value) or len(value) > 63:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label value {value!r} in {text!r}")
    return value


def parse_label_selector(text: str | None) -> LabelSelector:
    """``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, ``k``, ``!k``; comma = AND."""
    reqs: list[Requirement] = []
    if not text:
        return LabelSelector(reqs)
    for part in split_selector(text):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", part)
        if m:
            key = _check_key(m.group(1), text)
            values = tuple(_check_value(v.strip(), text) for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(key, m.group(2), values))
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append(Requirement(_check_key(m.group(1), text), op, (_check_value(m.group(3), text),)))
            continue
        if part.startswith("!"):
            reqs.append(Requirement(_check_key(part[1:].strip(), text), "!"))
            continue
        reqs.append(Requirement(_check_key(part, text), "exists"))
    return LabelSelector(reqs)


def selector_from_label_selector(sel: Obj | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as a :class:`LabelSelector`."""
    reqs: list[Requirement] = []
    if not sel:
        return LabelSelector(reqs)
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        reqs.append(Requirement(str(k), "=", (str(v),)))
    for expr in sel.get("matchExpressions") or []:
        op = str(expr.get("operator", ""))
        key = str(expr.get("key", ""))
        values = tuple(str(v) for v in expr.get("values") or [])
        mapped = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(op)
        if mapped:
            reqs.append(Requirement(key, mapped, values))
    return LabelSelector(reqs)


def format_label_selector(sel: Obj | None) -> str:
    """As kubectl prints a selector (``app=web,tier in (a,b)``); ``<none>`` when empty."""
    if not sel:
        return "<none>"
    parts: list[str] = []
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        parts.append(f"{k}={v}")
    for expr in sel.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = ",".join(sorted(str(v) for v in expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) if parts else "<none>"


# -- field selectors ------------------------------------------------------------------------

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    ),
    "nodes": ("spec.unschedulable",),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
    "replicasets": ("status.replicas",),
    "jobs": ("status.successful",),
}


def _field_value(obj: Obj, path: str) -> str:
    if path == "source":
        return str(((obj.get("source") or {}).get("component")) or "")
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return "false" if path == "spec.unschedulable" or path == "spec.hostNetwork" else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


FieldMatcher = Callable[[Obj], bool]


def parse_field_selector(text: str | None, resource: str) -> FieldMatcher | None:
    """``f=v``, ``f==v``, ``f!=v`` joined by commas; unsupported fields give a 400."""
    if not text:
        return None
    terms: list[tuple[str, bool, str]] = []
    allowed = _COMMON_FIELDS + _FIELDS.get(resource, ())
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: {text!r}; expected field=value")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {field}")
        terms.append((field, op != "!=", value))

    def matches(obj: Obj) -> bool:
        return all((_field_value(obj, f) == v) == eq for f, eq, v in terms)

    return matches


def match_selector(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions). Empty matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
