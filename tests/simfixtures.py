"""Fixtures that run the simulated cluster for tests (imported by tests/conftest.py).

- ``sim_cluster``: a running simulated cluster, 1 server + 2 agents, fast settings, MetalLB
  not installed, the app image not imported.
- ``sim_app``: the same, as ``k3dtui up`` leaves it: MetalLB from the project's
  ``manifests/metallb-minimal.yaml`` (webhook configuration included, so
  ``Pipeline.detect_stage()`` says "deployed") with the pool and L2Advertisement of
  ``manifests/metallb-pool.yaml``, the app image imported and ``manifests/app.yaml``
  (3 replicas) Ready with an external IP and a load balancer.

Both are function-scoped and stop the cluster (no process left) afterwards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from k3dtui.sim.provider import SimProvider
from k3dtui.sim.settings import SimSettings

SIM_NAME = "simple-app-cluster"

__all__ = ["SimHandle", "sim_app", "sim_cluster"]


@dataclass
class SimHandle:
    name: str
    kubeconfig: Path
    provider: SimProvider
    context: str

    # -- conveniences for tests ------------------------------------------------------
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), context=self.context, client_configuration=cfg)
        return client.ApiClient(cfg)

    def server_and_token(self) -> tuple[str, str]:
        cfg = yaml.safe_load(self.kubeconfig.read_text(encoding="utf-8"))
        return str(cfg["clusters"][0]["cluster"]["server"]), str(cfg["users"][0]["user"]["token"])

    def http(self, timeout: float = 10.0) -> httpx.Client:
        """An httpx client that talks to the API with the token (base URL set)."""
        server, token = self.server_and_token()
        ca = self.kubeconfig.parent / "ca.crt"
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
        return httpx.Client(base_url=server, timeout=timeout, verify=verify,
                            headers={"Authorization": f"Bearer {token}"})

    def kubectl(self, *args: str) -> list[str]:
        return ["/usr/bin/kubectl", "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` through the API (no-op when it exists); returns the stored object."""
        with self.http() as client:
            res = client.post(collection_path(obj), json=obj)
            if res.status_code == 409:
                res = client.get(object_path(obj))
            res.raise_for_status()
            out: dict[str, Any] = res.json()
            return out

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.http() as client:
            res = client.request(method, path, json=body)
            res.raise_for_status()
            out: dict[str, Any] = res.json()
            return out


_PLURALS = {
    "Namespace": "namespaces", "Deployment": "deployments", "DaemonSet": "daemonsets",
    "Service": "services", "Pod": "pods", "CustomResourceDefinition": "customresourcedefinitions",
    "IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements",
    "ServiceL2Status": "servicel2statuses", "ReplicaSet": "replicasets", "ConfigMap": "configmaps",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    "PodDisruptionBudget": "poddisruptionbudgets",
}
_CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "Node", "ValidatingWebhookConfiguration"}


def collection_path(obj: dict[str, Any]) -> str:
    api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if kind in _CLUSTER_SCOPED:
        return f"{base}/{_PLURALS[kind]}"
    ns = obj.get("metadata", {}).get("namespace", "default")
    return f"{base}/namespaces/{ns}/{_PLURALS[kind]}"


