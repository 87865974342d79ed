"""TUI benchmarks (run on demand: ``python tests/benchmarks/bench_ui.py``); prints figures.

1. 100 pods on 10 nodes (the layout the size picks, and the cards forced), and 1,000 pods on
   20 nodes (the compact list): one live-view update (snapshot in → screen painted), p50/p95.
2. With load running at full speed against the simulated cluster: ``+`` pressed → the
   live view shows the change ("scaling 3 → 4" in the status line, painted), p50/p95; also
   when the scale call answered and when the watched deployment showed the new count;
   the TUI process's CPU meanwhile.
3. Idle live view (nothing changing) against the simulated cluster: the TUI process's CPU.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def big_snapshot(generation: int, n_pods: int = 100, n_nodes: int = 10) -> Any:
    from k3dtui.core.models import ClusterSnapshot, DeploymentView, NodeView, PodView, ServiceView

    nodes = tuple(NodeView(f"k3d-bench-agent-{i}", "<none>", f"172.20.{i // 200}.{i % 200 + 2}", True) for i in range(n_nodes))
    pods = []
    for i in range(n_pods):
        status = "Running" if (i + generation) % 7 else "ContainerCreating"
        pods.append(PodView(
            uid=f"uid-{i}", name=f"fastapi-7d4b9c8f5d-p{i:04d}", node=nodes[i % n_nodes].name, status=status,
            ready=status == "Running", ready_text="1/1" if status == "Running" else "0/1",
            ip=f"10.42.{i % n_nodes}.{i % 250}", restarts=generation % 3, created=time.time() - 60, deleting=False,
        ))
    return ClusterSnapshot(
        nodes=nodes, pods=tuple(pods), deployment=DeploymentView("fastapi", n_pods, n_pods - 10, n_pods, n_pods - 10),
        service=ServiceView("fastapi-service", "172.20.255.200", 80, nodes[0].name),
    )


async def _until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_ui: gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.002)


async def _painted(pilot: Any) -> None:
    """Until the update is on the screen: every message it caused handled (style updates,
    mounts), then the screen's compositor refresh (layout if needed, render, write)."""
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


async def bench_render(n_pods: int = 100, n_nodes: int = 10, layout: str = "auto", rounds: int = 40) -> None:
    from k3dtui.ui.app import K3dtuiApp
    from k3dtui.ui.screens.live import LiveScreen
    from tests.ui.fixed import FixedBackend

    def snap(gen: int) -> Any:
        return big_snapshot(gen, n_pods, n_nodes)

    app = K3dtuiApp(FixedBackend(stage="deployed"))
    async with app.run_test(size=(200, 60)) as pilot:
        while not isinstance(app.screen, LiveScreen):
            await pilot.pause(0.05)
        screen = app.screen
        screen.layout_choice = layout
        screen.apply_snapshot(snap(0))
        await pilot.pause(0.3)
        shown = "compact list" if screen.compact else "pod cards"
        times = []
        for gen in range(1, rounds + 1):
            new = snap(gen)
            t0 = time.perf_counter()
            screen.apply_snapshot(new)
            await _painted(pilot)
            times.append((time.perf_counter() - t0) * 1000)
            await pilot.pause()
        cards = sum(len(c.cards) for c in screen.columns.values())
        # the usual update: one pod changes (a kill, a replacement becoming ready)
        one = []
        base = snap(0)
        screen.apply_snapshot(base)
        await pilot.pause()
        for gen in range(1, rounds + 1):
            pods = list(base.pods)
            pods[gen % n_pods] = replace(pods[gen % n_pods], status="Terminating" if gen % 2 else "Running", deleting=bool(gen % 2))
            changed = replace(base, pods=tuple(pods))
            t0 = time.perf_counter()
            screen.apply_snapshot(changed)
            await _painted(pilot)
            one.append((time.perf_counter() - t0) * 1000)
            await pilot.pause()
    target = 50 if n_pods <= 100 else 100
    if "--verbose" in sys.argv:
        print("every:", [round(t) for t in times])
    what = f"render, {cards} pods on {n_nodes} nodes at 200x60 ({shown}, layout {layout})"
    print(f"{what}, every pod changed: update → painted p50 {pct(times, 0.5):.1f} ms, p95 {pct(times, 0.95):.1f} ms (target < {target} ms)")
    print(f"{what}, one pod changed: update → painted p50 {pct(one, 0.5):.1f} ms, p95 {pct(one, 0.95):.1f} ms (target < {target} ms)")


