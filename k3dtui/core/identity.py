"""The app's identity: every name k3dtui gives the objects it creates, in one frozen value.

The names are those of the workflow k3dtui automates, so each of its commands works
verbatim on a k3dtui cluster (`kubectl get deployment fastapi-app`, `kubectl get
ipaddresspool first-pool -n metallb-system`, ...). Pass an ``AppIdentity`` instead of
writing a name: the manifests are rendered from it, the live view watches it, the actions
are confined to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LegacyNames:
    """Names an earlier k3dtui used; ``up`` finds objects under them and carries them over."""

    deployment: str = "fastapi"
    pool: str = "k3dtui-pool"
    l2advertisement: str = "k3dtui-l2"


@dataclass(frozen=True)
class AppIdentity:
    namespace: str = "default"
    app: str = "fastapi"  # the value of the ``app`` label on the Deployment, its pods and the Service
    deployment: str = "fastapi-app"
    container: str = "fastapi"
    service: str = "fastapi-service"
    service_port: int = 80
    container_port: int = 3000
    image: str = "fastapi-random:latest"
    metallb_namespace: str = "metallb-system"
    pool: str = "first-pool"
    l2advertisement: str = "example"
    min_replicas: int = 0
    max_replicas: int = 50
    legacy: LegacyNames = field(default_factory=LegacyNames)
    # an app k3dtui did not create (``k3dtui attach``): its pods' label selector as the API
    # takes it (from the Deployment's ``spec.selector``, or ``--selector``); "" means ``app=<app>``
    selector: str = ""
    attached: bool = False  # another cluster's app: k3dtui did not create it

    @property
    def label_selector(self) -> str:
        """The selector of the app's pods, as the API takes it (``app=fastapi``)."""
        return self.selector or f"app={self.app}"

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether a pod with ``labels`` is selected by ``label_selector``."""
        return selector_matches(self.label_selector, labels or {})

    @property
    def labels(self) -> dict[str, str]:
        return {"app": self.app}


APP = AppIdentity()


# -- label selectors (the string form the API takes: k8s.io/apimachinery pkg/labels) ---------

_TERM = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[^\s=!,()]+)"
    r"|(?P<key>[^\s=!,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s=!,()]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$"
)


def split_selector(selector: str) -> list[str]:
    """The comma-separated terms of a selector (commas inside ``in (a,b)`` kept)."""
    terms: list[str] = []
    depth = 0
    current = ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def parse_selector(selector: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """``[(key, op, values)]``, op one of ``= != in notin exists !``; ValueError when malformed."""
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for term in split_selector(selector):
        m = _TERM.match(term)
        if m is None:
            raise ValueError(f"{term!r} is not a label selector term (e.g. app=web, tier in (a,b), !canary)")
        if m.group("not"):
            out.append((m.group("nkey"), "!", ()))
        elif m.group("op"):
            op = "!=" if m.group("op") == "!=" else "="
            out.append((m.group("key"), op, (m.group("value"),)))
        elif m.group("set"):
            values = tuple(v.strip() for v in m.group("values").split(",") if v.strip())
            out.append((m.group("key"), m.group("set"), values))
        else:
            out.append((m.group("key"), "exists", ()))
    if not out:
        raise ValueError("the label selector is empty (e.g. app=web)")
    return out


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    try:
        terms = parse_selector(selector)
    except ValueError:
        return False
    for key, op, values in terms:
        have = labels.get(key)
        if op == "=" and have != values[0]:
            return False
        if op == "!=" and have == values[0]:
            return False
        if op == "in" and have not in values:
            return False
        if op == "notin" and have in values:
            return False
        if op == "exists" and have is None:
            return False
        if op == "!" and have is not None:
            return False
    return True


def selector_from_label_selector(spec: Mapping[str, object] | None) -> str:
    """A ``LabelSelector`` object (``matchLabels``, ``matchExpressions``) as a selector string."""
    terms: list[str] = []
    spec = spec or {}
    match_labels = spec.get("matchLabels")
    if isinstance(match_labels, Mapping):
        terms.extend(f"{k}={v}" for k, v in sorted(match_labels.items()))
    exprs = spec.get("matchExpressions")
    for expr in exprs if isinstance(exprs, list) else []:
        if not isinstance(expr, Mapping):
            continue
        key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
        raw = expr.get("values")
        values = ",".join(str(v) for v in raw) if isinstance(raw, list) else ""
        if op == "In":
            terms.append(f"{key} in ({values})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)
