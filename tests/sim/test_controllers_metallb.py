"""MetalLB in the simulated cluster, through the API: allocation, announcement, the webhook."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import threading
import time
from typing import Any

from kubernetes import client, watch

from k3dtui.sim.settings import SimSettings
from tests.simfixtures import SimHandle, metallb_standin, start_sim, stop_sim, wait_for

WEBHOOK_CONFIG = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "metallb-webhook-configuration"},
    "webhooks": [{
        "name": "ipaddresspoolvalidationwebhook.metallb.io",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": "metallb-system",
                                     "path": "/validate-metallb-io-v1beta1-ipaddresspool"}},
        "rules": [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"],
                   "operations": ["CREATE", "UPDATE"], "resources": ["ipaddresspools"]}],
    }],
}


def lb_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 3000}]},
    }


def pool(name: str, addresses: list[str]) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system"}, "spec": {"addresses": addresses}}


L2 = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
      "metadata": {"name": "l2", "namespace": "metallb-system"}, "spec": {}}


def ingress_ip(handle: SimHandle, name: str) -> str | None:
    with handle.http() as http:
        svc = http.get(f"/api/v1/namespaces/default/services/{name}").json()
    ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return str(ing[0]["ip"]) if ing else None


def test_lowest_free_ip_in_one_update_once_controller_and_pool_exist(sim_cluster: SimHandle) -> None:
    h = sim_cluster
    h.apply(lb_service("first"))
    api = client.CoreV1Api(h.api_client())
    events: list[dict[str, Any]] = []
    rv = api.list_namespaced_service("default").metadata.resource_version

    def watcher() -> None:
        w = watch.Watch()
        for ev in w.stream(api.list_namespaced_service, "default", field_selector="metadata.name=first",
                           resource_version=rv, timeout_seconds=20):
            svc = ev["object"]
            events.append({"ingress": bool(svc.status.load_balancer and svc.status.load_balancer.ingress),
                           "annotated": "metallb.io/ip-allocated-from-pool" in (svc.metadata.annotations or {})})
            if events[-1]["ingress"]:
                w.stop()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    out = subprocess.run(h.kubectl("get", "svc", "first"), capture_output=True, text=True, timeout=30)
    assert "<pending>" in out.stdout
    for obj in metallb_standin():
        h.apply(obj)
    net = ipaddress.ip_network(json.loads((h.kubeconfig.parent / "network.json").read_text())["subnet"])
    base = net.broadcast_address - 55
    h.apply(pool("p", [f"{base}-{base + 9}"]))
    time.sleep(0.3)
    assert ingress_ip(h, "first") is None  # no L2Advertisement yet: nothing advertises the pool
    h.apply(L2)
    # k3s's Traefik LoadBalancer Service (kube-system) was there first: it takes the pool's
    # first address, as on a real k3d cluster
    assert wait_for(lambda: ingress_ip(h, "first"), 10, "first IP") == str(base + 1)
    traefik = api.read_namespaced_service("traefik", "kube-system").status.load_balancer.ingress
    assert traefik[0].ip == str(base)
    t.join(10)
    assigned = [e for e in events if e["ingress"]]
    assert len(assigned) == 1 and assigned[0]["annotated"]  # IP and annotation in one update
    h.apply(lb_service("second"))
    assert wait_for(lambda: ingress_ip(h, "second"), 10, "second IP") == str(base + 2)
    # the speaker announces each IP from one node
    with h.http() as http:

        def l2_statuses() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = [
                s for s in http.get("/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses")
                .json()["items"] if s["status"]["serviceName"] != "traefik"]  # k3s's Traefik has one too
            return out

        wait_for(lambda: len(l2_statuses()) == 2, 10, "two ServiceL2Status")
        statuses = l2_statuses()
    nodes = {n.metadata.name for n in api.list_node().items}
    assert {s["status"]["serviceName"] for s in statuses} == {"first", "second"}
    assert all(s["status"]["node"] in nodes and s["metadata"]["labels"]["metallb.io/node"] == s["status"]["node"]
               for s in statuses)
    reasons = {(e.involved_object.name, e.reason) for e in api.list_namespaced_event("default").items}
    assert ("first", "IPAllocated") in reasons and ("first", "nodeAssigned") in reasons
    # deleting a Service frees its IP for the next one
    api.delete_namespaced_service("first", "default")
    h.apply(lb_service("third"))
    assert wait_for(lambda: ingress_ip(h, "third"), 10, "third IP") == str(base + 1)


def test_pool_validation_and_the_webhook_race() -> None:
    handle = start_sim(settings=SimSettings.fast().replace(webhook_race=1.5))
    try:
        for obj in metallb_standin():
            if obj["kind"] != "Deployment":
                handle.apply(obj)
        handle.apply(WEBHOOK_CONFIG)
        path = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools"
        good = pool("good", ["172.30.255.200-172.30.255.210"])
        with handle.http() as http:
            res = http.post(path, json=good)
            assert res.status_code == 500
            assert 'failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io"' in res.json()["message"]
            assert "no endpoints available" in res.json()["message"]
        handle.apply(next(o for o in metallb_standin() if o["kind"] == "Deployment"))

        with handle.http() as http:

            def controller_ready() -> bool:
                pods = http.get("/api/v1/namespaces/metallb-system/pods",
                                params={"labelSelector": "component=controller"}).json()["items"]
                return any(c["type"] == "Ready" and c["status"] == "True"
                           for p in pods for c in (p.get("status") or {}).get("conditions") or [])

            wait_for(controller_ready, 10, "the MetalLB controller Ready")
        ready_at = time.monotonic()
        refused = 0
        with handle.http() as http:
            while True:
                res = http.post(path, json=good)
                if res.status_code == 201:
                    break
                assert res.status_code == 500
                assert res.json()["message"].endswith("connect: connection refused")
                refused += 1
                assert time.monotonic() - ready_at < 5, "the race never ended"
                time.sleep(0.1)
        # refused for about webhook_race seconds after the controller turned Ready (this test
        # notices the readiness a little late, never early)
        assert refused >= 1
        assert time.monotonic() - ready_at >= 0.5
        with handle.http() as http:
            overlap = http.post(path, json=pool("overlap", ["172.30.255.208/29"]))
            assert overlap.status_code == 403
            assert "overlaps with already defined CIDR" in overlap.json()["message"]
            backwards = http.post(path, json=pool("backwards", ["172.30.255.250-172.30.255.240"]))
            assert backwards.status_code == 403
            assert "is after the end IP" in backwards.json()["message"]
            assert http.get("/readyz").status_code == 200
        out = subprocess.run(handle.kubectl("apply", "--server-side", "-f", "-"), input=json.dumps(
            pool("overlap2", ["172.30.255.205-172.30.255.206"])), capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert 'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request' in out.stderr
    finally:
        stop_sim(handle)


def test_dial_unknown_ip_is_a_clear_error(sim_cluster: SimHandle) -> None:
    import pytest

    from k3dtui.core.errors import K3dtuiError

    with pytest.raises(K3dtuiError, match="no load balancer"):
        sim_cluster.provider.dial("172.18.255.200", 80)
    assert sim_cluster.provider.reachability().routable
