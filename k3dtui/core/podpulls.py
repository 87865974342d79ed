"""While k3dtui waits for pods that pull their images inside the cluster (MetalLB's controller
and speakers on a first run), the kubelet's image events say what is happening: ``Pulling``,
``Pulled``, ``Failed``, ``BackOff`` (Kubernetes ``pkg/kubelet/events/event.go``). This turns
the new ones into one line each."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PULL_REASONS = frozenset({"Pulling", "Pulled", "Failed", "BackOff", "ErrImagePull", "ImagePullBackOff"})

Obj = dict[str, Any]


class PodPullEvents:
    """New image-pull events of the pods in ``namespace``, each said once (by uid and count)."""

    def __init__(self, list_events: Callable[[], list[Obj]], *, every: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._list = list_events
        self._seen: set[tuple[str, int]] = set()
        self._every = every
        self._clock = clock
        self._last: float | None = None

    def new_lines(self) -> list[str]:
        """The events not said yet; the API is asked at most once per ``every`` seconds."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            return []
        self._last = now
        try:
            events = self._list()
        except Exception:  # events are a courtesy: never fail a wait because of them
            return []
        out: list[str] = []
        for ev in sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or "")):
            reason = str(ev.get("reason") or "")
            involved = ev.get("involvedObject") or {}
            if reason not in PULL_REASONS or involved.get("kind") != "Pod":
                continue
            key = (str((ev.get("metadata") or {}).get("uid") or ""), int(ev.get("count") or 1))
            if key in self._seen:
                continue
            self._seen.add(key)
            out.append(f"pod {involved.get('name', '?')}: {reason}: {ev.get('message', '')}".rstrip(": "))
        return out
