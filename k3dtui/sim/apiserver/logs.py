"""``GET pods/{name}/log``: a pod's log as kubelet serves it.

The lines come from the data plane (:mod:`k3dtui.sim.podio`, through ``log_source``): the
app's own startup and access lines, with their times, one list per container
incarnation. The options and their checks follow Kubernetes 1.31:

- validation (k8s.io/kubernetes ``pkg/apis/core/validation/validation.go``
  ``ValidatePodLogOptions``): ``tailLines`` ≥ 0, ``limitBytes`` ≥ 1, ``sinceSeconds`` ≥ 1,
  not both ``sinceSeconds`` and ``sinceTime``;
- which container (``pkg/registry/core/pod/strategy.go`` ``LogLocation``): the only one, or
  the one named, else 400 naming the choices;
- ``previous``: the last terminated incarnation, else 400 ``previous terminated container
  … not found`` (``pkg/kubelet/kubelet_pods.go`` ``validateContainerLogStatus``), as is a
  container still waiting to start;
- ``timestamps`` prefixes each line with its time in ``RFC3339Nano`` with all nine digits
  (``pkg/kubelet/kuberuntime/logs/logs.go`` ``timeFormatOut``); ``limitBytes`` cuts the
  output at that many bytes; ``follow`` streams new lines until the container ends, the
  pod goes or the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from k3dtui.sim import gvrs
from k3dtui.sim.apiserver.errors import bad_request
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import ApiError, Obj

# log_source(uid, previous=..., after=..., since_ns=..., tail=...) -> the data plane's answer
LogSource = Callable[..., Awaitable[dict[str, Any]]]
FOLLOW_POLL = 0.2  # seconds between looks for new lines while following


def format_time(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def _invalid(name: str, field: str, value: Any, why: str) -> ApiError:
    return ApiError(422, "Invalid", f'PodLogOptions "{name}" is invalid: {field}: Invalid value: {value}: {why}',
                    {"name": name, "kind": "PodLogOptions",
                     "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {why}", "field": field}]})


def _int_option(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"couldn't parse {key}: strconv.ParseInt: parsing {raw!r}: invalid syntax") from exc


def _parse_time(raw: str) -> int:
    try:
        t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(f'parsing time "{raw}" as "2006-01-02T15:04:05Z07:00": cannot parse') from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000_000)


class Logs(Handlers):
    """Pods' logs from the data plane (``log_source``), or ``log_provider`` for tests."""

    log_source: LogSource | None = None

    async def _pod_log(self, request: web.Request, kind: Kind, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        pod = self.store.require(kind.gvr, ns, name)
        tail = _int_option(request, "tailLines")
        limit = _int_option(request, "limitBytes")
        since_s = _int_option(request, "sinceSeconds")
        since_time = q.get("sinceTime")
        if tail is not None and tail < 0:
            raise _invalid(name, "tailLines", tail, "must be greater than or equal to 0")
        if limit is not None and limit < 1:
            raise _invalid(name, "limitBytes", limit, "must be greater than 0")
        if since_s is not None and since_s < 1:
            raise _invalid(name, "sinceSeconds", since_s, "must be greater than 0")
        if since_s is not None and since_time:
            raise _invalid(name, "sinceSeconds", since_s, "at most one of `sinceTime` or `sinceSeconds` may be specified")
        since_ns = _parse_time(since_time) if since_time else (time.time_ns() - since_s * 1_000_000_000 if since_s else 0)
        container = self._log_container(pod, q.get("container"))
        previous = q.get("previous") in ("true", "1")
        follow = q.get("follow") in ("true", "1")
        stamps = q.get("timestamps") in ("true", "1")

        if self.log_source is None:
            text = self.log_provider(ns, name, q.get("container")) if self.log_provider else ""
            return web.Response(text=text, content_type="text/plain")
        uid = str(pod["metadata"].get("uid", ""))
        try:
            first = await self.log_source(uid, previous=previous, after=0, since_ns=since_ns,
                                          tail=-1 if tail is None else tail)
        except RuntimeError as exc:
            raise ApiError(500, "InternalError", f"Internal error occurred: the data plane is not answering: {exc}") from exc
        self._check_log_status(pod, container, previous, bool(first.get("found")))

        def render(lines: list[list[Any]]) -> bytes:
            return b"".join(((format_time(int(ts)) + " ") if stamps else "").encode() + str(text).encode() + b"\n"
                            for ts, text in lines)

        body = render(first.get("lines") or [])
        if not follow or previous:
            return web.Response(body=body[:limit] if limit else body, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        sent = 0
        incarnation, after = first.get("incarnation"), int(first.get("next", 0))
        running = bool(first.get("running"))
        with contextlib.suppress(ConnectionError, asyncio.CancelledError, RuntimeError):
            while True:
                if body:
                    if limit:
                        body = body[: max(0, limit - sent)]
                    await resp.write(body)
                    sent += len(body)
                    if limit and sent >= limit:
                        break
                if not running or not self._pod_is(ns, name, uid):
                    if running:  # the container just ended: the lines it wrote last
                        last = await self.log_source(uid, previous=False, after=after, since_ns=since_ns, tail=-1)
                        if last.get("incarnation") == incarnation and last.get("lines"):
                            body = render(last["lines"])
                            if limit:
                                body = body[: max(0, limit - sent)]
                            await resp.write(body)
                    break
                await asyncio.sleep(FOLLOW_POLL)
                if request.transport is None or request.transport.is_closing():
                    break
                more = await self.log_source(uid, previous=False, after=after, since_ns=since_ns, tail=-1)
                if more.get("incarnation") != incarnation:
                    break  # the container ended and another started: this stream is over
                after, running = int(more.get("next", after)), bool(more.get("running"))
                body = render(more.get("lines") or [])
            with contextlib.suppress(ConnectionError, RuntimeError):
                await resp.write_eof()
        return resp

    def _pod_is(self, ns: str, name: str, uid: str) -> bool:
        """The pod is still there, the same one, and not finished."""
        pod = self.store.peek(gvrs.PODS, ns, name)
        return pod is not None and pod["metadata"].get("uid") == uid and \
            (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")

    @staticmethod
    def _log_container(pod: Obj, wanted: str | None) -> str:
        spec = pod.get("spec") or {}
        name = pod["metadata"]["name"]
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        others = [str(c.get("name")) for c in (spec.get("initContainers") or []) + (spec.get("ephemeralContainers") or [])]
        if wanted:
            if wanted not in names + others:
                raise bad_request(f"container {wanted} is not valid for pod {name}")
            return wanted
        if len(names) == 1:
            return names[0]
        if not names:
            raise bad_request(f"pod {name} has no containers")
        choices = " ".join(names)
        raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{choices}]"
                          + (f" or one of the init containers: [{' '.join(others)}]" if others else ""))

    @staticmethod
    def _check_log_status(pod: Obj, container: str, previous: bool, found: bool) -> None:
        name = pod["metadata"]["name"]
        statuses = {str(cs.get("name")): cs for cs in (pod.get("status") or {}).get("containerStatuses") or []}
        cs = statuses.get(container) or {}
        if previous:
            if not found:
                raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            return
        waiting = (cs.get("state") or {}).get("waiting")
        if not found and (waiting or not cs):
            reason = (waiting or {}).get("reason") or "ContainerCreating"
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
