"""MetalLB: the controller's IP allocation, the speaker's layer-2 announcement, and the
validating webhook (pool validation and its start-up race).

The controller is "running" when a pod of image ``quay.io/metallb/controller`` is Ready.
Then, when an IPAddressPool advertised by an L2Advertisement exists, each LoadBalancer
Service gets the lowest free address of the first eligible pool in one status update
(with the ``metallb.io/ip-allocated-from-pool`` annotation), and a ServiceL2Status names
the node announcing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx
from k3dtui.sim.controllers.nodes import node_is_ready
from k3dtui.sim.store import GVR, ApiError, Event, Obj

WEBHOOK_CONFIGS = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
CONTROLLER_IMAGE = "quay.io/metallb/controller"
SPEAKER_IMAGE = "quay.io/metallb/speaker"
NAMESPACE = "metallb-system"
POOL_WEBHOOK = "ipaddresspoolvalidationwebhook.metallb.io"
L2_WEBHOOK = "l2advertisementvalidationwebhook.metallb.io"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_addresses(entry: str) -> tuple[IPAddress, IPAddress]:
    """A pool entry (CIDR or ``a-b`` range) → first and last address; ValueError as MetalLB words it."""
    text = entry.strip()
    if "-" not in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"invalid CIDR {entry!r}".replace("'", '"')) from None
        if "/" not in text:
            raise ValueError(f'invalid CIDR "{entry}"')
        return net.network_address, net.broadcast_address
    first, _, last = text.partition("-")
    try:
        start = ipaddress.ip_address(first.strip())
    except ValueError:
        raise ValueError(f'invalid IP range "{entry}": invalid start IP "{first}"') from None
    try:
        end = ipaddress.ip_address(last.strip())
    except ValueError:
        raise ValueError(f'invalid IP range "{entry}": invalid end IP "{last}"') from None
    if start.version != end.version:
        raise ValueError(f'invalid IP range "{entry}": IP version mismatch')
    if int(start) > int(end):
        raise ValueError(f'invalid IP range "{entry}": start IP "{start}" is after the end IP "{end}"')
    return start, end


def pool_ranges(pool: Obj) -> list[tuple[IPAddress, IPAddress]]:
    out = []
    for entry in (pool.get("spec") or {}).get("addresses") or []:
        try:
            out.append(parse_addresses(str(entry)))
        except ValueError:
            continue
    return out


def iter_pool(pool: Obj) -> Iterator[str]:
    avoid_buggy = bool((pool.get("spec") or {}).get("avoidBuggyIPs"))
    for start, end in pool_ranges(pool):
        for n in range(int(start), int(end) + 1):
            ip = ipaddress.ip_address(n)
            if avoid_buggy and ip.version == 4 and ip.packed[-1] in (0, 255):
                continue
            yield str(ip)


class MetalLB(Controller):
    watches = frozenset({
        gvrs.SERVICES, gvrs.PODS, gvrs.IPADDRESSPOOLS, gvrs.L2ADVERTISEMENTS, gvrs.NODES, WEBHOOK_CONFIGS,
        gvrs.ENDPOINTSLICES,
    })

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self.ready_since: float | None = None

    # -- state -------------------------------------------------------------------
    @staticmethod
    def _is_controller(pod: Obj | None) -> bool:
        return pod is not None and any(util.image_repository(str(c.get("image", ""))) == CONTROLLER_IMAGE
                                       for c in (pod.get("spec") or {}).get("containers") or [])

    def _controller_pods(self) -> list[Obj]:
        return [p for p in self.store.iter(gvrs.PODS) if self._is_controller(p)]

    def controller_ready(self) -> bool:
        return any(util.is_ready(p) and not util.is_terminating(p) for p in self._controller_pods())

    def webhook_installed(self) -> bool:
        for cfg in self.store.iter(WEBHOOK_CONFIGS):
            for hook in cfg.get("webhooks") or []:
                if str(hook.get("name", "")).endswith(".metallb.io"):
                    return True
        return False

    def on_event(self, event: Event) -> None:
        if event.gvr == gvrs.PODS:
            # only a controller pod's change can change the controller's readiness (walking
            # every pod for every pod event made a large scale quadratic)
            if self._is_controller(event.obj) or self._is_controller(event.old):
                ready = self.controller_ready()
                if ready and self.ready_since is None:
                    self.ready_since = time.monotonic()
                    self.enqueue("all", self.ctx.settings.metallb_delay)
                elif not ready:
                    self.ready_since = None
            # pod events matter only to the announcing node (ready endpoints move)
            if event.obj.get("metadata", {}).get("namespace") != NAMESPACE:
                return
        self.enqueue("all", self.ctx.settings.metallb_delay + self.ctx.settings.api_delay)

    def start(self) -> None:
        if self.controller_ready():
            self.ready_since = time.monotonic() - 3600
        self.enqueue("all")

    # -- the webhook -----------------------------------------------------------------
    def _webhook_unavailable(self, hook: str, path: str) -> ApiError | None:
        if not self.webhook_installed():
            return None
        url = f'Post "https://metallb-webhook-service.metallb-system.svc:443/{path}?timeout=10s"'
        if not self.controller_ready() or self.ready_since is None:
            return ApiError(
                500, "InternalError",
                f'Internal error occurred: failed calling webhook "{hook}": failed to call webhook: {url}: '
                'no endpoints available for service "metallb-webhook-service"',
            )
        if time.monotonic() - self.ready_since < self.ctx.settings.webhook_race:
            svc = self.store.peek(gvrs.SERVICES, NAMESPACE, "metallb-webhook-service")
            ip = ((svc or {}).get("spec") or {}).get("clusterIP") or "10.43.0.10"
            return ApiError(
                500, "InternalError",
                f'Internal error occurred: failed calling webhook "{hook}": failed to call webhook: {url}: '
                f"dial tcp {ip}:443: connect: connection refused",
            )
        return None

    def admit_pool(self, operation: str, new: Obj, old: Obj | None) -> None:
        if operation not in ("CREATE", "UPDATE"):
            return
        err = self._webhook_unavailable(POOL_WEBHOOK, "validate-metallb-io-v1beta1-ipaddresspool")
        if err is not None:
            raise err
        name = str(new.get("metadata", {}).get("name", ""))
        ns = str(new.get("metadata", {}).get("namespace", ""))
        addresses = (new.get("spec") or {}).get("addresses")

        def deny(message: str) -> ApiError:
            return ApiError(403, "Forbidden", f'admission webhook "{POOL_WEBHOOK}" denied the request: {message}')

        if not isinstance(addresses, list) or not addresses:
            raise deny(f'pool "{name}" has no addresses')
        mine: list[tuple[str, IPAddress, IPAddress]] = []
        for entry in addresses:
            try:
                start, end = parse_addresses(str(entry))
            except ValueError as exc:
                raise deny(f'invalid CIDR "{entry}" in pool "{name}": {exc}') from None
            for other_entry, s2, e2 in mine:
                if s2.version == start.version and int(start) <= int(e2) and int(s2) <= int(end):
                    raise deny(f'CIDR "{entry}" in pool "{name}" overlaps with already defined CIDR "{other_entry}"')
            mine.append((str(entry), start, end))
        for other in self.store.iter(gvrs.IPADDRESSPOOLS):
            om = other["metadata"]
            if om.get("name") == name and om.get("namespace") == ns:
                continue
            for other_entry in (other.get("spec") or {}).get("addresses") or []:
                try:
                    s2, e2 = parse_addresses(str(other_entry))
                except ValueError:
                    continue
                for entry, start, end in mine:
                    if s2.version == start.version and int(start) <= int(e2) and int(s2) <= int(end):
                        raise deny(
                            f'CIDR "{entry}" in pool "{name}" overlaps with already defined CIDR "{other_entry}"'
                        )

    def admit_l2(self, operation: str, new: Obj, old: Obj | None) -> None:
        if operation not in ("CREATE", "UPDATE"):
            return
        err = self._webhook_unavailable(L2_WEBHOOK, "validate-metallb-io-v1beta1-l2advertisement")
        if err is not None:
            raise err

    # -- allocation --------------------------------------------------------------------
    def _eligible_pools(self) -> list[Obj]:
        pools = [p for p in self.store.iter(gvrs.IPADDRESSPOOLS)]
        ads = list(self.store.iter(gvrs.L2ADVERTISEMENTS))
        out = []
        for pool in pools:
            pname = pool["metadata"]["name"]
            plabels = util.labels_of(pool)
            for ad in ads:
                spec = ad.get("spec") or {}
                names = spec.get("ipAddressPools") or []
                sels = spec.get("ipAddressPoolSelectors") or []
                if (not names and not sels) or pname in names or any(util.match_selector(s, plabels) for s in sels):
                    out.append(pool)
                    break
        out.sort(key=lambda p: (
            -int(((p.get("spec") or {}).get("serviceAllocation") or {}).get("priority", 0) or 0),
            p["metadata"]["name"],
        ))
        return out

    def reconcile(self, key: str) -> None:
        services = [s for s in self.store.iter(gvrs.SERVICES)]
        lb_services = [s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"]
        ready = self.controller_ready()
        pools = self._eligible_pools() if ready else []
        all_pools = {p["metadata"]["name"]: p for p in self.store.iter(gvrs.IPADDRESSPOOLS)}
        used: set[str] = set()
        for s in lb_services:
            for ing in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                if ing.get("ip"):
                    used.add(str(ing["ip"]))
        # services that left LoadBalancer keep no address
        for s in services:
            m = s["metadata"]
            if (s.get("spec") or {}).get("type") != "LoadBalancer" and POOL_ANNOTATION in (m.get("annotations") or {}):
                self.store.mutate(gvrs.SERVICES, m["namespace"], m["name"], _clear_allocation)
        if not ready:
            self._sync_l2(lb_services)
            return
        for s in sorted(lb_services, key=lambda o: o["metadata"].get("creationTimestamp", "")):
            m = s["metadata"]
            ingress = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            current = str(ingress[0].get("ip", "")) if ingress else ""
            pool_name = (m.get("annotations") or {}).get(POOL_ANNOTATION)
            if current:
                pool = all_pools.get(str(pool_name or ""))
                if pool is not None and current in set(iter_pool(pool)):
                    continue
                if (pool_name and pool is None) or pool is not None:
                    # its pool was deleted or shrunk: release and re-allocate
                    used.discard(current)
                    self.store.mutate(gvrs.SERVICES, m["namespace"], m["name"], _clear_allocation)
                else:
                    continue
            ip, chosen = self._choose(s, pools, used)
            if ip is None or chosen is None:
                continue
            used.add(ip)
            chosen_name = chosen["metadata"]["name"]

            def assign(obj: Obj, ip: str = ip, chosen_name: str = chosen_name) -> None:
                obj["metadata"].setdefault("annotations", {})[POOL_ANNOTATION] = chosen_name
                obj.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}

            updated = self.store.mutate(gvrs.SERVICES, m["namespace"], m["name"], assign)
            if updated is not None:
                self.ctx.record(updated, "IPAllocated", f'Assigned IP ["{ip}"]', component="metallb-controller")
        self._pool_status(list(all_pools.values()))
        self._sync_l2([s for s in self.store.iter(gvrs.SERVICES) if (s.get("spec") or {}).get("type") == "LoadBalancer"])

    def _choose(self, svc: Obj, pools: list[Obj], used: set[str]) -> tuple[str | None, Obj | None]:
        m = svc["metadata"]
        ann = m.get("annotations") or {}
        wanted_pool = ann.get("metallb.io/address-pool") or ann.get("metallb.universe.tf/address-pool")
        wanted_ips = [
            x.strip()
            for x in str(ann.get("metallb.io/loadBalancerIPs") or (svc.get("spec") or {}).get("loadBalancerIP") or "").split(",")
            if x.strip()
        ]
        for pool in pools:
            spec = pool.get("spec") or {}
            pname = pool["metadata"]["name"]
            if wanted_pool and pname != wanted_pool:
                continue
            if not wanted_pool and spec.get("autoAssign") is False:
                continue
            alloc = spec.get("serviceAllocation") or {}
            namespaces = alloc.get("namespaces") or []
            if namespaces and m.get("namespace") not in namespaces:
                continue
            addresses = list(iter_pool(pool))
            if wanted_ips:
                for ip in wanted_ips:
                    if ip in addresses and ip not in used:
                        return ip, pool
                continue
            for ip in addresses:
                if ip not in used:
                    return ip, pool
        return None, None

    def _pool_status(self, pools: list[Obj]) -> None:
        assigned: dict[str, int] = {}
        for s in self.store.iter(gvrs.SERVICES):
            pname = (s["metadata"].get("annotations") or {}).get(POOL_ANNOTATION)
            if pname and ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                assigned[pname] = assigned.get(pname, 0) + 1
        for pool in pools:
            total = sum(1 for _ in iter_pool(pool))
            n = assigned.get(pool["metadata"]["name"], 0)

            def fn(p: Obj, n: int = n, total: int = total) -> None:
                p["status"] = {
                    "assignedIPv4": n, "assignedIPv6": 0,
                    "availableIPv4": max(0, total - n), "availableIPv6": 0,
                }

            with contextlib.suppress(ApiError):
                self.store.mutate(gvrs.IPADDRESSPOOLS, pool["metadata"]["namespace"], pool["metadata"]["name"], fn)

    # -- the speaker ------------------------------------------------------------------
    def _speaker_nodes(self) -> list[str]:
        nodes = [
            n["metadata"]["name"] for n in self.store.iter(gvrs.NODES)
            if node_is_ready(n) and "node.kubernetes.io/exclude-from-external-load-balancers" not in util.labels_of(n)
        ]
        speakers = {
            str((p.get("spec") or {}).get("nodeName"))
            for p in self.store.iter(gvrs.PODS, NAMESPACE)
            if util.is_ready(p) and any(
                util.image_repository(str(c.get("image", ""))) == SPEAKER_IMAGE
                for c in (p.get("spec") or {}).get("containers") or []
            )
        }
        return [n for n in nodes if n in speakers]

    def _endpoint_nodes(self, svc: Obj) -> set[str]:
        name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
        out: set[str] = set()
        for es in self.store.iter(gvrs.ENDPOINTSLICES, ns):
            if util.labels_of(es).get("kubernetes.io/service-name") != name:
                continue
            for ep in es.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") and ep.get("nodeName"):
                    out.add(str(ep["nodeName"]))
        return out

    def _sync_l2(self, lb_services: list[Obj]) -> None:
        speakers = self._speaker_nodes()
        wanted: dict[tuple[str, str], str] = {}
        for s in lb_services:
            ingress = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            nodes = speakers
            if (s.get("spec") or {}).get("externalTrafficPolicy") == "Local":
                # only nodes with a ready endpoint announce a Local service
                local = self._endpoint_nodes(s)
                nodes = [n for n in speakers if n in local]
            if not ingress or not nodes:
                continue
            ip = str(ingress[0].get("ip", ""))
            # MetalLB L2's election (metallb/metallb speaker/layer2_controller.go, ShouldAnnounce;
            # metallb.universe.tf concepts/layer2): every speaker sorts the eligible nodes by
            # sha256(nodeName + "#" + serviceIP) and the first one announces; under Local only
            # nodes with a ready endpoint are eligible. Recomputed on every node, speaker and
            # EndpointSlice change, so the announcement moves when its node stops qualifying.
            node = min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())
            wanted[(s["metadata"]["namespace"], s["metadata"]["name"])] = node
        existing: dict[tuple[str, str], Obj] = {}
        for st in list(self.store.iter(gvrs.SERVICEL2STATUSES, NAMESPACE)):
            labels = util.labels_of(st)
            k = (labels.get("metallb.io/service-namespace", ""), labels.get("metallb.io/service-name", ""))
            if k in wanted and k not in existing and (st.get("status") or {}).get("node") == wanted[k]:
                existing[k] = st
            else:
                with contextlib.suppress(ApiError):
                    self.store.delete(gvrs.SERVICEL2STATUSES, NAMESPACE, st["metadata"]["name"])
        for (ns, name), node in wanted.items():
            if (ns, name) in existing:
                continue
            svc = self.store.peek(gvrs.SERVICES, ns, name)
            if svc is None:
                continue
            obj: Obj = {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "ServiceL2Status",
                "metadata": {
                    "generateName": "l2-",
                    "name": registry.generate_name("l2-"),
                    "namespace": NAMESPACE,
                    "labels": {
                        "metallb.io/node": node,
                        "metallb.io/service-name": name,
                        "metallb.io/service-namespace": ns,
                    },
                },
                "spec": {},
                "status": {
                    "node": node,
                    "serviceName": name,
                    "serviceNamespace": ns,
                    "interfaces": [{"name": "eth0"}],
                },
            }
            try:
                self.store.create(gvrs.SERVICEL2STATUSES, obj)
            except ApiError:
                continue
            self.ctx.record(svc, "nodeAssigned", f'announcing from node "{node}" with protocol "layer2"',
                            component="metallb-speaker", host=node)


def _clear_allocation(obj: Obj) -> None:
    (obj["metadata"].get("annotations") or {}).pop(POOL_ANNOTATION, None)
    if not obj["metadata"].get("annotations"):
        obj["metadata"].pop("annotations", None)
    obj.setdefault("status", {})["loadBalancer"] = {}


def admission_hooks(ctrl: MetalLB) -> dict[GVR, Any]:
    return {gvrs.IPADDRESSPOOLS: ctrl.admit_pool, gvrs.L2ADVERTISEMENTS: ctrl.admit_l2}
