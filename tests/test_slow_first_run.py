"""Slow first runs: the images k3d needs are pulled first through the SDK with per-image
progress; k3d gets a 300 s timeout; the MetalLB waits are sized for in-cluster pulls and show
the pods' pull events."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fakes.fixtures import BUSYBOX, FakeK3d, fake_k3d  # noqa: F401
from loadservers import closed_port

from k3dtui.core import imagepull, k3d
from k3dtui.core.imagepull import PullProgress, required_images, split_ref
from k3dtui.core.metallb import Timeouts
from k3dtui.core.podpulls import PodPullEvents

VERSION = "k3d version v5.8.3\nk3s version v1.31.5+k3s1 (default)\n"


def test_required_images_are_k3ds_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("K3DTUI_K3S_IMAGE", "K3D_IMAGE_LOADBALANCER", "K3D_IMAGE_TOOLS", "K3D_HELPER_IMAGE_TAG"):
        monkeypatch.delenv(var, raising=False)
    assert required_images(VERSION) == [
        "docker.io/rancher/k3s:v1.31.5-k3s1",
        "ghcr.io/k3d-io/k3d-proxy:5.8.3",
        "ghcr.io/k3d-io/k3d-tools:5.8.3",
    ]
    monkeypatch.setenv("K3D_HELPER_IMAGE_TAG", "5.8.0")
    monkeypatch.setenv("K3D_IMAGE_TOOLS", "mirror.local:5000/tools:1")
    monkeypatch.setenv("K3DTUI_K3S_IMAGE", "mirror.local:5000/k3s:v1")
    assert required_images(VERSION) == [
        "mirror.local:5000/k3s:v1", "ghcr.io/k3d-io/k3d-proxy:5.8.0", "mirror.local:5000/tools:1"]
    # and that k3s image is the one the nodes run
    assert yaml.safe_load(k3d.render_config("x", 1, 0))["image"] == "mirror.local:5000/k3s:v1"


@pytest.mark.parametrize(("ref", "parts"), [
    ("docker.io/rancher/k3s:v1.31.5-k3s1", ("docker.io/rancher/k3s", "v1.31.5-k3s1")),
    ("127.0.0.1:5000/proxy", ("127.0.0.1:5000/proxy", "latest")),
    ("127.0.0.1:5000/proxy:2", ("127.0.0.1:5000/proxy", "2")),
    ("busybox", ("busybox", "latest")),
])
def test_split_ref(ref: str, parts: tuple[str, str]) -> None:
    assert split_ref(ref) == parts


class FakeAPI:
    """The engine's pull stream, as `POST /images/create` sends it, one object per event."""

    def __init__(self, stream: list[dict[str, Any]], clock: list[float]) -> None:
        self.stream = stream
        self.clock = clock

    def pull(self, repo: str, tag: str, stream: bool, decode: bool) -> Any:
        assert (repo, tag, stream, decode) == ("docker.io/rancher/k3s", "v1", True, True)
        for chunk in self.stream:
            self.clock[0] += 0.4  # the test's clock: 0.4 s per event
            yield chunk


def test_pull_progress_per_image_throttled_by_the_clock() -> None:
    MB = 1_000_000
    stream = [
        {"status": "Pulling from rancher/k3s", "id": "v1"},
        {"status": "Pulling fs layer", "id": "a"},
        {"status": "Pulling fs layer", "id": "b"},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 1 * MB, "total": 4 * MB}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 2 * MB, "total": 60 * MB}},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 3 * MB, "total": 4 * MB}},
        {"status": "Download complete", "id": "a"},
        {"status": "Pull complete", "id": "a"},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 30 * MB, "total": 60 * MB}},
        {"status": "Pull complete", "id": "b"},
        {"status": "Digest: sha256:abc"},
        {"status": "Status: Downloaded newer image for rancher/k3s:v1"},
    ]
    clock = [0.0]
    cli = type("Cli", (), {"api": FakeAPI(stream, clock)})()
    log: list[str] = []
    imagepull.pull(cli, "docker.io/rancher/k3s:v1", log.append, clock=lambda: clock[0])
    assert log[0] == "pulling docker.io/rancher/k3s:v1"
    # 12 events 0.4 s apart: a line once a second at most
    assert log[1:-1] == [
        "pulling docker.io/rancher/k3s:v1: 0.0 MB, 0/2 layers",  # t=1.2: layers known, sizes not yet
        "pulling docker.io/rancher/k3s:v1: 5.0/64.0 MB, 0/2 layers",  # t=2.4
        "pulling docker.io/rancher/k3s:v1: 34.0/64.0 MB, 1/2 layers",  # t=3.6
        "pulling docker.io/rancher/k3s:v1: 64.0/64.0 MB, 2/2 layers",  # t=4.8
    ]
    assert log[-1] == "pulled docker.io/rancher/k3s:v1 (64.0/64.0 MB, 2/2 layers)"


def test_pull_error_in_the_stream() -> None:
    p = PullProgress("x")
    p.feed({"errorDetail": {"message": "toomanyrequests: rate limit"}, "error": "toomanyrequests: rate limit"})
    assert p.error == "toomanyrequests: rate limit"


