"""What a fresh k3s cluster has, seen with kubectl 1.33 (issue 13, point 5): kube-system's
add-ons, the default ServiceAccount and kube-root-ca.crt in every namespace, the
kube-api-access volume on pods, node Leases; Traefik at the pool's first address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3dtui.sim.settings import SimSettings
from tests.sim.kubectl133 import Cluster, needs_kubectl, start_cluster, wait_for
from tests.simfixtures import SimHandle, install_app

pytestmark = [pytest.mark.kubectl, needs_kubectl]
ADDONS = {"coredns", "local-path-provisioner", "metrics-server", "traefik"}


@pytest.fixture
def k(tmp_path: Path) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path, SimSettings.fast().replace(lease_renew_interval=0.1))


def test_kube_system_runs_the_k3s_add_ons(k: Cluster) -> None:
    def all_available() -> bool:
        deps = k.json("get", "deployments", "-n", "kube-system")["items"]
        return {d["metadata"]["name"] for d in deps} == ADDONS and all(
            (d.get("status") or {}).get("availableReplicas") == 1 for d in deps)

    wait_for(all_available, what="the add-ons available")
    rss = k.json("get", "replicasets", "-n", "kube-system")["items"]
    assert {rs["metadata"]["ownerReferences"][0]["name"] for rs in rss} == ADDONS
    pods = k.json("get", "pods", "-n", "kube-system")["items"]
    assert len(pods) == 4 and all(p["status"]["phase"] == "Running" for p in pods)
    # system-cluster-critical, resolved by the Priority admission plugin
    assert all(p["spec"]["priority"] == 2000000000 for p in pods)
    assert {pc["metadata"]["name"] for pc in k.json("get", "priorityclasses")["items"]} >= {
        "system-cluster-critical", "system-node-critical"}
    assert {p["metadata"]["name"].rsplit("-", 2)[0] for p in pods} == ADDONS
    svcs = {s["metadata"]["name"]: s for s in k.json("get", "services", "-n", "kube-system")["items"]}
    assert set(svcs) == {"kube-dns", "metrics-server", "traefik"}
    assert svcs["kube-dns"]["spec"]["clusterIP"] == "10.43.0.10"
    assert svcs["traefik"]["spec"]["type"] == "LoadBalancer"
    # no MetalLB yet: Traefik waits for an address (ServiceLB is off, as k3dtui creates the cluster)
    assert "<pending>" in k("get", "svc", "traefik", "-n", "kube-system")
    assert not k.json("get", "daemonsets", "-A")["items"]  # no svclb-* DaemonSet
    # CoreDNS's Corefile, the local-path provisioner's config and default StorageClass
    assert "kubernetes cluster.local" in k.json("get", "configmap", "coredns", "-n", "kube-system")["data"]["Corefile"]
    assert k.run("get", "configmap", "local-path-config", "-n", "kube-system").returncode == 0
    sc = k("get", "storageclass").splitlines()
    assert sc[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert sc[1].split()[:5] == ["local-path", "(default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer"]
    # the endpoints of kube-dns are CoreDNS's pod
    slices = k.json("get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")
    assert slices["items"] and slices["items"][0]["endpoints"]


def _namespace(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def test_every_namespace_has_the_default_service_account_and_the_root_ca(k: Cluster) -> None:
    k("create", "-f", "-", stdin=_namespace("team"))
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "team"):
        wait_for(lambda ns=ns: k.run("get", "serviceaccount", "default", "-n", ns, ok=False).returncode == 0,
                 what=f"the default ServiceAccount in {ns}")
        cm = k.json("get", "configmap", "kube-root-ca.crt", "-n", ns)
        assert cm["data"]["ca.crt"] == k.api.server.ca_pem and "BEGIN CERTIFICATE" in cm["data"]["ca.crt"]
    # deleted, it comes back (the controllers keep them)
    k("delete", "serviceaccount", "default", "-n", "team")
    wait_for(lambda: k.run("get", "serviceaccount", "default", "-n", "team", ok=False).returncode == 0,
             what="the ServiceAccount back")


def test_pods_get_the_service_account_token_volume(k: Cluster) -> None:
    k("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]}}))
    pod = k.json("get", "pod", "p")
    vol = next(v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    assert len(vol["name"]) == len("kube-api-access-") + 5
    sources = vol["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"expirationSeconds": 3607, "path": "token"}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    # opting out
    k("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]}}))
    assert not k.json("get", "pod", "q")["spec"].get("volumes")


def test_each_node_renews_its_lease(k: Cluster) -> None:
    nodes = [n["metadata"]["name"] for n in k.json("get", "nodes")["items"]]
    leases = {le["metadata"]["name"]: le for le in k.json("get", "leases", "-n", "kube-node-lease")["items"]}
    assert set(leases) == set(nodes)
    table = k("get", "leases", "-n", "kube-node-lease").splitlines()
    assert table[0].split() == ["NAME", "HOLDER", "AGE"] and table[1].split()[0] == table[1].split()[1]
    first = leases[nodes[0]]
    assert first["spec"]["holderIdentity"] == nodes[0] and first["spec"]["leaseDurationSeconds"] == 40
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Node"

    def renewed(name: str, before: str) -> bool:
        return bool(k.json("get", "lease", name, "-n", "kube-node-lease")["spec"]["renewTime"] > before)

    wait_for(lambda: renewed(nodes[0], first["spec"]["renewTime"]), what="a renewal")
    # a stopped node stops renewing
    k.call(lambda: k.sim.set_node_ready(nodes[1], False))
    stale = k.json("get", "lease", nodes[1], "-n", "kube-node-lease")["spec"]["renewTime"]
    k.call(lambda: k.sim.leases.renew())
    assert k.json("get", "lease", nodes[1], "-n", "kube-node-lease")["spec"]["renewTime"] == stale


def test_traefik_takes_the_pool_first_address_and_the_app_the_second(sim_cluster: SimHandle) -> None:
    ip = install_app(sim_cluster)
    with sim_cluster.http() as http:
        traefik = http.get("/api/v1/namespaces/kube-system/services/traefik").json()
        pool = http.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools").json()["items"][0]
    first = pool["spec"]["addresses"][0].split("-")[0]
    assert traefik["status"]["loadBalancer"]["ingress"][0]["ip"] == first
    assert ip.rsplit(".", 1)[0] == first.rsplit(".", 1)[0] and int(ip.rsplit(".", 1)[1]) == int(first.rsplit(".", 1)[1]) + 1
    # the pool got the CRD's defaults
    assert pool["spec"]["autoAssign"] is True
    # the app answers at its address
    import httpx

    host, port = sim_cluster.provider.dial(ip, 80)
    assert httpx.get(f"http://{host}:{port}/", timeout=5).status_code == 200


# What `kubectl api-resources` lists on a k3s 1.31 server (with Traefik, ServiceLB off), by
# NAME and APIVERSION. Left out, because the simulated cluster cannot do what they stand for:
# events.k8s.io/v1 events (another view of the core Events; a second store would disagree with
# them). Everything else is served, most of it stored without a controller behind it.
K3S_RESOURCES = {
    ("bindings", "v1"), ("componentstatuses", "v1"), ("configmaps", "v1"), ("endpoints", "v1"),
    ("events", "v1"), ("limitranges", "v1"), ("namespaces", "v1"), ("nodes", "v1"),
    ("persistentvolumeclaims", "v1"), ("persistentvolumes", "v1"), ("pods", "v1"),
    ("podtemplates", "v1"), ("replicationcontrollers", "v1"), ("resourcequotas", "v1"),
    ("secrets", "v1"), ("serviceaccounts", "v1"), ("services", "v1"),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io/v1"),
    ("validatingadmissionpolicies", "admissionregistration.k8s.io/v1"),
    ("validatingadmissionpolicybindings", "admissionregistration.k8s.io/v1"),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io/v1"),
    ("customresourcedefinitions", "apiextensions.k8s.io/v1"),
    ("apiservices", "apiregistration.k8s.io/v1"),
    ("controllerrevisions", "apps/v1"), ("daemonsets", "apps/v1"), ("deployments", "apps/v1"),
    ("replicasets", "apps/v1"), ("statefulsets", "apps/v1"),
    ("selfsubjectreviews", "authentication.k8s.io/v1"), ("tokenreviews", "authentication.k8s.io/v1"),
    ("localsubjectaccessreviews", "authorization.k8s.io/v1"),
    ("selfsubjectaccessreviews", "authorization.k8s.io/v1"),
    ("selfsubjectrulesreviews", "authorization.k8s.io/v1"),
    ("subjectaccessreviews", "authorization.k8s.io/v1"),
    ("horizontalpodautoscalers", "autoscaling/v2"), ("cronjobs", "batch/v1"), ("jobs", "batch/v1"),
    ("certificatesigningrequests", "certificates.k8s.io/v1"), ("leases", "coordination.k8s.io/v1"),
    ("endpointslices", "discovery.k8s.io/v1"),
    ("flowschemas", "flowcontrol.apiserver.k8s.io/v1"),
    ("prioritylevelconfigurations", "flowcontrol.apiserver.k8s.io/v1"),
    ("helmchartconfigs", "helm.cattle.io/v1"), ("helmcharts", "helm.cattle.io/v1"),
    ("addons", "k3s.cattle.io/v1"), ("etcdsnapshotfiles", "k3s.cattle.io/v1"),
    ("nodes", "metrics.k8s.io/v1beta1"), ("pods", "metrics.k8s.io/v1beta1"),
    ("ingressclasses", "networking.k8s.io/v1"), ("ingresses", "networking.k8s.io/v1"),
    ("networkpolicies", "networking.k8s.io/v1"), ("runtimeclasses", "node.k8s.io/v1"),
    ("poddisruptionbudgets", "policy/v1"),
    ("clusterrolebindings", "rbac.authorization.k8s.io/v1"), ("clusterroles", "rbac.authorization.k8s.io/v1"),
    ("rolebindings", "rbac.authorization.k8s.io/v1"), ("roles", "rbac.authorization.k8s.io/v1"),
    ("priorityclasses", "scheduling.k8s.io/v1"),
    ("csidrivers", "storage.k8s.io/v1"), ("csinodes", "storage.k8s.io/v1"),
    ("csistoragecapacities", "storage.k8s.io/v1"), ("storageclasses", "storage.k8s.io/v1"),
    ("volumeattachments", "storage.k8s.io/v1"),
    *{(plural, f"{group}/v1alpha1") for group in ("traefik.io", "traefik.containo.us") for plural in (
        "ingressroutes", "ingressroutetcps", "ingressrouteudps", "middlewares", "middlewaretcps",
        "serverstransports", "tlsoptions", "tlsstores", "traefikservices")},
    ("serverstransporttcps", "traefik.io/v1alpha1"),
}


def test_api_resources_are_those_of_k3s(k: Cluster) -> None:
    served = set()
    for line in k("api-resources", "--no-headers").splitlines():
        fields = line.split()
        served.add((fields[0], fields[-3]))  # NAME ... APIVERSION NAMESPACED KIND
    assert K3S_RESOURCES - served == set()
    # what is served beyond k3s: MetalLB's kinds once its CRDs are applied, nothing else
    assert {(n, v) for n, v in served - K3S_RESOURCES if not v.startswith("metallb.io/")} == set()
    # a k3s CRD takes objects as the real one does
    k.run("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
        "metadata": {"name": "demo", "namespace": "kube-system"},
        "spec": {"chart": "demo", "repo": "https://example.invalid/charts"}}))
    assert k.json("get", "helmcharts", "-n", "kube-system", "demo")["spec"]["chart"] == "demo"
