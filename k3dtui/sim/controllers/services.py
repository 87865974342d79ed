"""Services: cluster IPs and node ports when the API left them unset, EndpointSlices and
v1 Endpoints from the pods a Service selects, and garbage collection by ownerReferences."""

from __future__ import annotations

import contextlib
from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, delete_object
from k3dtui.sim.store import ApiError, Event, Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGER = "endpointslice-controller.k8s.io"


class ServiceController(Controller):
    """Fills in what a Service written around the API lacks (``clusterIP``, node ports, the
    other defaults) by the registry's Service rules, and an empty ``status.loadBalancer``."""

    watches = frozenset({gvrs.SERVICES})

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        return [] if event.type == "DELETED" else [(event.namespace, event.name)]

    def start(self) -> None:
        self.enqueue_all(gvrs.SERVICES)

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        svc = self.store.peek(gvrs.SERVICES, ns, name)
        if svc is None:
            return
        spec = svc.get("spec") or {}
        stype = spec.get("type", "ClusterIP")
        need_ip = not spec.get("clusterIP") and stype != "ExternalName"
        need_ports = stype in ("LoadBalancer", "NodePort") and any(
            not p.get("nodePort") for p in spec.get("ports") or []
        )
        need_status = "loadBalancer" not in (svc.get("status") or {})
        if not (need_ip or need_ports or need_status):
            return

        def fn(s: Obj) -> None:
            registry.fill_defaults(self.store, gvrs.SERVICES, s)
            s.setdefault("status", {}).setdefault("loadBalancer", {})

        self.store.mutate(gvrs.SERVICES, ns, name, fn)


def _target_port(svc_port: dict[str, Any], pod: Obj) -> int | None:
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p.get("containerPort", 0))
    return None


