"""The per-kind rules and the write paths every writer takes through them.

A kind's :class:`KindRules` say what its objects get on every write, whoever writes them
(a client through the API server, or a controller): ``defaults`` (which may also refuse
what it cannot default), ``validate``, what a create keeps of ``status``, and how a
delete goes. :func:`prepare_create`, :func:`prepare_update` and :func:`delete` apply them;
the API server adds what belongs to a request (body checks, admission, dry run,
managedFields), the controllers call :func:`create` and :func:`delete` directly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from k3dtui.sim import gvrs
from k3dtui.sim.kinds import Kind, builtin_kind
from k3dtui.sim.registry import crds, jobs, namespaces, pods, services, workloads
from k3dtui.sim.registry.names import assign_name, validate_name
from k3dtui.sim.registry.validation import Invalid, validate_metadata
from k3dtui.sim.store import GVR, ApiError, Obj, Store, now_rfc3339

# defaults(obj, old, store, errs): old is None on a create
Defaulter = Callable[[Obj, "Obj | None", Store, Invalid], None]
Validator = Callable[[Kind, Obj, Invalid], None]


def _no_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    return None


def _no_validation(kind: Kind, obj: Obj, errs: Invalid) -> None:
    return None


@dataclass(frozen=True)
class KindRules:
    """What one kind's objects get on every write."""

    defaults: Defaulter = _no_defaults
    validate: Validator = _no_validation
    # what a create keeps of status when the status subresource owns it (None: all of it)
    create_status: Callable[[], Obj] | None = None
    # after the generic checks passed: raises its own 422 (CRDs)
    prepare: Callable[[Obj], None] | None = None
    # a delete that replaces the generic one (pods: graceful)
    delete: Callable[[Store, Obj, Obj], Obj] | None = None
    # before the generic delete: may refuse (403) or take other objects along
    before_delete: Callable[[Store, Obj], None] | None = None


def _pod_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    pods.default_pod(obj, creating=old is None)
    if old is None:
        spec = obj.get("spec") or {}
        sa = store.peek(gvrs.SERVICEACCOUNTS, str(obj["metadata"].get("namespace", "")),
                        str(spec.get("serviceAccountName") or "default"))
        pods.mount_service_account_token(obj, automount=(sa or {}).get("automountServiceAccountToken") is not False)
        # the Priority admission plugin (plugin/pkg/admission/priority/admission.go): a
        # priorityClassName resolves to its PriorityClass's value
        pc_name = spec.get("priorityClassName")
        if pc_name:
            pc = store.peek(gvrs.PRIORITYCLASSES, "", str(pc_name))
            if pc is not None:
                spec["priority"] = int(pc.get("value", 0))
                spec["preemptionPolicy"] = str(pc.get("preemptionPolicy", "PreemptLowerPriority"))


def _pod_validate(kind: Kind, obj: Obj, errs: Invalid) -> None:
    pods.validate_pod_spec(obj.get("spec"), errs, "spec")


def _pod_delete(store: Store, pod: Obj, opts: Obj) -> Obj:
    return pods.delete_pod(store, pod, opts.get("gracePeriodSeconds"))


def _deployment_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    workloads.default_deployment(obj)


def _replicated_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    workloads.default_replicated(obj)


def _daemonset_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    workloads.default_daemonset(obj)


def _job_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    jobs.default_job(obj, old)


def _service_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    services.default_service(obj, store, old, errs)


def _namespace_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    namespaces.default_namespace(obj, creating=old is None)


def _namespace_delete(store: Store, ns: Obj, opts: Obj) -> Obj:
    return namespaces.delete_namespace(store, ns, opts)


def _secret_defaults(obj: Obj, old: Obj | None, store: Store, errs: Invalid) -> None:
    obj.setdefault("type", "Opaque")


def _crd_before_delete(store: Store, crd: Obj) -> None:
    """Deleting a CRD deletes its custom resources."""
    spec = crd.get("spec") or {}
    group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
    for gvr in sorted(store.resources()):
        if gvr.group == group and gvr.resource == plural:
            for cr in list(store.iter(gvr)):
                store.delete(gvr, str(cr["metadata"].get("namespace", "")), str(cr["metadata"]["name"]))


