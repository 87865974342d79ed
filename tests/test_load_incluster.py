"""In-cluster load (k3dtui.core.incluster): the Job and ConfigMap against the contract, the
worker's lines, the merge of two workers into one snapshot, and the cleanup of leftovers
against the simulated cluster's API."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from loadservers import ServerThread

from k3dtui.core import incluster, incluster_worker
from k3dtui.core.errors import UsageError
from k3dtui.core.identity import AppIdentity
from k3dtui.core.loadworker import bucket_of, percentiles
from k3dtui.core.models import LoadSettings

SETTINGS = LoadSettings(url="http://fastapi-service.default.svc.cluster.local:80/", mode="keep-alive",
                        concurrency=5, rate=10.0, duration=30.0, timeout=2.0, identity="header:X-Pod")
LABELS = {"app.kubernetes.io/managed-by": "k3dtui", "app.kubernetes.io/component": "load-generator",
          "k3dtui/load-run": "0a1b2c3d"}


# --- the objects -------------------------------------------------------------------
def test_run_id_is_8_lowercase_hex() -> None:
    ids = {incluster.new_run_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)


def test_config_map_follows_the_contract() -> None:
    cm = incluster.config_map("0a1b2c3d", "demo", {"k3dtui/pid": "1"})
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "k3dtui-load-0a1b2c3d"
    assert cm["metadata"]["namespace"] == "demo"
    assert cm["metadata"]["labels"] == LABELS
    assert set(cm["data"]) == {"worker.py", "loadworker.py"}
    # the code is the package's own, standard library only
    for source in cm["data"].values():
        imported = set(re.findall(r"^\s*(?:from|import) ([a-zA-Z_][\w]*)", source, re.M))
        assert imported - {"k3dtui", "loadworker", "uvloop"} <= set(sys.stdlib_module_names), imported


def test_job_follows_the_contract() -> None:
    obj = incluster.job("0a1b2c3d", "demo", SETTINGS, workers=3, image="python:3.12-slim")
    assert obj["apiVersion"] == "batch/v1" and obj["kind"] == "Job"
    assert obj["metadata"]["name"] == "k3dtui-load-0a1b2c3d"
    assert obj["metadata"]["namespace"] == "demo"
    assert obj["metadata"]["labels"] == LABELS
    spec = obj["spec"]
    assert (spec["parallelism"], spec["completions"], spec["completionMode"], spec["backoffLimit"]) == (
        3, 3, "Indexed", 0)
    assert spec["activeDeadlineSeconds"] == 30 + 60
    assert spec["ttlSecondsAfterFinished"] == 60
    template = spec["template"]
    assert template["metadata"]["labels"] == LABELS
    pod = template["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 2
    assert pod["enableServiceLinks"] is False
    assert pod["volumes"] == [{"name": "code", "configMap": {"name": "k3dtui-load-0a1b2c3d"}}]
    [container] = pod["containers"]
    assert container["name"] == "worker"
    assert container["image"] == "python:3.12-slim"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python", "-u", "/opt/k3dtui-load/worker.py"]
    assert container["volumeMounts"] == [{"name": "code", "mountPath": "/opt/k3dtui-load", "readOnly": True}]
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == {"K3DTUI_LOAD", "POD_NAME", "NODE_NAME", "POD_IP"}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    settings = json.loads(env["K3DTUI_LOAD"]["value"])
    assert settings == {"url": SETTINGS.url, "mode": "keep-alive", "concurrency": 5, "rate": 10.0,
                        "duration": 30.0, "requests": None, "timeout": 2.0, "identity": "header:X-Pod",
                        "workers": 3}


def test_a_request_bounded_run_still_has_a_deadline() -> None:
    settings = LoadSettings(url=SETTINGS.url, duration=None, requests=1000)
    spec = incluster.job("0a1b2c3d", "demo", settings, workers=2)["spec"]
    assert spec["activeDeadlineSeconds"] == int(incluster.REQUESTS_ONLY_CAP) + 60
    assert spec["template"]["spec"]["containers"][0]["image"] == "python:3.13-slim"


def test_owner_patch_points_at_the_job() -> None:
    patch = incluster.owner_patch({"metadata": {"name": "k3dtui-load-0a1b2c3d", "uid": "u-1"}})
    assert patch == {"metadata": {"ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "Job", "name": "k3dtui-load-0a1b2c3d", "uid": "u-1",
        "blockOwnerDeletion": False}]}}


def test_default_url_is_the_services_cluster_dns_name() -> None:
    app = AppIdentity(namespace="shop", service="web", service_port=8080)
    assert incluster.service_url(app) == "http://web.shop.svc.cluster.local:8080/"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"workers": 0}, "--workers must be between 1 and 50"),
    ({"workers": 51}, "--workers must be between 1 and 50"),
    ({"workers": True}, "--workers must be a whole number"),
    ({"image": "bad image"}, "--worker-image must be an image reference"),
    ({"allow_changes": False}, "give --allow-changes"),
])
def test_bad_input_is_refused_before_anything_is_made(kwargs: dict[str, Any], needle: str) -> None:
    def no_client() -> Any:
        raise AssertionError("no API call may happen")

    with pytest.raises(UsageError, match=re.escape(needle)):
        incluster.InClusterLoad(SETTINGS, kubeconfig="/nonexistent", api_client=no_client, **kwargs)


def test_requests_fewer_than_workers_is_refused() -> None:
    settings = LoadSettings(duration=None, requests=2)
    with pytest.raises(UsageError, match="at least --workers"):
        incluster.InClusterLoad(settings, kubeconfig="/nonexistent", workers=3)


# --- the worker's side -----------------------------------------------------------------
def test_each_worker_takes_its_share_of_the_totals() -> None:
    raw = {"url": "http://x/", "mode": "new-connection", "concurrency": 5, "rate": 9.0, "duration": None,
           "requests": 7, "timeout": 1.0, "identity": "json:pod.name", "workers": 3}
    shares = [incluster_worker.settings_for(raw, i) for i in range(3)]
    assert [s.concurrency for s in shares] == [2, 2, 1]
    assert [s.requests for s in shares] == [3, 2, 2]
    assert [s.rate for s in shares] == [3.0, 3.0, 3.0]
    assert all(s.identity == "json:pod.name" and s.mode == "new-connection" for s in shares)


@pytest.fixture(scope="module")
def servers() -> Any:
    st = ServerThread()
    try:
        yield st
    finally:
        st.close()


def test_worker_entry_writes_cumulative_lines_and_a_final_one(servers: ServerThread, tmp_path: Path) -> None:
    """The ConfigMap's two files, run as the pod runs them (a folder, ``python -u worker.py``)."""
    port = servers.app("pod-a", "node-1")
    for name, source in incluster.worker_code().items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "POD_NAME": "k3dtui-load-0a1b2c3d-0-abcde", "NODE_NAME": "agent-0",
           "JOB_COMPLETION_INDEX": "0",
           "K3DTUI_LOAD": json.dumps({"url": f"http://127.0.0.1:{port}/", "mode": "keep-alive", "concurrency": 2,
                                      "rate": None, "duration": 1.2, "requests": None, "timeout": 2.0,
                                      "identity": "", "workers": 1})}
    proc = subprocess.run([sys.executable, "-u", str(tmp_path / "worker.py")], env=env, cwd="/",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = [incluster.parse_line(t) for t in proc.stdout.splitlines()]
    assert all(line is not None for line in lines), proc.stdout
    got = [line for line in lines if line is not None]
    assert 2 <= len(got) <= 5  # about twice a second over 1.2 s, and the final line
    assert [line["seq"] for line in got] == list(range(len(got)))
    assert [bool(line["final"]) for line in got] == [False] * (len(got) - 1) + [True]
    final = got[-1]
    assert final["pod"] == "k3dtui-load-0a1b2c3d-0-abcde" and final["node"] == "agent-0"
    assert final["finished_reason"] == "duration"
    assert final["responses"] > 0 and final["per_pod"] == {"pod-a": final["responses"]}
    assert final["pod_nodes"] == {"pod-a": "node-1"}
    assert sum(final["hist"].values()) == final["responses"]
    assert [line["responses"] for line in got] == sorted(line["responses"] for line in got)  # cumulative


def test_worker_that_cannot_start_says_why_and_exits_1() -> None:
    out = io.StringIO()
    env = {"K3DTUI_LOAD": json.dumps({"url": "https://x/", "duration": 1, "workers": 1}), "POD_NAME": "p"}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        assert incluster_worker.main(out) == 1
    finally:
        os.environ.clear()
        os.environ.update(old)
    line = incluster.parse_line(out.getvalue())
    assert line is not None and line["final"] is True and "https is not supported" in line["failed"]


# --- the merge -------------------------------------------------------------------------
def _line(seq: int, pod: str, node: str, per_pod: dict[str, int], latencies: list[float], *,
          errors: dict[str, int] | None = None, final: bool = False, rps: float = 100.0) -> dict[str, Any]:
    hist: dict[str, int] = {}
    for seconds in latencies:
        key = str(bucket_of(seconds))
        hist[key] = hist.get(key, 0) + 1
    responses = sum(per_pod.values())
    assert responses == len(latencies)
    errs = errors or {}
    return {"seq": seq, "pod": pod, "node": node, "index": 0, "requests": responses + sum(errs.values()),
            "responses": responses, "rps": rps, "status": {"200": responses}, "errors": errs,
            "per_pod": per_pod, "per_node": {}, "client_addrs": {}, "elapsed": 2.0 + seq,
            "final": final, "finished_reason": "duration" if final else "", "hist": hist, "window_hist": hist,
            "pod_nodes": {"app-c": "agent-9"}}


def test_two_workers_merge_into_one_snapshot() -> None:
    a = _line(3, "w-0", "agent-0", {"app-a": 3, "app-b": 1}, [0.001, 0.001, 0.002, 0.004],
              errors={"timeout": 2}, final=True, rps=40.0)
    b = _line(5, "w-1", "agent-1", {"app-b": 2, "app-c": 2}, [0.001, 0.008, 0.008, 0.008],
              errors={"refused": 1}, rps=60.0)
    snap = incluster.merge_lines(
        {"w-0": a, "w-1": b}, settings=SETTINGS, pod_nodes={"app-a": "agent-0", "app-b": "agent-1"},
        worker_nodes={"w-0": "agent-0"})
    assert snap.responses == 8 and snap.requests == 11
    assert snap.per_pod == {"app-a": 3, "app-b": 3, "app-c": 2}
    # nodes from the API's spec.nodeName; app-c (not in the API's list) from its X-Node header
    assert snap.per_node == {"agent-0": 3, "agent-1": 3, "agent-9": 2}
    assert snap.errors == {"timeout": 2, "refused": 1}
    assert snap.status == {200: 8}
    assert snap.rps == 100.0
    assert snap.elapsed == 7.0
    every = [0.001, 0.001, 0.002, 0.004, 0.001, 0.008, 0.008, 0.008]
    expected: dict[int, int] = {}
    for seconds in every:
        expected[bucket_of(seconds)] = expected.get(bucket_of(seconds), 0) + 1
    assert snap.latency_ms_total == percentiles(expected, 8)
    assert snap.latency_ms_total["p50"] < 3 < snap.latency_ms_total["p99"]
    assert set(snap.per_worker) == {"w-0", "w-1"}
    w0, w1 = snap.per_worker["w-0"], snap.per_worker["w-1"]
    assert (w0.node, w0.responses, w0.errors, w0.rps, w0.running) == ("agent-0", 4, 2, 40.0, False)
    assert (w1.node, w1.responses, w1.errors, w1.rps, w1.running) == ("agent-1", 4, 1, 60.0, True)
    assert sum(w.responses for w in snap.per_worker.values()) == snap.responses
    assert sum(snap.per_pod.values()) == sum(snap.per_node.values()) == snap.responses
    assert snap.identity_missing == ""
    # the paths start at each worker's node: w-0 (agent-0) asked app-a (agent-0) 3 and app-b
    # (agent-1) 1; w-1 (agent-1) asked app-b (agent-1) 2 and app-c (agent-9) 2: 3 of 8 crossed
    assert snap.paths == {"agent-0": {"agent-0": 3, "agent-1": 1}, "agent-1": {"agent-1": 2, "agent-9": 2}}
    assert snap.cross_node == 3 and snap.cross_node_share == 3 / 8


def test_merge_says_when_the_responses_carry_no_identity() -> None:
    a = _line(0, "w-0", "agent-0", {"unknown": 2}, [0.001, 0.001])
    snap = incluster.merge_lines({"w-0": a}, settings=LoadSettings())
    assert "no X-Pod header" in snap.identity_missing and "--identity header:NAME" in snap.identity_missing


def test_worker_lines_are_deduplicated_by_seq() -> None:
    load = incluster.InClusterLoad(SETTINGS, kubeconfig="/nonexistent", workers=2)
    load.running = True
    load._accept("w-0", _line(4, "w-0", "agent-0", {"app-a": 4}, [0.001] * 4))
    load._accept("w-1", _line(1, "w-1", "agent-1", {"app-b": 1}, [0.001]))
    assert load.latest().responses == 5 and load.running
    load._accept("w-0", _line(5, "w-0", "agent-0", {"app-a": 6}, [0.001] * 6, final=True))
    load._accept("w-1", _line(2, "w-1", "agent-1", {"app-b": 2}, [0.001] * 2, final=True))
    snap = load.latest()
    assert snap.responses == 8 and not snap.running and not load.running
    assert snap.finished_reason == "duration"


# --- leftovers, against the simulated cluster ---------------------------------------
def _objects(sim: Any, run: str, annotations: dict[str, str], labels: dict[str, str] | None = None) -> None:
    labels = labels if labels is not None else incluster.run_labels(run)
    cm = incluster.config_map(run, "default", annotations)
    cm["metadata"]["labels"] = labels
    job = incluster.job(run, "default", SETTINGS, workers=1, annotations=annotations)
    job["metadata"]["labels"] = labels
    job["spec"]["template"]["metadata"]["labels"] = labels
    sim.apply(cm)
    with sim.http() as client:
        res = client.post("/apis/batch/v1/namespaces/default/jobs", json=job)
        assert res.status_code == 201, res.text


def _names(sim: Any, plural: str) -> set[str]:
    group = "/apis/batch/v1" if plural == "jobs" else "/api/v1"
    with sim.http() as client:
        res = client.get(f"{group}/namespaces/default/{plural}")
        res.raise_for_status()
        return {item["metadata"]["name"] for item in res.json()["items"]}


def test_cleanup_deletes_only_leftovers_of_dead_runs(sim_cluster: Any) -> None:
    from kubernetes import client

    now = time.time()
    host = "this-host"
    dead_pid = {"k3dtui/host": host, "k3dtui/pid": "999999", "k3dtui/heartbeat": str(int(now))}
    stale_elsewhere = {"k3dtui/host": "other", "k3dtui/pid": "1", "k3dtui/heartbeat": str(int(now - 120))}
    live_elsewhere = {"k3dtui/host": "other", "k3dtui/pid": "1", "k3dtui/heartbeat": str(int(now - 5))}
    live_here = {"k3dtui/host": host, "k3dtui/pid": "4242", "k3dtui/heartbeat": str(int(now - 600))}
    _objects(sim_cluster, "dead0001", dead_pid)
    _objects(sim_cluster, "stale002", stale_elsewhere)
    _objects(sim_cluster, "alive003", live_elsewhere)
    _objects(sim_cluster, "alive004", live_here)
    # foreign: k3dtui's name pattern but not both labels, and an unlabelled ConfigMap
    _objects(sim_cluster, "foreign5", dead_pid, labels={"app.kubernetes.io/managed-by": "k3dtui",
                                                         "k3dtui/load-run": "foreign5"})
    sim_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "k3dtui-load-cafe0006", "namespace": "default"}, "data": {}})
    # a ConfigMap whose Job was never made (k3dtui killed between the two)
    sim_cluster.apply(incluster.config_map("orphan07", "default", dead_pid))

    api = sim_cluster.api_client()
    try:
        deleted = incluster.cleanup_leftovers(
            client.BatchV1Api(api), client.CoreV1Api(api), "default", now=now, host=host,
            pid_alive=lambda pid: pid == 4242)
    finally:
        api.close()
    assert sorted(deleted) == [
        "configmap/k3dtui-load-dead0001", "configmap/k3dtui-load-orphan07", "configmap/k3dtui-load-stale002",
        "job/k3dtui-load-dead0001", "job/k3dtui-load-stale002"]
    assert {"k3dtui-load-alive003", "k3dtui-load-alive004", "k3dtui-load-foreign5"} <= _names(sim_cluster, "jobs")
    assert not {"k3dtui-load-dead0001", "k3dtui-load-stale002"} & _names(sim_cluster, "jobs")
    cms = _names(sim_cluster, "configmaps")
    assert {"k3dtui-load-alive003", "k3dtui-load-alive004", "k3dtui-load-foreign5", "k3dtui-load-cafe0006"} <= cms
    assert not {"k3dtui-load-dead0001", "k3dtui-load-stale002", "k3dtui-load-orphan07"} & cms


