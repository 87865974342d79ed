"""Write SVG screenshots of each k3dtui screen into screenshots/.

Drives the real app with Pilot against a freshly created simulated cluster (its own
state folder, removed afterwards): setup, pool, deploy in progress, and the live view
with load running and a pod terminating (and the same at 80x24). ``--fixed`` uses the fixed-data backend
instead (no cluster at all). Then, on the same cluster, ``k3dtui serve`` in a headless
Chromium (the system's, through Playwright): ``web.png``, the live view in a browser with
load running (skipped with ``--fixed`` or ``--no-web``). Last, ``attach.svg``: ``k3dtui attach`` on an
app k3dtui did not create (``hello`` in namespace ``shop``, applied like kubectl would), read-write,
with the load running inside the cluster as a Job of two workers.

    python scripts/screenshots.py [--out screenshots] [--size 120x40] [--fixed] [--no-web]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


async def wait_until(pilot: Any, predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        failures = getattr(pilot.app, "failures", [])
        if failures:
            raise SystemExit(f"screenshots: {what}: a step failed: {failures[-1]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        await pilot.pause(0.05)


def screen_is(app: Any, name: str) -> bool:
    return type(app.screen).__name__ == name


async def drive(backend: Any, out: Path, size: tuple[int, int], *, fixed: bool = False) -> list[Path]:
    from textual.widgets import Input

    from k3dtui.ui.app import K3dtuiApp
    from k3dtui.ui.screens.live import LiveScreen

    app = K3dtuiApp(backend)
    written: list[Path] = []

    def shot(name: str) -> None:
        for screen in app.screen_stack:
            for field in screen.query(Input):
                field.cursor_blink = False
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        written.append(path)
        print(f"wrote {path}")

    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: screen_is(app, "SetupScreen"), 30, "the setup screen")
        await wait_until(
            pilot,
            lambda: app.screen.query("#doctor") and "checking" not in str(app.screen.query_one("#doctor").render()),
            30,
            "the doctor",
        )
        await pilot.pause(0.6)
        shot("setup")

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: getattr(app.screen, "created", False), 120, "the cluster")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_is(app, "PoolScreen") and app.screen.choice is not None, 30, "the pool screen")
        await pilot.pause(0.3)
        shot("pool")

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: getattr(app.screen, "applied", False), 180, "MetalLB and the pool")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_is(app, "DeployScreen"), 10, "the deploy screen")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: (fixed and getattr(app.screen, "deployed", False))
            or (app.screen.states.get("deploy") == "running" and len(app.screen.pods) >= 3),
            120,
            "the deploy step under way",
        )
        shot("deploy")
        await wait_until(pilot, lambda: getattr(app.screen, "deployed", False), 180, "the app deployed")
        await pilot.press("enter")

        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 10, "the live view")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await wait_until(
            pilot,
            lambda: live.snapshot.service is not None and bool(live.snapshot.service.external_ip)
            and sum(1 for p in live.snapshot.pods if p.status == "Running") >= 3,
            60,
            "three running pods behind the external IP",
        )
        await pilot.press("l")
        await wait_until(pilot, lambda: live.load is not None and live.load.responses > 500, 30, "load counts")
        await pilot.press("right")
        victim = live.selected_pod()
        await pilot.press("k")
        await wait_until(
            pilot,
            lambda: victim is not None and any(p.name == victim.name and p.deleting for p in live.snapshot.pods),
            20,
            "a pod terminating",
        )
        await pilot.pause(1.0)
        shot("live")
        if not fixed:
            # the flow panel under Local: t switches the policy, r resets the counts
            await pilot.press("t")
            await wait_until(
                pilot,
                lambda: live.snapshot.service is not None and live.snapshot.service.traffic_policy == "Local"
                and bool(live.snapshot.service.announcing_node),
                20,
                "externalTrafficPolicy Local",
            )
            await pilot.pause(1.0)
            await pilot.press("r")
            await wait_until(pilot, lambda: live.load is not None and live.load.responses > 300, 30, "load counts")
            await pilot.pause(1.0)
            shot("flow")
            await pilot.press("t")
        # the same moment on an 80x24 terminal: the compact list (one line per pod)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(1.0)
        shot("live-narrow")
        await pilot.resize_terminal(*size)
        await pilot.press("l")
        await wait_until(pilot, lambda: live.load is not None and not live.load.running, 20, "the load to stop")
    return written


def web_shot(out: Path) -> Path:
    """``k3dtui serve --sim`` on the cluster left by ``drive``, opened in a headless Chromium:
    the live view with load running, saved as ``web.png``."""
    from tests.web.serving import browser, serve, wait_for

    path = out / "web.png"
    with serve("--sim") as served, browser() as ctx:
        page = ctx.new_page()
        seen: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda data: seen.append(
            data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data))))
        page.goto(served.url, timeout=30_000)
        page.wait_for_selector("body.-first-byte", timeout=60_000)
        wait_for(lambda: all(w in "".join(seen) for w in ("replicas", "served")), 60, "the live view in the browser", page)
        page.focus(".xterm-helper-textarea")  # keyboard focus, no click sent to the app
        page.keyboard.press("l")
        page.wait_for_timeout(6000)  # the load starts and the counts build up
        page.screenshot(path=str(path))
        page.keyboard.press("l")
        page.wait_for_timeout(500)
        page.close()
    print(f"wrote {path}")
    return path


HELLO = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello", "namespace": "shop"},
     "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "hello"}},
              "template": {"metadata": {"labels": {"app": "hello"}},
                           "spec": {"containers": [{"name": "hello", "image": "fastapi-random:latest",
                                                    "imagePullPolicy": "Never",
                                                    "ports": [{"containerPort": 3000}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello", "namespace": "shop"},
     "spec": {"type": "LoadBalancer", "selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 3000}]}},
]


async def attach_shot(kubeconfig: Path, out: Path, size: tuple[int, int]) -> Path:
    """``k3dtui attach --namespace shop --deployment hello --allow-changes`` with the load run
    inside the cluster (w, then l): ``attach.svg``."""
    import ssl

    import httpx
    import yaml

    from k3dtui.core.target import Target, resolve_target
    from k3dtui.ui.app import K3dtuiApp
    from k3dtui.ui.backend import AttachedBackend
    from tests.simfixtures import collection_path

    cfg = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    server, token = cfg["clusters"][0]["cluster"]["server"], cfg["users"][0]["user"]["token"]
    verify = ssl.create_default_context(cafile=str(kubeconfig.parent / "ca.crt"))
    with httpx.Client(base_url=server, verify=verify, headers={"Authorization": f"Bearer {token}"}) as api:
        for obj in HELLO:
            api.post(collection_path(obj), json=obj).raise_for_status()
    attached = resolve_target(Target(kubeconfig=kubeconfig, namespace="shop", deployment="hello", allow_changes=True))
    backend = AttachedBackend(attached)
    app = K3dtuiApp(backend)
    path = out / "attach.svg"
    try:
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: screen_is(app, "LiveScreen"), 30, "the live view")
            live = app.screen
            await wait_until(pilot, lambda: sum(1 for p in live.snapshot.pods if p.status == "Running") >= 3
                             and live.snapshot.service is not None and bool(live.snapshot.service.external_ip),
                             60, "hello's three pods behind its external IP")
            await pilot.press("w")
            await pilot.press("l")
            await wait_until(pilot, lambda: live.load is not None and len(live.load.per_worker) == 2
                             and live.load.responses > 2000, 60, "the in-cluster load's two workers")
            await pilot.pause(1.0)
            app.save_screenshot(filename=path.name, path=str(out))
            print(f"wrote {path}")
            await pilot.press("l")
            await wait_until(pilot, lambda: live.load is not None and not live.load.running, 30, "the load to stop")
    finally:
        backend.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="folder for the SVGs")
    parser.add_argument("--size", default="120x40", help="terminal size, COLSxROWS")
    parser.add_argument("--fixed", action="store_true", help="use fixed data instead of the simulated cluster")
    parser.add_argument("--no-web", action="store_true", help="skip the browser screenshot (web.png)")
    args = parser.parse_args(argv)
    try:
        cols, rows = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"screenshots: --size must look like 120x40, not {args.size!r}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))

    if args.fixed:
        from tests.ui.fixed import FixedBackend

        asyncio.run(drive(FixedBackend(), out, (cols, rows), fixed=True))
        return 0

    with tempfile.TemporaryDirectory(prefix="k3dtui-shots-") as tmp:
        os.environ["K3DTUI_STATE_DIR"] = str(Path(tmp) / "state")
        os.environ["K3DTUI_CACHE_DIR"] = str(Path(tmp) / "cache")
        from k3dtui.sim.provider import SimProvider
        from k3dtui.sim.settings import SimSettings
        from k3dtui.ui.backend import CoreBackend

        # quick, but slow enough to terminate that the picture catches it
        settings = SimSettings.fast().replace(terminate_delay=6.0, ready_delay=3.0, pull_delay=0.5)
        provider = SimProvider("simple-app-cluster", settings=settings)
        backend = CoreBackend(provider.name, force_sim=True, provider=provider)
        try:
            asyncio.run(drive(backend, out, (cols, rows)))
            backend.close()
            if not args.no_web:
                web_shot(out)
            asyncio.run(attach_shot(provider.kubeconfig_path, out, (cols, rows)))
        finally:
            backend.close()
            if asyncio.run(provider.find()) is not None:
                asyncio.run(provider.delete(lambda _line: None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
