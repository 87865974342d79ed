"""Time as the timing logic sees it: a reading and an interruptible wait.

The coalescer and the watchers take a :class:`Clock`, so their rules (a burst goes out at
once, then one call per interval; back-off between failing requests) are tested on a
clock the test moves (:class:`ManualClock`), not on wall-clock thresholds.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set (True) or ``timeout`` seconds passed (False)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``Event.wait``."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)


MONOTONIC = MonotonicClock()


class ManualClock:
    """A clock that moves only when told to (``advance``); waits end when it passes their deadline.

    ``sleepers()`` lists the deadlines of the threads waiting on it, so a test can wait until
    the code under test is blocked on the clock before it moves it.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._deadlines: dict[int, float] = {}
        self._next_id = 0

    def now(self) -> float:
        with self._cond:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._cond:
            self._now += seconds
            self._cond.notify_all()

    def sleepers(self) -> list[float]:
        """The remaining time of every wait in progress, shortest first."""
        with self._cond:
            return sorted(d - self._now for d in self._deadlines.values())

    def wait_for_sleepers(self, count: int = 1, timeout: float = 5.0) -> list[float]:
        """Block (in real time, at most ``timeout``) until ``count`` threads wait on the clock."""
        end = time.monotonic() + timeout
        with self._cond:
            while len(self._deadlines) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._deadlines)} thread(s) wait on the clock, not {count}")
                self._cond.wait(min(left, 0.01))
            return sorted(d - self._now for d in self._deadlines.values())

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._cond:
            ident = self._next_id
            self._next_id += 1
            self._deadlines[ident] = self._now + timeout
            self._cond.notify_all()
        try:
            while True:
                if event.is_set():
                    return True
                with self._cond:
                    if self._now >= self._deadlines[ident]:
                        return False
                    # the event has no hook into the condition: look again soon
                    self._cond.wait(0.002)
        finally:
            with self._cond:
                del self._deadlines[ident]
                self._cond.notify_all()
