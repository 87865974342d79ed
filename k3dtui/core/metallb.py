"""MetalLB: the pinned manifest (download, sha256, cache or a user's file), its install by
server-side apply object by object, the waits that make it usable, and the address pool.

The pool is applied through MetalLB's validating webhook, which refuses for a while after
the controller turns Ready (its readiness probe is ``/metrics``, not the webhook): those
refusals are retried with back-off until a hard timeout that names the webhook.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml

from k3dtui import resources
from k3dtui.core import paths
from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeapply import ApiRefused, ApiUnreachable, Kube, describe

if TYPE_CHECKING:
    import httpx

Obj = dict[str, Any]
T = TypeVar("T")

METALLB_VERSION = "v0.15.2"
METALLB_URL = (
    "https://raw.githubusercontent.com/metallb/metallb/v0.15.2/config/manifests/metallb-native.yaml"
)
METALLB_SHA256 = "a1b04c376fb39c93265f551fe23716a3ae6e09b790edb3bf257d3fc784c35a18"
POOL_WEBHOOK = "ipaddresspoolvalidationwebhook.metallb.io"
WEBHOOK_CONFIGURATION = "metallb-webhook-configuration"
WEBHOOK_SERVICE = "metallb-webhook-service"
MINIMAL_MANIFEST = "metallb-minimal.yaml"
MAX_RETRY_DELAY = 0.1  # the webhook race is short: retry often (bounded by Timeouts.webhook)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Origin = Literal["path", "cache", "download", "minimal"]
Progress = Callable[[str, str, Mapping[str, Any]], None]
"""(kind, message, data): kind is "log", "progress" or "warning"."""


def _no_progress(kind: str, message: str, data: Mapping[str, Any]) -> None:
    return None


# -- the manifest ------------------------------------------------------------------------------


class ChecksumMismatch(K3dtuiError):
    """A manifest whose sha256 is not the pinned one."""

    def __init__(self, where: str, actual: str, expected: str, *, usage: bool) -> None:
        super().__init__(
            f"MetalLB manifest {where} has sha256 {actual}, expected {expected} "
            f"(metallb-native.yaml {METALLB_VERSION}); refusing it",
            "pass the v0.15.2 metallb-native.yaml, or add --insecure-skip-verify to use this file anyway",
        )
        self.actual = actual
        self.expected = expected
        if usage:
            self.exit_code = UsageError.exit_code


@dataclass(frozen=True)
class Manifest:
    text: str
    origin: Origin
    location: str  # the path or URL it came from
    sha256: str
    verified: bool
    documents: tuple[Obj, ...] = field(default_factory=tuple)

    @property
    def crd_names(self) -> list[str]:
        return [
            str(d["metadata"]["name"]) for d in self.documents if d.get("kind") == "CustomResourceDefinition"
        ]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_documents(text: str, where: str) -> tuple[Obj, ...]:
    """The YAML documents of a manifest (empty ones dropped), each a Kubernetes object."""
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise K3dtuiError(f"{where} is not valid YAML: {exc}".splitlines()[0]) from exc
    docs: list[Obj] = []
    for i, doc in enumerate(raw):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            docs.extend(dict(item) for item in doc["items"])
            continue
        if (
            not isinstance(doc, dict)
            or not doc.get("apiVersion")
            or not doc.get("kind")
            or not (doc.get("metadata") or {}).get("name")
        ):
            raise K3dtuiError(
                f"{where}: document {i + 1} is not a Kubernetes object (apiVersion, kind and metadata.name needed)"
            )
        docs.append(doc)
    if not docs:
        raise K3dtuiError(f"{where} holds no Kubernetes objects")
    return tuple(docs)


def _manifest(data: bytes, origin: Origin, location: str, verified: bool) -> Manifest:
    text = data.decode("utf-8")
    return Manifest(
        text=text,
        origin=origin,
        location=location,
        sha256=sha256_hex(data),
        verified=verified,
        documents=parse_documents(text, location),
    )


def read_user_manifest(path: Path, *, verify: bool = True) -> Manifest:
    """A manifest from ``--metallb-manifest PATH``: must exist; sha256-checked unless told not to."""
    if not path.is_file():
        raise UsageError(
            f"--metallb-manifest {path}: no such file",
            "give the path of a downloaded metallb-native.yaml (v0.15.2), or leave the option out to download it",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--metallb-manifest {path}: cannot read it ({exc.strerror})") from exc
    digest = sha256_hex(data)
    if verify and digest != METALLB_SHA256:
        raise ChecksumMismatch(str(path), digest, METALLB_SHA256, usage=True)
    try:
        return _manifest(data, "path", str(path), verify)
    except K3dtuiError as exc:
        raise UsageError(exc.message, exc.hint) from exc


def cached_manifest_path() -> Path:
    return paths.cache_dir() / "metallb" / METALLB_VERSION / "metallb-native.yaml"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_upstream(
    *,
    url: str = METALLB_URL,
    timeout: float = 20.0,
    transport: httpx.BaseTransport | None = None,
    progress: Progress = _no_progress,
) -> Manifest:
    """The pinned upstream manifest: from the cache when it verifies, else downloaded, verified
    and cached. Raises ``K3dtuiError`` when it cannot be had or does not verify."""
    cached = cached_manifest_path()
    if cached.is_file():
        data = cached.read_bytes()
        if sha256_hex(data) == METALLB_SHA256:
            progress("log", f"using the cached MetalLB {METALLB_VERSION} manifest ({cached})", {"path": str(cached)})
            return _manifest(data, "cache", str(cached), True)
        progress("warning", f"the cached MetalLB manifest {cached} does not verify; downloading it again", {})
        cached.unlink(missing_ok=True)
    import httpx

    progress("log", f"downloading {url}", {"url": url})
    try:
        with httpx.Client(transport=transport, timeout=timeout, follow_redirects=True) as client:
            resp = client.get(url)
            resp.raise_for_status()
            data = resp.content
    except httpx.HTTPError as exc:
        raise K3dtuiError(
            f"cannot download the MetalLB {METALLB_VERSION} manifest from {url}: {str(exc) or type(exc).__name__}",
            "download it on a connected machine and pass --metallb-manifest PATH",
        ) from exc
    digest = sha256_hex(data)
    if digest != METALLB_SHA256:
        raise ChecksumMismatch(url, digest, METALLB_SHA256, usage=False)
    _write_atomic(cached, data)
    progress("log", f"verified sha256 and cached it at {cached}", {"path": str(cached)})
    return _manifest(data, "download", url, True)


def minimal_manifest() -> Manifest:
    """k3dtui's own minimal MetalLB (for the simulated cluster when offline)."""
    text = resources.manifest_text(MINIMAL_MANIFEST)
    return _manifest(text.encode("utf-8"), "minimal", f"manifests/{MINIMAL_MANIFEST}", False)


