"""The setup pipeline against the simulated cluster (a real API server and controllers in
a daemon process): MetalLB from the upstream v0.15.2 manifest through a reproduced webhook
race, the webhook never ready, the API server dying mid-way, a pool on a node IP refused
before any change, and the headless `up`/`status`/`down` acceptance path."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from k3dtui.cli import main
from k3dtui.core import metallb
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP
from k3dtui.core.kube import make_api_client
from k3dtui.core.kubeapply import ApiUnreachable
from k3dtui.core.metallb import Timeouts
from k3dtui.core.pipeline import Pipeline, PipelineEvent
from k3dtui.core.spec import ClusterSpec
from k3dtui.sim.daemon import pid_alive
from k3dtui.sim.provider import SimProvider
from k3dtui.sim.settings import SimSettings
from tests.upstream import FIXTURE, MINIMAL


def _name() -> str:
    return f"h6-{uuid.uuid4().hex[:8]}"


def _noop(line: str) -> None:
    return None


@pytest.fixture
async def sim_factory() -> AsyncIterator[Any]:
    made: list[SimProvider] = []

    async def make(settings: SimSettings, name: str | None = None) -> SimProvider:
        provider = SimProvider(name or _name(), settings=settings)
        made.append(provider)
        await provider.create(1, 2, _noop)
        return provider

    yield make
    for provider in made:
        await provider.delete(_noop)


def _custom(provider: SimProvider, kubeconfig: Path, plural: str, name: str) -> dict[str, Any] | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(make_api_client(kubeconfig, provider.context))
    try:
        return dict(api.get_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", plural, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.mark.upstream_manifest
async def test_metallb_upstream_manifest_through_webhook_race(sim_cluster: Any) -> None:
    # the webhook refuses pools for 1 s after the controller turns Ready
    sim_cluster.control("POST", "/sim/faults", {"settings": {"webhook_race": 1.0}})
    provider = sim_cluster.provider
    events: list[PipelineEvent] = []
    pipe = Pipeline(provider, ClusterSpec(name=provider.name), events.append, metallb_manifest=FIXTURE)
    try:
        assert await pipe.detect_stage() == "cluster"
        pool_range = await pipe.choose_pool()
        await pipe.install_metallb()
        await pipe.apply_pool(pool_range)
    finally:
        pipe.close()
    applied = [e for e in events if e.step == "metallb" and e.kind == "progress" and "index" in e.data]
    assert [e.data["index"] for e in applied] == list(range(1, 26))
    assert any("sha256 verified" in e.message for e in events)
    established = {e.data["crd"] for e in events if "crd" in e.data}
    assert len(established) == 8
    assert any("controller Deployment available" in e.message for e in events)
    assert any("speaker DaemonSet ready (3/3)" in e.message for e in events)
    # the race: refused first, then applied
    assert any(e.step == "pool" and "not serving yet" in e.message for e in events)
    pool_done = [e for e in events if e.step == "pool" and e.data.get("kind") == "IPAddressPool"]
    assert pool_done and pool_done[-1].data["attempts"] > 1
    pool = _custom(provider, sim_cluster.kubeconfig, "ipaddresspools", APP.pool)
    assert pool is not None and pool["spec"]["addresses"] == [pool_range]
    assert _custom(provider, sim_cluster.kubeconfig, "l2advertisements", APP.l2advertisement) is not None
    assert await pipe.detect_stage() == "metallb"


async def test_webhook_never_ready_fails_in_bounded_time(sim_cluster: Any) -> None:
    sim_cluster.control("POST", "/sim/faults", {"settings": {"webhook_race": 3600.0}})
    provider = sim_cluster.provider
    events: list[PipelineEvent] = []
    pipe = Pipeline(
        provider,
        ClusterSpec(name=provider.name),
        events.append,
        metallb_manifest=MINIMAL,  # any MetalLB with its webhook
        insecure_skip_verify=True,
        metallb_timeouts=Timeouts(webhook=1.5),
    )
    import time

    try:
        pool_range = await pipe.choose_pool()
        await pipe.install_metallb()
        t0 = time.monotonic()
        with pytest.raises(K3dtuiError) as info:
            await pipe.apply_pool(pool_range)
        took = time.monotonic() - t0
    finally:
        pipe.close()
    assert took < 4.0
    assert metallb.POOL_WEBHOOK in info.value.message
    assert "do not delete the webhook" in info.value.hint
    assert events[-1].kind == "failed" and events[-1].step == "pool"
    assert _custom(provider, sim_cluster.kubeconfig, "ipaddresspools", APP.pool) is None


async def test_pipeline_up_on_an_existing_sim_cluster(sim_cluster: Any) -> None:
    """The pipeline finishes a bare cluster (what sim_app could be built with)."""
    events: list[PipelineEvent] = []
    pipe = Pipeline(
        sim_cluster.provider,
        ClusterSpec(name=sim_cluster.name),
        events.append,
        metallb_manifest=MINIMAL,
        insecure_skip_verify=True,
    )
    try:
        result = await pipe.up()
    finally:
        pipe.close()
    assert result.stage_before == "cluster"
    assert any("reusing the existing cluster" in e.message for e in events)
    resp = httpx.get(result.dial_url, timeout=5)
    assert resp.status_code == 200 and resp.headers["x-pod"].startswith("fastapi-")
    assert sim_cluster.control("GET", "/sim/status")["lb_backends"][f"{result.external_ip}:80"] == 3


async def test_sim_app_is_seen_as_deployed(sim_app: Any) -> None:
    """The sim_app fixture leaves the cluster as `k3dtui up` does: the pipeline sees it
    deployed (MetalLB's webhook configuration, the pool, the app) and re-running `up` only
    checks, reusing the pool and changing nothing."""
    events: list[PipelineEvent] = []
    pipe = Pipeline(sim_app.provider, ClusterSpec(name=sim_app.name), events.append)
    try:
        assert await pipe.detect_stage() == "deployed"
        status = await pipe.status()
        result = await pipe.up()
    finally:
        pipe.close()
    assert status["stage"] == "deployed" and status["pool"]
    assert status["deployment"] == {"name": "fastapi-app", "replicas": 3, "ready": 3}
    assert result.stage_before == "deployed" and result.pool == status["pool"]
    assert any("MetalLB is already installed" in e.message for e in events)
    assert not any(e.message.startswith("applied CustomResourceDefinition") for e in events)


def test_second_client_starts_from_the_first_ones_discovery(sim_cluster: Any) -> None:
    from k3dtui.core.kubeapply import Kube

    first = Kube(sim_cluster.kubeconfig, sim_cluster.context)
    second = Kube(sim_cluster.kubeconfig, sim_cluster.context, discovery_from=first)  # nothing discovered yet
    assert not second._cache_file.exists()
    assert first.get("v1", "Namespace", "default") is not None  # discovery done
    third = Kube(sim_cluster.kubeconfig, sim_cluster.context, discovery_from=first)
    try:
        assert third._cache_file.read_bytes() == first._cache_file.read_bytes()
        assert third.get("apps/v1", "Deployment", "nope", "default") is None
    finally:
        for kube in (first, second, third):
            kube.close()


async def test_api_server_dies_midway_clear_message(sim_factory: Any) -> None:
    provider = await sim_factory(SimSettings.fast())
    pid = provider.pid()
    assert pid is not None
    events: list[PipelineEvent] = []

    def emit(event: PipelineEvent) -> None:
        events.append(event)
        if event.step == "metallb" and event.kind == "progress" and event.data.get("index") == 5:
            os.kill(pid, signal.SIGKILL)  # the simulator this test started

    pipe = Pipeline(
        provider, ClusterSpec(name=provider.name), emit, metallb_manifest=MINIMAL, insecure_skip_verify=True
    )
    try:
        with pytest.raises(ApiUnreachable) as info:
            await pipe.up()
    finally:
        pipe.close()
    assert "cannot reach the Kubernetes API server at http" in info.value.message and "127.0.0.1:" in info.value.message
    assert "k3dtui up" in info.value.hint
    failed = [e for e in events if e.kind == "failed"]
    assert failed and failed[0].step in ("metallb", "image", "deploy")
    assert "metallb" in {e.step for e in failed}
    # what got applied before the failure was reported, object by object
    indexes = [e.data["index"] for e in events if e.step == "metallb" and "index" in e.data]
    assert indexes == [1, 2, 3, 4, 5]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_cluster() -> Iterator[str]:
    name = _name()
    yield name
    main(["down", "--sim", "--yes", "--name", name])


@pytest.mark.upstream_manifest
def test_up_status_down_acceptance(cli_cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = cli_cluster
    code, out, err = _run(["up", "--sim", "--name", name, "--json", "--metallb-manifest", str(FIXTURE)], capsys)
    assert code == 0, err
    lines = [json.loads(line) for line in out.strip().splitlines()]
    done = lines[-1]
    assert lines[0]["event"] == "provider" and lines[0]["provider"] == "sim"
    assert {ln["event"] for ln in lines[1:-1]} == {"step"}
    step_done = [ln for ln in lines if ln["event"] == "step" and ln["kind"] == "done"]
    assert {ln["step"] for ln in step_done} == {"cluster", "pool", "metallb", "image", "deploy", "probe"}
    assert done["event"] == "done" and done["external_ip"] and done["url"] == f"http://{done['external_ip']}/"
    assert {"cluster", "pool", "metallb", "image", "deploy", "probe"} <= set(done["durations"])
    # the app answers through the dial address
    resp = httpx.get(f"http://{done['dial']}/", timeout=5)
    assert resp.status_code == 200 and resp.headers["x-pod"].startswith("fastapi-")

    code, out, err = _run(["status", "--sim", "--name", name, "--json"], capsys)
    assert code == 0, err
    status = json.loads(out)
    assert status["stage"] == "deployed" and status["provider"] == "sim"
    assert len(status["nodes"]) == 3
    pods = [p for n in status["nodes"] for p in n["pods"]]
    assert len(pods) == 3 and all(p["ready"] and p["status"] == "Running" for p in pods)
    assert sorted(len(n["pods"]) for n in status["nodes"]) == [1, 1, 1]  # spread over the 3 nodes
    assert status["deployment"]["replicas"] == 3 and status["deployment"]["ready"] == 3
    assert status["service"]["external_ip"] == done["external_ip"]
    assert status["service"]["dial"] == done["dial"]

    # a re-run reuses everything and keeps a scale
    from kubernetes import client

    provider = SimProvider(name)
    apps = client.AppsV1Api(make_api_client(provider.kubeconfig_path, provider.context))
    apps.patch_namespaced_deployment_scale(APP.deployment, "default", {"spec": {"replicas": 4}})
    code, out, err = _run(["up", "--sim", "--name", name], capsys)
    assert code == 0, err
    assert "reusing the existing cluster" in out and "MetalLB is already installed" in out
    assert "keeping the 4 replicas" in out
    assert apps.read_namespaced_deployment(APP.deployment, "default").spec.replicas == 4

    pid = provider.pid()
    dataplane = provider.state().get("dataplane_pid")
    assert pid is not None
    code, out, err = _run(["down", "--sim", "--yes", "--name", name], capsys)
    assert code == 0, err
    assert f"deleted the sim cluster {name}" in out
    assert provider.pid() is None and not pid_alive(pid)
    if isinstance(dataplane, int):
        assert not pid_alive(dataplane)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{done['dial']}/", timeout=2)
    # down again: nothing to delete, still fine
    code, out, _ = _run(["down", "--sim", "--yes", "--name", name], capsys)
    assert code == 0 and "nothing to delete" in out


def test_pool_on_a_node_ip_refused_before_any_change(
    cli_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    provider = SimProvider(cli_cluster, settings=SimSettings.fast())
    asyncio.run(provider.create(1, 2, _noop))
    net = asyncio.run(provider.network())
    node_ip = net.members[0].ip
    code, _out, err = _run(["up", "--sim", "--name", cli_cluster, "--pool", f"{node_ip}-{node_ip}"], capsys)
    assert code == 2
    assert node_ip in err.splitlines()[0] and "Traceback" not in err
    stage = asyncio.run(Pipeline(provider, ClusterSpec(name=cli_cluster), lambda e: None).detect_stage())
    assert stage == "cluster"  # MetalLB untouched
    code, _out, err = _run(["up", "--sim", "--name", cli_cluster, "--pool", "10.1.0.1-10.1.0.9"], capsys)
    assert code == 2 and "not inside the subnet" in err


def test_down_refuses_without_terminal(cli_cluster: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import io

    provider = SimProvider(cli_cluster, settings=SimSettings.fast())
    asyncio.run(provider.create(1, 2, _noop))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = _run(["down", "--sim", "--name", cli_cluster], capsys)
    assert code == 2 and "--yes" in err and cli_cluster in err
    assert provider.pid() is not None  # still running


async def test_offline_sim_falls_back_to_minimal_metallb(sim_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**_: Any) -> Any:
        raise K3dtuiError("cannot download the MetalLB v0.15.2 manifest: no network")

    monkeypatch.setattr(metallb, "fetch_upstream", offline)
    sim_cluster.control("POST", "/sim/faults", {"settings": {"webhook_race": 0.3}})
    events: list[PipelineEvent] = []
    pipe = Pipeline(sim_cluster.provider, ClusterSpec(name=sim_cluster.name), events.append)
    try:
        pool_range = await pipe.choose_pool()
        await pipe.install_metallb()
        await pipe.apply_pool(pool_range)
    finally:
        pipe.close()
    warnings = [e.message for e in events if e.kind == "warning"]
    assert any("minimal MetalLB manifest" in w and "no network" in w for w in warnings)
    assert any("k3dtui's minimal manifest" in e.message and "not verified" in e.message for e in events)
    assert _custom(sim_cluster.provider, sim_cluster.kubeconfig, "ipaddresspools", APP.pool) is not None


def test_down_asks_on_a_terminal(cli_cluster: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    provider = SimProvider(cli_cluster, settings=SimSettings.fast())
    asyncio.run(provider.create(1, 2, _noop))
    prompts: list[str] = []
    answers = iter(["n", "y"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("builtins.input", fake_input)
    code, out, _ = _run(["down", "--sim", "--name", cli_cluster], capsys)
    assert code == 1 and "not deleted" in out and provider.pid() is not None
    assert cli_cluster in prompts[0] and "[y/N]" in prompts[0]
    code, out, _ = _run(["down", "--sim", "--name", cli_cluster], capsys)
    assert code == 0 and provider.pid() is None