def test_start_that_fails_deletes_what_it_made(sim_cluster: Any) -> None:
    """Workers that cannot start (an image nobody can pull): start() fails within its bound
    with one line, and leaves no Job, ConfigMap or pod."""
    from k3dtui.core.errors import K3dtuiError

    said: list[str] = []
    load = incluster.InClusterLoad(
        LoadSettings(duration=5.0), kubeconfig=sim_cluster.kubeconfig, context=sim_cluster.context,
        workers=2, image="registry.invalid/nothing:1", start_timeout=1.5, on_status=said.append)
    with pytest.raises(K3dtuiError, match=r"^in-cluster load: "):
        load.start()
    assert any(text.startswith("creating Job k3dtui-load-") for text in said)
    assert not any(n.startswith("k3dtui-load-") for n in _names(sim_cluster, "jobs"))
    assert not any(n.startswith("k3dtui-load-") for n in _names(sim_cluster, "configmaps"))
    assert not any(n.startswith("k3dtui-load-") for n in _names(sim_cluster, "pods"))
    assert not load.running


# --- waiting for the workers (fake API objects) -------------------------------------
def _pod(name: str, phase: str, *, waiting: tuple[str, str] | None = None, unschedulable: str = "") -> Any:
    from types import SimpleNamespace as NS

    statuses = [NS(state=NS(waiting=NS(reason=waiting[0], message=waiting[1])))] if waiting else []
    conditions = [NS(type="PodScheduled", status="False", reason="Unschedulable", message=unschedulable)] \
        if unschedulable else []
    return NS(metadata=NS(name=name), spec=NS(node_name="" if unschedulable else "agent-0"),
              status=NS(phase=phase, container_statuses=statuses, conditions=conditions))


