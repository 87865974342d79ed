"""get, list, create, replace and delete (one object or a collection)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from k3dtui.sim import gvrs, tables
from k3dtui.sim import registry as rules
from k3dtui.sim.apiserver import listing, protobuf
from k3dtui.sim.apiserver.errors import bad_request, json_response, success_status
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.apiserver.http import (
    WARNINGS,
    check_body,
    manager,
    out,
    partial,
    wants_metadata,
    wants_table,
)
from k3dtui.sim.kinds import Kind
from k3dtui.sim.patch import (
    changed_paths,
    comparable,
    field_owners,
    managed_fields,
    owned_paths,
    related,
    release_changed,
)
from k3dtui.sim.selectors import parse_field_selector, parse_label_selector
from k3dtui.sim.store import ApiError, Obj, now_rfc3339

# Kinds whose DELETE answers with the object rather than a Status.
_RETURN_DELETED = {("", "pods"), ("", "services"), ("", "namespaces"), ("", "nodes")}
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "managedFields")


class Crud(Handlers):
    """get, list, create, replace and delete; every write through the registry's rules."""

    def _strict(self, kind: Kind, obj: Any, request: web.Request | None) -> None:
        if request is None or not isinstance(obj, dict):
            return
        warnings = rules.check_strict(kind, obj, request.query.get("fieldValidation"))
        if warnings:
            if WARNINGS not in request:
                request[WARNINGS] = []
            request[WARNINGS].extend(warnings)

    def _require_namespace(self, kind: Kind, ns: str) -> None:
        if kind.namespaced and self.store.peek(gvrs.NAMESPACES, "", ns) is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})

    # -- create --------------------------------------------------------------------------
    def _create(self, kind: Kind, ns: str, body: Any, request: web.Request | None,
                managed: list[Obj] | None = None) -> Obj:
        obj = check_body(kind, body, ns=ns, name=None)
        self._strict(kind, obj, request)
        self._require_namespace(kind, ns)
        meta = obj["metadata"]
        for f in (*_SERVER_META, "resourceVersion", "selfLink"):
            meta.pop(f, None)
        if managed:
            meta["managedFields"] = managed
        elif request is not None:
            creator = {(manager(request), "Update"): owned_paths(obj)}
            meta["managedFields"] = managed_fields(creator, kind.api_version, now_rfc3339())
        rules.prepare_create(self.store, kind, obj)
        self._admit(kind, "CREATE", obj, None)
        if request is not None and request.query.get("dryRun") == "All":
            if self.store.peek(kind.gvr, ns, meta["name"]) is not None:
                raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{meta["name"]}" already exists',
                               {"name": meta["name"], "group": kind.gvr.group, "kind": kind.gvr.resource})
            meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.setdefault("generation", 1)
            return obj
        return out(kind, self.store.create(kind.gvr, obj))

    # -- update ---------------------------------------------------------------------------
    def _write(self, kind: Kind, new: Obj, old: Obj, *, expect_rv: str | None, request: web.Request | None,
               main: bool = True, applied: tuple[str, Obj] | None = None) -> Obj:
        """Common tail of replace/patch/apply on the main resource."""
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        old_meta = old["metadata"]
        if meta.get("name") != old_meta["name"]:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({old_meta['name']})")
        if kind.namespaced and meta.get("namespace", old_meta.get("namespace")) != old_meta.get("namespace"):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        client_fields = meta.get("managedFields")
        for f in _SERVER_META:
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        if kind.namespaced:
            meta["namespace"] = old_meta.get("namespace", "")
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        rules.prepare_update(self.store, kind, new, old, main=main)
        if applied is None and client_fields and client_fields != old_meta.get("managedFields"):
            # a client may rewrite managedFields (kubectl does, moving client-side apply to server-side)
            kept = [e for e in client_fields if isinstance(e, dict) and e]
            if kept:
                meta["managedFields"] = kept
            else:
                meta.pop("managedFields", None)
        else:
            self._track_owners(kind, new, old, applied, manager(request))
        self._admit(kind, "UPDATE", new, old)
        if request is not None and request.query.get("dryRun") == "All":
            return new
        return out(kind, self.store.update(kind.gvr, new, expect_rv=expect_rv))

    def _track_owners(self, kind: Kind, new: Obj, old: Obj, applied: tuple[str, Obj] | None, manager: str) -> None:
        """Keep ``managedFields``: an apply owns what it set; any other write owns what it
        changed; either takes those fields away from the other managers."""
        owners = field_owners(old)
        changed = changed_paths(comparable(old), comparable(new))
        if applied is None:
            if not changed:
                return
            owners = release_changed(owners, changed)
            key = (manager, "Update")
            owners[key] = owners.get(key, set()) | changed
        else:
            applier, config = applied
            mine = owned_paths(config)
            owners = release_changed({o: ps for o, ps in owners.items() if o != (applier, "Apply")},
                                     {c for c in changed if any(related(c, p) for p in mine)})
            owners[(applier, "Apply")] = mine
        entries = managed_fields(owners, kind.api_version, now_rfc3339(), old["metadata"].get("managedFields"))
        if entries:
            new["metadata"]["managedFields"] = entries
        else:
            new["metadata"].pop("managedFields", None)

    def _replace(self, kind: Kind, ns: str, name: str, body: Any, request: web.Request) -> Obj:
        old = self.store.require(kind.gvr, ns, name)
        obj = check_body(kind, body, ns=ns, name=name)
        obj["metadata"].setdefault("name", name)
        self._strict(kind, obj, request)
        rv = obj["metadata"].get("resourceVersion")
        return self._write(kind, obj, old, expect_rv=str(rv) if rv else None, request=request)

    # -- delete ------------------------------------------------------------------------------
    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await request.read() if request.can_read_body else b""
        opts: Obj = {}
        if raw.startswith(protobuf.MAGIC):  # client-go sends DeleteOptions as protobuf too
            try:
                opts = protobuf.decode(raw)
            except protobuf.ProtobufError as exc:
                raise bad_request(f"the object provided is unrecognized or malformed: {exc}") from exc
        elif raw.strip():
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise bad_request(f"the object provided is unrecognized or malformed: {exc}") from exc
            if isinstance(parsed, dict):
                opts = parsed
        q = request.query
        if "gracePeriodSeconds" not in opts and "gracePeriodSeconds" in q:
            try:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError as exc:
                raise bad_request(f"invalid gracePeriodSeconds: {q['gracePeriodSeconds']!r}") from exc
        if "propagationPolicy" not in opts and "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "dryRun" not in opts and "dryRun" in q:
            opts["dryRun"] = q.getall("dryRun")
        if "orphanDependents" in opts and "propagationPolicy" not in opts:
            opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
        return opts

    def _delete(self, kind: Kind, ns: str, name: str, opts: Obj, request: web.Request | None) -> tuple[int, Obj]:
        obj = self.store.require(kind.gvr, ns, name)
        meta = obj["metadata"]
        pre = opts.get("preconditions") or {}
        if (pre.get("uid") and pre["uid"] != meta.get("uid")) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion")
        ):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the precondition does not hold',
                           {"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource})
        self._admit(kind, "DELETE", obj, obj)
        dry = opts.get("dryRun")
        if dry == "All" or (isinstance(dry, list) and "All" in dry):
            return 200, out(kind, obj)
        done = rules.delete(self.store, kind, ns, name, opts, obj=obj)
        if done.foreground:
            self._start_foreground(kind, ns, name, str(meta.get("uid", "")))
        if not done.gone or (kind.gvr.group, kind.gvr.resource) in _RETURN_DELETED or kind.custom:
            return 200, out(kind, done.obj)
        return 200, success_status({"name": name, "group": kind.gvr.group, "kind": kind.gvr.resource, "uid": meta.get("uid", "")})

    def _start_foreground(self, kind: Kind, ns: str, name: str, uid: str) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._finish_foreground(kind, ns, name, uid))
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dependents(self, uid: str) -> list[tuple[Kind, Obj]]:
        found: list[tuple[Kind, Obj]] = []
        for gvr in sorted(self.store.resources()):
            dep_kind = self.registry.get(gvr)
            if dep_kind is None:
                continue
            for dep in self.store.iter(gvr):
                if any(r.get("uid") == uid for r in dep["metadata"].get("ownerReferences") or []):
                    found.append((dep_kind, dep))
        return found

    async def _finish_foreground(self, kind: Kind, ns: str, name: str, uid: str) -> None:
        """Foreground deletion: delete the dependents (foreground too), wait until they are
        gone, then drop the ``foregroundDeletion`` finalizer so the owner goes."""
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            current = self.store.peek(kind.gvr, ns, name)
            if current is None or current["metadata"].get("uid") != uid:
                return
            deps = self._dependents(uid)
            if not deps:
                def drop(o: Obj) -> None:
                    o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]
                    if not o["metadata"]["finalizers"]:
                        del o["metadata"]["finalizers"]

                self.store.mutate(kind.gvr, ns, name, drop)
                return
            for dep_kind, dep in deps:
                if not dep["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(ApiError):
                        self._delete(dep_kind, str(dep["metadata"].get("namespace", "")), str(dep["metadata"]["name"]),
                                     {"propagationPolicy": "Foreground"}, None)
            await asyncio.sleep(0.05)

    def _delete_collection(self, request: web.Request, kind: Kind, ns: str | None) -> Obj:
        opts: Obj = {}
        q = request.query
        if "gracePeriodSeconds" in q:
            with contextlib.suppress(ValueError):
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("dryRun") == "All":
            opts["dryRun"] = "All"
        for obj in self._select(request, kind, ns):
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):
                self._delete(kind, str(meta.get("namespace", "")), str(meta["name"]), dict(opts), request)
        return success_status({"kind": kind.gvr.resource, "group": kind.gvr.group})

    # -- reads ---------------------------------------------------------------------------------
    def _matcher(self, request: web.Request, kind: Kind) -> Callable[[Obj], bool]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), kind.gvr.resource)
        if labels.empty and fields is None:
            return lambda _o: True
        if fields is None:
            return labels.matches_obj
        return lambda o: labels.matches_obj(o) and fields(o)

    def _select(self, request: web.Request, kind: Kind, ns: str | None) -> list[Obj]:
        match = self._matcher(request, kind)
        items, _ = self.store.list_objects(kind.gvr, ns)
        return [o for o in items if match(o)]

    def _list(self, request: web.Request, kind: Kind, ns: str | None) -> web.Response:
        match = self._matcher(request, kind)
        q = request.query
        page = listing.list_page(self.store, kind.gvr, ns, q, match,
                                 selective=bool(q.get("labelSelector") or q.get("fieldSelector")))
        items = [out(kind, o) for o in page.items]
        if wants_table(request):
            table = tables.to_table(kind, items, resource_version=str(page.resource_version),
                                    include_object=q.get("includeObject", "Metadata"))
            table["metadata"] = page.list_meta()
            return json_response(table)
        if wants_metadata(request):
            return json_response({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": page.list_meta(), "items": [partial(o) for o in items],
            })
        return json_response({
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": page.list_meta(),
            "items": items,
        })