RULES: dict[tuple[str, str], KindRules] = {
    ("", "pods"): KindRules(defaults=_pod_defaults, validate=_pod_validate, delete=_pod_delete),
    ("", "services"): KindRules(defaults=_service_defaults, create_status=lambda: {"loadBalancer": {}}),
    ("", "namespaces"): KindRules(defaults=_namespace_defaults, delete=_namespace_delete),
    ("", "secrets"): KindRules(defaults=_secret_defaults),
    ("apps", "deployments"): KindRules(defaults=_deployment_defaults, validate=workloads.validate_workload),
    # status.replicas is required by the typed clients
    ("apps", "replicasets"): KindRules(defaults=_replicated_defaults, validate=workloads.validate_workload,
                                       create_status=lambda: {"replicas": 0}),
    ("apps", "statefulsets"): KindRules(defaults=_replicated_defaults, validate=workloads.validate_workload,
                                        create_status=lambda: {"replicas": 0}),
    ("apps", "daemonsets"): KindRules(
        defaults=_daemonset_defaults, validate=workloads.validate_workload,
        create_status=lambda: {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                               "desiredNumberScheduled": 0, "numberReady": 0},
    ),
    ("batch", "jobs"): KindRules(defaults=_job_defaults, validate=jobs.validate_job),
    ("apiextensions.k8s.io", "customresourcedefinitions"): KindRules(
        prepare=crds.prepare_crd, before_delete=_crd_before_delete,
    ),
}
_GENERIC = KindRules()


def rules_for(kind: Kind) -> KindRules:
    """A kind's rules (custom resources and kinds without rules get the generic ones)."""
    if kind.custom:
        return _GENERIC
    return RULES.get((kind.gvr.group, kind.gvr.resource), _GENERIC)


def _kind_of(kind: Kind | GVR) -> Kind | None:
    return kind if isinstance(kind, Kind) else builtin_kind(kind)


# -- create and update --------------------------------------------------------------------


def apply_defaults(kind: Kind, obj: Obj, store: Store, *, old: Obj | None = None) -> None:
    """Fill in what the API server defaults and refuse what it refuses (``ApiError`` 422).

    ``old`` is the stored object for an update (``None`` for a create).
    """
    rules = rules_for(kind)
    errs = Invalid(kind, str(obj["metadata"].get("name", "")))
    if old is None:
        validate_name(kind, obj, errs)
    validate_metadata(obj, errs)
    rules.defaults(obj, old, store, errs)
    if kind.custom:
        crds.default_custom_resource(store, kind.gvr.group, kind.gvr.version, kind.gvr.resource, obj)
    rules.validate(kind, obj, errs)
    errs.raise_if_any()
    if rules.prepare is not None:
        rules.prepare(obj)


def reset_status_on_create(kind: Kind, obj: Obj) -> None:
    """What a create keeps of ``status`` (the status subresource owns it)."""
    if "status" not in kind.subresources or kind.gvr.resource in ("nodes", "pods", "namespaces"):
        return
    rules = rules_for(kind)
    if rules.create_status is not None:
        obj["status"] = rules.create_status()
    elif kind.custom:
        obj.pop("status", None)
    elif kind.gvr.group in ("apps", "batch"):
        obj["status"] = {}


def prepare_create(store: Store, kind: Kind, obj: Obj) -> Obj:
    """An object about to be created, as every creator gets it: its name (from
    ``generateName`` when unnamed), its status reset, defaulted and validated."""
    obj.setdefault("metadata", {})
    if kind.namespaced:
        meta = obj["metadata"]
        namespaces.forbid_terminating(store, str(meta.get("namespace", "")),
                                      f'{kind.qualified} "{meta.get("name") or meta.get("generateName", "")}"')
    assign_name(kind, obj, store)
    reset_status_on_create(kind, obj)
    apply_defaults(kind, obj, store)
    return obj


def create(store: Store, kind: Kind | GVR, obj: Obj) -> Obj:
    """Create through the kind's rules (a controller's create); returns the stored object.

    A kind this registry does not know (a custom resource) is stored as given."""
    k = _kind_of(kind)
    if k is None:
        return store.create(kind if isinstance(kind, GVR) else kind.gvr, obj)
    return store.create(k.gvr, prepare_create(store, k, obj))


