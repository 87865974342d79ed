"""The TUI's setup screens run core's step objects over one SetupSession, the same ones
``k3dtui up`` runs: the same step sequence, the 0-replica probe skip, and the removal of a
cluster this session created when the pool does not fit.

The screens are driven by keys over the real ``CoreBackend``; the provider and the
Kubernetes API are the in-memory fakes of ``tests/test_pipeline.py`` (a loopback server
answers the probe)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import RichLog

from k3dtui.core.deploy import DeployTimeouts
from k3dtui.core.errors import UsageError
from k3dtui.core.identity import APP
from k3dtui.core.metallb import Timeouts
from k3dtui.core.network import Member, NetworkInfo
from k3dtui.core.session import PipelineEvent, SetupSession
from k3dtui.core.spec import ClusterSpec
from k3dtui.core.steps import SETUP_STEPS
from k3dtui.ui.app import K3dtuiApp
from k3dtui.ui.backend import CoreBackend
from tests.test_pipeline import AppServer, FakeKube, FakeProvider
from tests.ui.test_sim import wait_until
from tests.upstream import MINIMAL

METALLB_TIMEOUTS = Timeouts(crds=2, controller=2, speaker=2, webhook=3)
DEPLOY_TIMEOUTS = DeployTimeouts(ready=2, external_ip=1.0, probe=3)


@pytest.fixture(scope="module")
def app_server() -> Iterator[AppServer]:
    srv = AppServer()
    yield srv
    srv.close()


def fake_session(session: SetupSession, kube: FakeKube) -> None:
    """The session talks to ``kube`` and installs k3dtui's minimal MetalLB (any MetalLB will do)."""

    async def get_kube() -> FakeKube:
        return kube

    session.kube = get_kube  # type: ignore[method-assign]
    session.new_kube = get_kube  # type: ignore[method-assign]
    session.metallb_manifest = MINIMAL
    session.insecure_skip_verify = True
    session.metallb_timeouts = METALLB_TIMEOUTS
    session.deploy_timeouts = DEPLOY_TIMEOUTS


def tui(provider: FakeProvider, kube: FakeKube) -> tuple[K3dtuiApp, CoreBackend]:
    backend = CoreBackend(provider.name, force_sim=True, provider=provider)
    fake_session(backend.session, kube)
    return K3dtuiApp(backend), backend


def log_text(app: K3dtuiApp) -> str:
    return "\n".join(line.text for line in app.screen.query_one("#log", RichLog).lines)


async def create_and_open_pool(pilot: Pilot[Any], app: K3dtuiApp) -> None:
    await wait_until(pilot, lambda: type(app.screen).__name__ == "SetupScreen", 10, "the setup screen")
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: getattr(app.screen, "created", False), 10, "the cluster step")
    await pilot.press("enter")
    await wait_until(pilot, lambda: getattr(app.screen, "choice", None) is not None, 10, "a suggested range")


async def pool_then_deploy(pilot: Pilot[Any], app: K3dtuiApp, replicas: str = "3") -> None:
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: getattr(app.screen, "applied", False), 15, "MetalLB and the pool")
    await pilot.press("enter")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "DeployScreen", 5, "the deploy screen")
    app.screen.query_one("#replicas").value = replicas  # type: ignore[attr-defined]
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: getattr(app.screen, "deployed", False), 15, "the app deployed")


