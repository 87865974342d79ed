"""Pods: spec defaults (in a Pod or a template), QoS class, validation, binding and the
graceful delete.

One implementation for every writer: a pod POSTed by a client and one a ReplicaSet or
DaemonSet controller creates get the same defaults; a pod deleted through the API and one a
controller deletes follow the same rule.
"""

from __future__ import annotations

import time
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.registry.names import random_suffix
from k3dtui.sim.registry.validation import Invalid
from k3dtui.sim.store import Obj, Store, now_rfc3339, parse_rfc3339, rfc3339


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


def qos_class(spec: Obj) -> str:
    """BestEffort (no requests or limits), Guaranteed (cpu and memory limits, requests equal), else Burstable."""
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
    """A Pod's defaults; a create also gets its service account, tolerations and a Pending status."""
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
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def mount_service_account_token(pod: Obj, automount: bool = True) -> None:
    """What the ServiceAccount admission plugin adds to a pod on create
    (plugin/pkg/admission/serviceaccount/admission.go, mountServiceAccountToken): a projected
    ``kube-api-access-<5 random>`` volume (a bound token, kube-root-ca.crt's ``ca.crt``, the
    namespace) mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
    container, unless the pod or its ServiceAccount (``automount``) opts out or a container
    already mounts something there."""
    spec = pod.setdefault("spec", {})
    if spec.get("automountServiceAccountToken") is False:
        return
    if spec.get("automountServiceAccountToken") is None and not automount:
        return
    volumes = spec.get("volumes") or []
    if any(isinstance(v, dict) and str(v.get("name", "")).startswith("kube-api-access-") for v in volumes):
        return
    name = "kube-api-access-" + random_suffix(5)
    volumes.append({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                            "path": "namespace"}]}},
            ],
        },
    })
    spec["volumes"] = volumes
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts") or []
            if any(isinstance(m, dict) and m.get("mountPath") == SERVICE_ACCOUNT_MOUNT for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT})
            c["volumeMounts"] = mounts


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


# -- binding ------------------------------------------------------------------------------


def bind(pod: Obj, node: str) -> None:
    """Assign ``pod`` to ``node`` (a Binding, or the scheduler's choice): ``spec.nodeName``
    and a ``PodScheduled=True`` condition."""
    pod.setdefault("spec", {})["nodeName"] = node
    conds = pod.setdefault("status", {}).setdefault("conditions", [])
    conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
    conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()})


# -- delete -------------------------------------------------------------------------------


def grace_period(pod: Obj, requested: Any = None) -> int:
    """The grace period of a delete: the request's ``gracePeriodSeconds`` when it is a
    non-negative integer, else the pod's ``terminationGracePeriodSeconds`` (30)."""
    if isinstance(requested, int) and not isinstance(requested, bool) and requested >= 0:
        return requested
    return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30) or 0)


def delete_pod(store: Store, pod: Obj, requested_grace: Any = None) -> Obj:
    """A pod DELETE, as kube-apiserver's graceful delete does it
    (staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go ``BeforeDelete`` and
    pkg/registry/core/pod/strategy.go ``CheckGracefulDelete``): the pod always gets a
    ``deletionTimestamp`` = now + grace and ``deletionGracePeriodSeconds`` first (watchers
    see MODIFIED); an unscheduled or finished pod, or a forced delete, has grace 0 and is
    then removed at once (DELETED) unless it has finalizers, which keep it until they are
    removed. Otherwise the kubelet stops the containers and removes it; a later delete only
    ever shortens the deadline. ``pod`` is a copy of the stored pod; returns its new (or
    last) state."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ns, name = str(meta.get("namespace", "")), str(meta["name"])
    grace = grace_period(pod, requested_grace)
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        grace = 0
    deadline = time.time() + grace
    if meta.get("deletionTimestamp"):
        current = parse_rfc3339(str(meta["deletionTimestamp"]))
        if meta.get("deletionGracePeriodSeconds") == 0 or (current is not None and deadline >= current and grace):
            return pod
    meta["deletionTimestamp"] = rfc3339(deadline)
    meta["deletionGracePeriodSeconds"] = grace
    stored = store.update(gvrs.PODS, pod, bump_generation=True)
    if grace == 0 and not meta.get("finalizers") and store.peek(gvrs.PODS, ns, name) is not None:
        return store.delete(gvrs.PODS, ns, name)
    return stored