def resolve_manifest(
    path: Path | None,
    *,
    insecure_skip_verify: bool = False,
    allow_minimal: bool = False,
    progress: Progress = _no_progress,
    transport: httpx.BaseTransport | None = None,
) -> Manifest:
    """The manifest to install: the user's file, else the pinned upstream one (cache or
    download), else (``allow_minimal``: the simulated cluster) k3dtui's minimal one."""
    if path is not None:
        manifest = read_user_manifest(path, verify=not insecure_skip_verify)
        if not manifest.verified:
            progress("warning", f"--insecure-skip-verify: not checking {path} (sha256 {manifest.sha256})", {})
        return manifest
    try:
        return fetch_upstream(transport=transport, progress=progress)
    except ChecksumMismatch:
        raise
    except K3dtuiError as exc:
        if not allow_minimal:
            raise
        progress(
            "warning",
            f"the upstream MetalLB manifest cannot be had ({exc.message}); "
            f"installing k3dtui's minimal MetalLB manifest instead (simulated cluster only)",
            {"fallback": "minimal"},
        )
        return minimal_manifest()


def pool_documents(pool_range: str, identity: AppIdentity = APP) -> list[Obj]:
    """The IPAddressPool and L2Advertisement (manifests/metallb-pool.yaml) for ``A-B``, named
    by ``identity`` (the L2Advertisement announces that one pool)."""
    docs = [
        copy.deepcopy(d)
        for d in parse_documents(resources.manifest_text("metallb-pool.yaml"), "manifests/metallb-pool.yaml")
    ]
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = identity.metallb_namespace
        if doc["kind"] == "IPAddressPool":
            meta["name"] = identity.pool
            doc.setdefault("spec", {})["addresses"] = [pool_range]
        elif doc["kind"] == "L2Advertisement":
            meta["name"] = identity.l2advertisement
            doc.setdefault("spec", {})["ipAddressPools"] = [identity.pool]
    return docs


