"""API defaults and validation, applied to every object written through the API.

What a real API server fills in (pod spec defaults, Service cluster IPs and node ports,
Deployment strategy ...) and what it refuses with ``422 Invalid``.
"""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.kinds import Kind
from k3dtui.sim.selectors import selector_from_label_selector
from k3dtui.sim.store import ApiError, Store

Obj = dict[str, Any]

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_BASE = 58
SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")
NODE_PORT_RANGE = (30000, 32767)

_rng = random.Random()


def generate_name(base: str) -> str:
    """``generateName`` as the API server expands it: base[:58] + 5 random chars."""
    return base[:MAX_GENERATED_BASE] + "".join(_rng.choice(NAME_ALPHABET) for _ in range(5))


# -- errors -------------------------------------------------------------------------------


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


# -- pods ---------------------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(c: Obj) -> None:
    if isinstance(c.get("image"), str):
        c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            http = probe.get("httpGet")
            if isinstance(http, dict):
                http.setdefault("path", "/")
                http.setdefault("scheme", "HTTP")


def default_pod_spec(spec: Obj) -> None:
    """Defaults a pod spec gets, in a Pod or in a template."""
    for field in ("containers", "initContainers"):
        for c in spec.get(field) or []:
            if isinstance(c, dict):
                _default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and isinstance(v.get("configMap"), dict):
            v["configMap"].setdefault("defaultMode", 420)
        if isinstance(v, dict) and isinstance(v.get("secret"), dict):
            v["secret"].setdefault("defaultMode", 420)


