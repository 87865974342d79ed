"""Subresources: scale, status and finalize writes, binding and eviction (log: :mod:`.logs`)."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from k3dtui.sim.apiserver.crud import Crud
from k3dtui.sim.apiserver.errors import bad_request, success_status
from k3dtui.sim.kinds import Kind
from k3dtui.sim.registry import pods
from k3dtui.sim.selectors import format_label_selector
from k3dtui.sim.store import ApiError, Obj, modified_conflict


class Subresources(Crud):
    """scale, status and finalize writes, binding (eviction is a delete)."""

    def _replace_sub(self, kind: Kind, ns: str, name: str, sub: str, body: Any, request: web.Request) -> Obj:
        """PUT on ``scale``, ``status`` or ``finalize``."""
        old = self.store.require(kind.gvr, ns, name)
        if sub == "scale":
            return self._write_scale(kind, old, body, request)
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized or malformed")
        rv = (body.get("metadata") or {}).get("resourceVersion")
        return self._write_sub(kind, old, sub, body, expect_rv=rv, request=request)

    def _write_sub(self, kind: Kind, old: Obj, sub: str, source: Obj, *, expect_rv: str | None,
                   request: web.Request) -> Obj:
        """A ``status`` or ``finalize`` write: only ``status``, or only ``spec.finalizers``,
        comes from ``source``; the rest stays as stored."""
        new = copy.deepcopy(old)
        if sub == "status":
            new["status"] = source.get("status", {})
        else:
            new.setdefault("spec", {})["finalizers"] = (source.get("spec") or {}).get("finalizers") or []
        return self._write(kind, new, old, expect_rv=expect_rv, request=request, main=False)

    # -- scale -----------------------------------------------------------------------------
    def _scale_of(self, kind: Kind, obj: Obj) -> Obj:
        meta = obj["metadata"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        selector = format_label_selector(spec.get("selector"))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": int(spec.get("replicas", 0))},
            "status": {"replicas": int(status.get("replicas", 0) or 0), "selector": "" if selector == "<none>" else selector},
        }

    def _write_scale(self, kind: Kind, old: Obj, scale: Any, request: web.Request) -> Obj:
        name = old["metadata"]["name"]
        if not isinstance(scale, dict):
            raise bad_request("the object provided is unrecognized or malformed")
        replicas = (scale.get("spec") or {}).get("replicas")
        if replicas is None:
            replicas = 0
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422, "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0',
                {"name": name, "group": "autoscaling", "kind": "Scale",
                 "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {replicas}: must be greater than or equal to 0", "field": "spec.replicas"}]},
            )
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise modified_conflict(kind.gvr, name)
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["replicas"] = replicas
        stored = self._write(kind, new, old, expect_rv=None, request=request)
        return self._scale_of(kind, stored)

    # -- pods' subresources ---------------------------------------------------------------
    def _bind(self, kind: Kind, ns: str, name: str, body: Any) -> Obj:
        target = (body or {}).get("target") if isinstance(body, dict) else None
        node = (target or {}).get("name")
        if not node:
            raise ApiError(422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value')
        pod = self.store.require(kind.gvr, ns, name)
        if (pod.get("spec") or {}).get("nodeName"):
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{pod['spec']['nodeName']}\"")
        pods.bind(pod, str(node))
        self.store.update(kind.gvr, pod)
        return success_status({})

