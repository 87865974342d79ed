"""The app: its manifests (the Deployment and Service named by ``core.identity``:
``fastapi-app`` and ``fastapi-service``), applied server-side; the waits for every replica
Ready and for the external IP; the probe through the provider's dial address until a pod
answers; the Service's external IP for the load command.

``replicas`` comes from the spec on the first apply only. A re-apply sends the replica count
the cluster has now (so it never undoes a scale, and k3dtui never drops ownership of the
field, which would reset it to 1 on a real API server).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k3dtui import resources
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeapply import Kube
from k3dtui.core.kubeerrors import NotFound, translate
from k3dtui.core.metallb import parse_documents, poll
from k3dtui.core.state import pod_view, service_view

if TYPE_CHECKING:
    import httpx

Obj = dict[str, Any]
Progress = Callable[[str, str, Mapping[str, Any]], None]

APP_MANIFEST = "app.yaml"


def _no_progress(kind: str, message: str, data: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class DeployTimeouts:
    ready: float = 180.0
    external_ip: float = 90.0
    probe: float = 60.0


def app_documents(replicas: int | None, identity: AppIdentity = APP) -> list[Obj]:
    """The app's objects from manifests/app.yaml, named by ``identity``; ``replicas`` None
    leaves the field out."""
    docs = [copy.deepcopy(d) for d in parse_documents(resources.manifest_text(APP_MANIFEST), "manifests/app.yaml")]
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = identity.namespace
        meta.setdefault("labels", {}).update(identity.labels)
        spec = doc.setdefault("spec", {})
        if doc["kind"] == "Deployment":
            meta["name"] = identity.deployment
            spec["selector"] = {"matchLabels": dict(identity.labels)}
            pod = spec.setdefault("template", {})
            pod.setdefault("metadata", {}).setdefault("labels", {}).update(identity.labels)
            pod_spec = pod.setdefault("spec", {})
            for constraint in pod_spec.get("topologySpreadConstraints") or []:
                constraint["labelSelector"] = {"matchLabels": dict(identity.labels)}
            container = pod_spec["containers"][0]
            container["name"] = identity.container
            container["image"] = identity.image
            container["ports"][0]["containerPort"] = identity.container_port
            if replicas is None:
                spec.pop("replicas", None)
            else:
                spec["replicas"] = int(replicas)
        elif doc["kind"] == "Service":
            meta["name"] = identity.service
            spec["selector"] = dict(identity.labels)
            port = spec["ports"][0]
            port["port"] = identity.service_port
            port["targetPort"] = identity.container_port
        elif doc["kind"] == "PodDisruptionBudget":
            meta["name"] = identity.deployment
            spec["selector"] = {"matchLabels": dict(identity.labels)}
    return docs


def pod_ready(pod: Obj) -> bool:
    """Ready to serve: the live view's readiness (``core.state.pod_view``), not being deleted."""
    view = pod_view(pod)
    return view.ready and not view.deleting


def service_ip(svc: Obj | None) -> str | None:
    """The Service's external IP (or hostname) as the live view reads it; None while pending."""
    if svc is None:
        return None
    return service_view(svc).external_ip or None


def read_external_ip(kubeconfig: Path, context: str | None = None, identity: AppIdentity = APP) -> str:
    """The external IP (or hostname) of the app's Service, or a ``K3dtuiError`` saying why not.

    A short synchronous read (the load command's way to its target), through the one client
    stack and the one error mapping.
    """
    import json

    from kubernetes import client

    from k3dtui.core.kube import make_api_client

    api = make_api_client(kubeconfig, context)
    where = f"Service {identity.namespace}/{identity.service}"
    try:
        with api:
            resp: Any = client.CoreV1Api(api).read_namespaced_service(
                identity.service, identity.namespace, _preload_content=False, _request_timeout=10
            )
            svc = json.loads(resp.data)
    except Exception as exc:
        err = translate(exc, f"reading {where}", host=str(api.configuration.host))
        if isinstance(err, NotFound):
            raise K3dtuiError(
                f"the app is not deployed: no Service {identity.service} in namespace {identity.namespace}",
                "deploy it with `k3dtui up`, or aim at any endpoint with --url",
            ) from None
        raise err from None
    ip = service_ip(svc if isinstance(svc, dict) else None)
    if ip is None:
        raise K3dtuiError(
            f"Service {identity.service} has no external IP yet",
            "MetalLB assigns it: run `k3dtui up` (installs MetalLB and an address pool) or wait a few seconds",
        )
    return ip


