"""Carry a cluster deployed by an earlier k3dtui over to the app's current names.

Earlier k3dtui named the Deployment ``fastapi``, the IPAddressPool ``k3dtui-pool`` and the
L2Advertisement ``k3dtui-l2`` (``AppIdentity.legacy``). ``carry_over_legacy`` finds those,
puts the same things in place under the current names (the Deployment with the replica
count it had, the pool with the range it had) and deletes the old objects, so nothing is
left behind. Only objects k3dtui made are touched: they carry its
``app.kubernetes.io/managed-by`` label or its field manager, or have exactly the shape it
gave them; anything else under an old name is left alone, with a warning.

Order matters for MetalLB: its webhook refuses a second pool overlapping the first, so the
old L2Advertisement and pool are deleted before the new ones are applied (the Service keeps
or gets back its address from the same range). The Deployment is the other way round: the
new one is applied first, then the old one deleted, so the Service (which selects on the
``app`` label both share) keeps endpoints.

Synchronous, like ``Kube``: the pipeline runs it in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from k3dtui.core.deploy import app_documents
from k3dtui.core.identity import AppIdentity
from k3dtui.core.kubeapply import FIELD_MANAGER, Kube
from k3dtui.core.kubeerrors import ApiRefused
from k3dtui.core.metallb import is_webhook_refusal, pool_documents

Obj = dict[str, Any]
Progress = Callable[[str, str, Mapping[str, Any]], None]
"""(kind, message, data): kind is "log", "progress" or "warning" (as the pipeline's steps)."""

MANAGED_BY = "app.kubernetes.io/managed-by"
METALLB_GROUP = "metallb.io/v1beta1"
WEBHOOK_WAIT = 60.0  # seconds to wait for MetalLB's webhook to accept the new pool


def made_by_k3dtui(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` carries k3dtui's label or was written by its field manager."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY) == FIELD_MANAGER:
        return True
    return any((m or {}).get("manager") == FIELD_MANAGER for m in meta.get("managedFields") or [])


def _legacy_deployment_shape(obj: Mapping[str, Any], identity: AppIdentity) -> bool:
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return (
        selector == identity.labels
        and len(containers) == 1
        and (containers[0] or {}).get("image") == identity.image
    )


def _legacy_pool_shape(obj: Mapping[str, Any]) -> bool:
    addresses = (obj.get("spec") or {}).get("addresses") or []
    return len(addresses) == 1 and "-" in str(addresses[0])


def _legacy_l2_shape(obj: Mapping[str, Any], identity: AppIdentity) -> bool:
    return ((obj.get("spec") or {}).get("ipAddressPools") or []) == [identity.legacy.pool]


def _no_progress(kind: str, message: str, data: Mapping[str, Any]) -> None:
    return None


def carry_over_legacy(kube: Kube, identity: AppIdentity, progress: Progress = _no_progress) -> list[str]:
    """Replace the objects an earlier k3dtui made under the legacy names; returns what was done,
    one line each (also reported through ``progress``). Nothing to do → ``[]``."""
    done: list[str] = []

    def report(kind: str, message: str, data: Mapping[str, Any]) -> None:
        if kind != "warning":
            done.append(message)
        progress(kind, message, {"carry_over": True, **data})

    _carry_over_pool(kube, identity, report)
    _carry_over_deployment(kube, identity, report)
    return done


def _carry_over_deployment(kube: Kube, identity: AppIdentity, report: Progress) -> None:
    old_name, ns = identity.legacy.deployment, identity.namespace
    if old_name == identity.deployment:
        return
    old = kube.try_get("apps/v1", "Deployment", old_name, ns)
    if old is None:
        return
    if not (made_by_k3dtui(old) or _legacy_deployment_shape(old, identity)):
        report(
            "warning",
            f"a Deployment {old_name} that k3dtui did not create is in namespace {ns}; left alone",
            {"kind": "Deployment", "name": old_name},
        )
        return
    replicas = (old.get("spec") or {}).get("replicas")
    kept = int(replicas) if isinstance(replicas, int) else 1
    new = kube.try_get("apps/v1", "Deployment", identity.deployment, ns)
    if new is None:
        for doc in app_documents(kept, identity):
            if doc["kind"] == "Deployment":
                kube.apply(doc)
        report(
            "progress",
            f"carried the Deployment {old_name} over to {identity.deployment} ({kept} replicas kept)",
            {"kind": "Deployment", "from": old_name, "to": identity.deployment, "replicas": kept},
        )
    kube.delete("apps/v1", "Deployment", old_name, ns)
    report(
        "progress",
        f"deleted the old Deployment {old_name} (its pods end gracefully)",
        {"kind": "Deployment", "deleted": old_name},
    )


def _carry_over_pool(kube: Kube, identity: AppIdentity, report: Progress) -> None:
    legacy, ns = identity.legacy, identity.metallb_namespace
    if (legacy.pool, legacy.l2advertisement) == (identity.pool, identity.l2advertisement):
        return
    old_pool = kube.try_get(METALLB_GROUP, "IPAddressPool", legacy.pool, ns)
    old_l2 = kube.try_get(METALLB_GROUP, "L2Advertisement", legacy.l2advertisement, ns)
    if old_pool is not None and not (made_by_k3dtui(old_pool) or _legacy_pool_shape(old_pool)):
        report(
            "warning",
            f"an IPAddressPool {legacy.pool} that k3dtui did not create is in {ns}; left alone",
            {"kind": "IPAddressPool", "name": legacy.pool},
        )
        old_pool = None
    if old_l2 is not None and not (made_by_k3dtui(old_l2) or _legacy_l2_shape(old_l2, identity)):
        report(
            "warning",
            f"an L2Advertisement {legacy.l2advertisement} that k3dtui did not create is in {ns}; left alone",
            {"kind": "L2Advertisement", "name": legacy.l2advertisement},
        )
        old_l2 = None
    if old_pool is None and old_l2 is None:
        return
    addresses = ((old_pool or {}).get("spec") or {}).get("addresses") or []
    pool_range = str(addresses[0]) if len(addresses) == 1 else ""
    # MetalLB refuses overlapping pools: the old ones go first
    if old_l2 is not None:
        kube.delete(METALLB_GROUP, "L2Advertisement", legacy.l2advertisement, ns)
        report(
            "progress",
            f"deleted the old L2Advertisement {legacy.l2advertisement}",
            {"kind": "L2Advertisement", "deleted": legacy.l2advertisement},
        )
    if old_pool is not None:
        kube.delete(METALLB_GROUP, "IPAddressPool", legacy.pool, ns)
        report(
            "progress",
            f"deleted the old IPAddressPool {legacy.pool}",
            {"kind": "IPAddressPool", "deleted": legacy.pool},
        )
    if not pool_range:
        return  # nothing to carry (an L2Advertisement alone); the pool step applies the new ones
    if kube.try_get(METALLB_GROUP, "IPAddressPool", identity.pool, ns) is not None:
        return  # already there (an earlier, interrupted carry-over): the pool step decides its range
    for doc in pool_documents(pool_range, identity):
        _apply_through_webhook(kube, doc)
    report(
        "progress",
        f"carried the pool {legacy.pool} over to {identity.pool} (range {pool_range} kept), "
        f"advertised by {identity.l2advertisement}",
        {"kind": "IPAddressPool", "from": legacy.pool, "to": identity.pool, "range": pool_range},
    )


def _apply_through_webhook(kube: Kube, doc: Obj, timeout: float = WEBHOOK_WAIT) -> None:
    """Apply, retrying while MetalLB's admission webhook is not serving (bounded)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            kube.apply(doc)
            return
        except ApiRefused as exc:
            if not is_webhook_refusal(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


__all__ = ["carry_over_legacy", "made_by_k3dtui"]