class _FakeApi:
    def __init__(self, pods: list[Any]) -> None:
        self.pods = pods

    def list_namespaced_pod(self, ns: str, label_selector: str = "") -> Any:
        from types import SimpleNamespace as NS

        return NS(items=self.pods)

    def read_namespaced_job_status(self, name: str, ns: str) -> Any:
        from types import SimpleNamespace as NS

        return NS(status=NS(conditions=[]))


def _waiter(timeout: float) -> incluster.InClusterLoad:
    load = incluster.InClusterLoad(SETTINGS, kubeconfig="/nonexistent", workers=2, image="python:3.13-slim",
                                   start_timeout=timeout)
    load.run = "0a1b2c3d"
    return load


def test_an_image_that_cannot_be_pulled_is_said_at_once() -> None:
    from k3dtui.core.errors import K3dtuiError

    api = _FakeApi([_pod("w-0", "Running"), _pod("w-1", "Pending", waiting=(
        "ImagePullBackOff", 'Back-off pulling image "python:3.13-slim"'))])
    with pytest.raises(K3dtuiError) as info:
        _waiter(60.0)._wait_for_pods(api, api)
    assert "worker pod w-1 cannot start its container (ImagePullBackOff: Back-off pulling" in info.value.message
    assert "--worker-image" in info.value.hint


