"""PATCH: JSON, merge and strategic merge patches, and server-side apply."""

from __future__ import annotations

import copy
import json

from aiohttp import web

from k3dtui.sim.apiserver.errors import bad_request, json_response
from k3dtui.sim.apiserver.http import read_body
from k3dtui.sim.apiserver.subresources import Subresources
from k3dtui.sim.kinds import Kind
from k3dtui.sim.patch import (
    apply_patch,
    changed_paths,
    comparable,
    conflicts,
    field_owners,
    json_patch,
    managed_fields,
    merge_patch,
    owned_paths,
    prune_for_apply,
    related,
    strategic_merge,
)
from k3dtui.sim.store import ApiError, Obj, modified_conflict, not_found, now_rfc3339


class Patching(Subresources):
    """PATCH of an object or of its scale, status or finalize subresource."""

    # -- patch ----------------------------------------------------------------------------
    async def _patch(self, request: web.Request, kind: Kind, ns: str, name: str, sub: str | None) -> web.Response:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        apply = ctype == "application/apply-patch+yaml"
        known = ("application/json-patch+json", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "application/apply-patch+yaml")
        if ctype not in known:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {', '.join(known)}")
        if ctype == "application/strategic-merge-patch+json" and kind.custom:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        if apply and not request.query.get("fieldManager"):
            raise bad_request('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
        patch = await read_body(request, allow_yaml=apply)
        old = self.store.get(kind.gvr, ns, name)
        if old is None:
            if apply and sub is None:
                if not isinstance(patch, dict):
                    raise bad_request("the object provided is unrecognized or malformed")
                if isinstance(patch.get("metadata"), dict) and patch["metadata"].get("name", name) != name:
                    raise bad_request(f"the name of the object ({patch['metadata'].get('name')}) does not match the name on the URL ({name})")
                patch.setdefault("metadata", {})["name"] = name
                manager = str(request.query["fieldManager"])
                managed = managed_fields({(manager, "Apply"): owned_paths(patch)}, kind.api_version, now_rfc3339())
                return json_response(self._create(kind, ns, patch, request, managed=managed), status=201)
            raise not_found(kind.gvr, name)
        if apply:
            if not isinstance(patch, dict):
                raise bad_request("the object provided is unrecognized or malformed")
            if patch.get("kind") != kind.kind or patch.get("apiVersion") != kind.api_version:
                raise bad_request(
                    f"the kind or API version in the applied configuration ({patch.get('apiVersion')}, {patch.get('kind')}) "
                    f"does not match the resource ({kind.api_version}, {kind.kind})"
                )

        def run(target: Obj) -> Obj:
            if ctype == "application/json-patch+json":
                result = json_patch(target, patch)
            elif ctype == "application/merge-patch+json":
                result = merge_patch(target, patch)
            elif ctype == "application/strategic-merge-patch+json":
                result = strategic_merge(target, patch)
            else:
                result = apply_patch(target, patch, custom=kind.custom or sub == "scale")
            if not isinstance(result, dict):
                raise bad_request("the patch must leave an object")
            return result

        if sub is None and ctype != "application/json-patch+json":
            self._strict(kind, patch, request)
        if sub == "scale":
            scale = run(self._scale_of(kind, old))
            return json_response(self._write_scale(kind, old, scale, request))
        if apply and sub is None:
            manager = str(request.query["fieldManager"])
            owners = field_owners(old)
            others: set[tuple[str, ...]] = set()
            for o, ps in owners.items():
                if o != (manager, "Apply"):
                    others |= ps
            patched = run(prune_for_apply(old, owners.get((manager, "Apply"), set()), others, patch))
            if request.query.get("force") not in ("true", "1"):
                found = conflicts(owners, manager, changed_paths(comparable(old), comparable(patched)), owned_paths(patch))
                found = _without_last_applied(old, found)
                if found:
                    raise _apply_conflict(kind, name, found)
            new_rv = (patch.get("metadata") or {}).get("resourceVersion")
            if new_rv and new_rv != old["metadata"].get("resourceVersion"):
                raise modified_conflict(kind.gvr, name)
            return json_response(self._write(kind, patched, old, expect_rv=None, request=request, applied=(manager, patch)))
        patched = run(copy.deepcopy(old))
        new_rv = (patched.get("metadata") or {}).get("resourceVersion")
        expect = str(new_rv) if new_rv and new_rv != old["metadata"].get("resourceVersion") else None
        if expect:
            # a patch that names a resourceVersion is a precondition
            raise modified_conflict(kind.gvr, name)
        if sub in ("status", "finalize"):
            return json_response(self._write_sub(kind, old, sub, patched, expect_rv=None, request=request))
        return json_response(self._write(kind, patched, old, expect_rv=None, request=request))


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _without_last_applied(live: Obj, found: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
    """Conflicts with client-side apply over fields its last-applied annotation names are
    not conflicts (the server lets server-side apply take them over, as a real one does)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(_LAST_APPLIED)
    if not text or not found:
        return found
    try:
        last = json.loads(text)
    except ValueError:
        return found
    paths = owned_paths(last)
    return [
        (m, p) for m, p in found
        if not (m in ("kubectl-client-side-apply", "before-first-apply") and any(related(p, q) for q in paths))
    ]


def _apply_conflict(kind: Kind, name: str, found: list[tuple[str, tuple[str, ...]]]) -> ApiError:
    n = len(found)
    parts = [f'conflict with "{m}" using {kind.api_version}: .{".".join(p)}' for m, p in found]
    return ApiError(
        409, "Conflict",
        f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "\n".join(parts),
        {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource,
         "causes": [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {kind.api_version}',
                     "field": "." + ".".join(p)} for m, p in found]},
    )

