"""The pipeline's orchestration against an in-memory API (FakeKube) and a fake provider:
order of steps and events, reuse of what exists (never recreating a cluster), the webhook
retry and its bounded failure, the pending external IP, the re-apply keeping a scale,
failures reported as events. The same code against the simulated cluster is in
test_pipeline_sim.py."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3dtui.core import metallb as metallb_mod
from k3dtui.core.deploy import DeployTimeouts
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.kubeapply import ApiRefused, ApiUnreachable
from k3dtui.core.metallb import Timeouts
from k3dtui.core.network import Member, NetworkInfo
from k3dtui.core.pipeline import Pipeline, PipelineEvent
from k3dtui.core.provider import ClusterInfo, Reachability
from k3dtui.core.spec import ClusterSpec
from tests.upstream import MINIMAL

WEBHOOK_500 = (
    'Internal error occurred: failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io": '
    'failed to call webhook: Post "https://metallb-webhook-service.metallb-system.svc:443/validate": '
    "dial tcp 10.43.12.1:443: connect: connection refused"
)


class FakeKube:
    """Objects by (kind, namespace, name); 'controllers' react on apply."""

    def __init__(self, *, webhook_refusals: int = 0, assign_ip: bool = True) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied: list[tuple[str, str]] = []
        self.webhook_refusals = webhook_refusals
        self.assign_ip = assign_ip
        self.unreachable_after: int | None = None
        self.webhook_endpoints = True

    def _key(self, kind: str, name: str, ns: str | None) -> tuple[str, str, str]:
        return (kind, ns or "", name)

    def _check_up(self, doing: str) -> None:
        metallb_applied = [a for a in self.applied if a[1] not in ("fastapi-app", "fastapi-service")]
        if self.unreachable_after is not None and len(metallb_applied) >= self.unreachable_after:
            raise ApiUnreachable(f"{doing}: cannot reach the Kubernetes API server at fake")

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._check_up(f"applying {obj['kind']}")
        kind, meta = obj["kind"], obj["metadata"]
        if kind in ("IPAddressPool", "L2Advertisement") and self.webhook_refusals > 0:
            self.webhook_refusals -= 1
            raise ApiRefused(f"applying {kind}: {WEBHOOK_500}", status=500, reason="InternalError", body=WEBHOOK_500)
        import copy

        stored = copy.deepcopy(obj)
        key = self._key(kind, meta["name"], meta.get("namespace"))
        old = self.objects.get(key)
        if kind == "Deployment" and old is not None and "replicas" not in stored["spec"]:
            stored["spec"]["replicas"] = old["spec"]["replicas"]
        self.objects[key] = stored
        self.applied.append((kind, meta["name"]))
        self._react(stored)
        return stored

    def _react(self, obj: dict[str, Any]) -> None:
        kind = obj["kind"]
        if kind == "CustomResourceDefinition":
            obj["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        elif kind == "Deployment":
            n = int(obj["spec"].get("replicas", 1))
            obj["status"] = {"replicas": n, "readyReplicas": n, "availableReplicas": n, "updatedReplicas": n}
            if obj["metadata"]["name"] == "fastapi-app":
                self._pods(n)
            if obj["metadata"]["name"] == "controller" and self.webhook_endpoints:
                self.objects[("EndpointSlice", "metallb-system", "metallb-webhook-service-x1")] = {
                    "kind": "EndpointSlice",
                    "metadata": {"name": "metallb-webhook-service-x1", "namespace": "metallb-system"},
                    "endpoints": [{"addresses": ["10.42.0.9"], "conditions": {"ready": True}}],
                }
        elif kind == "DaemonSet":
            obj["status"] = {"desiredNumberScheduled": 3, "numberReady": 3}
        elif kind == "Service" and obj["spec"].get("type") == "LoadBalancer" and self.assign_ip:
            obj["status"] = {"loadBalancer": {"ingress": [{"ip": "172.28.255.200"}]}}

    def _pods(self, n: int) -> None:
        for key in [k for k in self.objects if k[0] == "Pod"]:
            del self.objects[key]
        for i in range(n):
            self.objects[("Pod", "default", f"fastapi-{i}")] = {
                "kind": "Pod",
                "metadata": {"name": f"fastapi-{i}", "namespace": "default", "labels": {"app": "fastapi"}},
                "spec": {"nodeName": f"node-{i % 3}"},
                "status": {"phase": "Running", "podIP": f"10.42.{i}.2", "conditions": [{"type": "Ready", "status": "True"}]},
            }

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self._check_up(f"reading {kind}")
        return self.objects.get(self._key(kind, name, namespace))

    try_get = get

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
        self._check_up(f"listing {kind}")
        return [o for (k, ns, _), o in self.objects.items() if k == kind and (namespace is None or ns == namespace)]

    def close(self) -> None:
        pass


class AppServer:
    """A loopback HTTP server answering like the app (X-Pod, X-Node)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("X-Pod", "fastapi-0")
                self.send_header("X-Node", "node-0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeProvider:
    kind = "sim"

    def __init__(self, name: str, port: int, *, exists: bool = False, running: bool = True) -> None:
        self.name = name
        self.port = port
        self.exists = exists
        self.running = running
        self.calls: list[str] = []

    @property
    def context(self) -> str:
        return f"k3d-{self.name}"

    async def find(self) -> ClusterInfo | None:
        if not self.exists:
            return None
        n = 1 if self.running else 0
        return ClusterInfo(self.name, 1, 2, n, 2 * n)

    async def create(self, servers: int, agents: int, log: Any) -> None:
        self.calls.append(f"create {servers} {agents}")
        log("created")
        self.exists = True

    async def delete(self, log: Any) -> None:
        self.calls.append("delete")
        self.exists = False

    async def kubeconfig(self) -> Path:
        return Path("/nonexistent/kubeconfig")

    async def network(self) -> NetworkInfo:
        return NetworkInfo(
            "k3d-" + self.name,
            "172.28.0.0/16",
            "172.28.0.1",
            (Member("server-0", "172.28.0.2"), Member("agent-0", "172.28.0.3"), Member("agent-1", "172.28.0.4")),
        )

    async def build_image(self, tag: str, log: Any) -> None:
        self.calls.append(f"build {tag}")
        await asyncio.to_thread(log, "built in a thread")

    async def import_image(self, tag: str, log: Any) -> None:
        self.calls.append(f"import {tag}")

    def dial(self, ip: str, port: int) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    routable = True

    def reachability(self) -> Reachability:
        if not self.routable:
            return Reachability(False, "Docker Desktop: the bridge is inside a VM; run the load in a container")
        return Reachability(True, "loopback")


@pytest.fixture(scope="module")
def app_server() -> Iterator[AppServer]:
    srv = AppServer()
    yield srv
    srv.close()


def make(
    provider: FakeProvider,
    kube: FakeKube,
    events: list[PipelineEvent],
    spec: ClusterSpec | None = None,
    **kw: Any,
) -> Pipeline:
    pipe = Pipeline(
        provider,  # type: ignore[arg-type]
        spec or ClusterSpec(name=provider.name),
        events.append,
        # any MetalLB with its webhook will do: k3dtui's own minimal manifest
        metallb_manifest=kw.pop("manifest", MINIMAL),
        insecure_skip_verify=kw.pop("insecure_skip_verify", True),
        metallb_timeouts=kw.pop("metallb_timeouts", Timeouts(crds=2, controller=2, speaker=2, webhook=3)),
        deploy_timeouts=kw.pop("deploy_timeouts", DeployTimeouts(ready=2, external_ip=1.0, probe=3)),
        **kw,
    )

    async def get_kube() -> FakeKube:
        return kube

    pipe.kube = get_kube  # type: ignore[method-assign]
    pipe.new_kube = get_kube  # type: ignore[method-assign]
    return pipe


async def test_up_from_nothing_runs_every_step_in_order(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", app_server.port), FakeKube(webhook_refusals=3), []
    result = await make(provider, kube, events).up()
    assert provider.calls == ["create 1 2", "build fastapi-random:latest", "import fastapi-random:latest"]
    assert result.external_ip == "172.28.255.200"
    assert result.dial == f"127.0.0.1:{app_server.port}"
    assert result.dial_url == f"http://127.0.0.1:{app_server.port}/"
    assert result.pool == "172.28.255.200-172.28.255.250"
    assert result.stage_before == "absent"
    starts = [e.step for e in events if e.kind == "start"]
    # MetalLB then the pool, alongside the image then the app; the external IP after both
    assert starts[:2] == ["cluster", "pool"] and starts[-2:] == ["deploy", "probe"]
    middle = starts[2:-2]
    assert sorted(middle) == ["deploy", "image", "metallb", "pool"]
    assert middle.index("metallb") < middle.index("pool") and middle.index("image") < middle.index("deploy")
    assert set(result.durations) == {"cluster", "pool", "metallb", "image", "deploy", "probe"}
    # every object of the manifest applied one by one with progress, in manifest order
    objects = len(metallb_mod.read_user_manifest(MINIMAL, verify=False).documents)
    applied = [e for e in events if e.step == "metallb" and e.kind == "progress" and "index" in e.data]
    assert objects >= 5 and [e.data["index"] for e in applied] == list(range(1, objects + 1))
    metallb_applied = [a for a in kube.applied if a[1] not in ("fastapi-app", "fastapi-service")]
    assert metallb_applied[0] == ("Namespace", "metallb-system")
    # the pool went through three webhook refusals
    assert any(e.step == "pool" and "not serving yet" in e.message for e in events)
    pool_done = [e for e in events if e.step == "pool" and e.data.get("kind") == "IPAddressPool"]
    assert pool_done[-1].data["attempts"] == 4
    assert ("IPAddressPool", "first-pool") in kube.applied
    # per-replica readiness
    ready = [e for e in events if e.step == "deploy" and e.data.get("pod")]
    assert {e.data["pod"] for e in ready if "Ready on" in e.message} == {"fastapi-0", "fastapi-1", "fastapi-2"}
    # the log line emitted from a worker thread arrived as an event
    assert any(e.step == "image" and e.message == "built in a thread" for e in events)


async def test_rerun_reuses_cluster_and_metallb_and_keeps_a_scale(app_server: AppServer) -> None:
    provider, kube = FakeProvider("demo", app_server.port), FakeKube()
    await make(provider, kube, []).up()
    # someone scales to 5
    dep = kube.objects[("Deployment", "default", "fastapi-app")]
    dep["spec"]["replicas"] = 5
    kube._react(dep)
    applied_before = len(kube.applied)
    events: list[PipelineEvent] = []
    result = await make(provider, kube, events).up()
    assert result.stage_before == "deployed"
    assert provider.calls.count("create 1 2") == 1  # never recreated
    assert any("reusing the existing cluster" in e.message for e in events)
    assert any("already installed" in e.message for e in events)
    new = kube.applied[applied_before:]
    assert ("Namespace", "metallb-system") not in new  # MetalLB not re-applied
    assert kube.objects[("Deployment", "default", "fastapi-app")]["spec"]["replicas"] == 5
    assert any("keeping the 5 replicas" in e.message for e in events)


async def test_stopped_cluster_is_not_touched(app_server: AppServer) -> None:
    provider = FakeProvider("demo", app_server.port, exists=True, running=False)
    with pytest.raises(K3dtuiError) as info:
        await make(provider, FakeKube(), []).up()
    assert "not running" in info.value.message
    assert provider.calls == []


async def test_create_without_reuse_refuses_existing(app_server: AppServer) -> None:
    provider = FakeProvider("demo", app_server.port, exists=True)
    with pytest.raises(K3dtuiError, match="already exists"):
        await make(provider, FakeKube(), []).create_cluster(reuse=False)
    assert provider.calls == []


async def test_webhook_never_ready_bounded_failure_names_webhook(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", app_server.port), FakeKube(webhook_refusals=10**6), []
    pipe = make(provider, kube, events, metallb_timeouts=Timeouts(crds=2, controller=2, speaker=2, webhook=1.0))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(K3dtuiError) as info:
        await pipe.up()
    took = loop.time() - t0
    assert metallb_mod.POOL_WEBHOOK in info.value.message
    assert "still refused" in info.value.message
    assert took < 5
    failed = [e for e in events if e.kind == "failed"]
    assert failed and failed[-1].step == "pool"
    assert failed[-1].data["done"] == ["cluster", "metallb", "image", "deploy"]


async def test_pending_external_ip_lists_causes(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", app_server.port), FakeKube(assign_ip=False), []
    kube.objects[("DaemonSet", "kube-system", "svclb-fastapi-service-1234")] = {
        "kind": "DaemonSet",
        "metadata": {"name": "svclb-fastapi-service-1234", "namespace": "kube-system"},
    }
    with pytest.raises(K3dtuiError) as info:
        await make(provider, kube, events).up()
    msg = info.value.message
    assert "no EXTERNAL-IP" in msg and "ServiceLB is on" in msg and "webhook" in msg
    assert any(e.kind == "warning" and "ServiceLB is still on" in e.message for e in events)
    assert any("<pending>" in e.message for e in events)


async def test_api_unreachable_midway_reported(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", app_server.port), FakeKube(), []
    kube.unreachable_after = 5
    with pytest.raises(ApiUnreachable) as info:
        await make(provider, kube, events).up()
    assert "cannot reach the Kubernetes API server" in info.value.message
    failed = [e for e in events if e.kind == "failed"]
    # the line of work that met the dead API first reports what `up` raised (which line that is
    # depends on scheduling); the other failed the same way or was cancelled by that failure
    assert failed[0].message == info.value.message
    assert all("cannot reach the Kubernetes API server" in e.message or e.message == "cancelled" for e in failed)
    progress = [e for e in events if e.step == "metallb" and e.kind == "progress" and "index" in e.data]
    assert len(progress) == 5  # what was applied is reported


async def test_pool_not_fitting_new_network_leaves_nothing(app_server: AppServer) -> None:
    provider, kube = FakeProvider("demo", app_server.port), FakeKube()
    spec = ClusterSpec(name="demo", pool="10.9.0.1-10.9.0.9")
    with pytest.raises(UsageError, match="not inside the subnet"):
        await make(provider, kube, [], spec=spec).up()
    assert provider.calls == ["create 1 2", "delete"]
    assert kube.applied == []


async def test_pool_overlapping_node_ip_on_existing_cluster_changes_nothing(app_server: AppServer) -> None:
    provider, kube = FakeProvider("demo", app_server.port, exists=True), FakeKube()
    spec = ClusterSpec(name="demo", pool="172.28.0.2-172.28.0.10")
    with pytest.raises(UsageError):
        await make(provider, kube, [], spec=spec).up()
    assert provider.calls == [] and kube.applied == []


async def test_status_shape(app_server: AppServer) -> None:
    provider, kube = FakeProvider("demo", app_server.port), FakeKube()
    await make(provider, kube, []).up()
    for i in range(3):
        kube.objects[("Node", "", f"node-{i}")] = {
            "kind": "Node",
            "metadata": {"name": f"node-{i}", "labels": {"node-role.kubernetes.io/control-plane": "true"} if i == 0 else {}},
            "status": {"addresses": [{"type": "InternalIP", "address": f"172.28.0.{i + 2}"}], "conditions": [{"type": "Ready", "status": "True"}]},
        }
    data = await make(provider, kube, []).status()
    assert data["stage"] == "deployed"
    assert [n["name"] for n in data["nodes"]] == ["node-0", "node-1", "node-2"]
    assert data["nodes"][0]["roles"] == ["control-plane"] and data["nodes"][1]["roles"] == ["agent"]
    assert [len(n["pods"]) for n in data["nodes"]] == [1, 1, 1]
    assert all(p["ready"] and p["status"] == "Running" for n in data["nodes"] for p in n["pods"])
    assert data["deployment"] == {"name": "fastapi-app", "replicas": 3, "ready": 3}
    assert data["service"]["external_ip"] == "172.28.255.200"
    assert data["service"]["dial"] == f"127.0.0.1:{app_server.port}"


async def test_pool_checked_against_planned_network_before_create(app_server: AppServer) -> None:
    class Planned(FakeProvider):
        def planned_network(self, servers: int, agents: int) -> NetworkInfo:
            return NetworkInfo("k3d-demo", "172.28.0.0/16", "172.28.0.1")

    provider, kube = Planned("demo", app_server.port), FakeKube()
    with pytest.raises(UsageError, match="not inside the subnet"):
        await make(provider, kube, [], spec=ClusterSpec(name="demo", pool="10.9.0.1-10.9.0.9")).up()
    assert provider.calls == [] and kube.applied == []


async def test_k3d_offline_without_manifest_fails_before_creating(
    app_server: AppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(**_: Any) -> Any:
        raise K3dtuiError("cannot download the MetalLB v0.15.2 manifest: no network", "pass --metallb-manifest PATH")

    monkeypatch.setattr(metallb_mod, "fetch_upstream", offline)
    provider, kube = FakeProvider("demo", app_server.port), FakeKube()
    provider.kind = "k3d"
    with pytest.raises(K3dtuiError) as info:
        await make(provider, kube, [], manifest=None).up()
    assert "cannot download" in info.value.message and "--metallb-manifest" in info.value.hint
    assert provider.calls == [] and kube.applied == []


async def test_rerun_without_pool_reuses_the_existing_range(app_server: AppServer) -> None:
    provider, kube = FakeProvider("demo", app_server.port), FakeKube()
    first = await make(provider, kube, [], spec=ClusterSpec(name="demo", pool="172.28.255.100-172.28.255.120")).up()
    assert first.pool == "172.28.255.100-172.28.255.120"
    events: list[PipelineEvent] = []
    again = await make(provider, kube, events).up()
    assert again.pool == first.pool
    assert any("reusing the existing pool 172.28.255.100-172.28.255.120" in e.message for e in events)


async def test_zero_replicas_skips_the_probe(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", app_server.port), FakeKube(), []
    result = await make(provider, kube, events, spec=ClusterSpec(name="demo", replicas=0)).up()
    assert result.dial == "" and result.external_ip
    assert any(e.step == "probe" and e.kind == "warning" and "0 replicas" in e.message for e in events)


async def test_pool_waits_for_webhook_endpoints_then_carries_on(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", app_server.port), FakeKube(), []
    kube.webhook_endpoints = False
    pipe = make(provider, kube, events, metallb_timeouts=Timeouts(crds=2, controller=2, speaker=2, webhook=0.5))
    await pipe.up()
    msgs = [e.message for e in events if e.step == "pool"]
    assert any("waiting for a ready endpoint of metallb-webhook-service" in m for m in msgs)
    assert any("no ready endpoint after" in m for m in msgs)
    assert ("IPAddressPool", "first-pool") in kube.applied


async def test_unroutable_provider_is_not_probed(app_server: AppServer) -> None:
    provider, kube, events = FakeProvider("demo", 1), FakeKube(), []  # port 1: a probe would fail
    provider.routable = False
    result = await make(provider, kube, events).up()
    assert result.dial_url == "http://172.28.255.200/"
    assert any(e.step == "probe" and e.kind == "warning" and "Docker Desktop" in e.message for e in events)