class _PendingTimeout(K3dtuiError):
    pass


class AppDeployer:
    def __init__(
        self,
        kube: Kube,
        progress: Progress = _no_progress,
        timeouts: DeployTimeouts | None = None,
        identity: AppIdentity = APP,
    ) -> None:
        self.kube = kube
        self.progress = progress
        self.timeouts = timeouts or DeployTimeouts()
        self.identity = identity

    async def apply(self, replicas: int) -> int:
        """Apply the Deployment and Service; returns the replica count asked for."""

        def run() -> int:
            app = self.identity
            live = self.kube.get("apps/v1", "Deployment", app.deployment, app.namespace)
            if live is None:
                want = replicas
                docs = app_documents(replicas, app)
                note = f"first apply: {replicas} replicas"
            else:
                current = (live.get("spec") or {}).get("replicas")
                want = int(current) if current is not None else replicas
                docs = app_documents(want, app)
                note = f"re-apply: keeping the {want} replicas the cluster has"
            for doc in docs:
                self.kube.apply(doc)
                self.progress("progress", f"applied {doc['kind']} {doc['metadata']['name']}", {"kind": doc["kind"]})
            self.progress("log", note, {"replicas": want})
            return want

        return await asyncio.to_thread(run)

    async def wait_ready(self) -> int:
        """Until the Deployment's wanted replicas are all Ready; a progress event per replica."""
        seen: dict[str, str] = {}
        state: dict[str, Any] = {"want": 0, "ready": 0}

        app = self.identity

        def check() -> int | None:
            dep = self.kube.get("apps/v1", "Deployment", app.deployment, app.namespace)
            if dep is None:
                raise K3dtuiError(f"Deployment {app.namespace}/{app.deployment} disappeared while waiting for it")
            want = int((dep.get("spec") or {}).get("replicas", 1))
            pods = self.kube.list("v1", "Pod", app.namespace, app.label_selector)
            ready = [p for p in pods if pod_ready(p)]
            current = {str(p["metadata"]["name"]) for p in pods}
            for pod in pods:
                name = str(pod["metadata"]["name"])
                node = str((pod.get("spec") or {}).get("nodeName") or "")
                status = "Ready" if pod_ready(pod) else pod_view(pod).status
                if seen.get(name) != status:
                    seen[name] = status
                    if status == "Ready":
                        n_ready = sum(1 for n in current if seen.get(n) == "Ready")
                        self.progress(
                            "progress",
                            f"pod {name} Ready on {node or '?'} ({n_ready}/{want})",
                            {"pod": name, "node": node, "ready": n_ready, "want": want},
                        )
                    else:
                        self.progress("log", f"pod {name}: {status}" + (f" on {node}" if node else ""), {"pod": name})
            state.update(want=want, ready=len(ready))
            dep_status = dep.get("status") or {}
            updated = int(dep_status.get("updatedReplicas") or 0)
            if len(ready) >= want and (updated >= want or not dep_status):
                return len(ready)
            return None

        # checked often: each replica turning Ready is reported as it happens
        return await poll(
            check,
            max_interval=0.1,
            timeout=self.timeouts.ready,
            on_timeout=lambda: K3dtuiError(
                f"only {state['ready']}/{state['want']} replicas of {app.deployment} became Ready "
                f"within {self.timeouts.ready:.0f}s",
                f"look at `kubectl describe pods -l {app.label_selector}` (image imported? probes failing?)",
            ),
        )

    def _pending_causes(self) -> str:
        causes: list[str] = []
        app = self.identity
        try:
            pool = self.kube.try_get("metallb.io/v1beta1", "IPAddressPool", app.pool, app.metallb_namespace)
            if pool is None:
                causes.append(f"no IPAddressPool {app.pool} (MetalLB has nothing to assign from)")
            svclb = [
                str(d["metadata"]["name"])
                for d in self.kube.list("apps/v1", "DaemonSet")
                if str(d["metadata"]["name"]).startswith("svclb-")
            ]
            if svclb:
                causes.append(f"ServiceLB is on ({', '.join(svclb)})")
        except K3dtuiError:
            pass
        generic = "no pool or L2Advertisement, the pool refused by MetalLB's webhook, or ServiceLB still on"
        return ("; ".join(causes) + f" (likely causes: {generic})") if causes else f"likely causes: {generic}"

    async def wait_external_ip(self) -> str:
        next_note = [0.0]

        def check() -> str | None:
            svc = self.kube.get("v1", "Service", self.identity.service, self.identity.namespace)
            return service_ip(svc)

        def tick(elapsed: float) -> None:
            if elapsed >= next_note[0]:
                self.progress("log", f"EXTERNAL-IP <pending> ({elapsed:.0f}s)", {"pending": round(elapsed, 1)})
                next_note[0] = elapsed + 2.0

        try:
            ip = await poll(
                check,
                timeout=self.timeouts.external_ip,
                tick=tick,
                on_timeout=lambda: _PendingTimeout("no external IP yet"),
            )
        except _PendingTimeout:
            causes = await asyncio.to_thread(self._pending_causes)
            raise K3dtuiError(
                f"Service {self.identity.service} still has no EXTERNAL-IP after "
                f"{self.timeouts.external_ip:.0f}s: {causes}",
                f"check `kubectl -n {self.identity.metallb_namespace} get ipaddresspools,l2advertisements,pods`, then run `k3dtui up` again",
            ) from None
        self.progress("progress", f"EXTERNAL-IP {ip}", {"external_ip": ip})
        return ip

    async def probe(
        self,
        ip: str,
        dial: Callable[[str, int], tuple[str, int]],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> str:
        """GET ``http://<dial>/`` until a pod answers with ``X-Pod``; returns that URL."""
        import httpx

        loop = asyncio.get_running_loop()
        start = loop.time()
        delay = 0.05
        last = "no answer yet"
        attempts = 0
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            while True:
                attempts += 1
                url = ""
                try:
                    host, port = dial(ip, self.identity.service_port)
                    url = f"http://{host}:{port}/"
                    resp = await client.get(url, headers={"Connection": "close"})
                    pod = resp.headers.get("x-pod")
                    if resp.status_code == 200 and pod:
                        self.progress(
                            "progress",
                            f"{url} answered from pod {pod} on {resp.headers.get('x-node', '?')}",
                            {"url": url, "pod": pod, "node": resp.headers.get("x-node", "")},
                        )
                        return url
                    last = f"HTTP {resp.status_code} without X-Pod"
                except (httpx.HTTPError, OSError) as exc:
                    last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                except K3dtuiError as exc:
                    last = exc.message
                elapsed = loop.time() - start
                if elapsed >= self.timeouts.probe:
                    raise K3dtuiError(
                        f"the app did not answer at {url or ip} within {self.timeouts.probe:.0f}s "
                        f"({attempts} tries; last: {last})",
                        "check the pods and the Service (`k3dtui status`); on macOS/Windows the "
                        "external IP is not routable from the host",
                    )
                if attempts in (1, 10) or attempts % 40 == 0:
                    self.progress("log", f"waiting for {url or ip} to answer ({last})", {"attempt": attempts})
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
