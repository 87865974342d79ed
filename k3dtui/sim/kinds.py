"""The kinds the simulated API server serves: built-in ones and those CRDs add.

A :class:`Kind` is what discovery advertises for one resource (plural, scope, short
names, categories, subresources). CRDs stored through the API register their kinds here,
so discovery, the OpenAPI stub and the REST routes pick them up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k3dtui.sim.store import GVR

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """A CRD ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str = ""
    format: str = ""


@dataclass(frozen=True)
class Kind:
    gvr: GVR
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False  # served from a CRD: no strategic merge patch, generic table
    columns: tuple[PrinterColumn, ...] = ()
    verbs: tuple[str, ...] = VERBS

    @property
    def api_version(self) -> str:
        return self.gvr.api_version

    @property
    def group(self) -> str:
        return self.gvr.group

    @property
    def qualified(self) -> str:
        """``deployments.apps`` (as error messages name a resource)."""
        return str(self.gvr)

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps`` (as validation errors name a kind)."""
        return f"{self.kind}.{self.gvr.group}" if self.gvr.group else self.kind


def _k(
    group: str,
    version: str,
    resource: str,
    kind: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    subs: tuple[str, ...] = (),
    verbs: tuple[str, ...] = VERBS,
) -> Kind:
    return Kind(
        GVR(group, version, resource), kind, namespaced, kind.lower(), short, cats, subs, verbs=verbs
    )


_ALL = ("all",)

_BUILTIN: tuple[Kind, ...] = (
    # core
    _k("", "v1", "namespaces", "Namespace", False, ("ns",), subs=("status", "finalize"),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _k("", "v1", "nodes", "Node", False, ("no",), subs=("status",)),
    _k("", "v1", "pods", "Pod", True, ("po",), _ALL,
       ("status", "binding", "eviction", "log", "exec", "attach", "portforward")),
    _k("", "v1", "services", "Service", True, ("svc",), _ALL, ("status",),
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    _k("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _k("", "v1", "events", "Event", True, ("ev",)),
    _k("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _k("", "v1", "secrets", "Secret", True),
    _k("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _k("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), subs=("status",)),
    _k("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), subs=("status",)),
    _k("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    _k("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), subs=("status",)),
    _k("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",), _ALL,
       ("scale", "status")),
    # apps
    _k("apps", "v1", "deployments", "Deployment", True, ("deploy",), _ALL, ("scale", "status")),
    _k("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _ALL, ("scale", "status")),
    _k("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _ALL, ("status",)),
    _k("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _ALL, ("scale", "status")),
    _k("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    # batch
    _k("batch", "v1", "jobs", "Job", True, (), _ALL, ("status",)),
    _k("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _ALL, ("status",)),
    # discovery
    _k("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    # networking
    _k("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), subs=("status",)),
    _k("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _k("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    # policy
    _k("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), subs=("status",)),
    # rbac
    _k("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _k("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _k("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _k("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # admission
    _k("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
       "ValidatingWebhookConfiguration", False),
    _k("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
       "MutatingWebhookConfiguration", False),
    # coordination, scheduling, storage, autoscaling
    _k("coordination.k8s.io", "v1", "leases", "Lease", True),
    _k("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    _k("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    _k("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",),
       _ALL, ("status",)),
    # extensions
    _k("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
       ("crd", "crds"), subs=("status",)),
    # Kinds k3s 1.31 serves that nothing in the simulated cluster acts on: stored and listed as
    # the API server stores them (kubectl api-resources, get, apply and explain work); no
    # controller gives them effect (no CSI drivers, no runtime handlers, no API priority and
    # fairness, no CSR signer, no admission policies).
    _k("", "v1", "podtemplates", "PodTemplate", True),
    _k("", "v1", "componentstatuses", "ComponentStatus", False, ("cs",), verbs=("get", "list")),
    _k("", "v1", "bindings", "Binding", True, verbs=("create",)),
    _k("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    _k("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    _k("storage.k8s.io", "v1", "csinodes", "CSINode", False),
    _k("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", True),
    _k("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, subs=("status",)),
    _k("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False,
       ("csr",), subs=("approval", "status")),
    _k("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", False, subs=("status",)),
    _k("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "PriorityLevelConfiguration",
       False, subs=("status",)),
    _k("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy",
       False, subs=("status",)),
    _k("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
       "ValidatingAdmissionPolicyBinding", False),
    # reviews: create-only, never stored (k3dtui.sim.apiserver.authz answers them)
    _k("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=("create",)),
    _k("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=("create",)),
    _k("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True,
       verbs=("create",)),
    _k("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
       verbs=("create",)),
    _k("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
       verbs=("create",)),
    _k("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)),
    # the APIServices of the served group-versions (k3dtui.sim.apiserver.metrics creates them)
    _k("apiregistration.k8s.io", "v1", "apiservices", "APIService", False, subs=("status",)),
    # metrics-server's API (k3dtui.sim.apiserver.metrics answers it)
    _k("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", False, verbs=("get", "list")),
    _k("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True, verbs=("get", "list")),
)

# The kinds MetalLB's CRDs define, for a registry that should know them before any CRD is applied.
_METALLB: tuple[Kind, ...] = (
    Kind(GVR("metallb.io", "v1beta1", "ipaddresspools"), "IPAddressPool", True, "ipaddresspool",
         subresources=("status",), custom=True),
    Kind(GVR("metallb.io", "v1beta1", "l2advertisements"), "L2Advertisement", True,
         "l2advertisement", custom=True),
)


class Registry:
    """Kinds by GVR, in registration order (discovery lists them in that order)."""

    def __init__(self, kinds: tuple[Kind, ...] | list[Kind] = ()) -> None:
        self._by_gvr: dict[GVR, Kind] = {}
        self._by_kind: dict[tuple[str, str], Kind] = {}
        self._crd_kinds: dict[str, list[Kind]] = {}  # CRD name -> kinds it registered
        self.generation = 0  # bumped on every change (caches key on it)
        for k in kinds:
            self.add(k)

    @classmethod
    def builtin(cls, *, metallb: bool = False) -> Registry:
        """The built-in kinds; ``metallb=True`` also knows MetalLB's kinds without their CRDs."""
        return cls(_BUILTIN + (_METALLB if metallb else ()))

    # -- lookups ---------------------------------------------------------------
    def get(self, gvr: GVR) -> Kind | None:
        return self._by_gvr.get(gvr)

    def by_kind(self, api_version: str, kind: str) -> Kind | None:
        return self._by_kind.get((api_version, kind))

    def by_resource(self, group: str, version: str, resource: str) -> Kind | None:
        return self._by_gvr.get(GVR(group, version, resource))

    def kinds(self) -> list[Kind]:
        return list(self._by_gvr.values())

    def group_versions(self) -> list[tuple[str, str]]:
        """(group, version) pairs in first-seen order, core first."""
        out: list[tuple[str, str]] = []
        for gvr in self._by_gvr:
            gv = (gvr.group, gvr.version)
            if gv not in out:
                out.append(gv)
        return out

    def in_group_version(self, group: str, version: str) -> list[Kind]:
        return [k for k in self._by_gvr.values() if k.gvr.group == group and k.gvr.version == version]

    # -- changes ---------------------------------------------------------------
    def add(self, kind: Kind) -> None:
        self._by_gvr[kind.gvr] = kind
        self._by_kind[(kind.api_version, kind.kind)] = kind
        self.generation += 1

    def remove(self, gvr: GVR) -> None:
        kind = self._by_gvr.pop(gvr, None)
        if kind is not None:
            self._by_kind.pop((kind.api_version, kind.kind), None)
            self.generation += 1

    def register_crd(self, crd: dict[str, Any]) -> list[Kind]:
        """Add the kinds a CustomResourceDefinition serves (one per served version)."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = str(spec.get("group", ""))
        plural = str(names.get("plural", ""))
        kind_name = str(names.get("kind", ""))
        if not group or not plural or not kind_name:
            return []
        namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        crd_name = str((crd.get("metadata") or {}).get("name") or f"{plural}.{group}")
        for old in self._crd_kinds.pop(crd_name, []):
            self.remove(old.gvr)
        added: list[Kind] = []
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            subs: list[str] = []
            subresources = v.get("subresources") or {}
            if "status" in subresources:
                subs.append("status")
            if "scale" in subresources:
                subs.append("scale")
            cols = tuple(
                PrinterColumn(
                    name=str(c.get("name", "")),
                    type=str(c.get("type", "string")),
                    json_path=str(c.get("jsonPath", "")),
                    priority=int(c.get("priority", 0) or 0),
                    description=str(c.get("description", "")),
                    format=str(c.get("format", "")),
                )
                for c in v.get("additionalPrinterColumns") or []
            )
            kind = Kind(
                gvr=GVR(group, str(v.get("name", "v1")), plural),
                kind=kind_name,
                namespaced=namespaced,
                singular=str(names.get("singular") or kind_name.lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(subs),
                custom=True,
                columns=cols,
            )
            self.add(kind)
            added.append(kind)
        self._crd_kinds[crd_name] = added
        return added

    def unregister_crd(self, crd: dict[str, Any]) -> None:
        crd_name = str((crd.get("metadata") or {}).get("name", ""))
        for old in self._crd_kinds.pop(crd_name, []):
            self.remove(old.gvr)

    # -- name resolution (kubectl-style: plural, singular, short name) -----------
    def resolve(self, name: str) -> Kind | None:
        name = name.lower()
        for k in self._by_gvr.values():
            if name in (k.gvr.resource, k.singular, *k.short_names, k.kind.lower()):
                return k
        return None


_BUILTIN_BY_GVR: dict[GVR, Kind] = {k.gvr: k for k in _BUILTIN + _METALLB}


def builtin_kind(gvr: GVR) -> Kind | None:
    """The built-in kind served at ``gvr`` (MetalLB's included), for writers that have no
    :class:`Registry` at hand (the controllers)."""
    return _BUILTIN_BY_GVR.get(gvr)