# -- waiting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    crds: float = 60.0
    # the controller and speaker images are pulled inside the cluster on a first run: sized
    # for a slow link (their pull progress is shown from the pods' events meanwhile)
    controller: float = 420.0
    speaker: float = 420.0
    webhook: float = 120.0


async def poll(
    check: Callable[[], T | None],
    *,
    timeout: float,
    on_timeout: Callable[[], K3dtuiError],
    interval: float = 0.05,
    max_interval: float = 0.25,
    tick: Callable[[float], Awaitable[None] | None] | None = None,
) -> T:
    """Run ``check`` (in a worker thread) until it returns something not None, backing off
    from ``interval`` to ``max_interval``; raise ``on_timeout()`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    delay = interval
    while True:
        result = await asyncio.to_thread(check)
        if result is not None:
            return result
        elapsed = loop.time() - start
        if elapsed >= timeout:
            raise on_timeout()
        if tick is not None:
            maybe = tick(elapsed)
            if maybe is not None:
                await maybe
        await asyncio.sleep(min(delay, max(0.0, timeout - elapsed)))
        delay = min(delay * 1.6, max_interval)


def _condition(obj: Obj, kind: str) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return True
    return False


def deployment_available(obj: Obj | None) -> bool:
    if not obj:
        return False
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    gen = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if gen is not None and observed is not None and int(observed) < int(gen):
        return False
    return int(status.get("availableReplicas") or 0) >= want and int(status.get("readyReplicas") or 0) >= want


def daemonset_ready(obj: Obj | None) -> bool:
    if not obj:
        return False
    status = obj.get("status") or {}
    desired = int(status.get("desiredNumberScheduled") or 0)
    return desired > 0 and int(status.get("numberReady") or 0) == desired


def is_webhook_refusal(exc: ApiRefused) -> bool:
    """A refusal caused by MetalLB's webhook not serving yet (the install race)."""
    text = f"{exc.body} {exc.message}".lower()
    if "failed calling webhook" in text:
        return True
    busy = "connection refused" in text or "no endpoints available" in text or "webhook" in text
    return exc.status in (500, 502, 503, 504) and busy