@pytest.mark.docker
def test_pull_missing_on_the_engine(docker_engine: Any) -> None:
    """Present images are said to be present; one the registry cannot give (a closed port on
    127.0.0.1) is a warning left to k3d, not a failure."""
    sock, port = closed_port()
    try:
        ref = f"127.0.0.1:{port}/k3dtui-test/absent:1"
        log: list[str] = []
        failed = imagepull.pull_missing(docker_engine, [BUSYBOX, ref], log.append)
    finally:
        sock.close()
    assert failed == [ref]
    assert log[0] == f"image {BUSYBOX} is present"
    assert log[1] == f"pulling {ref}"
    assert log[2].startswith(f"warning: cannot pull {ref}: ") and log[2].endswith("k3d will try itself")


@pytest.mark.docker
async def test_create_pulls_first_then_k3d_waits_300s(fake_k3d: FakeK3d) -> None:  # noqa: F811
    from k3dtui.core.k3d_provider import K3dProvider

    name = f"t{fake_k3d.run_id}"
    log: list[str] = []
    provider = K3dProvider(name)
    await provider.create(1, 0, log.append)
    try:
        first_k3d_line = next(i for i, ln in enumerate(log) if ln.startswith("INFO["))
        pulls = log[:first_k3d_line]
        assert pulls == [f"image {BUSYBOX} is present"] * 3, log
        create = next(c for c in fake_k3d.calls() if c["argv"][:2] == ["cluster", "create"])
        cfg = yaml.safe_load(create["config"])
        assert cfg["options"]["k3d"]["timeout"] == "300s" and cfg["image"] == BUSYBOX
    finally:
        await provider.delete(lambda _: None)


def test_metallb_waits_are_sized_for_pulls() -> None:
    t = Timeouts()
    assert t.controller >= 300 and t.speaker >= 300


def _event(uid: str, pod: str, reason: str, message: str, count: int = 1, kind: str = "Pod") -> dict[str, Any]:
    return {"metadata": {"uid": uid}, "involvedObject": {"kind": kind, "name": pod}, "reason": reason,
            "message": message, "count": count, "lastTimestamp": f"2026-01-01T00:00:0{count}Z"}


def test_pod_pull_events_once_each_and_throttled() -> None:
    events = [_event("1", "controller-x", "Pulling", 'Pulling image "quay.io/metallb/controller:v0.15.2"'),
              _event("2", "controller-x", "Scheduled", "assigned")]
    now = [0.0]
    calls = [0]

    def listing() -> list[dict[str, Any]]:
        calls[0] += 1
        return list(events)

    w = PodPullEvents(listing, every=2.0, clock=lambda: now[0])
    assert w.new_lines() == ['pod controller-x: Pulling: Pulling image "quay.io/metallb/controller:v0.15.2"']
    events.append(_event("3", "controller-x", "Pulled", "Successfully pulled image in 41.2s"))
    now[0] = 1.0
    assert w.new_lines() == [] and calls[0] == 1  # not asked again within 2 s
    now[0] = 2.5
    assert w.new_lines() == ["pod controller-x: Pulled: Successfully pulled image in 41.2s"]
    events.append(_event("3", "controller-x", "Pulled", "again", count=2))
    events.append(_event("4", "speaker-a", "BackOff", 'Back-off pulling image "x"'))
    now[0] = 5.0
    # in the order they happened (the speaker's event is stamped earlier)
    assert w.new_lines() == ['pod speaker-a: BackOff: Back-off pulling image "x"', "pod controller-x: Pulled: again"]


def test_pod_pull_events_from_the_simulated_cluster(sim_app: Any) -> None:
    """The simulated kubelet's Pulling/Pulled events, read through the real client."""
    from k3dtui.core.kubeapply import Kube

    kube = Kube(sim_app.kubeconfig, sim_app.context)
    try:
        w = PodPullEvents(lambda: kube.list("v1", "Event", "default"))
        lines = w.new_lines()
    finally:
        kube.close()
    assert any(": Pulled: " in ln or ": Pulling: " in ln for ln in lines), lines
    assert all(ln.startswith("pod fastapi-") for ln in lines), lines


async def test_metallb_wait_shows_the_pods_pull_events(sim_cluster: Any) -> None:
    """Installing MetalLB into the simulated cluster: while the installer waits for the
    controller and the speakers, their pods' Pulling/Pulled events reach the progress."""
    from k3dtui.core.kubeapply import Kube
    from k3dtui.core.metallb import MetalLBInstaller, minimal_manifest

    seen: list[tuple[str, str]] = []
    kube = Kube(sim_cluster.kubeconfig, sim_cluster.context)
    try:
        installer = MetalLBInstaller(kube, lambda kind, msg, data: seen.append((kind, msg)))
        await installer.install(minimal_manifest())
    finally:
        kube.close()
    pulls = [msg for kind, msg in seen if kind == "log" and msg.startswith("pod ") and ": Pull" in msg]
    assert any(msg.startswith("pod controller-") for msg in pulls), seen
