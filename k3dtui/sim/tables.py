"""``meta.k8s.io/v1 Table`` output, with the columns kubectl prints per kind.

Wide (priority 1) cells are always emitted; kubectl hides them unless ``-o wide``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from k3dtui.sim.kinds import Kind, PrinterColumn
from k3dtui.sim.selectors import format_label_selector

Obj = dict[str, Any]
Column = tuple[str, str, int, str]  # name, type, priority, format
RowFn = Callable[[Obj, dt.datetime], list[Any]]


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None


def human_duration(seconds: float) -> str:
    """As kubectl prints an age: ``45s``, ``3m10s``, ``25m``, ``5h3m``, ``3d``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        d = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if d == 0 else f"{hours // 24 // 365}y{d}d"
    return f"{hours // 24 // 365}y"


def age(text: str | None, now: dt.datetime) -> str:
    t = parse_time(text)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _age(obj: Obj, now: dt.datetime) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


# -- pods -----------------------------------------------------------------------------------


def pod_status(pod: Obj) -> tuple[str, int, int, str]:
    """(status reason, ready containers, total containers, restarts) as kubectl computes them."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    total = len(spec.get("containers") or [])
    ready = 0
    restarts = 0
    last_restart: dt.datetime | None = None
    reason = str(status.get("reason") or status.get("phase") or "")
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, c in enumerate(init_statuses):
        restarts += int(c.get("restartCount") or 0)
        state = c.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
            initializing = True
        elif waiting and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
            initializing = True
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
            initializing = True
        break
    conditions = status.get("conditions") or []
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions)
    if not initializing or initialized:
        restarts = 0
        has_running = False
        for c in reversed(status.get("containerStatuses") or []):
            restarts += int(c.get("restartCount") or 0)
            last_term = (c.get("lastState") or {}).get("terminated")
            if last_term:
                t = parse_time(last_term.get("finishedAt"))
                if t and (last_restart is None or t > last_restart):
                    last_restart = t
            state = c.get("state") or {}
            waiting, term, running = state.get("waiting"), state.get("terminated"), state.get("running")
            if waiting and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif term and term.get("reason"):
                reason = str(term["reason"])
            elif term:
                sig = term.get("signal")
                reason = f"Signal:{sig}" if sig else f"ExitCode:{term.get('exitCode', 0)}"
            elif c.get("ready") and running is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            has_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            reason = "Running" if has_ready else "NotReady"
    phase = status.get("phase")
    deleting = _meta(pod).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((dt.datetime.now(dt.UTC) - last_restart).total_seconds())} ago)"
    return reason, ready, total, restarts_text


def _pod_row(pod: Obj, now: dt.datetime) -> list[Any]:
    reason, ready, total, restarts = pod_status(pod)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true_count = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_text = f"{true_count}/{len(gates)}"
    return [
        _meta(pod).get("name", ""), f"{ready}/{total}", reason, restarts, _age(pod, now),
        ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_text,
    ]


# -- nodes ----------------------------------------------------------------------------------


def node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.split("/", 1)[1]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) if roles else "<none>"


def node_status(node: Obj) -> str:
    parts: list[str] = []
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            parts.append("Ready" if c.get("status") == "True" else "NotReady")
    if not parts:
        parts.append("Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_row(node: Obj, now: dt.datetime) -> list[Any]:
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    addrs = status.get("addresses") or []
    internal = next((a.get("address") for a in addrs if a.get("type") == "InternalIP"), None)
    external = next((a.get("address") for a in addrs if a.get("type") == "ExternalIP"), None)
    return [
        _meta(node).get("name", ""), node_status(node), node_roles(node), _age(node, now),
        info.get("kubeletVersion", ""), internal or "<none>", external or "<none>",
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


# -- workloads ------------------------------------------------------------------------------


def _containers(obj: Obj) -> tuple[str, str]:
    tmpl = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    cs = tmpl.get("containers") or []
    return ",".join(str(c.get("name", "")) for c in cs), ",".join(str(c.get("image", "")) for c in cs)


def _deployment_row(d: Obj, now: dt.datetime) -> list[Any]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    names, images = _containers(d)
    return [
        _meta(d).get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0)), _age(d, now),
        names, images, format_label_selector(spec.get("selector")),
    ]


def _job_row(job: Obj, now: dt.datetime) -> list[Any]:
    """pkg/printers/internalversion/printers.go printJob (1.31: with STATUS)."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in true:
        state = "Complete"
    elif "Failed" in true:
        state = "Failed"
    elif _meta(job).get("deletionTimestamp"):
        state = "Terminating"
    elif "Suspended" in true:
        state = "Suspended"
    elif "FailureTarget" in true:
        state = "FailureTarget"
    elif "SuccessCriteriaMet" in true:
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    succeeded = int(status.get("succeeded", 0))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started, finished = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = ""
    if started is not None:
        duration = human_duration(((finished or now) - started).total_seconds())
    names, images = _containers(job)
    return [_meta(job).get("name", ""), state, completions, duration, _age(job, now), names, images,
            format_label_selector(spec.get("selector"))]


