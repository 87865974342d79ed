"""PodDisruptionBudgets: their status (the disruption controller,
pkg/controller/disruption/disruption.go) and the Eviction subresource's check
(pkg/registry/core/pod/storage/eviction.go): an eviction that would leave fewer healthy pods
than the budget wants is refused with 429 TooManyRequests, and the client retries.

Simplification: the expected pod count (for percentages and ``maxUnavailable``) is the number
of the budget's pods that are not being deleted, not the owning controller's scale.
"""

from __future__ import annotations

import math
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.selectors import match_selector
from k3dtui.sim.store import GVR, ApiError, Obj, Store

PDBS = GVR("policy", "v1", "poddisruptionbudgets")


def _healthy(pod: Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1] or 0)
        raw = pct * total / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    return int(value)


def pods_of(store: Store, pdb: Obj) -> list[Obj]:
    ns = str(pdb["metadata"].get("namespace", ""))
    selector = (pdb.get("spec") or {}).get("selector")
    return [p for p in store.iter(gvrs.PODS)
            if p["metadata"].get("namespace") == ns
            and match_selector(selector, dict(p["metadata"].get("labels") or {}))]


def status_of(store: Store, pdb: Obj) -> dict[str, Any]:
    """The budget's status as the disruption controller computes it."""
    pods = pods_of(store, pdb)
    expected = sum(1 for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp"))
    healthy = sum(1 for p in pods if _healthy(p))
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _int_or_percent(spec["maxUnavailable"], expected, round_up=True))
    elif spec.get("minAvailable") is not None:
        desired = _int_or_percent(spec["minAvailable"], expected, round_up=True)
    else:
        desired = 0
    allowed = max(0, healthy - desired)
    generation = int(pdb["metadata"].get("generation", 1))
    ok = allowed > 0
    return {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{
            "type": "DisruptionAllowed", "status": "True" if ok else "False",
            "reason": "SufficientPods" if ok else "InsufficientPods", "message": "",
            "observedGeneration": generation,
        }],
    }


def check_eviction(store: Store, namespace: str, name: str) -> None:
    """Raise the API's refusal when evicting the pod would violate its budget."""
    pod = store.require(gvrs.PODS, namespace, name)
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed", "Pending"):
        return  # canIgnorePDB
    labels = dict(pod["metadata"].get("labels") or {})
    budgets = [b for b in store.iter(PDBS)
               if b["metadata"].get("namespace") == namespace
               and match_selector((b.get("spec") or {}).get("selector"), labels)]
    if not budgets:
        return
    if len(budgets) > 1:
        raise ApiError(500, "InternalError",
                       "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
    pdb = budgets[0]
    st = status_of(store, pdb)
    if not _healthy(pod):
        # unhealthyPodEvictionPolicy IfHealthyBudget (the default): an unhealthy pod may go
        # when the budget is met
        if st["currentHealthy"] >= st["desiredHealthy"]:
            return
    elif st["disruptionsAllowed"] > 0:
        return
    raise ApiError(
        429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
        {"causes": [{"reason": "DisruptionBudget",
                     "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                f"{st['desiredHealthy']} healthy pods and has {st['currentHealthy']} currently"}]})
