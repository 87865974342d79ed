"""Server-side apply and reads through the kubernetes ``DynamicClient`` (the setup pipeline's
one way of writing to a cluster).

Everything here is synchronous (the kubernetes client is); the pipeline runs these calls in
worker threads. Failures become ``K3dtuiError`` with one line saying what failed: an API
refusal keeps the server's message, an unreachable API server says so and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from k3dtui.core import paths
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.kubeerrors import (
    ApiRefused,
    ApiUnreachable,
    is_status,
    server_message,
    translate_known,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.dynamic import DynamicClient

# The kubernetes client takes a noticeable part of a second to import: it is imported when
# the first ``Kube`` is made (``preload()`` does it early, in a thread, while a cluster starts).


def preload() -> None:
    """Import the kubernetes client modules ``Kube`` uses."""
    import kubernetes.dynamic  # noqa: F401

    import k3dtui.core.kube  # noqa: F401  (kubernetes.client and .config)

Obj = dict[str, Any]
T = TypeVar("T")

__all__ = ["FIELD_MANAGER", "ApiRefused", "ApiUnreachable", "Kube", "describe", "preload", "status_message"]

FIELD_MANAGER = "k3dtui"


def describe(obj: Obj) -> str:
    """``Kind namespace/name`` (or ``Kind name`` when cluster-scoped)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')} {ns}/{name}" if ns else f"{obj.get('kind', '?')} {name}"


status_message = server_message  # the name it had here


class Kube:
    """A DynamicClient bound to one kubeconfig/context, with the calls the pipeline needs."""

    def __init__(self, kubeconfig: Path, context: str | None = None, *, discovery_from: Kube | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        from k3dtui.core.kube import make_api_client

        self.api_client: ApiClient = make_api_client(kubeconfig, context)
        self.api_client.configuration.retries = 0
        self.host = str(self.api_client.configuration.host)
        # Discovery is cached per client (the client library writes its cache file without
        # locking; two clients sharing one would read each other's half-written files).
        digest = hashlib.sha256(self.host.encode()).hexdigest()[:12]
        root = paths.cache_dir() / "discovery"
        root.mkdir(parents=True, exist_ok=True)
        self._cache_dir = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=root))
        self._cache_file = self._cache_dir / "discovery.json"
        self._dyn: DynamicClient | None = None
        if discovery_from is not None and discovery_from.host == self.host and discovery_from._dyn is not None:
            # a copy of another client's finished discovery (it is written once discovery
            # ends): no second round of discovery requests; kinds missing from it (CRDs
            # added since) are discovered again by the client library as for any client
            with contextlib.suppress(OSError, ValueError):
                data = discovery_from._cache_file.read_bytes()
                json.loads(data)  # not caught mid-write by the other client's thread
                self._cache_file.write_bytes(data)

    # -- plumbing -------------------------------------------------------------------------
    def guard(self, doing: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` turning client exceptions into k3dtui errors that say what was being done."""
        try:
            return fn()
        except K3dtuiError:
            raise
        except Exception as exc:
            err = translate_known(
                exc,
                doing,
                host=self.host,
                unreachable_hint="check the cluster is running (`k3dtui status`), then run `k3dtui up` again",
            )
            if err is None:
                raise
            raise err from exc

    @property
    def dyn(self) -> DynamicClient:
        if self._dyn is None:
            from kubernetes.dynamic import DynamicClient

            self._dyn = self.guard(
                "reading the API server's discovery",
                lambda: DynamicClient(self.api_client, cache_file=str(self._cache_file)),
            )
        return self._dyn

    def resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        def find() -> Any:
            try:
                return self.dyn.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise K3dtuiError(
                    f"the API server does not serve {kind} ({api_version})",
                    "for a custom resource, its CustomResourceDefinition must be established first",
                ) from exc

        return self.guard(f"looking up {kind} ({api_version})", find)

    # -- calls -----------------------------------------------------------------------------
    def apply(self, obj: Obj) -> Obj:
        """Server-side apply ``obj`` (field manager ``k3dtui``, force on conflicts)."""
        raw_meta = obj.get("metadata")
        meta: Obj = raw_meta if isinstance(raw_meta, dict) else {}
        kind, name = obj.get("kind"), meta.get("name")
        if not obj.get("apiVersion") or not kind or not name:
            missing = [f for f, v in (("apiVersion", obj.get("apiVersion")), ("kind", kind), ("metadata.name", name))
                       if not v]
            raise K3dtuiError(
                f"a manifest object ({kind or '?'} {name or '?'}) has no {', '.join(missing)}",
                "fix that document in the manifest (every object needs apiVersion, kind and metadata.name)",
            )
        res = self.resource(str(obj["apiVersion"]), str(kind))
        if res.namespaced and not meta.get("namespace"):
            raise K3dtuiError(
                f"{kind} {name} in the manifest has no metadata.namespace, but {kind} is namespaced",
                "add metadata.namespace to it in the manifest (MetalLB's objects go in metallb-system)",
            )

        def call() -> Obj:
            out = self.dyn.server_side_apply(
                res,
                body=obj,
                name=meta.get("name"),
                namespace=meta.get("namespace") if res.namespaced else None,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            return dict(out.to_dict())

        return self.guard(f"applying {describe(obj)}", call)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        res = self.resource(api_version, kind)

        def call() -> Obj | None:
            try:
                out = res.get(name=name, namespace=namespace) if res.namespaced else res.get(name=name)
            except Exception as exc:
                if is_status(exc, 404):
                    return None
                raise
            return dict(out.to_dict())

        where = f"{namespace}/{name}" if namespace else name
        return self.guard(f"reading {kind} {where}", call)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        res = self.resource(api_version, kind)

        def call() -> list[Obj]:
            kwargs: dict[str, Any] = {}
            if namespace is not None and res.namespaced:
                kwargs["namespace"] = namespace
            if label_selector:
                kwargs["label_selector"] = label_selector
            out = res.get(**kwargs)
            return [dict(item) for item in out.to_dict().get("items") or []]

        return self.guard(f"listing {kind}", call)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete one object (its dependents in the background); False when it was already gone."""
        res = self.resource(api_version, kind)

        def call() -> bool:
            kwargs: dict[str, Any] = {"name": name, "propagation_policy": "Background"}
            if res.namespaced:
                kwargs["namespace"] = namespace
            try:
                res.delete(**kwargs)
            except Exception as exc:
                if is_status(exc, 404):
                    return False
                raise
            return True

        where = f"{namespace}/{name}" if namespace else name
        return self.guard(f"deleting {kind} {where}", call)

    def try_get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """Like ``get`` but a kind the server does not serve (yet) is simply absent."""
        try:
            return self.get(api_version, kind, name, namespace)
        except ApiUnreachable:
            raise
        except ApiRefused:
            raise
        except K3dtuiError:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.close()
        shutil.rmtree(self._cache_dir, ignore_errors=True)
