"""What the API server's handlers share: the store, the kinds served, admission hooks and
the tasks and watches to stop. :class:`~k3dtui.sim.apiserver.app.ApiServer` sets it up;
each concern (discovery, CRUD, patch, subresources, watch) adds its handlers on top."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from k3dtui.sim.kinds import Kind, Registry
from k3dtui.sim.store import GVR, Event, Obj, Store

# fn(operation, new_obj, old_obj): raises ApiError to refuse a write
Admission = Callable[[str, Obj, Obj | None], None]


class Handlers:
    store: Store
    registry: Registry
    bookmark_interval: float
    log_provider: Callable[[str, str, str | None], str] | None
    _admission: dict[GVR, list[Admission]]
    _watch_queues: set[asyncio.Queue[Event | None]]
    _tasks: set[asyncio.Task[None]]
    _discovery_cache: dict[tuple[str, int], bytes]
    _host: str
    _port: int | None

    def _admit(self, kind: Kind, op: str, new: Obj, old: Obj | None) -> None:
        for fn in self._admission.get(kind.gvr, ()):
            fn(op, new, old)
