"""Watches: the initial state or a resume from a resourceVersion, then the store's events, filtered by selectors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from k3dtui.sim import tables
from k3dtui.sim.apiserver.crud import Crud
from k3dtui.sim.apiserver.errors import bad_request, dumps
from k3dtui.sim.apiserver.http import out, partial, wants_metadata, wants_table
from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import ApiError, Event, Obj

_WATCH_DEFAULT_TIMEOUT = 1800.0


class Watch(Crud):
    """Watches of one resource (a namespace or all), selector-filtered."""

    # -- watch ---------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, kind: Kind, ns: str | None) -> web.StreamResponse:
        q = request.query
        match = self._matcher(request, kind)
        table = wants_table(request)
        metadata_only = wants_metadata(request)
        include = q.get("includeObject", "Metadata")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = _WATCH_DEFAULT_TIMEOUT
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError as exc:
                raise bad_request(f"invalid timeoutSeconds: {q['timeoutSeconds']!r}") from exc
        rv_text = q.get("resourceVersion", "")
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        gvr = kind.gvr

        def on_event(ev: Event) -> None:
            if ev.gvr == gvr and (ns is None or ev.namespace == ns):
                queue.put_nowait(ev)

        initial: list[tuple[str, Obj]] = []
        expired: str | None = None
        if rv_text in ("", "0"):
            items, _ = self.store.list_objects(gvr, ns)
            initial = [("ADDED", o) for o in items if match(o)]
        else:
            try:
                rv = int(rv_text)
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {rv_text!r}") from exc
            events = self.store.events_since(rv)
            if events is None:
                expired = f"too old resource version: {rv} ({self.store.oldest_rv + 1})"
            else:
                for past in events:
                    if past.gvr == gvr and (ns is None or past.namespace == ns):
                        t = _translate(past, match)
                        if t is not None:
                            initial.append(t)
        unsubscribe = self.store.subscribe(on_event) if expired is None else None
        self._watch_queues.add(queue)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired is not None:
                await resp.write(dumps({"type": "ERROR", "object": ApiError(410, "Expired", expired).status()}) + b"\n")
                await resp.write_eof()
                return resp

            def encode(etype: str, obj: Obj) -> bytes:
                obj = out(kind, obj)
                if metadata_only:
                    obj = partial(obj)
                elif table:
                    obj = tables.to_table(kind, [obj], resource_version=str(obj["metadata"].get("resourceVersion", "")),
                                          include_object=include)
                return dumps({"type": etype, "object": obj}) + b"\n"

            if initial:
                await resp.write(b"".join(encode(t, o) for t, o in initial))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    ev = await asyncio.wait_for(_get(queue), timeout=wait)
                except TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_interval
                        bm = {"kind": kind.kind, "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(self.store.resource_version)}}
                        await resp.write(dumps({"type": "BOOKMARK", "object": bm}) + b"\n")
                    continue
                if ev is None:
                    break
                chunk = []
                batch: list[Event | None] = [ev]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                stop = False
                for item in batch:
                    if item is None:
                        stop = True
                        break
                    t = _translate(item, match)
                    if t is not None:
                        chunk.append(encode(*t))
                if chunk:
                    await resp.write(b"".join(chunk))
                if stop:
                    break
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._watch_queues.discard(queue)
            if unsubscribe is not None:
                unsubscribe()
        return resp


async def _get(queue: asyncio.Queue[Event | None]) -> Event | None:
    return await queue.get()


def _translate(ev: Event, match: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """What a selector-filtered watcher sees of one store event."""
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if match(ev.obj) else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if match(ev.obj) else None
    new = match(ev.obj)
    old = match(ev.old) if ev.old is not None else new
    if new and old:
        return ("MODIFIED", ev.obj)
    if new:
        return ("ADDED", ev.obj)
    if old:
        return ("DELETED", ev.obj)
    return None

