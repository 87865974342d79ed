"""Images the simulated cluster runs, emulates or cannot pull, seen with kubectl 1.33
(issue 13, point 9)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from k3dtui.sim.runtime import DataPlane
from tests.sim.kubectl133 import Cluster, needs_kubectl, start_cluster, wait_for

pytestmark = [pytest.mark.kubectl, needs_kubectl]


@pytest.fixture
def k(tmp_path: Path) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path, runtime=DataPlane())


def pod(name: str, image: str, **container: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": image, **container}],
                                "terminationGracePeriodSeconds": 0}})


def waiting(k: Cluster, name: str) -> dict[str, Any]:
    statuses = k.json("get", "pod", name)["status"].get("containerStatuses") or [{}]
    return dict((statuses[0].get("state") or {}).get("waiting") or {})


def test_an_image_that_was_not_imported_says_so(k: Cluster) -> None:
    for name, image in (("private", "registry.example.com/team/tool:1.0"), ("app", "fastapi-random:latest")):
        k("create", "-f", "-", stdin=pod(name, image, imagePullPolicy="IfNotPresent"))
        wait_for(lambda name=name: waiting(k, name).get("reason") == "ImagePullBackOff", what=f"{name} backing off")
        msg = f"the simulated cluster cannot pull {image}: import it, or use k3d"
        assert msg in waiting(k, name)["message"]
        events = k("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
        messages = [e["message"] for e in json.loads(events)["items"]]
        assert f'Failed to pull image "{image}": {msg}' in messages
        assert "Error: ErrImagePull" in messages and "Error: ImagePullBackOff" in messages
        assert not any("pull access denied" in m or "repository does not exist" in m for m in messages)
        described = k("describe", "pod", name)
        assert msg in described
    # the app's image runs once imported
    k.call(lambda: k.sim.import_image("fastapi-random:latest"))
    wait_for(lambda: k.json("get", "pod", "app")["status"].get("phase") == "Running", what="the app running")


def test_busybox_runs_its_command_and_nginx_serves_its_page(k: Cluster) -> None:
    k("create", "-f", "-", stdin=pod("sleeper", "busybox", command=["sleep", "3600"]))
    k("create", "-f", "-", stdin=pod("web", "nginx", ports=[{"containerPort": 80}]))
    for name in ("sleeper", "web"):
        wait_for(lambda name=name: k.json("get", "pod", name)["status"].get("phase") == "Running",
                 what=f"{name} running")
        cs = k.json("get", "pod", name)["status"]["containerStatuses"][0]
        assert cs["ready"] is True and "running" in cs["state"]
    events = json.loads(k("get", "events", "--field-selector", "involvedObject.name=web", "-o", "json"))["items"]
    assert any(e["reason"] == "Pulled" and 'image "nginx"' in e["message"] for e in events)
    uid = k.json("get", "pod", "web")["metadata"]["uid"]
    port = wait_for(lambda: k.sim.kubelet.ports.get(uid), what="nginx listening")
    page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert page.status_code == 200 and "<title>Welcome to nginx!</title>" in page.text
    assert page.headers["server"].startswith("nginx/")
    assert httpx.get(f"http://127.0.0.1:{port}/missing", timeout=5).status_code == 404
    # busybox has no server
    assert k.json("get", "pod", "sleeper")["metadata"]["uid"] not in k.sim.kubelet.ports


def test_a_deployment_of_an_image_it_cannot_pull_exceeds_its_progress_deadline(k: Cluster) -> None:
    labels = {"app": "nope"}
    k("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nope"},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "registry.example.com/nope:1"}]}}}}))
    out = k.run("rollout", "status", "deployment/nope", "--timeout=30s", ok=False)
    assert out.returncode != 0 and 'deployment "nope" exceeded its progress deadline' in out.stderr
    cond = next(c for c in k.json("get", "deployment", "nope")["status"]["conditions"] if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"].endswith("has timed out progressing.")
