"""Bootstrap objects of a fresh k3s cluster: its nodes, namespaces and the kubernetes Service;
and the namespace controller (phase Active, the name label)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import ipaddress
import uuid
from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, NodeSpec
from k3dtui.sim.registry import namespaces
from k3dtui.sim.store import GVR, ApiError, Event, Obj, Store

K3S_VERSION = "v1.31.5+k3s1"
CONTAINERD_VERSION = "containerd://1.7.23-k3s2"
KERNEL_VERSION = "6.8.0-49-generic"
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def subnet_for(name: str) -> ipaddress.IPv4Network:
    """A /16 per cluster name, like Docker hands out bridge networks (172.18-31)."""
    digest = hashlib.sha256(name.encode()).digest()
    return ipaddress.IPv4Network(f"172.{18 + digest[0] % 14}.0.0/16")


def plan_nodes(name: str, servers: int, agents: int) -> tuple[ipaddress.IPv4Network, list[NodeSpec]]:
    net = subnet_for(name)
    hosts = net.network_address
    out: list[NodeSpec] = []
    i = 2  # .1 is the gateway
    for s in range(servers):
        out.append(NodeSpec(f"k3d-{name}-server-{s}", "server", str(hosts + i), len(out)))
        i += 1
    for a in range(agents):
        out.append(NodeSpec(f"k3d-{name}-agent-{a}", "agent", str(hosts + i), len(out)))
        i += 1
    return net, out


def serverlb_ip(net: ipaddress.IPv4Network, count: int) -> str:
    return str(net.network_address + 2 + count)


def node_object(spec: NodeSpec) -> Obj:
    name = spec.name
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if spec.role == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    ts = util.now()
    ident = hashlib.md5(name.encode()).hexdigest()
    cidr = f"10.42.{spec.index}.0/24"
    resources = {
        "cpu": "2",
        "ephemeral-storage": "102625208Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "8029876Ki",
        "pods": "110",
    }

    def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": ctype, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": ts, "lastTransitionTime": ts,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": spec.ip,
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/public-ip": spec.ip,
                "k3s.io/hostname": name,
                "k3s.io/internal-ip": spec.ip,
                "k3s.io/node-args": '["' + spec.role + '"]',
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "finalizers": ["wrangler.cattle.io/node"],
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "providerID": f"k3s://{name}"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": spec.ip},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": dict(resources),
            "capacity": dict(resources),
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": [],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": str(uuid.UUID(ident)),
                "containerRuntimeVersion": CONTAINERD_VERSION,
                "kernelVersion": KERNEL_VERSION,
                "kubeProxyVersion": K3S_VERSION,
                "kubeletVersion": K3S_VERSION,
                "machineID": ident,
                "operatingSystem": "linux",
                "osImage": f"K3s {K3S_VERSION}",
                "systemUUID": str(uuid.UUID(ident[::-1])),
            },
        },
    }


def namespace_object(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def bootstrap(store: Store, nodes: list[NodeSpec]) -> None:
    """Create what a fresh k3s cluster has: namespaces, nodes, the ``kubernetes`` Service."""
    for ns in BOOT_NAMESPACES:
        if store.peek(gvrs.NAMESPACES, "", ns) is None:
            registry.create(store, gvrs.NAMESPACES, namespace_object(ns))
    for spec in nodes:
        if store.peek(gvrs.NODES, "", spec.name) is None:
            registry.create(store, gvrs.NODES, node_object(spec))
    # the two PriorityClasses every cluster has (pkg/apis/scheduling: SystemPriorityClasses)
    for pc_name, value, description in (
        ("system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, "
         "but can be moved to another node if necessary."),
        ("system-node-critical", 2000001000, "Used for system critical pods that must not be moved from "
         "their current node."),
    ):
        if store.peek(gvrs.PRIORITYCLASSES, "", pc_name) is None:
            registry.create(store, gvrs.PRIORITYCLASSES, {
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": pc_name},
                "value": value, "globalDefault": False, "description": description,
                "preemptionPolicy": "PreemptLowerPriority"})
    if store.peek(gvrs.SERVICES, "default", "kubernetes") is None:
        registry.create(store, gvrs.SERVICES, {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1"],
                "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None", "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        })


def root_ca_configmap(namespace: str, ca_pem: str) -> Obj:
    """``kube-root-ca.crt``: the cluster's CA, published in every namespace by the root CA
    publisher (pkg/controller/certificates/rootcacertpublisher/publisher.go)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": namespace,
                         "annotations": {"kubernetes.io/description": (
                             "Contains a CA bundle that can be used to verify the kube-apiserver when "
                             "using internal endpoints such as the internal service IP or "
                             "kubernetes.default.svc. No other usage is guaranteed across distributions "
                             "of Kubernetes clusters.")}},
            "data": {"ca.crt": ca_pem}}


