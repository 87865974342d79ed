"""What a fresh k3s 1.31 cluster runs in kube-system, as k3d creates it for k3dtui: CoreDNS,
the local-path provisioner, metrics-server and Traefik, each a Deployment (the controllers
make their ReplicaSets and pods) with its Service. ServiceLB stays off (k3dtui creates the
cluster with ``--disable=servicelb``, MetalLB answers LoadBalancer Services), so Traefik's
LoadBalancer Service takes the MetalLB pool's first address once the pool exists: the app's
Service gets the second, as on a real k3d cluster.

The shapes follow k3s's packaged manifests (manifests/coredns.yaml, local-storage.yaml,
metrics-server/*.yaml in the k3s repository, and the Traefik chart k3s installs).
"""

from __future__ import annotations

from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.store import GVR, Obj, Store

SYSTEM = "kube-system"
STORAGECLASSES = GVR("storage.k8s.io", "v1", "storageclasses")
COREDNS_IP = "10.43.0.10"

_CRITICAL_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
]


def _deployment(name: str, labels: dict[str, str], image: str, ports: list[dict[str, Any]],
                *, service_account: str, args: list[str] | None = None,
                pod_labels: dict[str, str] | None = None) -> Obj:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if args:
        container["args"] = args
    if ports:
        container["ports"] = ports
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": SYSTEM, "labels": dict(labels),
                     "annotations": {"objectset.rio.cattle.io/id": ""}},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 0 if name != "traefik" else 10,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(pod_labels or labels)},
                "spec": {
                    "containers": [container],
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": service_account,
                    "tolerations": list(_CRITICAL_TOLERATIONS),
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
            },
        },
    }


def _service(name: str, selector: dict[str, str], ports: list[dict[str, Any]], *, labels: dict[str, str],
             svc_type: str = "ClusterIP", cluster_ip: str | None = None) -> Obj:
    spec: dict[str, Any] = {"type": svc_type, "selector": dict(selector), "ports": ports}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": SYSTEM, "labels": dict(labels)}, "spec": spec}


