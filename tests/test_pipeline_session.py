"""SetupSession's own loop: steps run from other threads, one client, and a clean close."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from k3dtui.core.session import PipelineEvent, SetupSession
from k3dtui.core.spec import ClusterSpec
from k3dtui.core.steps import ClusterStep
from tests.test_pipeline import FakeProvider


class SlowProvider(FakeProvider):
    def __init__(self) -> None:
        super().__init__("demo", 1)
        self.creating = threading.Event()

    async def create(self, servers: int, agents: int, log: Any) -> None:
        self.creating.set()
        await asyncio.sleep(30)


def test_call_runs_steps_on_one_loop_thread_and_records_them() -> None:
    provider = FakeProvider("demo", 1)
    events: list[PipelineEvent] = []
    session = SetupSession(provider, ClusterSpec(name="demo"), events.append)
    threads: set[int] = set()

    def seen(event: PipelineEvent) -> None:
        threads.add(threading.get_ident())
        events.append(event)

    session.emit = seen
    session.call(ClusterStep(reuse=True))
    session.call(ClusterStep(reuse=True))  # reuses what the first one created
    session.close()
    assert session.ran == ["cluster", "cluster"]
    assert provider.calls == ["create 1 2"]
    assert len(threads) == 1 and threading.get_ident() not in threads  # the session's own thread
    assert any("reusing the existing cluster demo" in e.message for e in events)


def test_close_cancels_a_step_under_way_instead_of_leaving_its_caller_waiting() -> None:
    provider = SlowProvider()
    session = SetupSession(provider, ClusterSpec(name="demo"), lambda _e: None)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(session.call, ClusterStep(reuse=True))
        assert provider.creating.wait(5)
        session.close()
        with pytest.raises(concurrent.futures.CancelledError):
            running.result(5)
