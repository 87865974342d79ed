"""Load on an attached app k3dtui did not create (issue 17's acceptance), on the simulated cluster.

The app is made with kubectl in its own namespace ``shop``: a Deployment ``hello`` of 2 replicas
(k3dtui's app image, which names its pod in ``X-Pod``) labelled ``app=hello`` and a LoadBalancer
Service ``hello``. k3dtui attaches with ``--kubeconfig/--namespace/--deployment`` and:

- ``load --url ... --identity header:X-Pod --json`` splits the responses per pod of ``hello``; a
  header the app does not send leaves no split and says why;
- ``load --in-cluster`` is refused without ``--allow-changes`` (no Job made), and with it runs a
  Job of 2 workers in ``shop`` whose figures arrive per worker, and leaves no Job, pod or ConfigMap.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3dtui.cli import main
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.incluster import LEFTOVER_SELECTOR
from tests.simfixtures import SimHandle, wait_for

pytestmark = pytest.mark.kubectl

HELLO = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: hello
        image: fastapi-random:latest
        imagePullPolicy: Never
        ports:
        - containerPort: 3000
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: shop
spec:
  type: LoadBalancer
  selector: {app: hello}
  ports:
  - port: 80
    targetPort: 3000
"""


def _get(sim: SimHandle, path: str, **params: str) -> Any:
    with sim.http() as client:
        res = client.get(path, params=params)
        res.raise_for_status()
        return res.json()


def _hello_pods(sim: SimHandle) -> set[str]:
    items = _get(sim, "/api/v1/namespaces/shop/pods", labelSelector="app=hello")["items"]
    return {p["metadata"]["name"] for p in items
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (p.get("status") or {}).get("conditions") or [])}


def _left(sim: SimHandle) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, path in (("jobs", "/apis/batch/v1/namespaces/shop/jobs"), ("pods", "/api/v1/namespaces/shop/pods"),
                       ("configmaps", "/api/v1/namespaces/shop/configmaps")):
        out[kind] = [i["metadata"]["name"] for i in _get(sim, path, labelSelector=LEFTOVER_SELECTOR)["items"]]
    return out


@pytest.fixture
def shop(sim_app: SimHandle, tmp_path: Path) -> Iterator[tuple[SimHandle, Path, str]]:
    """(the cluster, the user's kubeconfig (checked unchanged after), the hello Service's dial URL)."""
    manifest = tmp_path / "hello.yaml"
    manifest.write_text(HELLO, encoding="utf-8")
    done = subprocess.run(sim_app.kubectl("apply", "-f", str(manifest)), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(_hello_pods(sim_app)) == 2, 30.0, "hello's 2 pods Ready")

    def address() -> str | None:
        svc = _get(sim_app, "/api/v1/namespaces/shop/services/hello")
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress:
            return None
        try:
            host, port = sim_app.provider.dial(ingress[0]["ip"], 80)
        except K3dtuiError:  # not in lb.json yet
            return None
        return f"http://{host}:{port}/"

    url: str = wait_for(address, 30.0, "hello's external IP behind a listener")
    user = tmp_path / "home" / ".kube" / "config"
    user.parent.mkdir(parents=True)
    user.write_bytes(sim_app.kubeconfig.read_bytes())
    os.utime(user, (1_700_000_000, 1_700_000_000))
    before = (user.read_bytes(), user.stat().st_mtime_ns)
    yield sim_app, user, url
    assert (user.read_bytes(), user.stat().st_mtime_ns) == before, "k3dtui wrote the user's kubeconfig"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _target(kubeconfig: Path) -> list[str]:
    return ["--kubeconfig", str(kubeconfig), "--namespace", "shop", "--deployment", "hello"]


def test_load_splits_per_pod_through_the_identity_header(shop: tuple[SimHandle, Path, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    sim, user, url = shop
    pods = _hello_pods(sim)
    code, out, err = _run(capsys, "load", *_target(user), "--url", url, "--identity", "header:X-Pod",
                          "--duration", "2", "--concurrency", "4", "--new-connections", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["identity_missing"] is None
    assert set(data["per_pod"]) == pods, data["per_pod"]
    assert all(n > 0 for n in data["per_pod"].values())  # new connections reach both pods
    assert sum(data["per_pod"].values()) == sum(data["status"].values()) == data["status"]["200"] > 0

    # without --url: the Service's external address, dialled through the simulated cluster's map
    code, out, err = _run(capsys, "load", *_target(user), "--requests", "60", "--concurrency", "4",
                          "--new-connections", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == {"200": 60} and set(data["per_pod"]) == pods

    # a header the app does not send: totals, no split, and why
    code, out, err = _run(capsys, "load", *_target(user), "--url", url, "--identity", "header:X-Served-By",
                          "--requests", "40", "--concurrency", "2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == {"200": 40} and data["per_pod"] == {"unknown": 40}  # no pod named
    assert "X-Served-By" in data["identity_missing"]


def test_in_cluster_load_on_an_attached_app_needs_allow_changes(shop: tuple[SimHandle, Path, str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    sim, user, _url = shop
    code, _out, err = _run(capsys, "load", *_target(user), "--in-cluster", "--workers", "2", "--duration", "2")
    assert code == 2 and "--allow-changes" in err
    assert _get(sim, "/apis/batch/v1/namespaces/shop/jobs")["items"] == []  # nothing was sent

    pods = _hello_pods(sim)
    code, out, err = _run(capsys, "load", *_target(user), "--allow-changes", "--in-cluster", "--workers", "2",
                          "--duration", "3", "--concurrency", "4", "--new-connections", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["per_worker"]) == 2, data
    assert "hello.shop.svc.cluster.local" in err  # the workers dial the Service by its cluster DNS name
    assert set(data["per_pod"]) == pods and all(n > 0 for n in data["per_pod"].values())
    assert sum(w["responses"] for w in data["per_worker"].values()) == sum(data["per_pod"].values())
    assert _left(sim) == {"jobs": [], "pods": [], "configmaps": []}
