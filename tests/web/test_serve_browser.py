"""`k3dtui serve` driven from a real headless Chromium: the page loads the app, keys typed in
the page reach it (on the simulated cluster `x` replaces a pod and `+` scales, seen through
the Kubernetes API), closing the page ends its app process, every request stays on
127.0.0.1, and a public server refuses a page without its token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from k3dtui.core.identity import APP
from k3dtui.core.kube import make_api_client
from tests.simfixtures import SimHandle
from tests.web.serving import Served, browser, serve, wait_for

pytestmark = pytest.mark.browser


class Screen:
    """What the app sent the page over its websocket (the terminal's output, decoded)."""

    def __init__(self, page: Any) -> None:
        self.chunks: list[str] = []
        page.on("websocket", self._attach)

    def _attach(self, ws: Any) -> None:
        ws.on("framereceived", self._frame)

    def _frame(self, payload: Any) -> None:
        self.chunks.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload))

    def text(self) -> str:
        return "".join(self.chunks)


def app_pods(api: Any) -> dict[str, bool]:
    """Name → being deleted, for the app's pods."""
    from kubernetes import client

    pods = client.CoreV1Api(api).list_namespaced_pod(APP.namespace, label_selector=APP.label_selector)
    return {p.metadata.name: p.metadata.deletion_timestamp is not None for p in pods.items}


def replicas(api: Any) -> int:
    from kubernetes import client

    dep = client.AppsV1Api(api).read_namespaced_deployment(APP.deployment, APP.namespace)
    return int(dep.spec.replicas)


def open_app(ctx: Any, served: Served, url: str | None = None) -> tuple[Any, Screen, list[str]]:
    page = ctx.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    screen = Screen(page)
    page.goto(url or served.url, timeout=30_000)
    page.wait_for_selector("body.-first-byte", timeout=60_000)
    return page, screen, requests


def test_keys_in_the_page_reach_the_app_on_the_simulated_cluster(sim_app: SimHandle) -> None:
    api = make_api_client(sim_app.kubeconfig, sim_app.context)
    with serve("--sim", "--name", sim_app.name) as served, browser() as ctx:
        assert "127.0.0.1" in served.first_line and "token" not in served.url
        page, screen, requests = open_app(ctx, served)
        # the page runs its own k3dtui with the served options
        apps = wait_for(served.apps, 20, "the tab's app process")
        assert len(apps) == 1
        cmdline = " ".join(apps[0].cmdline())
        assert "--sim" in cmdline and f"--name {sim_app.name}" in cmdline
        # the live view (a deployed cluster opens there), as the app drew it into the page
        wait_for(lambda: all(word in screen.text() for word in ("SIMULATED CLUSTER", "replicas", "served")),
                 60, "the live view in the page", page)

        before = wait_for(lambda: {n for n, gone in app_pods(api).items() if not gone} if len(app_pods(api)) == 3 else None,
                          30, "three app pods")
        page.focus(".xterm-helper-textarea")  # keyboard focus, no click sent to the app
        page.keyboard.press("x")
        wait_for(lambda: any(gone or name not in before for name, gone in app_pods(api).items())
                 or len(app_pods(api)) < 3, 30, "a pod deleted by `x`")
        wait_for(lambda: len({n for n, gone in app_pods(api).items() if not gone} - before) == 1, 60,
                 "a replacement pod after `x`")

        assert replicas(api) == 3
        page.keyboard.type("+")
        wait_for(lambda: replicas(api) == 4, 30, "the Deployment scaled to 4 by `+`")

        # nothing the page loads comes from anywhere but this server
        hosts = {urlsplit(u).hostname for u in requests}
        assert hosts == {"127.0.0.1"}, requests

        # a second tab gets its own process; closing a tab ends only its process
        page2, _screen2, _ = open_app(ctx, served)
        wait_for(lambda: len(served.apps()) == 2, 20, "a second app process for the second tab")
        first = apps[0]
        page.close()
        wait_for(lambda: not first.is_running() or first.status() == "zombie", 20, "the first tab's process to end")
        assert len(served.apps()) == 1
        page2.close()
        wait_for(lambda: not served.apps(), 20, "the second tab's process to end")


def test_a_public_server_refuses_the_page_without_its_token() -> None:
    with serve("--sim", "--public", "--host", "127.0.0.1") as served, browser() as ctx:
        assert "?token=" in served.url
        assert "--read-only is recommended" in served.first_line
        token = served.url.split("token=", 1)[1]
        page = ctx.new_page()
        for url in (f"{served.base()}/", f"{served.base()}/?token=wrong{token}", f"{served.base()}/?token="):
            response = page.goto(url)
            assert response is not None and response.status == 403, url
            assert "token" in page.inner_text("body")
        page.goto(f"{served.base()}/static/js/textual.js")
        assert "token" in page.inner_text("body")
        assert served.apps() == []
        # a websocket without the token is refused too, and starts nothing
        status = page.evaluate(
            """url => new Promise(done => { const ws = new WebSocket(url);
                 ws.onopen = () => done('open'); ws.onerror = () => done('refused'); })""",
            f"ws://127.0.0.1:{served.port}/ws?width=80&height=24",
        )
        assert status == "refused"
        assert served.apps() == []
        page.close()

        # with the token: the app runs
        page, _screen, _requests = open_app(ctx, served)
        wait_for(lambda: len(served.apps()) == 1, 20, "the app process with the token")
        page.close()
        wait_for(lambda: not served.apps(), 20, "the app process to end with the tab")


def test_ctrl_c_stops_serving_and_ends_the_open_tabs_processes() -> None:
    with serve("--sim", "--read-only") as served, browser() as ctx:
        open_app(ctx, served)
        open_app(ctx, served)
        apps = wait_for(lambda: served.apps() if len(served.apps()) == 2 else None, 20, "two app processes")
        assert all("--read-only" in app.cmdline() for app in apps)
        served.ctrl_c()
        assert served.proc.wait(20) == 0
        _gone, alive = psutil.wait_procs(apps, timeout=10)
        assert alive == []
        assert "stopped serving" in "".join(served.stderr_lines)