def _replicaset_row(rs: Obj, now: dt.datetime) -> list[Any]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    names, images = _containers(rs)
    return [
        _meta(rs).get("name", ""), int(spec.get("replicas", 0)), int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)), _age(rs, now), names, images,
        format_label_selector(spec.get("selector")),
    ]


def _daemonset_row(ds: Obj, now: dt.datetime) -> list[Any]:
    spec, status = ds.get("spec") or {}, ds.get("status") or {}
    names, images = _containers(ds)
    node_sel = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [
        _meta(ds).get("name", ""), int(status.get("desiredNumberScheduled", 0)),
        int(status.get("currentNumberScheduled", 0)), int(status.get("numberReady", 0)),
        int(status.get("updatedNumberScheduled", 0)), int(status.get("numberAvailable", 0)),
        ",".join(f"{k}={v}" for k, v in sorted(node_sel.items())) or "<none>", _age(ds, now),
        names, images, format_label_selector(spec.get("selector")),
    ]


def _statefulset_row(s: Obj, now: dt.datetime) -> list[Any]:
    spec, status = s.get("spec") or {}, s.get("status") or {}
    names, images = _containers(s)
    return [
        _meta(s).get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(s, now), names, images,
    ]


# -- services and endpoints -----------------------------------------------------------------


def service_external_ip(svc: Obj, wide: bool = True) -> str:
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    svc_type = spec.get("type", "ClusterIP")
    external_ips = list(spec.get("externalIPs") or [])
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        lb = ",".join(str(i.get("ip") or i.get("hostname") or "") for i in ingress if i.get("ip") or i.get("hostname"))
        if not wide and len(lb) > 16:
            lb = lb[:13] + "..."
        if external_ips:
            return ",".join(([*lb.split(",")] if lb else []) + external_ips)
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def service_ports(svc: Obj) -> str:
    parts: list[str] = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            parts.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            parts.append(f"{p.get('port')}/{proto}")
    return ",".join(parts) if parts else "<none>"


