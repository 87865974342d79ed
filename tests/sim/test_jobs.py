"""Jobs on the simulated cluster, run for real: the Job controller, the emulated ``python``
image's containers as processes (volumes, env, logs), Services reached by cluster DNS, the
TTL-after-finished controller and deletion with its propagation policies."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
import time
from typing import Any

import httpx
import pytest

from tests.simfixtures import SimHandle, wait_for

NS = "demo"

WORKER = textwrap.dedent('''
    import os, sys, time, urllib.request
    from helper import target

    print("POD_NAME=" + os.environ["POD_NAME"])
    print("NODE_NAME=" + os.environ["NODE_NAME"])
    print("POD_IP=" + os.environ["POD_IP"])
    print("INDEX=" + os.environ["JOB_COMPLETION_INDEX"])
    print("HOSTNAME=" + os.environ["HOSTNAME"])
    print("FILE=" + open("/opt/work/data.txt").read().strip())
    print("ENVKEYS=" + ",".join(sorted(os.environ)))
    print("CWD=" + os.getcwd())
    answered, clients = set(), set()
    for i in range(30):
        with urllib.request.urlopen(target(), timeout=5) as r:
            answered.add(r.headers["X-Pod"])
            clients.add(r.headers["X-Client"])
    print("ANSWERED=" + ",".join(sorted(answered)))
    print("CLIENTS=" + ",".join(sorted(clients)))
    for url in ("http://web/", "http://web.demo/", "http://web.demo.svc/"):
        with urllib.request.urlopen(url, timeout=5) as r:
            print("SHORT=" + r.headers["X-Pod"])
    try:
        urllib.request.urlopen("http://nothing.demo.svc.cluster.local/", timeout=5)
    except OSError as exc:
        print("NXDOMAIN=" + type(exc).__name__)
    try:
        import k3dtui, uvicorn
        print("ISOLATED=no")
    except ImportError:
        print("ISOLATED=yes")
    print("to stderr", file=sys.stderr)
''')

HELPER = 'def target():\n    return "http://web.demo.svc.cluster.local:80/"\n'


def _client(h: SimHandle) -> httpx.Client:
    return h.http(timeout=20)


def _post(h: SimHandle, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    with _client(h) as c:
        r = c.post(path, json=obj)
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out


def _get(h: SimHandle, path: str) -> dict[str, Any] | None:
    with _client(h) as c:
        r = c.get(path)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out


def _job(name: str, command: list[str], *, completions: int = 2, indexed: bool = True, backoff: int = 0,
         deadline: int | None = None, ttl: int | None = None, grace: int = 2) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parallelism": completions, "completions": completions, "backoffLimit": backoff,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/component": "load-generator"}},
            "spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": grace, "enableServiceLinks": False,
                "containers": [{
                    "name": "worker", "image": "python:3.13-slim", "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "volumeMounts": [{"name": "code", "mountPath": "/opt/work", "readOnly": True}],
                }],
                "volumes": [{"name": "code", "configMap": {"name": "work"}}],
            },
        },
    }
    if indexed:
        spec["completionMode"] = "Indexed"
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def _jobs(ns: str = NS) -> str:
    return f"/apis/batch/v1/namespaces/{ns}/jobs"


def _pods_of(h: SimHandle, job: str) -> list[dict[str, Any]]:
    with _client(h) as c:
        r = c.get(f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": f"batch.kubernetes.io/job-name={job}"})
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def _condition(job: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


def _log(h: SimHandle, pod: str, **params: str) -> str:
    with _client(h) as c:
        r = c.get(f"/api/v1/namespaces/{NS}/pods/{pod}/log", params=params)
        r.raise_for_status()
        return r.text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:  # a zombie is no process left running
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def demo(sim_cluster: SimHandle) -> SimHandle:
    """An app k3dtui did not create: namespace ``demo``, Deployment ``web`` (2 replicas of the
    app image), ClusterIP Service ``web`` 80 → 3000, and the ConfigMap ``work``."""
    from k3dtui.core.identity import APP

    h = sim_cluster
    asyncio.run(h.provider.import_image(APP.image, lambda _line: None))
    h.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    labels = {"app": "web"}
    h.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
             "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                 "metadata": {"labels": labels},
                 "spec": {"containers": [{"name": "app", "image": APP.image, "imagePullPolicy": "IfNotPresent",
                                          "ports": [{"containerPort": 3000}]}]}}}})
    h.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
             "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 3000}]}})
    h.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "work", "namespace": NS},
             "data": {"worker.py": WORKER, "helper.py": HELPER, "data.txt": "hello from the configmap\n"}})

    def ready() -> bool:
        backends = h.control("GET", "/sim/status").get("cluster_ip_backends") or {}
        return backends.get(f"cip/{NS}/web:80") == 2

    wait_for(ready, 30.0, "the Service web to have 2 ready endpoints behind its ClusterIP")
    return h


def test_indexed_job_runs_for_real(demo: SimHandle) -> None:
    h = demo
    _post(h, _jobs(), _job("load", ["python", "-u", "/opt/work/worker.py"]))
    job = wait_for(lambda: (j := _get(h, f"{_jobs()}/load")) and _condition(j, "Complete") and j, 60.0, "Complete")
    st = job["status"]
    assert st["succeeded"] == 2 and "failed" not in st and st["completedIndexes"] == "0-1"
    assert st["startTime"] and st["completionTime"] and st["ready"] == 0 and st["terminating"] == 0
    assert [c["type"] for c in st["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}}

    pods = sorted(_pods_of(h, "load"), key=lambda p: p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
    assert len(pods) == 2
    web = {p["metadata"]["name"]: p for p in (_get(h, f"/api/v1/namespaces/{NS}/pods") or {})["items"]
           if p["metadata"]["labels"].get("app") == "web"}
    for index, pod in enumerate(pods):
        meta, name = pod["metadata"], pod["metadata"]["name"]
        assert name.startswith(f"load-{index}-") and len(name) == len(f"load-{index}-") + 5
        labels = meta["labels"]
        assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "load"
        assert labels["batch.kubernetes.io/controller-uid"] == labels["controller-uid"] == job["metadata"]["uid"]
        assert labels["batch.kubernetes.io/job-completion-index"] == str(index)
        ref = meta["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == ("Job", "load", True, True)
        assert "finalizers" not in meta  # the job-tracking finalizer went once the pod was counted
        assert pod["status"]["phase"] == "Succeeded"
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed" and term["startedAt"] and term["finishedAt"]

        log = _log(h, name)
        lines = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
        assert lines["POD_NAME"] == name
        assert lines["NODE_NAME"] == pod["spec"]["nodeName"]
        assert lines["POD_IP"] == pod["status"]["podIP"]
        assert lines["INDEX"] == str(index)
        assert lines["HOSTNAME"] == f"load-{index}"
        assert lines["FILE"] == "hello from the configmap"
        answered = set(lines["ANSWERED"].split(","))
        assert len(answered) == 2 and answered <= set(web)  # each connection to any ready endpoint
        assert lines["CLIENTS"] == pod["status"]["podIP"]  # pod to Service: no masquerade
        assert lines["NXDOMAIN"] == "URLError"
        assert log.count("SHORT=") == 3 and all(s in web for s in
                                                (ln.split("=", 1)[1] for ln in log.splitlines() if ln.startswith("SHORT=")))
        assert "to stderr" in log
        assert lines["ISOLATED"] == "yes"  # the standard library only, as in the image
        keys = set(lines["ENVKEYS"].split(","))
        assert {"POD_NAME", "NODE_NAME", "POD_IP", "JOB_COMPLETION_INDEX", "HOSTNAME", "PATH", "HOME",
                "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} <= keys
        assert not {"PYTHONPATH", "K3DTUI_SIM_POD", "K3DTUI_STATE_DIR", "VIRTUAL_ENV"} & keys
        assert not any(k.startswith(("PYTEST", "K3DTUI")) for k in keys)

    out = subprocess.run(h.kubectl("get", "jobs", "-n", NS), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["load", "Complete", "2/2"]


def test_follow_streams_while_running_and_after(demo: SimHandle) -> None:
    h = demo
    script = "import time\nfor i in range(5):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\n"
    _post(h, _jobs(), _job("ticker", ["python", "-c", script], completions=1, indexed=False))
    pod = wait_for(lambda: next((p for p in _pods_of(h, "ticker")
                                 if "running" in (p["status"].get("containerStatuses") or [{}])[0].get("state", {})), None),
                   30.0, "the ticker pod to run")
    assert not pod["metadata"]["name"].startswith("ticker-0-")  # NonIndexed: <job>-<random5>
    followed = _log(h, pod["metadata"]["name"], follow="true")
    assert [ln for ln in followed.splitlines()] == [f"tick {i}" for i in range(5)]
    wait_for(lambda: _condition(_get(h, f"{_jobs()}/ticker"), "Complete"), 30.0, "Complete")
    assert _log(h, pod["metadata"]["name"]).splitlines()[-1] == "tick 4"


def test_failing_command_fails_the_job(demo: SimHandle) -> None:
    h = demo
    _post(h, _jobs(), _job("broken", ["python", "-c", "import sys; print('bad'); sys.exit(3)"], completions=1))
    job = wait_for(lambda: (j := _get(h, f"{_jobs()}/broken")) and _condition(j, "Failed") and j, 30.0, "Failed")
    failed = _condition(job, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert _condition(job, "FailureTarget") is not None
    assert job["status"]["failed"] == 1 and "succeeded" not in job["status"]
    (pod,) = _pods_of(h, "broken")
    assert pod["status"]["phase"] == "Failed"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert _log(h, pod["metadata"]["name"]) == "bad\n"
    out = subprocess.run(h.kubectl("get", "jobs", "-n", NS, "broken", "--no-headers"), capture_output=True, text=True, timeout=30)
    assert out.stdout.split()[:3] == ["broken", "Failed", "0/1"]


def test_active_deadline_kills_the_pods(demo: SimHandle) -> None:
    h = demo
    sleeper = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    _post(h, _jobs(), _job("slow", ["python", "-c", sleeper], deadline=2))
    pids = wait_for(lambda: (p := h.control("GET", "/sim/status")["processes"]) and len(p) == 2 and p, 30.0, "2 processes")
    job = wait_for(lambda: (j := _get(h, f"{_jobs()}/slow")) and _condition(j, "Failed") and j, 30.0, "Failed")
    assert _condition(job, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert job["status"]["failed"] == 2 and "active" not in job["status"]
    for pod in _pods_of(h, "slow"):
        assert pod["status"]["phase"] == "Failed"
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 143  # SIGTERM, which python does not catch
    assert not any(_alive(pid) for pid in pids.values())


def test_ttl_deletes_job_pods_and_owned_configmap(demo: SimHandle) -> None:
    h = demo
    job = _post(h, _jobs(), _job("short", ["python", "-c", "print('done')"], completions=1, ttl=1))
    cm = _post(h, f"/api/v1/namespaces/{NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "short-code", "namespace": NS, "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "short", "uid": job["metadata"]["uid"],
             "blockOwnerDeletion": False}]},
        "data": {"a": "b"}})
    assert cm["metadata"]["name"] == "short-code"
    wait_for(lambda: _condition(_get(h, f"{_jobs()}/short"), "Complete"), 30.0, "Complete")
    wait_for(lambda: _get(h, f"{_jobs()}/short") is None, 30.0, "the TTL controller to delete the Job")
    wait_for(lambda: not _pods_of(h, "short"), 30.0, "its pods to go")
    wait_for(lambda: _get(h, f"/api/v1/namespaces/{NS}/configmaps/short-code") is None, 30.0, "the owned ConfigMap to go")
    assert _get(h, f"/api/v1/namespaces/{NS}/configmaps/work") is not None  # not owned: kept


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_deleting_a_running_job_kills_its_processes(demo: SimHandle, policy: str) -> None:
    h = demo
    sleeper = "import time\ntime.sleep(600)\n"
    _post(h, _jobs(), _job("busy", ["python", "-c", sleeper]))
    pids = wait_for(lambda: (p := h.control("GET", "/sim/status")["processes"]) and len(p) == 2 and p, 30.0, "2 processes")
    assert all(_alive(pid) for pid in pids.values())
    with _client(h) as c:
        r = c.request("DELETE", f"{_jobs()}/busy", json={"propagationPolicy": policy})
        assert r.status_code == 200, r.text
    wait_for(lambda: _get(h, f"{_jobs()}/busy") is None and not _pods_of(h, "busy"), 30.0, "the Job and its pods to go")
    wait_for(lambda: not any(_alive(pid) for pid in pids.values()), 10.0, "the processes to end")
    assert h.control("GET", "/sim/status")["processes"] == {}


def test_orphan_deletion_keeps_pods(demo: SimHandle) -> None:
    h = demo
    _post(h, _jobs(), _job("kept", ["python", "-c", "import time; time.sleep(600)"], completions=1))
    wait_for(lambda: len(h.control("GET", "/sim/status")["processes"]) == 1, 30.0, "the process")
    with _client(h) as c:  # no propagationPolicy: batch/v1 orphans the pods
        assert c.delete(f"{_jobs()}/kept").status_code == 200
    wait_for(lambda: _get(h, f"{_jobs()}/kept") is None, 10.0, "the Job to go")
    time.sleep(0.5)
    (pod,) = _pods_of(h, "kept")
    assert "ownerReferences" not in pod["metadata"] and "finalizers" not in pod["metadata"]
    assert len(h.control("GET", "/sim/status")["processes"]) == 1
    with _client(h) as c:
        c.delete(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}", params={"gracePeriodSeconds": "0"})
    wait_for(lambda: h.control("GET", "/sim/status")["processes"] == {}, 10.0, "the process to be killed")


def test_job_rules_of_the_api(demo: SimHandle) -> None:
    h = demo
    bad = _job("always", ["python", "-c", "pass"])
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with _client(h) as c:
        r = c.post(_jobs(), json=bad)
    assert r.status_code == 422
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in r.json()["message"]
    created = _post(h, _jobs(), {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "defaults", "namespace": NS},
                                 "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                                     {"name": "c", "image": "python:3.13", "command": ["python", "-c", "pass"]}]}}}})
    spec = created["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["completionMode"]) == (1, 1, 6, "NonIndexed")
    assert json.dumps(spec["template"]["metadata"]["labels"], sort_keys=True) == json.dumps({
        "batch.kubernetes.io/controller-uid": created["metadata"]["uid"], "batch.kubernetes.io/job-name": "defaults",
        "controller-uid": created["metadata"]["uid"], "job-name": "defaults"}, sort_keys=True)


def test_processes_die_with_the_data_plane(demo: SimHandle) -> None:
    h = demo
    _post(h, _jobs(), _job("orphaned", ["python", "-c", "import time; time.sleep(600)"], completions=1))
    pids = wait_for(lambda: (p := h.control("GET", "/sim/status")["processes"]) and p, 30.0, "the process")
    state = json.loads((h.kubeconfig.parent / "state.json").read_text(encoding="utf-8"))
    os.kill(int(state["dataplane_pid"]), 9)
    wait_for(lambda: not any(_alive(pid) for pid in pids.values()), 10.0, "the process to die with the data plane")
    job = wait_for(lambda: (j := _get(h, f"{_jobs()}/orphaned")) and _condition(j, "Failed") and j, 30.0, "Failed")
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    (pod,) = _pods_of(h, "orphaned")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


def test_stopping_the_cluster_kills_the_processes(demo: SimHandle) -> None:
    from tests.simfixtures import stop_sim

    h = demo
    _post(h, _jobs(), _job("left", ["python", "-c", "import time; time.sleep(600)"], completions=2))
    pids = wait_for(lambda: (p := h.control("GET", "/sim/status")["processes"]) and len(p) == 2 and p, 30.0, "2 processes")
    stop_sim(h)
    assert not any(_alive(pid) for pid in pids.values())
    assert not (h.kubeconfig.parent / "pods").exists()


def test_the_in_cluster_load_contract(demo: SimHandle) -> None:
    """The exact shape k3dtui's core creates (notes: the in-cluster load contract), through
    the official client: the ConfigMap, the Job, the ConfigMap's owner patched to the Job,
    the JSON lines followed from the pods' logs, and Background deletion taking the lot."""
    from kubernetes import client

    h = demo
    run = "0123abcd"
    labels = {"app.kubernetes.io/managed-by": "k3dtui", "app.kubernetes.io/component": "load-generator",
              "k3dtui/load-run": run}
    worker = textwrap.dedent('''
        import json, os, time, urllib.request
        cfg = json.loads(os.environ["K3DTUI_LOAD"])
        per_pod = {}
        end = time.monotonic() + cfg["duration"]
        while time.monotonic() < end:
            with urllib.request.urlopen(cfg["url"], timeout=cfg["timeout"]) as r:
                per_pod[r.headers["X-Pod"]] = per_pod.get(r.headers["X-Pod"], 0) + 1
            print(json.dumps({"per_pod": per_pod, "worker": os.environ["POD_NAME"],
                              "node": os.environ["NODE_NAME"], "ip": os.environ["POD_IP"]}), flush=True)
            time.sleep(0.05)
        print(json.dumps({"final": True, "per_pod": per_pod}), flush=True)
    ''')
    api = h.api_client()
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    name = f"k3dtui-load-{run}"
    core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": name, "labels": labels}, "data": {"worker.py": worker}})
    settings = {"url": "http://web.demo.svc.cluster.local:80/", "duration": 1.5, "timeout": 5}
    job = batch.create_namespaced_job(NS, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
        "spec": {
            "parallelism": 2, "completions": 2, "completionMode": "Indexed", "backoffLimit": 0,
            "activeDeadlineSeconds": 62, "ttlSecondsAfterFinished": 60,
            "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "enableServiceLinks": False,
                "containers": [{
                    "name": "worker", "image": "python:3.13-slim", "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-u", "/opt/k3dtui-load/worker.py"],
                    "env": [
                        {"name": "K3DTUI_LOAD", "value": json.dumps(settings)},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "volumeMounts": [{"name": "code", "mountPath": "/opt/k3dtui-load", "readOnly": True}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                }],
                "volumes": [{"name": "code", "configMap": {"name": name}}],
            }},
        },
    })
    core.patch_namespaced_config_map(name, NS, {"metadata": {"ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid, "blockOwnerDeletion": False}]}})

    def running_pods() -> list[Any]:
        pods = core.list_namespaced_pod(NS, label_selector=f"k3dtui/load-run={run}").items
        ok = [p for p in pods if p.status.container_statuses and p.status.container_statuses[0].state.running]
        return ok if len(ok) == 2 else []

    pods = wait_for(running_pods, 30.0, "2 running workers")
    finals = []
    for pod in pods:
        stream = core.read_namespaced_pod_log(pod.metadata.name, NS, follow=True, _preload_content=False)
        lines = [json.loads(line) for line in stream.read().decode().splitlines()]
        assert lines[-1]["final"] is True and len(lines) > 2
        assert lines[0]["worker"] == pod.metadata.name and lines[0]["node"] == pod.spec.node_name
        assert lines[0]["ip"] == pod.status.pod_ip
        finals.append(lines[-1]["per_pod"])
    assert len({p for f in finals for p in f}) == 2  # both app pods answered
    wait_for(lambda: _condition(_get(h, f"{_jobs()}/{name}"), "Complete"), 30.0, "Complete")
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")
    wait_for(lambda: _get(h, f"{_jobs()}/{name}") is None and not core.list_namespaced_pod(
        NS, label_selector=f"k3dtui/load-run={run}").items and _get(h, f"/api/v1/namespaces/{NS}/configmaps/{name}") is None,
        30.0, "the Job, its pods and the ConfigMap to go")


def test_retries_up_to_the_backoff_limit(demo: SimHandle) -> None:
    h = demo
    _post(h, _jobs(), _job("retry", ["python", "-c", "import os; print(os.environ['HOSTNAME']); raise SystemExit(1)"],
                           completions=1, indexed=False, backoff=1))
    job = wait_for(lambda: (j := _get(h, f"{_jobs()}/retry")) and _condition(j, "Failed") and j, 30.0, "Failed")
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert job["status"]["failed"] == 2  # the first pod and its replacement
    pods = _pods_of(h, "retry")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    assert {_log(h, p["metadata"]["name"]).strip() for p in pods} == {p["metadata"]["name"] for p in pods}


def test_on_failure_restarts_the_container_and_counts_restarts(demo: SimHandle) -> None:
    h = demo
    job = _job("again", ["python", "-c", "raise SystemExit(2)"], completions=1, indexed=False, backoff=2)
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    _post(h, _jobs(), job)
    done = wait_for(lambda: (j := _get(h, f"{_jobs()}/again")) and _condition(j, "Failed") and j, 30.0, "Failed")
    assert _condition(done, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    events = (_get(h, f"/api/v1/namespaces/{NS}/events") or {})["items"]
    created = [e for e in events if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"] == "again"]
    assert len(created) == 1  # one pod, its container restarted in place
    pod_name = created[0]["message"].removeprefix("Created pod: ")
    backoffs = [e for e in events if e["reason"] == "BackOff" and e["involvedObject"]["name"] == pod_name]
    assert len(backoffs) >= 2
    assert any(e["reason"] == "SuccessfulDelete" and e["involvedObject"]["name"] == "again" for e in events)
    wait_for(lambda: not _pods_of(h, "again"), 10.0, "the failed Job's active pod to be deleted")