def _service_account(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": SYSTEM}}


_COREFILE = """.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import /etc/coredns/custom/*.override
}
import /etc/coredns/custom/*.server
"""

_LOCAL_PATH_CONFIG = """{
  "nodePathMap":[
  {
    "node":"DEFAULT_PATH_FOR_NON_LISTED_NODES",
    "paths":["/var/lib/rancher/k3s/storage"]
  }
  ]
}"""


def _configmap(name: str, data: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": SYSTEM}, "data": data}


def addon_objects() -> list[tuple[Any, Obj]]:
    """(GVR, object) pairs, in the order k3s's deploy controller applies them."""
    dns = {"k8s-app": "kube-dns"}
    lpp = {"app": "local-path-provisioner"}
    ms = {"k8s-app": "metrics-server"}
    traefik = {"app.kubernetes.io/instance": "traefik-kube-system", "app.kubernetes.io/name": "traefik"}
    return [
        (gvrs.CONFIGMAPS, _configmap("coredns", {"Corefile": _COREFILE, "NodeHosts": ""})),
        (gvrs.SERVICEACCOUNTS, _service_account("coredns")),
        (gvrs.DEPLOYMENTS, _deployment(
            "coredns", dns, "rancher/mirrored-coredns-coredns:1.12.0",
            [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
             {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
             {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
            service_account="coredns", args=["-conf", "/etc/coredns/Corefile"])),
        (gvrs.SERVICES, _service(
            "kube-dns", dns,
            [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
             {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
            labels={**dns, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            cluster_ip=COREDNS_IP)),
        (gvrs.CONFIGMAPS, _configmap("local-path-config", {"config.json": _LOCAL_PATH_CONFIG})),
        (STORAGECLASSES, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "local-path",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}),
        (gvrs.SERVICEACCOUNTS, _service_account("local-path-provisioner-service-account")),
        (gvrs.DEPLOYMENTS, _deployment(
            "local-path-provisioner", lpp, "rancher/local-path-provisioner:v0.0.30", [],
            service_account="local-path-provisioner-service-account",
            args=["start", "--config", "/etc/config/config.json"])),
        (gvrs.SERVICEACCOUNTS, _service_account("metrics-server")),
        (gvrs.DEPLOYMENTS, _deployment(
            "metrics-server", ms, "rancher/mirrored-metrics-server:v0.7.2",
            [{"containerPort": 10250, "name": "https", "protocol": "TCP"}],
            service_account="metrics-server",
            args=["--cert-dir=/tmp", "--secure-port=10250", "--kubelet-preferred-address-types=InternalIP",
                  "--kubelet-use-node-status-port", "--metric-resolution=15s"])),
        (gvrs.SERVICES, _service(
            "metrics-server", ms, [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}],
            labels={**ms, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "Metrics-server"})),
        (gvrs.SERVICEACCOUNTS, _service_account("traefik")),
        (gvrs.DEPLOYMENTS, _deployment(
            "traefik", traefik, "rancher/mirrored-library-traefik:2.11.18",
            [{"containerPort": 9100, "name": "metrics", "protocol": "TCP"},
             {"containerPort": 9000, "name": "traefik", "protocol": "TCP"},
             {"containerPort": 8000, "name": "web", "protocol": "TCP"},
             {"containerPort": 8443, "name": "websecure", "protocol": "TCP"}],
            service_account="traefik",
            args=["--entryPoints.web.address=:8000/tcp", "--entryPoints.websecure.address=:8443/tcp",
                  "--api.dashboard=true", "--ping=true", "--providers.kubernetescrd",
                  "--providers.kubernetesingress"])),
        (gvrs.SERVICES, _service(
            "traefik", traefik,
            [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "web"},
             {"name": "websecure", "port": 443, "protocol": "TCP", "targetPort": "websecure"}],
            labels={**traefik, "helm.sh/chart": "traefik-27.0.201_up27.0.2"}, svc_type="LoadBalancer")),
    ]


def _crd(group: str, kind: str, plural: str, *, namespaced: bool = True, version: str = "v1",
         short: tuple[str, ...] = (), status: bool = False) -> Obj:
    """A CRD as k3s installs it, with a schema that keeps every field (the simulated cluster
    stores these objects; nothing acts on them)."""
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                             "singular": kind.lower()}
    if short:
        names["shortNames"] = list(short)
    ver: dict[str, Any] = {
        "name": version, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if status:
        ver["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "names": names, "scope": "Namespaced" if namespaced else "Cluster",
                 "versions": [ver]},
    }


def k3s_crds() -> list[Obj]:
    """The CRDs a k3s 1.31 server has: its own (k3s pkg/crd: Addon, ETCDSnapshotFile), the helm
    controller's (HelmChart, HelmChartConfig) and those of the Traefik chart it installs
    (traefik 2.11: traefik.io, and the deprecated traefik.containo.us group)."""
    crds = [
        _crd("k3s.cattle.io", "Addon", "addons"),
        _crd("k3s.cattle.io", "ETCDSnapshotFile", "etcdsnapshotfiles", namespaced=False, status=True),
        _crd("helm.cattle.io", "HelmChart", "helmcharts", status=True),
        _crd("helm.cattle.io", "HelmChartConfig", "helmchartconfigs"),
    ]
    traefik = [("IngressRoute", "ingressroutes"), ("IngressRouteTCP", "ingressroutetcps"),
               ("IngressRouteUDP", "ingressrouteudps"), ("Middleware", "middlewares"),
               ("MiddlewareTCP", "middlewaretcps"), ("ServersTransport", "serverstransports"),
               ("TLSOption", "tlsoptions"), ("TLSStore", "tlsstores"),
               ("TraefikService", "traefikservices")]
    for group in ("traefik.io", "traefik.containo.us"):
        crds += [_crd(group, kind, plural, version="v1alpha1") for kind, plural in traefik]
    crds.append(_crd("traefik.io", "ServersTransportTCP", "serverstransporttcps", version="v1alpha1"))
    return crds


def install(store: Store) -> None:
    """Create the add-ons that are not there yet (a restart keeps what exists)."""
    for crd in k3s_crds():
        if store.peek(gvrs.CRDS, "", crd["metadata"]["name"]) is None:
            registry.create(store, gvrs.CRDS, crd)
    for gvr, obj in addon_objects():
        meta = obj["metadata"]
        if store.peek(gvr, str(meta.get("namespace", "")), meta["name"]) is None:
            registry.create(store, gvr, obj)
