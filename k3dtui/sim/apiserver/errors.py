"""Kubernetes ``Status`` objects and the JSON responses that carry them."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from k3dtui.sim.store import ApiError, Obj


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(obj: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=dumps(obj), status=status, headers={"Content-Type": content_type})


def status_response(err: ApiError) -> web.Response:
    return json_response(err.status(), status=err.code)


def success_status(details: Obj) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


NOT_FOUND_MSG = "the server could not find the requested resource"