class EndpointsController(Controller):
    """One EndpointSlice (``<svc>-xxxxx``) and one v1 Endpoints per selector Service."""

    watches = frozenset({gvrs.SERVICES, gvrs.PODS})

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr == gvrs.SERVICES:
            return [(event.namespace, event.name)]
        labels = util.labels_of(event.obj)
        old_labels = util.labels_of(event.old) if event.old else {}
        out = []
        for svc in self.store.iter(gvrs.SERVICES, event.namespace):
            sel = (svc.get("spec") or {}).get("selector")
            if util.match_labels(sel, labels) or util.match_labels(sel, old_labels):
                out.append((event.namespace, str(svc["metadata"]["name"])))
        return out

    def start(self) -> None:
        self.enqueue_all(gvrs.SERVICES)

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        svc = self.store.peek(gvrs.SERVICES, ns, name)
        slices = [
            s for s in self.store.iter(gvrs.ENDPOINTSLICES, ns)
            if util.labels_of(s).get(SERVICE_NAME_LABEL) == name and util.labels_of(s).get(MANAGED_BY) == MANAGER
        ]
        selector = (svc.get("spec") or {}).get("selector") if svc else None
        if svc is None or not selector:
            self.sizes.pop(key, None)
            for s in slices:
                delete_object(self.store, gvrs.ENDPOINTSLICES, ns, s["metadata"]["name"])
            if svc is None and self.store.peek(gvrs.ENDPOINTS, ns, name) is not None:
                delete_object(self.store, gvrs.ENDPOINTS, ns, name)
            return
        pods = [
            p for p in self.store.iter(gvrs.PODS, ns)
            if util.match_labels(selector, util.labels_of(p))
            and (p.get("status") or {}).get("podIP")
            and util.phase(p) not in ("Succeeded", "Failed")
        ]
        pods.sort(key=lambda p: p["metadata"]["name"])
        self.sizes[key] = len(pods)
        svc_ports = (svc.get("spec") or {}).get("ports") or []
        first = pods[0] if pods else None
        ports = []
        for sp in svc_ports:
            port = _target_port(sp, first) if first is not None else None
            if port is None and isinstance(sp.get("targetPort"), int):
                port = sp["targetPort"]
            entry: dict[str, Any] = {"name": sp.get("name", ""), "protocol": sp.get("protocol", "TCP")}
            if port is not None:
                entry["port"] = port
            ports.append(entry)
        endpoints = []
        ready_addrs: list[dict[str, Any]] = []
        not_ready_addrs: list[dict[str, Any]] = []
        for p in pods:
            terminating = util.is_terminating(p)
            ready = util.is_ready(p) and not terminating
            serving = util.is_ready(p)
            ip = str(p["status"]["podIP"])
            node = (p.get("spec") or {}).get("nodeName")
            target = {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns, "uid": p["metadata"]["uid"]}
            ep: dict[str, Any] = {
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "targetRef": target,
            }
            if node:
                ep["nodeName"] = node
            endpoints.append(ep)
            if not terminating:
                addr: dict[str, Any] = {"ip": ip, "targetRef": dict(target)}
                if node:
                    addr["nodeName"] = node
                (ready_addrs if ready else not_ready_addrs).append(addr)
        if slices:
            keep, extra = slices[0], slices[1:]
            for s in extra:
                delete_object(self.store, gvrs.ENDPOINTSLICES, ns, s["metadata"]["name"])

            def fn(s: Obj) -> None:
                s["endpoints"] = endpoints
                s["ports"] = ports

            self.store.mutate(gvrs.ENDPOINTSLICES, ns, keep["metadata"]["name"], fn)
        else:
            for _ in range(5):
                try:
                    self.store.create(gvrs.ENDPOINTSLICES, {
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {
                            "generateName": f"{name}-",
                            "name": registry.generate_name(f"{name}-"),
                            "namespace": ns,
                            "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY: MANAGER},
                            "ownerReferences": [util.owner_ref(svc)],
                        },
                        "addressType": "IPv4",
                        "endpoints": endpoints,
                        "ports": ports,
                    })
                    break
                except ApiError:
                    continue
        subsets = []
        if ready_addrs or not_ready_addrs:
            subset: dict[str, Any] = {"ports": [
                {k: v for k, v in p.items() if not (k == "name" and not v)} for p in ports if "port" in p
            ]}
            if ready_addrs:
                subset["addresses"] = ready_addrs
            if not_ready_addrs:
                subset["notReadyAddresses"] = not_ready_addrs
            subsets.append(subset)
        existing = self.store.peek(gvrs.ENDPOINTS, ns, name)
        if existing is None:
            obj: Obj = {
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": util.labels_of(svc)},
            }
            if subsets:
                obj["subsets"] = subsets
            with contextlib.suppress(ApiError):
                self.store.create(gvrs.ENDPOINTS, obj)
        else:
            def fn2(e: Obj) -> None:
                if subsets:
                    e["subsets"] = subsets
                else:
                    e.pop("subsets", None)

            self.store.mutate(gvrs.ENDPOINTS, ns, name, fn2)


class GarbageCollector(Controller):
    """Background propagation: when an owner is deleted, its dependents go too."""

    watch_all = frozenset({"*"})

    def keys_for(self, event: Event) -> list[str]:
        if event.type != "DELETED":
            return []
        return [str(event.obj["metadata"].get("uid", ""))]

    def reconcile(self, uid: str) -> None:
        for key in list(self.ctx.children.get(uid, ())):
            obj = self.store.peek(*key)
            if obj is None:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            alive = [
                r for r in refs
                if r.get("uid") != uid and self._exists(r, key[1])
            ]
            if alive:
                continue
            delete_object(self.store, key[0], key[1], key[2])
        self.ctx.children.pop(uid, None)

    def _exists(self, ref: dict[str, Any], namespace: str) -> bool:
        target = str(ref.get("uid"))
        for gvr in self.store.resources():
            for ns in (namespace, ""):
                obj = self.store.peek(gvr, ns, str(ref.get("name")))
                if obj is not None and obj["metadata"].get("uid") == target:
                    return True
        return False