async def bench_sim() -> None:
    from textual import events

    from k3dtui.ui.app import K3dtuiApp
    from k3dtui.ui.backend import CoreBackend
    from k3dtui.ui.screens.live import LiveScreen
    from tests.simfixtures import install_app, start_sim, stop_sim

    handle = await asyncio.to_thread(start_sim, "bench-ui")
    try:
        await asyncio.to_thread(install_app, handle)
        backend = CoreBackend(handle.name, force_sim=True, provider=handle.provider)
        app = K3dtuiApp(backend, detect=False)
        me = psutil.Process()
        async with app.run_test(size=(120, 40)) as pilot:
            app.open_live()
            while not (isinstance(app.screen, LiveScreen) and app.screen.snapshot.service
                       and app.screen.snapshot.service.external_ip):
                await pilot.pause(0.05)
            screen = app.screen
            assert isinstance(screen, LiveScreen)
            await pilot.pause(1.0)

            # idle: nothing changes for 5 s
            cpu0, t0 = me.cpu_times(), time.monotonic()
            await asyncio.sleep(5.0)
            cpu1, t1 = me.cpu_times(), time.monotonic()
            idle = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0) * 100
            print(f"idle live view: TUI process CPU {idle:.1f}% of one core (target < 3%)")

            # load at full speed, then + presses
            screen.settings = replace(screen.settings, concurrency=32)
            await pilot.press("l")
            while not (screen.load and screen.load.responses > 200):
                await pilot.pause(0.05)
            cpu0, t0 = me.cpu_times(), time.monotonic()
            status = screen.query_one("#live-status")
            lat, acted, watched = [], [], []
            for _ in range(8):
                want = screen._desired() + 1
                start = time.perf_counter()
                done = len(screen.outcomes)
                # the key as the terminal delivers it (Pilot.press would also wait for the
                # process to look idle, which it never does with load running)
                app.post_message(events.Key("plus", "+"))
                # shown: the status line carries "scaling N → want", painted
                await _until(lambda want=want: f"→ {want}" in str(status.render()), f"the status line to show → {want}: {status.render()}")
                await _painted(pilot)
                lat.append((time.perf_counter() - start) * 1000)
                await _until(lambda done=done: len(screen.outcomes) > done, "the scale call to answer")
                acted.append((time.perf_counter() - start) * 1000)
                # the watched truth: the deployment's desired count from the watch, drawn
                await _until(lambda want=want: bool(screen.snapshot.deployment and screen.snapshot.deployment.desired == want),
                             f"the watched deployment to want {want}")
                await _painted(pilot)
                watched.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.3)
            cpu1, t1 = me.cpu_times(), time.monotonic()
            busy = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0) * 100
            rps = screen.load.rps if screen.load else 0.0
            await pilot.press("l")
            await asyncio.sleep(0.5)
        backend.close()
        print(f"'+' → shown (status line 'scaling N → N+1', painted), load at {rps:,.0f} req/s: "
              f"p50 {pct(lat, 0.5):.0f} ms, p95 {pct(lat, 0.95):.0f} ms (target p95 < 100 ms); TUI process CPU {busy:.0f}% of one core")
        print(f"  the scale API call answered: p50 {pct(acted, 0.5):.0f} ms, p95 {pct(acted, 0.95):.0f} ms; "
              f"the watched deployment shows it: p50 {pct(watched, 0.5):.0f} ms, p95 {pct(watched, 0.95):.0f} ms")
        print(f"  (shown, all: {', '.join(f'{v:.0f}' for v in lat)} ms; watched, all: {', '.join(f'{v:.0f}' for v in watched)} ms)")
    finally:
        await asyncio.to_thread(stop_sim, handle)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="k3dtui-bench-ui-") as tmp:
        os.environ["K3DTUI_STATE_DIR"] = str(Path(tmp) / "state")
        os.environ["K3DTUI_CACHE_DIR"] = str(Path(tmp) / "cache")
        if "--sim-only" not in sys.argv:
            asyncio.run(bench_render(100, 10, "auto"))
            asyncio.run(bench_render(100, 10, "cards"))
            asyncio.run(bench_render(1000, 20, "auto", rounds=20))
        if "--render-only" not in sys.argv:
            asyncio.run(bench_sim())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