def _service_row(svc: Obj, now: dt.datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    sel = spec.get("selector") or {}
    return [
        _meta(svc).get("name", ""), spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
        service_external_ip(svc, wide=True), service_ports(svc), _age(svc, now),
        ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>",
    ]


def _format_endpoints(addrs: list[str], more: int = 0) -> str:
    if not addrs:
        return "<none>"
    shown = addrs[:3]
    text = ",".join(shown)
    extra = len(addrs) - len(shown) + more
    return f"{text} + {extra} more..." if extra > 0 else text


def _endpoints_row(ep: Obj, now: dt.datetime) -> list[Any]:
    addrs: list[str] = []
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for a in subset.get("addresses") or []:
            for p in ports:
                addrs.append(f"{a.get('ip')}:{p['port']}" if p.get("port") else str(a.get("ip")))
    return [_meta(ep).get("name", ""), _format_endpoints(addrs), _age(ep, now)]


def _endpointslice_row(es: Obj, now: dt.datetime) -> list[Any]:
    ports = es.get("ports") or []
    ports_text = ",".join(str(p.get("port")) for p in ports if p.get("port") is not None) or "<unset>"
    addrs = [str(a) for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_meta(es).get("name", ""), es.get("addressType", ""), ports_text, _format_endpoints(addrs), _age(es, now)]


# -- misc -------------------------------------------------------------------------------------


def _namespace_row(ns: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(ns).get("name", ""), (ns.get("status") or {}).get("phase", ""), _age(ns, now)]


def _event_row(ev: Obj, now: dt.datetime) -> list[Any]:
    last = ev.get("lastTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp")
    first = ev.get("firstTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp")
    inv = ev.get("involvedObject") or {}
    obj = f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"
    src = ev.get("source") or {}
    source = ", ".join(x for x in (src.get("component"), src.get("host")) if x) or ev.get("reportingComponent", "")
    return [
        age(last, now), ev.get("type", ""), ev.get("reason", ""), obj, ev.get("message", ""),
        inv.get("fieldPath", ""), source, int(ev.get("count") or 1), age(first, now),
        _meta(ev).get("name", ""),
    ]


def _configmap_row(cm: Obj, now: dt.datetime) -> list[Any]:
    n = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_meta(cm).get("name", ""), n, _age(cm, now)]


def _secret_row(s: Obj, now: dt.datetime) -> list[Any]:
    n = len(s.get("data") or {}) + len(s.get("stringData") or {})
    return [_meta(s).get("name", ""), s.get("type", "Opaque"), n, _age(s, now)]


def _sa_row(sa: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(sa).get("name", ""), len(sa.get("secrets") or []), _age(sa, now)]


def _crd_row(crd: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(crd).get("name", ""), _meta(crd).get("creationTimestamp", "")]


def _storageclass_row(sc: Obj, now: dt.datetime) -> list[Any]:
    """pkg/printers/internalversion/printers.go printStorageClass: ``(default)`` after the
    name of the default class."""
    name = str(_meta(sc).get("name", ""))
    if (_meta(sc).get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, sc.get("provisioner", ""), sc.get("reclaimPolicy", "Delete"),
            sc.get("volumeBindingMode", "Immediate"), bool(sc.get("allowVolumeExpansion", False)), _age(sc, now)]


def _lease_row(lease: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(lease).get("name", ""), (lease.get("spec") or {}).get("holderIdentity", ""), _age(lease, now)]


def _pdb_row(pdb: Obj, now: dt.datetime) -> list[Any]:
    """pkg/printers/internalversion/printers.go, printPodDisruptionBudget."""
    spec = pdb.get("spec") or {}

    def shown(key: str) -> str:
        return "N/A" if spec.get(key) is None else str(spec[key])

    return [_meta(pdb).get("name", ""), shown("minAvailable"), shown("maxUnavailable"),
            int((pdb.get("status") or {}).get("disruptionsAllowed", 0)), _age(pdb, now)]


def _priorityclass_row(pc: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(pc).get("name", ""), pc.get("value", 0), bool(pc.get("globalDefault", False)), _age(pc, now),
            pc.get("preemptionPolicy", "PreemptLowerPriority")]


def _default_row(obj: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(obj).get("name", ""), _meta(obj).get("creationTimestamp", "")]


S, INT = "string", "integer"
_NAME: Column = ("Name", S, 0, "name")