def default_service_account(namespace: str) -> Obj:
    """The ``default`` ServiceAccount the service account controller creates in every
    namespace (pkg/controller/serviceaccount/serviceaccounts_controller.go)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}


def lease_object(node: str, renew: str) -> Obj:
    """A node's heartbeat Lease in kube-node-lease (pkg/kubelet/nodelease: 40 s duration,
    renewed every 10 s)."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION, "renewTime": renew}}


LEASE_DURATION = 40


def set_node_ready(store: Store, name: str, ready: bool) -> None:
    """Fault injection: a node stops (NotReady) or comes back."""

    def fn(node: Obj) -> None:
        status = "True" if ready else "Unknown"
        reason = "KubeletReady" if ready else "NodeStatusUnknown"
        msg = "kubelet is posting ready status" if ready else "Kubelet stopped posting node status."
        for c in node["status"]["conditions"]:
            if c["type"] == "Ready":
                if c["status"] != status:
                    c["lastTransitionTime"] = util.now()
                c.update(status=status, reason=reason, message=msg, lastHeartbeatTime=util.now())
        taints = [t for t in node["spec"].get("taints", []) if t.get("key") != "node.kubernetes.io/unreachable"]
        if not ready:
            taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": util.now()})
        if taints:
            node["spec"]["taints"] = taints
        else:
            node["spec"].pop("taints", None)

    store.mutate(gvrs.NODES, "", name, fn)


def post_ready(store: Store, name: str) -> None:
    """A started kubelet posts its status: every health condition back to its healthy value
    (pkg/kubelet/nodestatus/setters.go)."""
    healthy = {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
    }

    def fn(node: Obj) -> None:
        now = util.now()
        for c in node["status"]["conditions"]:
            want = healthy.get(c.get("type"))
            if want is None:
                continue
            if c.get("status") != want[0]:
                c["lastTransitionTime"] = now
            c.update(status=want[0], reason=want[1], message=want[2], lastHeartbeatTime=now)

    store.mutate(gvrs.NODES, "", name, fn)


def node_is_ready(node: Obj) -> bool:
    c = util.condition(node, "Ready")
    return bool(c and c.get("status") == "True") and not (node.get("spec") or {}).get("unschedulable")


