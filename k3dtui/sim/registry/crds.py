"""CustomResourceDefinitions: validation (422), defaults and the Established status."""

from __future__ import annotations

import copy

from k3dtui.sim.store import ApiError, Obj, now_rfc3339


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
