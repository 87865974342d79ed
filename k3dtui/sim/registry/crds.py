"""CustomResourceDefinitions: validation (422), defaults and the Established status."""

from __future__ import annotations

import copy
from typing import Any

from k3dtui.sim import gvrs
from k3dtui.sim.store import ApiError, Obj, Store, now_rfc3339


def prepare_crd(crd: Obj) -> None:
    """Validate a CRD (422) and fill in its defaults and an Established status."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = str(crd["metadata"].get("name", ""))
    causes: list[str] = []
    if not spec.get("group"):
        causes.append("spec.group: Required value")
    if not names.get("plural"):
        causes.append("spec.names.plural: Required value")
    if not names.get("kind"):
        causes.append("spec.names.kind: Required value")
    if not spec.get("versions"):
        causes.append("spec.versions: Invalid value: null: must have exactly one version marked as storage version")
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        causes.append(f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    if causes:
        raise ApiError(422, "Invalid", f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: '
                       + ("; ".join(causes) if len(causes) == 1 else "[" + ", ".join(causes) + "]"),
                       {"name": name, "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition"})
    names.setdefault("singular", str(names["kind"]).lower())
    names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("conversion", {"strategy": "None"})
    spec.setdefault("scope", "Namespaced")
    old_status = crd.get("status") or {}
    if old_status.get("acceptedNames") == names and old_status.get("conditions"):
        return
    now = now_rfc3339()
    storage = [str(v.get("name")) for v in spec.get("versions") or [] if v.get("storage")]
    crd["status"] = {
        "acceptedNames": copy.deepcopy(names),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": storage or [str((spec.get("versions") or [{}])[0].get("name", "v1"))],
    }


# -- structural schema defaults -------------------------------------------------------------
# kube-apiserver defaults custom resources from the ``default`` values of the CRD's
# structural openAPIV3Schema, on every request and on read
# (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting;
# staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting/algorithm.go):
# a missing property with a default gets it (a deep copy), then defaulting goes on inside it;
# arrays default each item, maps (additionalProperties) each value. ``metadata`` is left alone.


def version_schema(crd: Obj, version: str) -> Obj | None:
    """The openAPIV3Schema of one version of a CRD (``None`` when it has none)."""
    spec = crd.get("spec") or {}
    for v in spec.get("versions") or []:
        if isinstance(v, dict) and v.get("name") == version:
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, dict) else None
    schema = (spec.get("validation") or {}).get("openAPIV3Schema")
    return schema if isinstance(schema, dict) else None


def apply_schema_defaults(value: Any, schema: Obj, *, top: bool = True) -> None:
    """Fill in ``value`` (in place) from ``schema``'s ``default`` values."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                if not isinstance(sub, dict) or (top and name == "metadata"):
                    continue
                if name not in value and "default" in sub:
                    value[name] = copy.deepcopy(sub["default"])
                if name in value:
                    apply_schema_defaults(value[name], sub, top=False)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                if not (isinstance(props, dict) and key in props):
                    apply_schema_defaults(value[key], extra, top=False)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_schema_defaults(item, items, top=False)


def default_custom_resource(store: Store, group: str, version: str, plural: str, obj: Obj) -> None:
    """A custom resource's defaults from its CRD's schema for ``version``."""
    crd = store.peek(gvrs.CRDS, "", f"{plural}.{group}")
    if crd is None:
        return
    schema = version_schema(crd, version)
    if schema is not None:
        apply_schema_defaults(obj, schema)