def _qos_class(spec: Obj) -> str:
    requests_any = False
    guaranteed = True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim[r]) != lim[r]:
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod(pod: Obj, *, creating: bool) -> None:
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    if creating:
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = sa
        spec["serviceAccount"] = sa
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        keys = {t.get("key") for t in tolerations if isinstance(t, dict)}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if key not in keys:
                tolerations.append(
                    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                )
        # containers that carry resource limits but no requests get requests = limits
        for c in spec.get("containers") or []:
            res = c.get("resources") or {}
            if res.get("limits") and not res.get("requests"):
                res["requests"] = dict(res["limits"])
        pod["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


def validate_pod_spec(spec: Any, errs: Invalid, prefix: str) -> None:
    if not isinstance(spec, dict):
        errs.required(prefix)
        return
    containers = spec.get("containers")
    if not containers:
        errs.required(f"{prefix}.containers")
        return
    if not isinstance(containers, list):
        errs.invalid(f"{prefix}.containers", "", "must be a list")
        return
    seen: set[str] = set()
    for i, c in enumerate(containers):
        field = f"{prefix}.containers[{i}]"
        if not isinstance(c, dict):
            errs.invalid(field, "", "must be an object")
            continue
        name = c.get("name")
        if not name:
            errs.required(f"{field}.name")
        elif name in seen:
            errs.add(f"{field}.name", f'{field}.name: Duplicate value: "{name}"', "FieldValueDuplicate")
        else:
            seen.add(str(name))
        if not c.get("image"):
            errs.required(f"{field}.image")
        for j, p in enumerate(c.get("ports") or []):
            port = p.get("containerPort") if isinstance(p, dict) else None
            if not isinstance(port, int) or not 0 < port < 65536:
                errs.invalid(f"{field}.ports[{j}].containerPort", port, "must be between 1 and 65535, inclusive")
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        errs.invalid(f"{prefix}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")


# -- workloads ----------------------------------------------------------------------------


def _default_template(obj: Obj) -> None:
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
    _default_template(obj)


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


# -- services -----------------------------------------------------------------------------


def _used_cluster_ips(store: Store) -> set[str]:
    out: set[str] = set()
    for svc in store.iter(gvrs.SERVICES):
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                out.add(str(ip))
    return out


def _used_node_ports(store: Store, skip: tuple[str, str] | None) -> set[int]:
    out: set[int] = set()
    for svc in store.iter(gvrs.SERVICES):
        meta = svc["metadata"]
        if skip and (meta.get("namespace"), meta.get("name")) == skip:
            continue
        for p in (svc.get("spec") or {}).get("ports") or []:
            if isinstance(p.get("nodePort"), int):
                out.add(p["nodePort"])
    return out


def allocate_cluster_ip(store: Store) -> str:
    used = _used_cluster_ips(store)
    hosts = SERVICE_CIDR.num_addresses - 2
    for _ in range(200):
        candidate = str(SERVICE_CIDR.network_address + _rng.randint(10, hosts))
        if candidate not in used:
            return candidate
    for addr in SERVICE_CIDR.hosts():
        if str(addr) not in used:
            return str(addr)
    raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full")


def default_service(obj: Obj, store: Store, old: Obj | None, errs: Invalid) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    svc_type = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if svc_type != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
        if old_spec.get("clusterIP") and spec.get("clusterIP") != old_spec["clusterIP"]:
            errs.invalid("spec.clusterIPs[0]", spec.get("clusterIP"), "may not change once set")
        if not spec.get("clusterIP"):
            ip = allocate_cluster_ip(store)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        elif spec["clusterIP"] != "None":
            ip = str(spec["clusterIP"])
            try:
                parsed = ipaddress.ip_address(ip)
            except ValueError:
                errs.invalid("spec.clusterIPs[0]", ip, "must be a valid IP address")
            else:
                if old is None and parsed not in SERVICE_CIDR:
                    errs.invalid("spec.clusterIPs[0]", ip, "failed to allocate IP: the provided IP is not in the valid range (10.43.0.0/16)")
                elif old is None and ip in _used_cluster_ips(store):
                    errs.invalid("spec.clusterIPs[0]", ip, "failed to allocate IP: provided IP is already allocated")
            spec.setdefault("clusterIPs", [ip])
        else:
            spec.setdefault("clusterIPs", ["None"])
    node_ports = svc_type in ("NodePort", "LoadBalancer")
    if node_ports:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    meta = obj["metadata"]
    used = _used_node_ports(store, (str(meta.get("namespace", "")), str(meta.get("name", ""))))
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or [] if isinstance(p, dict)}
    ports = spec.get("ports")
    if ports is None and svc_type != "ExternalName" and spec.get("clusterIP") != "None":
        errs.required("spec.ports")
        ports = []
    for i, p in enumerate(ports or []):
        if not isinstance(p, dict):
            errs.invalid(f"spec.ports[{i}]", "", "must be an object")
            continue
        p.setdefault("protocol", "TCP")
        port = p.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            if port is None:
                errs.required(f"spec.ports[{i}].port")
            else:
                errs.invalid(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive")
            continue
        p.setdefault("targetPort", port)
        if len(ports) > 1 and not p.get("name"):
            errs.required(f"spec.ports[{i}].name")
        if (node_ports and spec.get("allocateLoadBalancerNodePorts", True) is not False) or svc_type == "NodePort":
            if not p.get("nodePort"):
                prev = old_ports.get((port, p["protocol"]))
                if prev and prev.get("nodePort"):
                    p["nodePort"] = prev["nodePort"]
                else:
                    p["nodePort"] = _allocate_node_port(used)
            np = p["nodePort"]
            if not isinstance(np, int) or not NODE_PORT_RANGE[0] <= np <= NODE_PORT_RANGE[1]:
                errs.invalid(f"spec.ports[{i}].nodePort", np, "provided port is not in the valid range. The range of valid ports is 30000-32767")
            elif np in used:
                errs.invalid(f"spec.ports[{i}].nodePort", np, "provided port is already allocated")
            used.add(np)
        elif not node_ports:
            p.pop("nodePort", None)


def _allocate_node_port(used: set[int]) -> int:
    lo, hi = NODE_PORT_RANGE
    for _ in range(500):
        candidate = _rng.randint(lo, hi)
        if candidate not in used:
            return candidate
    for candidate in range(lo, hi + 1):
        if candidate not in used:
            return candidate
    raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a nodePort: range is full")


# -- entry points -------------------------------------------------------------------------


def apply_defaults(kind: Kind, obj: Obj, store: Store, *, old: Obj | None = None) -> None:
    """Fill in what the API server defaults and refuse what it refuses (``ApiError`` 422).

    ``old`` is the stored object for an update (``None`` for a create).
    """
    creating = old is None
    meta = obj["metadata"]
    errs = Invalid(kind, str(meta.get("name", "")))
    if creating:
        validate_name(kind, obj, errs)
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            errs.invalid(f"metadata.{field}", value, "values must be strings")
    res = kind.gvr.resource
    group = kind.gvr.group
    if kind.custom:
        pass
    elif group == "" and res == "pods":
        default_pod(obj, creating=creating)
        validate_pod_spec(obj.get("spec"), errs, "spec")
    elif group == "apps" and res == "deployments":
        default_deployment(obj)
        validate_workload(kind, obj, errs)
    elif group == "apps" and res in ("replicasets", "statefulsets"):
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        _default_template(obj)
        validate_workload(kind, obj, errs)
    elif group == "apps" and res == "daemonsets":
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type") == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", 1)
            us["rollingUpdate"].setdefault("maxSurge", 0)
        _default_template(obj)
        validate_workload(kind, obj, errs)
    elif group == "" and res == "services":
        default_service(obj, store, old, errs)
    elif group == "" and res == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        if creating:
            obj["status"] = {"phase": "Active"}
    elif group == "" and res == "secrets":
        obj.setdefault("type", "Opaque")
    errs.raise_if_any()


def reset_status_on_create(kind: Kind, obj: Obj) -> None:
    """What a create keeps of ``status`` (the status subresource owns it)."""
    if "status" not in kind.subresources or kind.gvr.resource in ("nodes", "pods", "namespaces"):
        return
    if kind.gvr.resource == "services":
        obj["status"] = {"loadBalancer": {}}
    elif kind.custom:
        obj.pop("status", None)
    elif kind.gvr.group == "apps" and kind.gvr.resource in ("replicasets", "statefulsets"):
        obj["status"] = {"replicas": 0}  # required by the typed clients
    elif kind.gvr.group == "apps" and kind.gvr.resource == "daemonsets":
        obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                         "desiredNumberScheduled": 0, "numberReady": 0}
    elif kind.gvr.group in ("apps", "batch"):
        obj["status"] = {}


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