class NamespaceController(Controller):
    """New namespaces become Active; a namespace being deleted (Terminating) has its content
    deleted, then its ``kubernetes`` finalizer removed, then goes
    (pkg/controller/namespace/deletion/namespaced_resources_deleter.go)."""

    watches = frozenset({gvrs.NAMESPACES, gvrs.SERVICEACCOUNTS, gvrs.CONFIGMAPS})
    # how often a Terminating namespace is looked at again while content remains
    retry = 0.05

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr != gvrs.NAMESPACES:
            # the default ServiceAccount or kube-root-ca.crt deleted: the controllers put it back
            if event.type == "DELETED" and event.name in ("default", "kube-root-ca.crt"):
                return [("MODIFIED", event.namespace)]
            return []
        return [(event.type, event.name)]

    def start(self) -> None:
        for ns in list(self.store.iter(gvrs.NAMESPACES)):
            self.enqueue(("MODIFIED", str(ns["metadata"]["name"])))

    def reconcile(self, key: tuple[str, str]) -> None:
        etype, name = key
        if etype == "DELETED":
            return
        current = self.store.peek(gvrs.NAMESPACES, "", name)
        if current is None:
            return
        if util.is_terminating(current):
            self._terminate(name)
            return

        def fn(ns: Obj) -> None:
            registry.fill_defaults(self.store, gvrs.NAMESPACES, ns)
            ns.setdefault("status", {}).setdefault("phase", "Active")

        self.store.mutate(gvrs.NAMESPACES, "", name, fn)
        # what every namespace has: the default ServiceAccount and kube-root-ca.crt
        for gvr, obj in ((gvrs.SERVICEACCOUNTS, default_service_account(name)),
                         (gvrs.CONFIGMAPS, root_ca_configmap(name, self.ctx.ca_pem))):
            existing = self.store.peek(gvr, name, obj["metadata"]["name"])
            if existing is None:
                with contextlib.suppress(ApiError):
                    registry.create(self.store, gvr, obj)
            elif gvr == gvrs.CONFIGMAPS and (existing.get("data") or {}).get("ca.crt") != self.ctx.ca_pem:
                with contextlib.suppress(ApiError):
                    self.store.update(gvr, {**existing, "data": {"ca.crt": self.ctx.ca_pem}})

    def _terminate(self, name: str) -> None:
        def delete(gvr: GVR, ns: str, obj_name: str) -> None:
            registry.delete(self.store, gvr, ns, obj_name, {"propagationPolicy": "Background"})

        left = namespaces.empty(self.store, name, delete)
        remaining = namespaces.empty(self.store, name, lambda *_: None) if left else 0

        def conditions(ns: Obj) -> None:
            now = util.now()
            st = ns.setdefault("status", {})
            st["phase"] = "Terminating"
            # the five conditions the namespace controller reports while it deletes
            wanted = [
                ("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered", "All resources successfully discovered"),
                ("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
                ("NamespaceDeletionContentFailure", "False", "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
                ("NamespaceContentRemaining", "True" if remaining else "False",
                 "SomeResourcesRemain" if remaining else "ContentRemoved",
                 f"Some resources are remaining: {remaining} objects" if remaining else "All content successfully removed"),
                ("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
            ]
            old = {c.get("type"): c for c in st.get("conditions") or []}
            conds = []
            for ctype, status, reason, message in wanted:
                prev = old.get(ctype) or {}
                conds.append({"type": ctype, "status": status, "reason": reason, "message": message,
                              "lastTransitionTime": prev.get("lastTransitionTime", now)
                              if prev.get("status") == status else now})
            st["conditions"] = conds

        self.store.mutate(gvrs.NAMESPACES, "", name, conditions)
        if remaining:
            self.enqueue(("MODIFIED", name), self.retry)
            return

        def finalize(ns: Obj) -> None:
            spec = ns.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
            if not spec["finalizers"]:
                del spec["finalizers"]

        self.store.mutate(gvrs.NAMESPACES, "", name, finalize)
        with contextlib.suppress(ApiError):
            registry.delete(self.store, gvrs.NAMESPACES, "", name)


class NodeLeases(Controller):
    """Each node's kubelet renews its Lease in kube-node-lease every
    ``settings.lease_renew_interval`` seconds while the node is up (a stopped node's Lease
    goes stale, as the node lifecycle controller sees it)."""

    watches: frozenset[GVR] = frozenset()

    def start(self) -> None:
        self.renew()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._loop())

    def stop(self) -> None:
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.01, self.ctx.settings.lease_renew_interval))
            self.renew()

    def renew(self) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for spec in self.ctx.nodes:
            node = self.store.peek(gvrs.NODES, "", spec.name)
            if node is None or spec.name in self.ctx.stopped:
                continue
            ready = util.condition(node, "Ready") or {}
            if ready.get("status") != "True":
                continue
            lease = self.store.peek(gvrs.LEASES, "kube-node-lease", spec.name)
            if lease is None:
                with contextlib.suppress(ApiError):
                    obj = lease_object(spec.name, now)
                    obj["metadata"]["ownerReferences"] = [{
                        "apiVersion": "v1", "kind": "Node", "name": spec.name,
                        "uid": node["metadata"].get("uid", "")}]
                    registry.create(self.store, gvrs.LEASES, obj)
                continue

            def fn(obj: Obj, now: str = now) -> None:
                obj.setdefault("spec", {})["renewTime"] = now

            self.store.mutate(gvrs.LEASES, "kube-node-lease", spec.name, fn)
