"""The manual clock the timing tests move by hand, and the real one."""

from __future__ import annotations

import threading

import pytest

from k3dtui.core.clock import MONOTONIC, ManualClock
from k3dtui.core.watch import wait_until


def test_manual_wait_ends_when_the_clock_passes_its_deadline() -> None:
    clock = ManualClock(start=5.0)
    stop = threading.Event()
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(clock.wait(stop, 2.0)))
    t.start()
    assert clock.wait_for_sleepers(1) == [2.0]
    clock.advance(1.5)
    assert clock.sleepers() == [0.5] and results == []
    clock.advance(0.5)
    t.join(5)
    assert results == [False] and clock.sleepers() == [] and clock.now() == 7.0


def test_manual_wait_ends_at_once_when_the_event_is_set() -> None:
    clock = ManualClock()
    stop = threading.Event()
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(clock.wait(stop, 60.0)))
    t.start()
    clock.wait_for_sleepers(1)
    stop.set()
    assert wait_until(lambda: results == [True], 5)
    t.join(5)


def test_manual_clock_refuses_to_go_back_and_times_out_waiting_for_sleepers() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(TimeoutError):
        clock.wait_for_sleepers(1, timeout=0.05)


def test_monotonic_clock_waits_on_the_event() -> None:
    stop = threading.Event()
    stop.set()
    assert MONOTONIC.wait(stop, 10.0) is True
    assert MONOTONIC.now() <= MONOTONIC.now()