_TABLES: dict[tuple[str, str], tuple[list[Column], RowFn]] = {
    ("", "pods"): (
        [_NAME, ("Ready", S, 0, ""), ("Status", S, 0, ""), ("Restarts", S, 0, ""), ("Age", S, 0, ""),
         ("IP", S, 1, ""), ("Node", S, 1, ""), ("Nominated Node", S, 1, ""), ("Readiness Gates", S, 1, "")],
        _pod_row,
    ),
    ("", "nodes"): (
        [_NAME, ("Status", S, 0, ""), ("Roles", S, 0, ""), ("Age", S, 0, ""), ("Version", S, 0, ""),
         ("Internal-IP", S, 1, ""), ("External-IP", S, 1, ""), ("OS-Image", S, 1, ""),
         ("Kernel-Version", S, 1, ""), ("Container-Runtime", S, 1, "")],
        _node_row,
    ),
    ("apps", "deployments"): (
        [_NAME, ("Ready", S, 0, ""), ("Up-to-date", INT, 0, ""), ("Available", INT, 0, ""), ("Age", S, 0, ""),
         ("Containers", S, 1, ""), ("Images", S, 1, ""), ("Selector", S, 1, "")],
        _deployment_row,
    ),
    ("apps", "replicasets"): (
        [_NAME, ("Desired", INT, 0, ""), ("Current", INT, 0, ""), ("Ready", INT, 0, ""), ("Age", S, 0, ""),
         ("Containers", S, 1, ""), ("Images", S, 1, ""), ("Selector", S, 1, "")],
        _replicaset_row,
    ),
    ("apps", "daemonsets"): (
        [_NAME, ("Desired", INT, 0, ""), ("Current", INT, 0, ""), ("Ready", INT, 0, ""), ("Up-to-date", INT, 0, ""),
         ("Available", INT, 0, ""), ("Node Selector", S, 0, ""), ("Age", S, 0, ""),
         ("Containers", S, 1, ""), ("Images", S, 1, ""), ("Selector", S, 1, "")],
        _daemonset_row,
    ),
    ("batch", "jobs"): (
        [_NAME, ("Status", S, 0, ""), ("Completions", S, 0, ""), ("Duration", S, 0, ""), ("Age", S, 0, ""),
         ("Containers", S, 1, ""), ("Images", S, 1, ""), ("Selector", S, 1, "")],
        _job_row,
    ),
    ("apps", "statefulsets"): (
        [_NAME, ("Ready", S, 0, ""), ("Age", S, 0, ""), ("Containers", S, 1, ""), ("Images", S, 1, "")],
        _statefulset_row,
    ),
    ("", "services"): (
        [_NAME, ("Type", S, 0, ""), ("Cluster-IP", S, 0, ""), ("External-IP", S, 0, ""),
         ("Port(s)", S, 0, ""), ("Age", S, 0, ""), ("Selector", S, 1, "")],
        _service_row,
    ),
    ("", "endpoints"): ([_NAME, ("Endpoints", S, 0, ""), ("Age", S, 0, "")], _endpoints_row),
    ("discovery.k8s.io", "endpointslices"): (
        [_NAME, ("AddressType", S, 0, ""), ("Ports", S, 0, ""), ("Endpoints", S, 0, ""), ("Age", S, 0, "")],
        _endpointslice_row,
    ),
    ("", "namespaces"): ([_NAME, ("Status", S, 0, ""), ("Age", S, 0, "")], _namespace_row),
    ("", "events"): (
        [("Last Seen", S, 0, ""), ("Type", S, 0, ""), ("Reason", S, 0, ""), ("Object", S, 0, ""),
         ("Message", S, 0, ""), ("Subobject", S, 1, ""), ("Source", S, 1, ""), ("Count", INT, 1, ""),
         ("First Seen", S, 1, ""), ("Name", S, 1, "name")],
        _event_row,
    ),
    ("", "configmaps"): ([_NAME, ("Data", INT, 0, ""), ("Age", S, 0, "")], _configmap_row),
    ("", "secrets"): ([_NAME, ("Type", S, 0, ""), ("Data", INT, 0, ""), ("Age", S, 0, "")], _secret_row),
    ("", "serviceaccounts"): ([_NAME, ("Secrets", INT, 0, ""), ("Age", S, 0, "")], _sa_row),
    ("storage.k8s.io", "storageclasses"): (
        [_NAME, ("Provisioner", S, 0, ""), ("ReclaimPolicy", S, 0, ""), ("VolumeBindingMode", S, 0, ""),
         ("AllowVolumeExpansion", S, 0, ""), ("Age", S, 0, "")],
        _storageclass_row,
    ),
    ("coordination.k8s.io", "leases"): ([_NAME, ("Holder", S, 0, ""), ("Age", S, 0, "")], _lease_row),
    ("policy", "poddisruptionbudgets"): (
        [_NAME, ("Min Available", S, 0, ""), ("Max Unavailable", S, 0, ""), ("Allowed Disruptions", INT, 0, ""),
         ("Age", S, 0, "")],
        _pdb_row,
    ),
    ("scheduling.k8s.io", "priorityclasses"): (
        [_NAME, ("Value", INT, 0, ""), ("Global-Default", "boolean", 0, ""), ("Age", S, 0, ""),
         ("PreemptionPolicy", S, 0, "")],
        _priorityclass_row,
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_NAME, ("Created At", "date", 0, "")], _crd_row,
    ),
}


