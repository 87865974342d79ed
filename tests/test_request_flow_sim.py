"""The request flow on the simulated cluster (issue 11): the announcing node from MetalLB's
election, kube-proxy's choice per externalTrafficPolicy, and the source address each pod sees."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from kubernetes import client

from k3dtui.commands.load import discover_url


def app_pods(handle: Any) -> dict[str, str]:
    with handle.api_client() as api:
        pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=fastapi").items
    return {p.metadata.name: p.spec.node_name for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}


def node_cidrs(handle: Any) -> dict[str, str]:
    with handle.api_client() as api:
        return {n.metadata.name: n.spec.pod_cidr for n in client.CoreV1Api(api).list_node().items}


def announcer(handle: Any) -> str:
    with handle.http() as c:
        res = c.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses")
        res.raise_for_status()
    for item in res.json()["items"]:
        if item["status"]["serviceName"] == "fastapi-service":
            return str(item["status"]["node"])
    return ""


def test_cluster_policy_pods_see_the_forwarding_nodes_address(sim_app: Any) -> None:
    url = asyncio.run(discover_url(sim_app.name, True))
    entry = announcer(sim_app)
    assert entry
    net = node_cidrs(sim_app)[entry].rsplit(".", 1)[0]  # 10.42.N
    seen: dict[str, set[str]] = {}
    for _ in range(60):
        with httpx.Client(timeout=5) as c:  # a new connection each time
            res = c.get(url)
        body = json.loads(res.text)
        assert res.headers["X-Client"] == body["client"]
        seen.setdefault(body["node"], set()).add(body["client"])
    assert len(seen) == 3
    for node, clients in seen.items():
        # cni0 (.1) on the announcing node itself, flannel.1 (.0) across nodes
        assert clients == ({f"{net}.1"} if node == entry else {f"{net}.0"}), (node, clients)
