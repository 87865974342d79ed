"""Namespaces: defaults, the ones that may not be deleted, and what deleting one takes along."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from k3dtui.sim import gvrs
from k3dtui.sim.store import GVR, ApiError, Obj, Store, now_rfc3339

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


def terminating(store: Store, namespace: str) -> bool:
    """Whether ``namespace`` is being deleted (phase Terminating)."""
    ns = store.peek(gvrs.NAMESPACES, "", namespace)
    return ns is not None and bool(ns["metadata"].get("deletionTimestamp"))


def forbid_terminating(store: Store, namespace: str, what: str = "") -> None:
    """403 for a create in a namespace being deleted
    (plugin/pkg/admission/namespace/lifecycle/admission.go); ``what`` names the object."""
    if namespace and terminating(store, namespace):
        raise ApiError(
            403, "Forbidden",
            (f"{what} is forbidden: " if what else "")
            + f"unable to create new content in namespace {namespace} because it is being terminated",
            {"name": namespace, "kind": "namespaces",
             "causes": [{"reason": "NamespaceTerminating",
                         "message": f"namespace {namespace} is being terminated",
                         "field": "metadata.namespace"}]},
        )


def delete_namespace(store: Store, ns: Obj, opts: Obj) -> Obj:
    """A namespace DELETE (pkg/registry/core/namespace/storage/storage.go ``Delete``): refused
    for the protected ones; while ``spec.finalizers`` holds ``kubernetes`` the namespace only
    gets a ``deletionTimestamp`` and phase ``Terminating``; the namespace controller then
    deletes its content, finalizes it (empties ``spec.finalizers``) and deletes it again,
    which removes it (unless ``metadata.finalizers`` remain)."""
    meta = ns["metadata"]
    name = str(meta["name"])
    check_delete(name)
    spec_finalizers = (ns.get("spec") or {}).get("finalizers") or []
    if meta.get("deletionTimestamp"):
        if spec_finalizers or meta.get("finalizers"):
            return ns
        return store.delete(gvrs.NAMESPACES, "", name)
    if not spec_finalizers and not meta.get("finalizers"):
        return store.delete(gvrs.NAMESPACES, "", name)
    meta["deletionTimestamp"] = now_rfc3339()
    meta["deletionGracePeriodSeconds"] = 0
    ns.setdefault("status", {})["phase"] = "Terminating"
    return store.update(gvrs.NAMESPACES, ns)


def empty(store: Store, namespace: str, delete: Callable[[GVR, str, str], None] | None = None) -> int:
    """Delete every object in ``namespace`` (cluster-scoped objects are never in one) with
    ``delete`` (default: removed from the store at once); returns how many were left to
    delete (0: the namespace is empty)."""
    left = 0
    for gvr in sorted(store.resources()):
        for obj in list(store.iter(gvr, namespace)):
            left += 1
            if obj["metadata"].get("deletionTimestamp"):
                continue
            with contextlib.suppress(ApiError):
                if delete is None:
                    store.delete(gvr, namespace, str(obj["metadata"]["name"]))
                else:
                    delete(gvr, namespace, str(obj["metadata"]["name"]))
    return left
