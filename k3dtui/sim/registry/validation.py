"""Validation every kind shares: the 422 ``Invalid`` Status built from field errors, the
metadata checks, and ``fieldValidation`` (unknown fields refused, warned about or ignored)."""

from __future__ import annotations

from typing import Any

from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import ApiError, Obj


class Invalid:
    """Collects field errors for one object; ``raise_if_any`` turns them into a 422."""

    def __init__(self, kind: Kind, name: str) -> None:
        self.kind = kind
        self.name = name
        self.causes: list[tuple[str, str, str]] = []  # (reason, field, message)

    def add(self, field: str, message: str, reason: str = "FieldValueInvalid") -> None:
        self.causes.append((reason, field, message))

    def required(self, field: str) -> None:
        self.add(field, f"{field}: Required value", "FieldValueRequired")

    def invalid(self, field: str, value: Any, why: str) -> None:
        self.add(field, f"{field}: Invalid value: {_fmt(value)}: {why}")

    def raise_if_any(self) -> None:
        if not self.causes:
            return
        details = "; ".join(m for _, _, m in self.causes)
        msg = f'{self.kind.qualified_kind} "{self.name}" is invalid: '
        msg += f"[{details}]" if len(self.causes) > 1 else details
        raise ApiError(
            422,
            "Invalid",
            msg,
            {
                "name": self.name,
                "group": self.kind.gvr.group,
                "kind": self.kind.kind,
                "causes": [
                    {"reason": r, "message": m.split(": ", 1)[1] if ": " in m else m, "field": f}
                    for r, f, m in self.causes
                ],
            },
        )


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def validate_metadata(obj: Obj, errs: Invalid) -> None:
    """Labels and annotations are maps of strings."""
    meta = obj["metadata"]
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            errs.invalid(f"metadata.{field}", value, "values must be strings")


# -- strict field validation ---------------------------------------------------------------

_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
})
_SPEC_STATUS = frozenset({"spec", "status"})
# Top-level fields per built-in kind (apiVersion, kind and metadata are always allowed).
_TOP_FIELDS: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"data", "binaryData", "immutable"}),
    "Secret": frozenset({"data", "stringData", "type", "immutable"}),
    "ServiceAccount": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "Endpoints": frozenset({"subsets"}),
    "EndpointSlice": frozenset({"addressType", "endpoints", "ports"}),
    "Event": frozenset({
        "action", "count", "eventTime", "firstTimestamp", "involvedObject", "lastTimestamp", "message",
        "reason", "related", "reportingComponent", "reportingInstance", "series", "source", "type",
    }),
    "Role": frozenset({"rules"}),
    "ClusterRole": frozenset({"rules", "aggregationRule"}),
    "RoleBinding": frozenset({"roleRef", "subjects"}),
    "ClusterRoleBinding": frozenset({"roleRef", "subjects"}),
    "ValidatingWebhookConfiguration": frozenset({"webhooks"}),
    "MutatingWebhookConfiguration": frozenset({"webhooks"}),
    "ControllerRevision": frozenset({"data", "revision"}),
    "PriorityClass": frozenset({"value", "globalDefault", "description", "preemptionPolicy"}),
    "StorageClass": frozenset({
        "provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion",
        "volumeBindingMode", "allowedTopologies",
    }),
}
_SPEC_FIELDS: dict[str, frozenset[str]] = {
    "Deployment": frozenset({
        "replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit",
        "paused", "progressDeadlineSeconds",
    }),
    "ReplicaSet": frozenset({"replicas", "minReadySeconds", "selector", "template"}),
    "DaemonSet": frozenset({"selector", "template", "updateStrategy", "minReadySeconds", "revisionHistoryLimit"}),
    "Service": frozenset({
        "ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity",
        "loadBalancerIP", "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
        "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
        "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy",
        "trafficDistribution",
    }),
}
_POD_SPEC_FIELDS = frozenset({
    "volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
    "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
    "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName", "hostNetwork",
    "hostPID", "hostIPC", "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname",
    "subdomain", "affinity", "schedulerName", "tolerations", "hostAliases", "priorityClassName",
    "priority", "dnsConfig", "readinessGates", "runtimeClassName", "enableServiceLinks",
    "preemptionPolicy", "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os",
    "hostUsers", "schedulingGates", "resourceClaims", "resources",
})
_CONTAINER_FIELDS = frozenset({
    "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
    "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe", "readinessProbe",
    "startupProbe", "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
    "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
})


def _unknown(obj: Any, allowed: frozenset[str], prefix: str) -> list[str]:
    if not isinstance(obj, dict):
        return []
    return [f"{prefix}{k}" for k in obj if k not in allowed and not str(k).startswith("$")]


def unknown_fields(kind: Kind, obj: Obj) -> list[str]:
    """Fields a strict decoder would not know (checked where k3dtui knows the schema)."""
    if kind.custom:
        return []
    out: list[str] = []
    top = {"apiVersion", "kind", "metadata"} | _TOP_FIELDS.get(kind.kind, _SPEC_STATUS)
    out += _unknown(obj, frozenset(top), "")
    out += _unknown(obj.get("metadata"), _META_FIELDS, "metadata.")
    spec = obj.get("spec")
    if kind.kind in _SPEC_FIELDS:
        out += _unknown(spec, _SPEC_FIELDS[kind.kind], "spec.")
    pod_spec, prefix = None, ""
    if kind.kind == "Pod":
        pod_spec, prefix = spec, "spec."
    elif kind.kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job") and isinstance(spec, dict):
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            out += _unknown(tmpl, frozenset({"metadata", "spec"}), "spec.template.")
            pod_spec, prefix = tmpl.get("spec"), "spec.template.spec."
    if isinstance(pod_spec, dict):
        out += _unknown(pod_spec, _POD_SPEC_FIELDS, prefix)
        for field in ("containers", "initContainers"):
            for i, c in enumerate(pod_spec.get(field) or []):
                out += _unknown(c, _CONTAINER_FIELDS, f"{prefix}{field}[{i}].")
    return out


def check_strict(kind: Kind, obj: Obj, mode: str | None) -> list[str]:
    """``fieldValidation``: ``Strict`` refuses unknown fields (400); otherwise they are returned
    as warnings (``Warn``, the default) or ignored (``Ignore``)."""
    if mode == "Ignore":
        return []
    unknown = unknown_fields(kind, obj)
    if unknown and mode == "Strict":
        version = kind.gvr.version
        detail = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise ApiError(
            400, "BadRequest",
            f'{kind.kind} in version "{version}" cannot be handled as a {kind.kind}: strict decoding error: {detail}',
        )
    return [f'unknown field "{u}"' for u in unknown]