def object_path(obj: dict[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"


def _crd(plural: str, kind: str, *, status: bool = False) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1beta1", "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.metallb.io"},
        "spec": {
            "group": "metallb.io",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def metallb_standin() -> list[dict[str, Any]]:
    """MetalLB as the simulator sees it, without its webhook: CRDs, controller, speaker."""
    labels_c = {"app": "metallb", "component": "controller"}
    labels_s = {"app": "metallb", "component": "speaker"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
        _crd("ipaddresspools", "IPAddressPool", status=True),
        _crd("l2advertisements", "L2Advertisement"),
        _crd("servicel2statuses", "ServiceL2Status", status=True),
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "controller", "namespace": "metallb-system", "labels": labels_c},
            "spec": {
                "selector": {"matchLabels": labels_c},
                "template": {"metadata": {"labels": labels_c}, "spec": {
                    "containers": [{"name": "controller", "image": "quay.io/metallb/controller:v0.15.2"}],
                    "terminationGracePeriodSeconds": 0,
                }},
            },
        },
        {
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "speaker", "namespace": "metallb-system", "labels": labels_s},
            "spec": {
                "selector": {"matchLabels": labels_s},
                "template": {"metadata": {"labels": labels_s}, "spec": {
                    "containers": [{"name": "speaker", "image": "quay.io/metallb/speaker:v0.15.2"}],
                    "hostNetwork": True,
                    "terminationGracePeriodSeconds": 2,
                    "tolerations": [
                        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                }},
            },
        },
    ]


def pool_range(subnet: str) -> str:
    net = ipaddress.IPv4Network(subnet)
    top = net.broadcast_address
    return f"{top - 55}-{top - 5}"


def app_backends(handle: SimHandle) -> int | None:
    """How many pods the load balancer of ``fastapi-service``'s external IP (port 80) has
    (other LoadBalancer Services, like k3s's Traefik, have their own listeners)."""
    with handle.http() as client:
        svc = client.get("/api/v1/namespaces/default/services/fastapi-service").json()
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if not ingress:
        return None
    backends = handle.control("GET", "/sim/status").get("lb_backends") or {}
    count = backends.get(f"{ingress[0]['ip']}:80")
    return int(count) if count is not None else None


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_sim(name: str = SIM_NAME, settings: SimSettings | None = None, servers: int = 1,
              agents: int = 2) -> SimHandle:
    provider = SimProvider(name, settings=settings or SimSettings.fast())
    asyncio.run(provider.create(servers, agents, lambda _line: None))
    return SimHandle(name, provider.kubeconfig_path, provider, provider.context)


def stop_sim(handle: SimHandle) -> None:
    asyncio.run(handle.provider.delete(lambda _line: None))


def install_app(handle: SimHandle, replicas: int = 3) -> str:
    """What ``k3dtui up`` adds to a running cluster, with the project's own manifests:
    MetalLB from ``manifests/metallb-minimal.yaml`` (its webhook Service and
    ValidatingWebhookConfiguration included), the pool and L2Advertisement of
    ``manifests/metallb-pool.yaml`` (applied through the webhook, retried while it refuses),
    the image imported, ``manifests/app.yaml`` with ``replicas``. Returns the external IP
    once every replica is Ready behind the load balancer.

    Applied directly rather than through the pipeline: the app is created while MetalLB
    starts, which keeps this fixture as fast as it was (tests/test_pipeline_sim.py runs the
    pipeline itself)."""
    from k3dtui.core.deploy import app_documents
    from k3dtui.core.identity import APP
    from k3dtui.core.metallb import minimal_manifest, pool_documents

    for obj in minimal_manifest().documents:
        handle.apply(obj)
    asyncio.run(handle.provider.import_image(APP.image, lambda _line: None))
    for doc in app_documents(replicas, APP):
        handle.apply(doc)
    network = asyncio.run(handle.provider.network())
    for doc in pool_documents(pool_range(network.subnet)):

        def applied(doc: dict[str, Any] = doc) -> bool:
            try:
                handle.apply(doc)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 500 and "webhook" in exc.response.text:
                    return False  # MetalLB's controller (its webhook) is not serving yet
                raise
            return True

        wait_for(applied, 20.0, f"MetalLB's webhook to accept {doc['kind']}")

    def served() -> str | None:
        with handle.http() as client:
            d = client.get(f"/apis/apps/v1/namespaces/{APP.namespace}/deployments/{APP.deployment}").json()
            if ((d.get("status") or {}).get("readyReplicas") or 0) != replicas:
                return None
            svc = client.get(f"/api/v1/namespaces/{APP.namespace}/services/{APP.service}").json()
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress:
            return None
        ip = str(ingress[0]["ip"])
        status = handle.control("GET", "/sim/status")
        if (status.get("lb_backends") or {}).get(f"{ip}:80") != replicas:
            return None
        return ip

    ip: str = wait_for(served, 30.0, "the app to be Ready behind its external IP")
    return ip


@pytest.fixture
def sim_cluster(_isolated_dirs: None) -> Iterator[SimHandle]:
    handle = start_sim()
    try:
        yield handle
    finally:
        stop_sim(handle)


@pytest.fixture
def sim_app(sim_cluster: SimHandle) -> Iterator[SimHandle]:
    install_app(sim_cluster)
    yield sim_cluster
