"""Namespaces: defaults, the ones that may not be deleted, and what deleting one takes along."""

from __future__ import annotations

import contextlib

from k3dtui.sim.store import ApiError, Obj, Store

PROTECTED = ("default", "kube-system", "kube-public")


def default_namespace(obj: Obj, *, creating: bool) -> None:
    """The ``kubernetes`` finalizer, the ``kubernetes.io/metadata.name`` label and, on
    create, phase ``Active``."""
    meta = obj.setdefault("metadata", {})
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    if creating:
        obj["status"] = {"phase": "Active"}


def check_delete(name: str) -> None:
    """403 for the namespaces a cluster cannot do without."""
    if name in PROTECTED:
        raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                       {"name": name, "kind": "namespaces"})


def empty(store: Store, namespace: str) -> None:
    """Remove every object in ``namespace`` (cluster-scoped objects are never in one)."""
    for gvr in sorted(store.resources()):
        for obj in list(store.iter(gvr, namespace)):
            with contextlib.suppress(ApiError):
                store.delete(gvr, namespace, str(obj["metadata"]["name"]))