def test_pending_workers_are_said_when_the_bound_passes() -> None:
    from k3dtui.core.errors import K3dtuiError

    api = _FakeApi([_pod("w-0", "Running"), _pod("w-1", "Pending", unschedulable="0/3 nodes are available")])
    with pytest.raises(K3dtuiError) as info:
        _waiter(0.0)._wait_for_pods(api, api)
    assert "did not start within 0 s (pod w-1 is Pending (Unschedulable: 0/3 nodes are available))" \
        in info.value.message
    assert "fewer --workers" in info.value.hint


def test_started_workers_are_returned() -> None:
    api = _FakeApi([_pod("w-1", "Running"), _pod("w-0", "Succeeded")])
    assert _waiter(0.0)._wait_for_pods(api, api) == ["w-0", "w-1"]


# --- the command line: bad input -----------------------------------------------------
@pytest.mark.parametrize(("argv", "needle"), [
    (["--in-cluster", "--workers", "0"], "--workers must be between 1 and 50, not 0"),
    (["--in-cluster", "--workers", "51"], "--workers must be between 1 and 50, not 51"),
    (["--in-cluster", "--workers", "two"], "--workers must be a whole number, not 'two'"),
    (["--in-cluster", "--worker-image", ""], "--worker-image must be an image reference"),
    (["--workers", "2"], "--workers is an option of --in-cluster"),
    (["--worker-image", "python:3.12"], "--worker-image is an option of --in-cluster"),
    (["--in-cluster", "--workers", "3", "--requests", "2"], "--requests (2) must be at least --workers (3)"),
    (["--in-cluster", "--identity", "nope"], "unknown identity 'nope'"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    from k3dtui.cli import main

    code = main(["load", "--sim", "--name", "no-such-cluster", *argv])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], captured.err


# --- following a worker's log ---------------------------------------------------------
class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, size: int, decode_content: bool = True) -> Any:
        for i in range(0, len(self.data), 7):  # lines cut across chunks
            yield self.data[i:i + 7]

    def release_conn(self) -> None:
        pass


class _LogApi:
    """A worker's log served in two streams: the first drops after two lines and half of a
    third; the second (``tailLines=1``) starts again at the last whole line."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.encoded = [json.dumps(line).encode() + b"\n" for line in lines]
        self.calls: list[dict[str, Any]] = []

    def read_namespaced_pod_log(self, pod: str, ns: str, **kw: Any) -> Any:
        self.calls.append(kw)
        if len(self.calls) == 1:
            return _Stream(b"starting\n" + self.encoded[0] + self.encoded[1] + self.encoded[2][:10])
        return _Stream(self.encoded[1] + self.encoded[2] + self.encoded[3])

    def read_namespaced_pod(self, pod: str, ns: str) -> Any:
        from types import SimpleNamespace as NS

        return NS(status=NS(phase="Running"))


def test_a_dropped_log_stream_is_resumed_without_counting_a_line_twice() -> None:
    lines = [_line(i, "w-0", "agent-0", {"app-a": i + 1}, [0.001] * (i + 1), final=i == 3) for i in range(4)]
    api = _LogApi(lines)
    load = incluster.InClusterLoad(SETTINGS, kubeconfig="/nonexistent", workers=1)
    load.running = True
    seen: list[int] = []
    accept = load._accept

    def recording(pod: str, line: dict[str, Any]) -> None:
        seen.append(int(line["seq"]))
        accept(pod, line)

    load._accept = recording  # type: ignore[method-assign]
    load.follow_log(api, "w-0")
    assert seen == [0, 1, 2, 3]
    assert [c.get("tail_lines") for c in api.calls] == [None, 1]
    assert all(c["follow"] is True and c["_preload_content"] is False for c in api.calls)
    snap = load.latest()
    assert snap.responses == 4 and not snap.running and snap.per_worker["w-0"].responses == 4


def test_reset_counts_from_each_workers_line_of_that_moment() -> None:
    load = incluster.InClusterLoad(SETTINGS, kubeconfig="/nonexistent", workers=2)
    load.running = True
    load._accept("w-0", _line(1, "w-0", "agent-0", {"app-a": 4}, [0.001] * 4))
    load._accept("w-1", _line(1, "w-1", "agent-1", {"app-b": 2}, [0.001] * 2))
    load.reset()
    assert load.latest().responses == 0 and load.latest().per_pod == {}
    load._accept("w-0", _line(2, "w-0", "agent-0", {"app-a": 5, "app-c": 1}, [0.001] * 6))
    snap = load.latest()
    assert snap.responses == 2 and snap.per_pod == {"app-a": 1, "app-c": 1}
    assert snap.per_worker["w-0"].responses == 2 and snap.per_worker["w-1"].responses == 0
    assert sum(snap.per_node.values()) == 2