class MetalLBInstaller:
    """Install MetalLB into a cluster and apply k3dtui's pool, reporting progress."""

    def __init__(
        self,
        kube: Kube,
        progress: Progress = _no_progress,
        timeouts: Timeouts | None = None,
        identity: AppIdentity = APP,
    ) -> None:
        self.kube = kube
        self.progress = progress
        self.timeouts = timeouts or Timeouts()
        self.identity = identity
        self.namespace = identity.metallb_namespace

    async def installed(self) -> bool:
        """True when a previous install got through (its last object, the webhook
        configuration, exists, and so does the controller Deployment)."""

        def check() -> bool:
            vwc = self.kube.try_get(
                "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", WEBHOOK_CONFIGURATION
            )
            if vwc is None:
                return False
            return self.kube.try_get("apps/v1", "Deployment", "controller", self.namespace) is not None

        return await asyncio.to_thread(check)

    async def servicelb_daemonsets(self) -> list[str]:
        """Names of ``svclb-*`` DaemonSets (ServiceLB still on), in any namespace."""

        def check() -> list[str]:
            items = self.kube.list("apps/v1", "DaemonSet")
            return sorted(
                f"{(d.get('metadata') or {}).get('namespace')}/{(d.get('metadata') or {}).get('name')}"
                for d in items
                if str((d.get("metadata") or {}).get("name", "")).startswith("svclb-")
            )

        return await asyncio.to_thread(check)

    async def check_servicelb(self) -> None:
        found = await self.servicelb_daemonsets()
        if found:
            self.progress(
                "warning",
                f"ServiceLB is still on in this cluster ({', '.join(found)}): it fights MetalLB over "
                "the Service status and EXTERNAL-IP will flap; recreate the cluster with "
                "--k3s-arg '--disable=servicelb@server:*' (k3dtui's own clusters have it off)",
                {"svclb": found},
            )

    async def apply_manifest(self, manifest: Manifest) -> None:
        total = len(manifest.documents)
        for i, doc in enumerate(manifest.documents, start=1):
            await asyncio.to_thread(self.kube.apply, doc)
            self.progress(
                "progress",
                f"applied {describe(doc)} ({i}/{total})",
                {"index": i, "total": total, "kind": doc["kind"], "name": doc["metadata"]["name"]},
            )

    async def wait_crds(self, names: list[str]) -> None:
        pending = list(names)

        def check() -> bool | None:
            for name in list(pending):
                crd = self.kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                if crd is not None and _condition(crd, "Established"):
                    pending.remove(name)
                    self.progress("progress", f"CRD {name} established", {"crd": name})
            return True if not pending else None

        await poll(
            check,
            timeout=self.timeouts.crds,
            on_timeout=lambda: K3dtuiError(
                f"MetalLB's CRDs were not established within {self.timeouts.crds:.0f}s: {', '.join(pending)}",
                "check the API server (`kubectl get crd`), then run `k3dtui up` again",
            ),
        )

    def _pull_events(self) -> Callable[[], None]:
        """A callable that reports the metallb-system pods' new image-pull events."""
        from k3dtui.core.podpulls import PodPullEvents

        events = PodPullEvents(lambda: self.kube.list("v1", "Event", self.namespace))

        def report() -> None:
            for line in events.new_lines():
                self.progress("log", line, {"pull": line})

        return report

    async def wait_controller(self) -> None:
        pulls = self._pull_events()

        def check() -> bool | None:
            pulls()
            dep = self.kube.get("apps/v1", "Deployment", "controller", self.namespace)
            return True if deployment_available(dep) else None

        await poll(
            check,
            timeout=self.timeouts.controller,
            on_timeout=lambda: K3dtuiError(
                f"MetalLB's controller Deployment was not available within {self.timeouts.controller:.0f}s",
                "look at `kubectl -n metallb-system get pods` (image pull? scheduling?), then run `k3dtui up` again",
            ),
        )
        self.progress("progress", "controller Deployment available", {"deployment": "controller"})

    async def wait_speaker(self) -> None:
        last: list[str] = [""]
        pulls = self._pull_events()

        def check() -> bool | None:
            pulls()
            ds = self.kube.get("apps/v1", "DaemonSet", "speaker", self.namespace)
            status = (ds or {}).get("status") or {}
            now = f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)}"
            if now != last[0]:
                last[0] = now
                self.progress("log", f"speaker DaemonSet {now} ready", {"ready": now})
            return True if daemonset_ready(ds) else None

        await poll(
            check,
            timeout=self.timeouts.speaker,
            on_timeout=lambda: K3dtuiError(
                f"MetalLB's speaker DaemonSet was not ready within {self.timeouts.speaker:.0f}s ({last[0]} ready)",
                "look at `kubectl -n metallb-system get pods -l component=speaker`, then run `k3dtui up` again",
            ),
        )
        self.progress("progress", f"speaker DaemonSet ready ({last[0]})", {"daemonset": "speaker"})

    async def install(self, manifest: Manifest) -> None:
        await self.check_servicelb()
        await self.apply_manifest(manifest)
        await self.wait_crds(manifest.crd_names)
        await self.wait_controller()
        await self.wait_speaker()

    async def wait_ready(self, manifest_crds: list[str] | None = None) -> None:
        """For an existing install: the same waits, without applying anything."""
        crds = manifest_crds or ["ipaddresspools.metallb.io", "l2advertisements.metallb.io"]
        await self.wait_crds(crds)
        await self.wait_controller()
        await self.wait_speaker()

    def webhook_endpoints_ready(self) -> bool | None:
        """True when an EndpointSlice of the webhook Service has a ready endpoint; None when
        EndpointSlices cannot be read (the retry loop alone then handles the race)."""
        try:
            slices = self.kube.list(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                self.namespace,
                f"kubernetes.io/service-name={WEBHOOK_SERVICE}",
            )
        except ApiRefused:
            return None
        except K3dtuiError as exc:
            if isinstance(exc, ApiUnreachable):
                raise
            return None
        for sl in slices:
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is not False and ep.get("addresses"):
                    return True
        return False

    async def wait_webhook_endpoints(self) -> None:
        """Until the webhook Service has a ready endpoint (soft: bounded, then carry on)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = min(self.timeouts.webhook, 60.0)
        delay = 0.05
        noted = False
        while True:
            state = await asyncio.to_thread(self.webhook_endpoints_ready)
            if state is None:
                return
            if state:
                if noted:
                    self.progress("log", f"{WEBHOOK_SERVICE} has a ready endpoint", {})
                return
            if loop.time() - start >= limit:
                self.progress(
                    "warning", f"{WEBHOOK_SERVICE} has no ready endpoint after {limit:.0f}s; trying anyway", {}
                )
                return
            if not noted:
                self.progress("log", f"waiting for a ready endpoint of {WEBHOOK_SERVICE}", {})
                noted = True
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, MAX_RETRY_DELAY)

    async def apply_pool(self, pool_range: str) -> None:
        """Apply the IPAddressPool and L2Advertisement, retrying while the webhook refuses."""
        loop = asyncio.get_running_loop()
        timeout = self.timeouts.webhook
        await self.wait_webhook_endpoints()
        for doc in pool_documents(pool_range, self.identity):
            start = loop.time()
            delay = 0.05
            attempt = 0
            while True:
                attempt += 1
                try:
                    await asyncio.to_thread(self.kube.apply, doc)
                    break
                except ApiRefused as exc:
                    if not is_webhook_refusal(exc):
                        raise
                    waited = loop.time() - start
                    if waited + delay > timeout:
                        raise K3dtuiError(
                            f"MetalLB's admission webhook {POOL_WEBHOOK} still refused {describe(doc)} "
                            f"after {waited:.1f}s ({attempt} tries): {exc.message.split(': ', 1)[-1]}",
                            "check `kubectl -n metallb-system get pods,endpointslices` (is the controller "
                            "serving its webhook?), then run `k3dtui up` again; do not delete the webhook",
                        ) from exc
                    if attempt == 1 or attempt % 5 == 0:
                        self.progress(
                            "log",
                            f"webhook {POOL_WEBHOOK} not serving yet ({waited:.1f}s, try {attempt}); "
                            f"retrying {describe(doc)}",
                            {"attempt": attempt, "retry_in": round(delay, 3), "waited": round(waited, 3)},
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, MAX_RETRY_DELAY)
            self.progress(
                "progress",
                f"applied {describe(doc)}" + (f" after {attempt} tries" if attempt > 1 else ""),
                {"kind": doc["kind"], "attempts": attempt, "range": pool_range},
            )
