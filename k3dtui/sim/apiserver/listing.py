"""What a list answers: ``resourceVersion`` with ``resourceVersionMatch`` and pagination
with ``limit`` and ``continue`` (``remainingItemCount``), as kube-apiserver 1.31 does.

Sources: https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
(the semantics of ``resourceVersion`` and ``resourceVersionMatch`` on list) and
#retrieving-large-results-sets-in-chunks (``limit``/``continue``);
staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/validation/validation.go
(``ValidateListOptions``: the 422s), staging/src/k8s.io/apiserver/pkg/storage/continue.go
(the continue token: base64 of ``{"v":"meta.k8s.io/v1","rv":N,"start":KEY}``) and
staging/src/k8s.io/apiserver/pkg/storage/errors.go (``NewTooLargeResourceVersionError``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from k3dtui.sim.store import GVR, ApiError, Obj, Store

_CONTINUE_VERSION = "meta.k8s.io/v1"
_TOO_OLD_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a "
    "new list without the continue parameter, or use the continue token in this response to retrieve "
    "the remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list."
)
_TOO_OLD_LIST = "The resourceVersion for the provided list is too old."


@dataclass
class Page:
    items: list[Obj]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None

    def list_meta(self) -> Obj:
        meta: Obj = {"resourceVersion": str(self.resource_version)}
        if self.continue_token:
            meta["continue"] = self.continue_token
        if self.remaining is not None:
            meta["remainingItemCount"] = self.remaining
        return meta


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {field}: {message}',
        {"group": "meta.k8s.io", "kind": "ListOptions",
         "causes": [{"reason": "FieldValueForbidden" if "Forbidden" in message else "FieldValueInvalid",
                     "message": message, "field": field}]},
    )


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    # NUL sorts before any character of a name: keys order as (namespace, name) do
    return f"{meta.get('namespace', '')}\x00{meta['name']}"


def encode_continue(rv: int, start: str) -> str:
    raw = orjson.dumps({"v": _CONTINUE_VERSION, "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        rv, start = int(data["rv"]), str(data["start"])
        if data.get("v") != _CONTINUE_VERSION or rv <= 0:
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ApiError(400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion "
                       "(version meta.k8s.io/v1)") from None
    return rv, start


def too_large(rv: int, current: int) -> ApiError:
    return ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def list_page(store: Store, gvr: GVR, ns: str | None, query: Mapping[str, str],
              match: Callable[[Obj], bool], *, selective: bool) -> Page:
    """The objects a list request gets (the stored ones: serialize them, never mutate them),
    its resourceVersion and its continue token.

    ``selective``: a label or field selector is set (then ``remainingItemCount`` is not).
    """
    rv_text = query.get("resourceVersion", "")
    rv_match = query.get("resourceVersionMatch", "")
    cont = query.get("continue", "")
    limit_text = query.get("limit", "")
    limit = 0
    if limit_text:
        try:
            limit = int(limit_text)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid limit: {limit_text!r}") from None
        limit = max(limit, 0)
    if rv_match:
        if rv_match not in ("NotOlderThan", "Exact"):
            raise _invalid("resourceVersionMatch",
                           f'Unsupported value: "{rv_match}": supported values: "Exact", "NotOlderThan", ""')
        if cont:
            raise _invalid("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden when continue is provided")
        if not rv_text:
            raise _invalid("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")
        if rv_match == "Exact" and rv_text == "0":
            raise _invalid("resourceVersionMatch", 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
    if cont and rv_text:
        raise ApiError(400, "BadRequest", 'specifying resource version is not allowed when using continue')
    current = store.resource_version
    at: int | None = None  # a past resourceVersion to serve the list at (None: now)
    start = ""
    if cont:
        at, start = decode_continue(cont)
        if at < store.oldest_rv:
            raise ApiError(410, "Expired", _TOO_OLD_CONTINUE)
    elif rv_text and rv_text != "0":
        try:
            rv = int(rv_text)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text!r}") from None
        if rv > current:
            raise too_large(rv, current)
        if rv_match == "Exact":
            if rv < store.oldest_rv:
                raise ApiError(410, "Expired", _TOO_OLD_LIST)
            at = rv
    if at is None or at >= current:
        # not copied: the caller serializes the page before the loop runs anything else
        items = store.list_stored(gvr, ns)
        served = current if at is None else at
    else:
        past = store.state_at(gvr, at, ns)
        if past is None:
            raise ApiError(410, "Expired", _TOO_OLD_CONTINUE if cont else _TOO_OLD_LIST)
        items, served = past, at
    if start:
        items = [o for o in items if _key(o) > start]
    items = [o for o in items if match(o)]
    # resourceVersion "0" is served from the watch cache, which ignores limit
    if not limit or rv_text == "0" or len(items) <= limit:
        return Page(items, served)
    page = items[:limit]
    remaining = None if selective else len(items) - limit
    return Page(page, served, encode_continue(served, _key(page[-1])), remaining)