def prepare_update(store: Store, kind: Kind, new: Obj, old: Obj, *, main: bool = True) -> Obj:
    """An object about to replace ``old``: a write to the main resource keeps the stored
    status when the status subresource owns it; then defaults and validation."""
    if main and "status" in kind.subresources:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    apply_defaults(kind, new, store, old=old)
    return new


def fill_defaults(store: Store, kind: Kind | GVR, obj: Obj) -> None:
    """The kind's defaults on an object already stored (an update of itself): what a
    controller fills in on objects written around the API. Nothing is refused here."""
    k = _kind_of(kind)
    if k is not None:
        rules_for(k).defaults(obj, copy.deepcopy(obj), store, Invalid(k, str(obj["metadata"].get("name", ""))))


# -- delete --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deletion:
    """What a delete did: ``obj`` is the object's last state (``gone``) or its new one
    (being deleted: ``deletionTimestamp`` set); ``foreground`` asks the caller to delete
    the dependents and then drop the ``foregroundDeletion`` finalizer."""

    obj: Obj
    gone: bool
    foreground: bool = False


def delete(store: Store, kind: Kind | GVR, namespace: str, name: str, opts: Obj | None = None,
           *, obj: Obj | None = None) -> Deletion:
    """Delete by the kind's rules with ``DeleteOptions`` ``opts`` (``gracePeriodSeconds``,
    ``propagationPolicy``). Pods: graceful; namespaces: protected ones refused (403), the
    rest emptied; CRDs take their resources along; finalizers (and ``Foreground``) keep the
    object with a ``deletionTimestamp``; ``Orphan`` strips the dependents' references.

    ``obj`` is a copy of the stored object when the caller already read it."""
    gvr = kind.gvr if isinstance(kind, Kind) else kind
    k = _kind_of(kind)
    rules = rules_for(k) if k is not None else _GENERIC
    opts = opts or {}
    if obj is None:
        obj = store.require(gvr, namespace, name)
    meta = obj["metadata"]
    if rules.delete is not None:
        out = rules.delete(store, obj, opts)
        return Deletion(out, gone=store.peek(gvr, namespace, name) is None)
    if rules.before_delete is not None:
        rules.before_delete(store, obj)
    policy = opts.get("propagationPolicy")
    if policy is None and (gvr.group, gvr.version, gvr.resource) == ("batch", "v1", "jobs"):
        # batch/v1 Jobs orphan their pods unless told otherwise, for compatibility
        # (pkg/registry/batch/job/strategy.go DefaultGarbageCollectionPolicy)
        policy = "Orphan"
    finalizers = list(meta.get("finalizers") or [])
    if policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    if policy == "Orphan":
        orphan_dependents(store, str(meta.get("uid", "")))
    if finalizers:
        if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
            return Deletion(obj, gone=False)
        meta["finalizers"] = finalizers
        meta.setdefault("deletionTimestamp", now_rfc3339())
        meta.setdefault("deletionGracePeriodSeconds", 0)
        stored = store.update(gvr, obj)
        return Deletion(stored, gone=False, foreground="foregroundDeletion" in finalizers)
    return Deletion(store.delete(gvr, namespace, name), gone=True)


def orphan_dependents(store: Store, uid: str) -> None:
    """Remove the owner ``uid`` from every object's ``ownerReferences``."""
    if not uid:
        return
    for gvr in sorted(store.resources()):
        for dep in list(store.iter(gvr)):
            refs = dep["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                def strip(o: Obj) -> None:
                    kept = [r for r in o["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                    if kept:
                        o["metadata"]["ownerReferences"] = kept
                    else:
                        o["metadata"].pop("ownerReferences", None)
                store.mutate(gvr, str(dep["metadata"].get("namespace", "")), str(dep["metadata"]["name"]), strip)


def delete_quietly(store: Store, gvr: GVR, namespace: str, name: str, opts: Obj | None = None) -> None:
    """:func:`delete` for a controller: an object already gone (or a refusal) is no error."""
    try:
        delete(store, gvr, namespace, name, opts)
    except ApiError:
        return