def _apiservice_row(obj: Obj, now: dt.datetime) -> list[Any]:
    """kube-aggregator's printer: the Service (``Local`` when none) and Available with its reason."""
    svc = (obj.get("spec") or {}).get("service")
    service = f"{svc.get('namespace')}/{svc.get('name')}" if isinstance(svc, dict) else "Local"
    cond: Obj = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), {})
    available = str(cond.get("status", "Unknown"))
    if available != "True" and cond.get("reason"):
        available += f" ({cond['reason']})"
    return [obj["metadata"]["name"], service, available, _age(obj, now)]


_TABLES[("apiregistration.k8s.io", "apiservices")] = (
    [_NAME, ("Service", S, 0, ""), ("Available", S, 0, ""), ("Age", S, 0, "")], _apiservice_row)
_DEFAULT: tuple[list[Column], RowFn] = ([_NAME, ("Created At", "date", 0, "")], _default_row)


def jsonpath_value(obj: Obj, path: str) -> Any:
    """The value at a simple CRD printer-column path like ``.spec.addresses``."""
    cur: Any = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def _custom_table(kind: Kind) -> tuple[list[Column], RowFn]:
    cols: tuple[PrinterColumn, ...] = kind.columns or (
        PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    )
    columns: list[Column] = [_NAME] + [(c.name, c.type, c.priority, c.format) for c in cols]

    def row(obj: Obj, now: dt.datetime) -> list[Any]:
        cells: list[Any] = [_meta(obj).get("name", "")]
        for c in cols:
            value = jsonpath_value(obj, c.json_path)
            if c.type == "date":
                cells.append(age(value if isinstance(value, str) else None, now))
            elif value is None:
                cells.append(None)
            elif isinstance(value, list):
                cells.append(str(value).replace("'", '"'))
            elif isinstance(value, bool):
                cells.append(value)
            else:
                cells.append(value)
        return cells

    return columns, row


def _table_for(kind: Kind) -> tuple[list[Column], RowFn]:
    if kind.custom:
        return _custom_table(kind)
    return _TABLES.get((kind.gvr.group, kind.gvr.resource), _DEFAULT)


def row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def to_table(
    kind: Kind,
    objects: list[Obj],
    *,
    resource_version: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> Obj:
    columns, row_fn = _table_for(kind)
    now = dt.datetime.now(dt.UTC)
    rows: list[Obj] = []
    for obj in objects:
        row: Obj = {"cells": row_fn(obj, now)}
        ro = row_object(obj, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    out: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": "", "priority": p} for n, t, p, f in columns
        ] if with_columns else [],
        "rows": rows,
    }
    return out
