"""The watcher against a scripted API server: list → watch from RV, bookmarks, normal end,
410 (as an event and as HTTP), dropped streams, an unreachable server, inactivity, stop()."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_watch_fakeapi import EXPIRED, PODS_PATH, FakeApi, bookmark, event, pod

from k3dtui.core.clock import ManualClock
from k3dtui.core.kube import make_api_client
from k3dtui.core.watch import Backoff, Watcher, WatchSettings, describe_error, wait_until

FAST = WatchSettings(
    timeout_seconds=30,
    inactivity_timeout=5.0,
    connect_timeout=1.0,
    list_timeout=2.0,
    backoff_initial=0.05,
    backoff_max=0.2,
    absent_poll=0.1,
)


class Recorder:
    """A WatchSink that keeps everything it is told, and the current picture by name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.statuses: list[tuple[bool, str]] = []

    def resync(self, kind: str, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.log.append(("resync", sorted(i["metadata"]["name"] for i in items)))
            self.objects = {i["metadata"]["name"]: i for i in items}

    def event(self, kind: str, type_: str, obj: dict[str, Any]) -> None:
        with self.lock:
            name = obj["metadata"]["name"]
            self.log.append((type_, name))
            if type_ == "DELETED":
                self.objects.pop(name, None)
            else:
                self.objects[name] = obj

    def status(self, kind: str, connected: bool, reason: str) -> None:
        with self.lock:
            self.statuses.append((connected, reason))

    def entries(self) -> list[tuple[str, Any]]:
        with self.lock:
            return list(self.log)


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi().start()
    yield api
    api.stop()


@pytest.fixture
def api_client(fake: FakeApi, tmp_path: Path) -> Iterator[client.ApiClient]:
    api = make_api_client(fake.kubeconfig(tmp_path))
    yield api
    api.close()


def pods_watcher(api: client.ApiClient, sink: Recorder, **kw: Any) -> Watcher:
    call = functools.partial(client.CoreV1Api(api).list_namespaced_pod, "default", label_selector="app=fastapi")
    return Watcher("pods", call, sink, settings=kw.pop("settings", FAST), **kw)


@pytest.fixture
def running() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for w in started:
        w.stop()


def start(running: list[Watcher], w: Watcher) -> Watcher:
    running.append(w)
    w.start()
    return w


def test_lists_then_watches_from_the_list_rv_and_skips_bookmarks(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5), pod("b", 6)], 10)
    fake.script(
        PODS_PATH,
        event("ADDED", pod("c", 11)),
        event("MODIFIED", pod("a", 12, status={"phase": "Succeeded"})),
        event("DELETED", pod("b", 13)),
        bookmark(20),
        ("hang",),
    )
    sink = Recorder()
    w = start(running, pods_watcher(api_client, sink))
    assert wait_until(lambda: len(sink.entries()) >= 4, 5)
    assert sink.entries() == [("resync", ["a", "b"]), ("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert set(sink.objects) == {"a", "c"}
    assert sink.objects["a"]["status"]["phase"] == "Succeeded"
    watch = fake.watches()[0]
    assert watch.query["resourceVersion"] == "10"
    assert watch.query["allowWatchBookmarks"] == "true"
    assert watch.query["timeoutSeconds"] == "30"
    assert watch.query["labelSelector"] == "app=fastapi"
    assert wait_until(lambda: w.resource_version == "20", 2)  # the bookmark's RV is kept
    assert sink.statuses == [(True, "")]


def test_normal_end_rewatches_from_the_last_rv_without_relisting(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    fake.script(PODS_PATH, event("ADDED", pod("b", 11)), bookmark(15), ("close",))
    fake.script(PODS_PATH, event("ADDED", pod("c", 16)), ("close",))
    sink = Recorder()
    w = start(running, pods_watcher(api_client, sink))
    assert wait_until(lambda: len(fake.watches()) >= 3, 5)
    rvs = [r.query.get("resourceVersion") for r in fake.watches()[:3]]
    assert rvs == ["10", "15", "16"]
    assert len(fake.list_requests()) == 1
    assert w.lists == 1
    assert set(sink.objects) == {"a", "b", "c"}


def test_expired_event_relists_and_resyncs(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5), pod("ghost", 6)], 10)
    fake.script(PODS_PATH, EXPIRED)

    def relisted() -> None:
        # What the second list sees: the ghost is gone, a new pod exists.
        fake.lists[PODS_PATH] = ([pod("a", 5), pod("new", 30)], 40)

    sink = Recorder()
    # Change the list answer right after the first list was served.
    orig = fake._handle

    def handle(h: Any) -> None:
        orig(h)
        if len(fake.list_requests()) == 1:
            relisted()

    fake._handle = handle  # type: ignore[method-assign]
    start(running, pods_watcher(api_client, sink))
    assert wait_until(lambda: len(fake.list_requests()) >= 2 and len(fake.watches()) >= 2, 5)
    assert sink.entries()[:2] == [("resync", ["a", "ghost"]), ("resync", ["a", "new"])]
    assert set(sink.objects) == {"a", "new"}
    assert fake.watches()[1].query["resourceVersion"] == "40"
    assert all(ok for ok, _ in sink.statuses)  # a 410 is not a disconnection


def test_http_410_on_the_watch_request_relists(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    fake.script(PODS_PATH, ("http", 410))
    sink = Recorder()
    w = start(running, pods_watcher(api_client, sink))
    assert wait_until(lambda: w.lists >= 2 and len(fake.watches()) >= 2, 5)
    assert [e[0] for e in sink.entries()[:2]] == ["resync", "resync"]


def test_dropped_stream_relists_and_recovers(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    fake.script(PODS_PATH, event("ADDED", pod("b", 11)), ("drop",))
    sink = Recorder()
    w = start(running, pods_watcher(api_client, sink))
    assert wait_until(lambda: w.lists >= 2 and len(fake.watches()) >= 2, 5)
    assert sink.entries()[:3] == [("resync", ["a"]), ("ADDED", "b"), ("resync", ["a"])]
    # The state after recovery is what the server lists (b was never listed: no ghost).
    assert set(sink.objects) == {"a"}
    assert w.alive


def test_unreachable_server_reports_disconnected_backs_off_and_recovers(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    fake.script(PODS_PATH, ("drop",))
    port = fake.port
    fake.stop()
    sink = Recorder()
    clock = ManualClock()
    w = start(running, pods_watcher(api_client, sink, clock=clock))
    assert wait_until(lambda: any(not ok for ok, _ in sink.statuses), 5)
    connected, reason = sink.statuses[0]
    assert not connected
    assert "refused" in reason
    assert not w.connected

    def failures() -> int:
        return sum(1 for ok, _ in sink.statuses if not ok)

    # Back-off 0.05 s doubling to the 0.2 s cap, one attempt per wait, nothing in between.
    waits = []
    for attempt in range(1, 6):
        (left,) = clock.wait_for_sleepers(1)
        assert failures() == attempt  # no retry until the clock passes the back-off
        waits.append(round(left, 3))
        clock.advance(left)
        assert wait_until(lambda a=attempt: failures() == a + 1, 5)
    assert waits == [0.05, 0.1, 0.2, 0.2, 0.2]
    fake.port = port
    fake.start()
    clock.advance(clock.wait_for_sleepers(1)[0])
    assert wait_until(lambda: w.connected and bool(sink.objects), 5)
    assert sink.statuses[-1] == (True, "")
    assert set(sink.objects) == {"a"}


def test_inactivity_timeout_rewatches_from_the_last_rv(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    fake.script(PODS_PATH, event("ADDED", pod("b", 12)), ("hang",))
    settings = WatchSettings(
        timeout_seconds=30, inactivity_timeout=0.3, connect_timeout=1.0, backoff_initial=0.05, backoff_max=0.2
    )
    sink = Recorder()
    w = start(running, pods_watcher(api_client, sink, settings=settings))
    assert wait_until(lambda: len(fake.watches()) >= 2, 5)
    assert fake.watches()[1].query["resourceVersion"] == "12"
    assert w.lists == 1
    assert all(ok for ok, _ in sink.statuses)


def test_stop_ends_a_hanging_watch_promptly(
    fake: FakeApi, api_client: client.ApiClient
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    sink = Recorder()
    w = pods_watcher(api_client, sink)
    w.start()
    assert wait_until(lambda: len(fake.watches()) == 1, 5)
    time.sleep(0.1)
    w.stop(timeout=2.0)
    # the hanging request was aborted: stop() did not wait for the 5 s inactivity timeout
    assert not w.alive
    assert w.watches == 1


def test_absent_resource_gives_an_empty_resync_then_picks_it_up(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    path = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses"
    call = functools.partial(
        client.CustomObjectsApi(api_client).list_namespaced_custom_object,
        "metallb.io", "v1beta1", "metallb-system", "servicel2statuses",
    )
    sink = Recorder()
    w = start(running, Watcher("servicel2statuses", call, sink, settings=FAST, absent_ok=True))
    assert wait_until(lambda: bool(sink.entries()), 5)
    assert sink.entries()[0] == ("resync", [])
    assert sink.statuses[0] == (True, "")
    l2 = {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
          "metadata": {"name": "l2-x", "namespace": "metallb-system", "uid": "u1", "resourceVersion": "3"},
          "status": {"node": "k3d-x-agent-1", "serviceName": "fastapi-service", "serviceNamespace": "default"}}
    fake.lists[path] = ([l2], 3)
    assert wait_until(lambda: "l2-x" in sink.objects, 5)
    assert w.connected


def test_error_event_other_than_410_backs_off_and_relists(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    boom = ("event", {"type": "ERROR", "object": {"kind": "Status", "status": "Failure", "code": 500,
                                                  "reason": "InternalError", "message": "etcd went away"}})
    fake.script(PODS_PATH, boom)
    sink = Recorder()
    w = start(running, pods_watcher(api_client, sink))
    assert wait_until(lambda: w.lists >= 2 and w.connected, 5)
    assert any(not ok and "etcd went away" in reason for ok, reason in sink.statuses)


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.25, 2.0)
    assert [b.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    b.reset()
    assert b.next() == 0.25
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_describe_error_gives_one_readable_line() -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    )
    assert describe_error(refused) == "cannot reach the Kubernetes API server (connection refused)"
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind":"Status","message":"pods is forbidden","code":403}'
    assert describe_error(exc) == "the API server refused (403 Forbidden): pods is forbidden"


def test_streams_that_break_at_once_do_not_make_a_busy_loop(
    fake: FakeApi, api_client: client.ApiClient, running: list[Watcher]
) -> None:
    fake.lists[PODS_PATH] = ([pod("a", 5)], 10)
    for _ in range(200):
        fake.script(PODS_PATH, ("drop",))
    sink = Recorder()
    clock = ManualClock()
    w = start(running, pods_watcher(api_client, sink, clock=clock))
    # Each stream breaks as it starts: before the next list the watcher waits on its
    # back-off (0.05 s doubling to 0.2 s), so the clock alone paces it: no busy loop.
    waits = []
    for n in range(1, 6):
        (left,) = clock.wait_for_sleepers(1)
        assert w.lists == n
        waits.append(round(left, 3))
        clock.advance(left)
        assert wait_until(lambda n=n: w.lists == n + 1, 5)
    assert waits == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert w.alive and set(sink.objects) == {"a"}
