"""Workloads (Deployments, ReplicaSets, StatefulSets, DaemonSets): defaults and validation,
their pod templates defaulted as a pod spec is."""

from __future__ import annotations

from k3dtui.sim.kinds import Kind
from k3dtui.sim.registry.pods import default_pod_spec, validate_pod_spec
from k3dtui.sim.registry.validation import Invalid
from k3dtui.sim.selectors import selector_from_label_selector
from k3dtui.sim.store import Obj


def default_template(obj: Obj) -> None:
    tmpl = (obj.get("spec") or {}).get("template")
    if isinstance(tmpl, dict):
        tmpl.setdefault("metadata", {})
        if isinstance(tmpl.get("spec"), dict):
            default_pod_spec(tmpl["spec"])


def default_deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    default_template(obj)


def validate_workload(kind: Kind, obj: Obj, errs: Invalid) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        errs.required("spec")
        return
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0):
        errs.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.required("spec.selector")
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        errs.required("spec.template")
        return
    if isinstance(selector, dict) and (selector.get("matchLabels") or selector.get("matchExpressions")):
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        if not selector_from_label_selector(selector).matches(labels):
            errs.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    validate_pod_spec(tmpl.get("spec"), errs, "spec.template.spec")


def default_replicated(obj: Obj) -> None:
    """ReplicaSets and StatefulSets."""
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    default_template(obj)


def default_daemonset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if us.get("type") == "RollingUpdate":
        us.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", 1)
        us["rollingUpdate"].setdefault("maxSurge", 0)
    default_template(obj)
