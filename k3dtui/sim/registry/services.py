"""Services: defaults, cluster IPs from 10.43.0.0/16, node ports from 30000-32767, and
what a Service may not be (422)."""

from __future__ import annotations

import ipaddress
import random

from k3dtui.sim import gvrs
from k3dtui.sim.registry.validation import Invalid
from k3dtui.sim.store import ApiError, Obj, Store

SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")
NODE_PORT_RANGE = (30000, 32767)

_rng = random.Random()


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
