"""The disruption controller (pkg/controller/disruption/disruption.go): every
PodDisruptionBudget's status (currentHealthy, desiredHealthy, expectedPods,
disruptionsAllowed and the DisruptionAllowed condition) follows its pods, so
``kubectl get pdb`` shows ALLOWED DISRUPTIONS. The numbers come from
:mod:`k3dtui.sim.registry.disruption`, which the Eviction subresource checks too."""

from __future__ import annotations

from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.controllers.base import Controller
from k3dtui.sim.registry import disruption
from k3dtui.sim.store import Event, Obj


class DisruptionController(Controller):
    watches = frozenset({gvrs.PODS, disruption.PDBS})

    def keys_for(self, event: Event) -> list[Any]:
        if event.gvr == disruption.PDBS:
            return [] if event.type == "DELETED" else [(event.namespace, event.name)]
        return [(str(b["metadata"].get("namespace", "")), str(b["metadata"]["name"]))
                for b in self.store.iter(disruption.PDBS) if b["metadata"].get("namespace") == event.namespace]

    def start(self) -> None:
        self.enqueue_all(disruption.PDBS)

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        pdb = self.store.peek(disruption.PDBS, ns, name)
        if pdb is None:
            self.sizes.pop(key, None)
            return
        status = disruption.status_of(self.store, pdb)
        self.sizes[key] = int(status.get("expectedPods") or 0)
        old = pdb.get("status") or {}
        for c in status["conditions"]:
            prev = next((p for p in old.get("conditions") or [] if p.get("type") == c["type"]), None)
            c["lastTransitionTime"] = (prev.get("lastTransitionTime") if prev and prev.get("status") == c["status"]
                                       else _now())
        if {k: v for k, v in old.items() if k != "disruptedPods"} == status:
            return

        def fn(obj: Obj) -> None:
            obj["status"] = status

        self.store.mutate(disruption.PDBS, ns, name, fn)


def _now() -> str:
    from k3dtui.sim.controllers import util

    return util.now()
