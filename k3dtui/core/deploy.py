"""The app: its manifests (Deployment ``fastapi`` + Service ``fastapi-service``), applied
server-side; the waits for every replica Ready and for the external IP; the probe through
the provider's dial address until a pod answers.

``replicas`` comes from the spec on the first apply only. A re-apply sends the replica count
the cluster has now (so it never undoes a scale, and k3dtui never drops ownership of the
field, which would reset it to 1 on a real API server).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k3dtui import resources
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.kubeapply import Kube
from k3dtui.core.metallb import NAMESPACE as METALLB_NAMESPACE
from k3dtui.core.metallb import POOL_NAME, parse_documents, poll

if TYPE_CHECKING:
    import httpx

Obj = dict[str, Any]
Progress = Callable[[str, str, Mapping[str, Any]], None]

APP_MANIFEST = "app.yaml"
IMAGE_TAG = "fastapi-random:latest"
NAMESPACE = "default"
DEPLOYMENT = "fastapi"
SERVICE = "fastapi-service"
APP_LABEL = "app=fastapi"
SERVICE_PORT = 80


def _no_progress(kind: str, message: str, data: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class DeployTimeouts:
    ready: float = 180.0
    external_ip: float = 90.0
    probe: float = 60.0


def app_documents(replicas: int | None) -> list[Obj]:
    """The app's objects from manifests/app.yaml; ``replicas`` None leaves the field out."""
    docs = [copy.deepcopy(d) for d in parse_documents(resources.manifest_text(APP_MANIFEST), "manifests/app.yaml")]
    for doc in docs:
        if doc["kind"] == "Deployment":
            spec = doc.setdefault("spec", {})
            if replicas is None:
                spec.pop("replicas", None)
            else:
                spec["replicas"] = int(replicas)
    return docs


def pod_ready(pod: Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def service_ip(svc: Obj | None) -> str | None:
    for ing in (((svc or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        ip = ing.get("ip") or ing.get("hostname")
        if ip:
            return str(ip)
    return None


class _PendingTimeout(K3dtuiError):
    pass


class AppDeployer:
    def __init__(self, kube: Kube, progress: Progress = _no_progress, timeouts: DeployTimeouts | None = None) -> None:
        self.kube = kube
        self.progress = progress
        self.timeouts = timeouts or DeployTimeouts()

    async def apply(self, replicas: int) -> int:
        """Apply the Deployment and Service; returns the replica count asked for."""

        def run() -> int:
            live = self.kube.get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE)
            if live is None:
                want = replicas
                docs = app_documents(replicas)
                note = f"first apply: {replicas} replicas"
            else:
                current = (live.get("spec") or {}).get("replicas")
                want = int(current) if current is not None else replicas
                docs = app_documents(want)
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

        def check() -> int | None:
            dep = self.kube.get("apps/v1", "Deployment", DEPLOYMENT, NAMESPACE)
            if dep is None:
                raise K3dtuiError(f"Deployment {NAMESPACE}/{DEPLOYMENT} disappeared while waiting for it")
            want = int((dep.get("spec") or {}).get("replicas", 1))
            pods = self.kube.list("v1", "Pod", NAMESPACE, APP_LABEL)
            ready = [p for p in pods if pod_ready(p)]
            current = {str(p["metadata"]["name"]) for p in pods}
            for pod in pods:
                name = str(pod["metadata"]["name"])
                node = str((pod.get("spec") or {}).get("nodeName") or "")
                status = "Ready" if pod_ready(pod) else str((pod.get("status") or {}).get("phase") or "Pending")
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
                f"only {state['ready']}/{state['want']} replicas of {DEPLOYMENT} became Ready "
                f"within {self.timeouts.ready:.0f}s",
                "look at `kubectl describe pods -l app=fastapi` (image imported? probes failing?)",
            ),
        )

    def _pending_causes(self) -> str:
        causes: list[str] = []
        try:
            pool = self.kube.try_get("metallb.io/v1beta1", "IPAddressPool", POOL_NAME, METALLB_NAMESPACE)
            if pool is None:
                causes.append(f"no IPAddressPool {POOL_NAME} (MetalLB has nothing to assign from)")
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
            svc = self.kube.get("v1", "Service", SERVICE, NAMESPACE)
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
                f"Service {SERVICE} still has no EXTERNAL-IP after {self.timeouts.external_ip:.0f}s: {causes}",
                "check `kubectl -n metallb-system get ipaddresspools,l2advertisements,pods`, then run `k3dtui up` again",
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
                    host, port = dial(ip, SERVICE_PORT)
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
