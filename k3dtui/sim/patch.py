"""Patches: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge, server-side apply.

Every function returns a new document and leaves its inputs alone. Errors raise
:class:`PatchError` (the API turns it into a 422 or 400 ``Status``).
"""

from __future__ import annotations

import copy
from typing import Any

Json = Any


class PatchError(Exception):
    """The patch cannot be applied (malformed, failed ``test``, missing path)."""


# -- RFC 7386 ----------------------------------------------------------------------------


def merge_patch(target: Json, patch: Json) -> Json:
    """JSON merge patch: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- RFC 6902 ----------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    i = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if i > limit:
        raise PatchError(f"array index {i} out of range")
    return i


def _parent(doc: Json, tokens: list[str]) -> Json:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"path element {t!r} does not exist")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, allow_end=False)]
        else:
            raise PatchError(f"cannot descend into a scalar at {t!r}")
    return cur


def _get(doc: Json, tokens: list[str]) -> Json:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path element {last!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError("cannot index a scalar")


def _add(doc: Json, tokens: list[str], value: Json) -> Json:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Json, tokens: list[str]) -> Json:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path element {last!r} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, allow_end=False)]
    else:
        raise PatchError("cannot remove from a scalar")
    return doc


def json_patch(target: Json, ops: Json) -> Json:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed JSON patch operation: {op!r}")
        kind = op["op"]
        path = _pointer(str(op["path"]))
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if path:
                doc = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError(f"{kind} needs 'from'")
            src = _pointer(str(op["from"]))
            value = copy.deepcopy(_get(doc, src))
            if kind == "move":
                doc = _remove(doc, src)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {op['path']} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


# -- strategic merge ---------------------------------------------------------------------

# Lists merged by a key (patchStrategy: merge) in the built-in types.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "ephemeralContainerStatuses": "name",
}
# Lists of scalars merged as sets.
SET_LISTS = frozenset({"finalizers"})


def _ports_key(items: list[Any]) -> str:
    for it in items:
        if isinstance(it, dict):
            if "containerPort" in it:
                return "containerPort"
            if "port" in it:
                return "port"
    return "port"


def _merge_key(field: str, live: list[Any], patch: list[Any]) -> str | None:
    if field == "ports":
        return _ports_key(patch + live)
    return MERGE_KEYS.get(field)


def strategic_merge(target: Json, patch: Json, *, field: str = "") -> Json:
    """Strategic merge patch for the built-in kinds.

    Maps merge as in a merge patch; lists named in :data:`MERGE_KEYS` (and ``ports``)
    merge item by item on their key; other lists are replaced. Directives ``$patch``
    (``replace``/``delete``/``merge``), ``$retainKeys``, ``$deleteFromPrimitiveList/…``
    and ``$setElementOrder/…`` are understood.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            current = out.get(name)
            if isinstance(current, list) and isinstance(value, list):
                out[name] = [v for v in current if v not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        current = out.get(key)
        if isinstance(value, dict):
            merged = strategic_merge(current, value, field=key)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _merge_list(key, current if isinstance(current, list) else [], value)
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(field: str, live: list[Any], patch: list[Any]) -> list[Any]:
    if field in SET_LISTS:
        out = list(live)
        for v in patch:
            if v not in out:
                out.append(copy.deepcopy(v))
        return out
    key = _merge_key(field, live, patch)
    if key is None or not all(isinstance(p, dict) for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    out = [copy.deepcopy(x) for x in live]
    for item in patch:
        if key not in item:
            if item.get("$patch"):
                continue
            out.append(copy.deepcopy(item))
            continue
        idx = next(
            (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(strategic_merge({}, item, field=field))
        else:
            out[idx] = strategic_merge(out[idx], item, field=field)
    return out


# -- server-side apply -------------------------------------------------------------------


def deep_merge_atomic_lists(target: Json, patch: Json) -> Json:
    """Maps merge recursively; lists and scalars replace (how apply treats CRD fields)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            continue
        out[key] = deep_merge_atomic_lists(out.get(key), value)
    return out


def apply_patch(live: Json, applied: Json, *, custom: bool) -> Json:
    """Merge an applied configuration into the live object (the applier wins every conflict)."""
    if custom:
        return deep_merge_atomic_lists(live, applied)
    return strategic_merge(live, applied)


def field_paths(doc: Json, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Leaf paths of a document (maps only; lists are leaves): what an applier sets."""
    if not isinstance(doc, dict) or not doc:
        return {prefix} if prefix else set()
    out: set[tuple[str, ...]] = set()
    for k, v in doc.items():
        out |= field_paths(v, (*prefix, str(k)))
    return out


def remove_path(doc: Json, path: tuple[str, ...]) -> None:
    """Delete ``path`` from ``doc`` in place, pruning maps left empty."""
    if not path or not isinstance(doc, dict):
        return
    if len(path) == 1:
        doc.pop(path[0], None)
        return
    child = doc.get(path[0])
    if isinstance(child, dict):
        remove_path(child, path[1:])
        if not child:
            doc.pop(path[0], None)


# -- field ownership (what server-side apply remembers per manager) ------------------------

Path = tuple[str, ...]
_UNOWNED_TOP = frozenset({"apiVersion", "kind", "status"})
_OWNED_META = frozenset({"labels", "annotations", "finalizers", "ownerReferences"})


def owned_paths(applied: Json) -> set[Path]:
    """The fields an applied configuration sets (leaf paths; lists count as one field)."""
    out: set[Path] = set()
    if not isinstance(applied, dict):
        return out
    for key, value in applied.items():
        if key in _UNOWNED_TOP:
            continue
        if key == "metadata":
            if isinstance(value, dict):
                for mk in _OWNED_META & value.keys():
                    out |= field_paths(value[mk], ("metadata", mk))
            continue
        out |= field_paths(value, (key,))
    return out


def changed_paths(old: Json, new: Json, prefix: Path = ()) -> set[Path]:
    """Leaf paths where two documents differ (maps recursed, anything else compared whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[Path] = set()
        for key in old.keys() | new.keys():
            if old.get(key) != new.get(key):
                out |= changed_paths(old.get(key), new.get(key), (*prefix, str(key)))
        return out
    return {prefix} if old != new else set()


def related(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def encode_fields(paths: set[Path]) -> dict[str, Any]:
    """``fieldsV1`` for a set of paths (``{"f:spec": {"f:replicas": {}}}``)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root


def decode_fields(fields: Json, prefix: Path = ()) -> set[Path]:
    if not isinstance(fields, dict) or not fields:
        return {prefix} if prefix else set()
    out: set[Path] = set()
    for key, value in fields.items():
        if key.startswith("f:"):
            out |= decode_fields(value, (*prefix, key[2:]))
        elif key == "." and prefix:
            out.add(prefix)
    return out


Owner = tuple[str, str]  # (manager, operation: "Apply" | "Update")


def field_owners(obj: Json) -> dict[Owner, set[Path]]:
    """Managers of an object and the fields each owns (from ``metadata.managedFields``)."""
    out: dict[Owner, set[Path]] = {}
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    for entry in (meta or {}).get("managedFields") or []:
        if isinstance(entry, dict) and entry.get("operation") in ("Apply", "Update"):
            key = (str(entry.get("manager", "")), str(entry["operation"]))
            out[key] = out.get(key, set()) | decode_fields(entry.get("fieldsV1") or {})
    return out


def apply_owners(obj: Json) -> dict[str, set[Path]]:
    """Apply managers only (manager -> fields)."""
    return {m: ps for (m, op), ps in field_owners(obj).items() if op == "Apply"}


def managed_fields(
    owners: dict[Owner, set[Path]], api_version: str, now: str, previous: Json = None
) -> list[dict[str, Any]]:
    """``metadata.managedFields`` entries (times kept for entries whose fields did not change)."""
    before = {
        (e.get("manager"), e.get("operation")): e for e in previous or [] if isinstance(e, dict)
    }
    out: list[dict[str, Any]] = []
    for manager, operation in sorted(owners, key=lambda o: (o[1] != "Apply", o[0])):
        fields = encode_fields(owners[(manager, operation)])
        if not fields:
            continue
        old = before.get((manager, operation))
        same = old is not None and old.get("fieldsV1") == fields
        out.append({
            "manager": manager, "operation": operation, "apiVersion": api_version,
            "time": old.get("time", now) if same and old is not None else now,
            "fieldsType": "FieldsV1", "fieldsV1": fields,
        })
    return out


def release_changed(owners: dict[Owner, set[Path]], changed: set[Path]) -> dict[Owner, set[Path]]:
    """Take the ``changed`` fields away from every owner given."""
    return {o: {p for p in ps if not any(related(p, c) for c in changed)} for o, ps in owners.items()}


def comparable(obj: Json) -> dict[str, Any]:
    """What ownership is tracked on: everything but status and server-owned metadata."""
    if not isinstance(obj, dict):
        return {}
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    meta = obj.get("metadata") or {}
    out["metadata"] = {k: v for k, v in meta.items() if k in _OWNED_META}
    return out


def prune_for_apply(live: Json, mine_before: set[Path], others: set[Path], applied: Json) -> Json:
    """Remove what a manager applied before, no longer applies, and nobody else owns."""
    out = copy.deepcopy(live)
    mine_now = owned_paths(applied)
    for path in mine_before & mine_now:
        # a list only this manager set is replaced by what it applies now (items it dropped go)
        if any(related(path, o) for o in others):
            continue
        parent = out
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), list):
            parent[path[-1]] = []
    for path in mine_before - mine_now:
        if not any(related(path, o) for o in others) and not any(
            len(n) > len(path) and n[: len(path)] == path for n in mine_now
        ):
            remove_path(out, path)
    return out


def conflicts(
    owners: dict[Owner, set[Path]], manager: str, changed: set[Path], applied_paths: set[Path]
) -> list[tuple[str, Path]]:
    """(other manager, field) pairs an apply would take over without ``force``."""
    out: list[tuple[str, Path]] = []
    for (m, op), ps in sorted(owners.items()):
        if (m, op) == (manager, "Apply"):
            continue
        for c in sorted(changed):
            if any(related(c, q) for q in applied_paths) and any(related(c, p) for p in ps):
                out.append((m, c))
    return out