async def test_cli_up_and_the_tui_run_the_same_steps(app_server: AppServer) -> None:
    cli_provider, cli_kube = FakeProvider("demo", app_server.port), FakeKube()
    events: list[PipelineEvent] = []
    cli = SetupSession(cli_provider, ClusterSpec(name="demo"), events.append)
    fake_session(cli, cli_kube)
    result = await cli.up()
    cli.close()

    provider, kube = FakeProvider("demo", app_server.port), FakeKube()
    app, backend = tui(provider, kube)
    async with app.run_test(size=(120, 40)) as pilot:
        await create_and_open_pool(pilot, app)
        await pool_then_deploy(pilot, app)
        assert app.screen.url == f"http://127.0.0.1:{app_server.port}/"  # type: ignore[attr-defined]
        tui_ran = list(backend.session.ran)
    backend.close()

    # the TUI runs the steps one screen at a time, in the canonical order
    assert tui_ran == list(SETUP_STEPS)
    # `up` runs the same steps; only the MetalLB line and the app line interleave
    assert sorted(cli.ran, key=SETUP_STEPS.index) == tui_ran
    assert cli.ran[:2] == ["cluster", "pool_choice"] and cli.ran[-2:] == ["external_ip", "probe"]
    # and they did the same to the provider and the cluster
    assert provider.calls == cli_provider.calls == ["create 1 2", "build fastapi-random:latest", "import fastapi-random:latest"]
    assert sorted(kube.applied) == sorted(cli_kube.applied)
    assert result.pool == "172.28.255.200-172.28.255.250"
    assert kube.objects[("IPAddressPool", APP.metallb_namespace, APP.pool)]["spec"]["addresses"] == [result.pool]


async def test_tui_skips_the_probe_at_zero_replicas() -> None:
    provider, kube = FakeProvider("demo", 1), FakeKube()  # port 1: a probe would fail
    app, backend = tui(provider, kube)
    async with app.run_test(size=(120, 40)) as pilot:
        await create_and_open_pool(pilot, app)
        await pool_then_deploy(pilot, app, replicas="0")
        screen: Any = app.screen
        assert screen.states["probe"] == "skipped"
        assert screen.url == ""
        assert "the Deployment has 0 replicas: nothing can answer" in log_text(app)
        assert not app.failures
        assert backend.session.ran[-1] == "probe"
    backend.close()
    assert kube.objects[("Deployment", APP.namespace, APP.deployment)]["spec"]["replicas"] == 0


class CrowdedProvider(FakeProvider):
    """After the first inspection, a container takes an address inside the suggested range."""

    inspected = 0

    async def network(self) -> NetworkInfo:
        net = await super().network()
        self.inspected += 1
        if self.inspected > 1:
            return NetworkInfo(net.name, net.subnet, net.gateway, (*net.members, Member("intruder", "172.28.255.210")))
        return net


async def test_tui_removes_the_cluster_it_created_when_the_pool_does_not_fit(app_server: AppServer) -> None:
    provider, kube = CrowdedProvider("demo", app_server.port), FakeKube()
    app, backend = tui(provider, kube)
    async with app.run_test(size=(120, 40)) as pilot:
        await create_and_open_pool(pilot, app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "removing the cluster demo this run created" in log_text(app), 10, "the clean-up")
        await wait_until(pilot, lambda: "delete" in provider.calls, 10, "the deletion")
        assert provider.calls == ["create 1 2", "delete"]
        assert kube.applied == []  # neither MetalLB nor the pool
        screen: Any = app.screen
        assert not screen.applied and type(screen).__name__ == "PoolScreen"
        assert app.failures and "172.28.255.210" in app.failures[-1][1]
        assert backend.session.ran == ["cluster", "pool_choice"]
    backend.close()


async def test_a_reused_cluster_is_kept_when_the_pool_does_not_fit(app_server: AppServer) -> None:
    provider, kube = FakeProvider("demo", app_server.port, exists=True), FakeKube()
    backend = CoreBackend(provider.name, force_sim=True, provider=provider)
    fake_session(backend.session, kube)
    events: list[PipelineEvent] = []
    backend.create_cluster(1, 2, events.append, reuse=True)
    with pytest.raises(UsageError, match="not inside the subnet"):
        backend.choose_pool("10.9.0.1-10.9.0.9", events.append)
    backend.close()
    assert provider.calls == []  # neither created nor deleted
    assert not any("removing the cluster" in e.message for e in events)
    assert any(e.step == "pool" and e.kind == "failed" for e in events)
