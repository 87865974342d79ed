"""The upstream MetalLB manifest, applied document by document with server-side apply."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from k3dtui.core.kube import make_api_client
from k3dtui.sim.testing import ApiThread, run_api_in_thread
from tests.sim.test_api_client import raw
from tests.upstream import FIXTURE as MANIFEST

pytestmark = pytest.mark.upstream_manifest


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    with run_api_in_thread(tmp_path) as a:
        yield a


def model_name(api_version: str, kind: str) -> str:
    version = api_version.rsplit("/", 1)[-1]
    return f"{version[0].upper()}{version[1:]}{kind}"


def test_metallb_manifest_server_side_apply(api: ApiThread) -> None:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    assert len(docs) >= 20
    kc = make_api_client(api.kubeconfig)
    dyn = DynamicClient(kc)
    kinds_seen = set()
    for doc in docs:
        res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        ns = doc["metadata"].get("namespace") if res.namespaced else None
        out = res.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace=ns,
                                    field_manager="k3dtui", force_conflicts=True)
        assert out.metadata.uid, f"{doc['kind']}/{doc['metadata']['name']} was not stored"
        kinds_seen.add(doc["kind"])
        # everything the server sent back deserializes into the typed model, where there is one
        model = model_name(doc["apiVersion"], doc["kind"])
        if hasattr(client, model):
            kc.deserialize(json.dumps(out.to_dict()), model, "application/json")
    assert {"CustomResourceDefinition", "ValidatingWebhookConfiguration", "ClusterRole", "DaemonSet",
            "Deployment", "Secret", "ServiceAccount", "Namespace"} <= kinds_seen
    # re-applying changes nothing and is accepted
    for doc in docs:
        res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        ns = doc["metadata"].get("namespace") if res.namespaced else None
        res.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace=ns, field_manager="k3dtui", force_conflicts=True)

    # the CRDs' kinds are served now, and their objects can be created
    pools = dyn.resources.get(api_version="metallb.io/v1beta1", kind="IPAddressPool")
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"addresses": ["172.18.255.200-172.18.255.250"]}}
    assert pools.server_side_apply(body=pool, name="p", namespace="metallb-system", field_manager="k3dtui").metadata.uid
    l2 = dyn.resources.get(api_version="metallb.io/v1beta1", kind="L2Advertisement")
    l2.create(body={"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                    "metadata": {"name": "l2", "namespace": "metallb-system"}, "spec": {"ipAddressPools": ["p"]}},
              namespace="metallb-system")
    listed = raw(api, "GET", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools").json()
    assert listed["kind"] == "IPAddressPoolList" and [i["metadata"]["name"] for i in listed["items"]] == ["p"]
    # printer columns of the CRD drive the Table
    table = raw(api, "GET", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools",
                accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json").json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[0] == "Name" and "Addresses" in names
    # aggregated discovery names every group the manifest needed
    agg = raw(api, "GET", "/apis", accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
    assert agg.headers["content-type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    groups = {item["metadata"]["name"] for item in agg.json()["items"]}
    assert {"metallb.io", "rbac.authorization.k8s.io", "admissionregistration.k8s.io", "apps"} <= groups
    kc.close()
