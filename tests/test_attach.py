"""Attach to an app k3dtui did not create (issue 17, points 1, 2, 6), against the simulated cluster.

The app is made with kubectl in its own namespace ``shop``: a Deployment ``web`` (2 replicas of
the emulated ``nginx``, ``app=web``) and a LoadBalancer Service ``web``. The "user's kubeconfig"
is a copy of the simulated cluster's in a home of the test's own; every test checks that it is
byte-identical, with the same mtime, after every command.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from k3dtui.cli import main
from k3dtui.sim.testing import limited_kubeconfig
from tests.simfixtures import SimHandle, start_sim, stop_sim, wait_for

pytestmark = pytest.mark.kubectl

SHOP = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: worker}
  template:
    metadata:
      labels: {app: worker}
    spec:
      containers:
      - name: sleep
        image: busybox
        command: [sleep, "3600"]
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    """A simulated cluster with the ``shop`` app, applied with kubectl (k3dtui did not make it)."""
    folder = tmp_path_factory.mktemp("attach")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("K3DTUI_STATE_DIR", str(folder / "state"))
        mp.setenv("K3DTUI_CACHE_DIR", str(folder / "cache"))
        handle = start_sim()
    try:
        manifest = folder / "shop.yaml"
        manifest.write_text(SHOP, encoding="utf-8")
        done = subprocess.run(handle.kubectl("apply", "-f", str(manifest)), capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: len(ready_pods(handle, "app=web")) == 2, 30.0, "web's 2 pods Ready")
        yield handle
    finally:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("K3DTUI_STATE_DIR", str(folder / "state"))
            mp.setenv("K3DTUI_CACHE_DIR", str(folder / "cache"))
            stop_sim(handle)


def pods(handle: SimHandle, selector: str) -> list[dict[str, Any]]:
    with handle.http() as client:
        items: list[dict[str, Any]] = client.get("/api/v1/namespaces/shop/pods",
                                                 params={"labelSelector": selector}).json()["items"]
    return items


def ready_pods(handle: SimHandle, selector: str) -> list[str]:
    return sorted(
        p["metadata"]["name"] for p in pods(handle, selector)
        if not p["metadata"].get("deletionTimestamp")
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions") or [])
    )


def settled(handle: SimHandle) -> None:
    """web back to 2 Ready pods and no other (a terminating one gone too), for the next test."""
    wait_for(lambda: len(ready_pods(handle, "app=web")) == 2 and len(pods(handle, "app=web")) == 2, 30.0,
             "web to settle at 2 pods")


def replicas(handle: SimHandle) -> int:
    with handle.http() as client:
        return int(client.get("/apis/apps/v1/namespaces/shop/deployments/web").json()["spec"]["replicas"])


@pytest.fixture
def user_kubeconfig(shop: SimHandle, tmp_path: Path) -> Iterator[Path]:
    """The user's kubeconfig (a copy of the cluster's, as if in ~/.kube/config), checked unchanged
    (bytes and mtime) after the test."""
    path = tmp_path / "home" / ".kube" / "config"
    path.parent.mkdir(parents=True)
    path.write_bytes(shop.kubeconfig.read_bytes())
    os.utime(path, (1_700_000_000, 1_700_000_000))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    yield path
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before, "k3dtui wrote the user's kubeconfig"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def target(kubeconfig: Path, *more: str) -> list[str]:
    return ["--kubeconfig", str(kubeconfig), "--namespace", "shop", "--deployment", "web", *more]


# -- status and watch ------------------------------------------------------------------------------


def test_status_json_on_an_app_k3dtui_did_not_create(shop: SimHandle, user_kubeconfig: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--json", *target(user_kubeconfig))
    assert code == 0, err
    data = json.loads(out)
    assert data["attached"] is True and data["namespace"] == "shop" and data["context"] == shop.context
    assert data["app"] == "deployment/web (app=web) svc/web" and data["allow_changes"] is False
    assert data["deployment"] == {"name": "web", "replicas": 2, "ready": 2}
    assert data["service"]["name"] == "web" and data["service"]["port"] == 80
    served = sorted(p["name"] for n in data["nodes"] for p in n["pods"])
    assert served == ready_pods(shop, "app=web")  # the worker's pod is not the app's
    assert len(data["nodes"]) == 3 and "nodes_from_pods" not in data


def test_the_kubeconfig_is_found_as_kubectl_finds_it(shop: SimHandle, user_kubeconfig: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.yaml"
    monkeypatch.setenv("KUBECONFIG", f"{missing}{os.pathsep}{user_kubeconfig}")
    code, out, err = run(capsys, "status", "--json", "--namespace", "shop", "--selector", "app=web")
    assert code == 0, err
    data = json.loads(out)
    assert data["deployment"]["name"] == "web" and data["app"].startswith("deployment/web (app=web)")
    # several files, merged as kubectl merges them: the first sets current-context to a context
    # of the second, whose cluster and user are there too (kubectl config view --merge)
    first = tmp_path / "first.yaml"
    other = yaml.safe_load(user_kubeconfig.read_text(encoding="utf-8"))
    first.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": shop.context,
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "someone", "user": {"token": "nope"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "someone"}}],
    }), encoding="utf-8")
    assert shop.context not in {c["name"] for c in yaml.safe_load(first.read_text())["contexts"]}
    assert other["current-context"] == shop.context
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{missing}{os.pathsep}{user_kubeconfig}")
    code, out, err = run(capsys, "status", "--json", "--namespace", "shop", "--deployment", "web")
    assert code == 0, err
    assert json.loads(out)["context"] == shop.context
    code, out, err = run(capsys, "watch", "--json", "--duration", "1.5", "--namespace", "shop", "--deployment", "web")
    assert code == 0, err
    assert any(json.loads(line).get("event") == "connected" for line in out.splitlines())
    code, _out, err = run(capsys, "status", "--context", "elsewhere", "--namespace", "shop", "--deployment", "web")
    assert code == 1 and "Traceback" not in err  # the first file's own context: its (dead) server
    monkeypatch.setenv("KUBECONFIG", str(missing))
    code, _out, err = run(capsys, "status", "--namespace", "shop", "--deployment", "web")
    assert code == 1 and f"no kubeconfig at {missing}" in err and "Traceback" not in err


def test_watch_json_prints_the_apps_pods(shop: SimHandle, user_kubeconfig: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "watch", "--json", "--duration", "1.5", *target(user_kubeconfig))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"] == "connected"
    added = sorted(e["pod"] for e in lines if e.get("change") == "added")
    assert added == ready_pods(shop, "app=web")


# -- read-only unless asked ------------------------------------------------------------------------


def test_kill_is_refused_without_allow_changes_and_allowed_with_it(shop: SimHandle, user_kubeconfig: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = ready_pods(shop, "app=web")
    code, out, err = run(capsys, "kill", before[0], *target(user_kubeconfig))
    assert code == 2 and out == ""
    assert "refused: kill changes the cluster" in err and "--allow-changes" in err
    assert ready_pods(shop, "app=web") == before  # nothing deleted
    with shop.http() as client:
        pod = client.get(f"/api/v1/namespaces/shop/pods/{before[0]}").json()
    assert not pod["metadata"].get("deletionTimestamp")

    code, out, err = run(capsys, "kill", before[0], *target(user_kubeconfig, "--allow-changes"))
    assert code == 0, err
    assert f"pod {before[0]}" in out

    def gone() -> bool:
        names = [p["metadata"]["name"] for p in pods(shop, "app=web") if not p["metadata"].get("deletionTimestamp")]
        return before[0] not in names
    wait_for(gone, 10.0, "the killed pod to go")
    settled(shop)


def test_kill_touches_only_the_named_deployments_pods(shop: SimHandle, user_kubeconfig: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    worker = next(p["metadata"]["name"] for p in pods(shop, "app=worker"))
    code, _out, err = run(capsys, "kill", worker, *target(user_kubeconfig, "--allow-changes"))
    assert code == 1 and f"refused: pod {worker} is not part of the app" in err
    assert worker in [p["metadata"]["name"] for p in pods(shop, "app=worker")
                      if not p["metadata"].get("deletionTimestamp")]


def test_scale_is_refused_without_allow_changes_and_allowed_with_it(shop: SimHandle, user_kubeconfig: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "scale", "3", *target(user_kubeconfig))
    assert code == 2 and "refused: scale changes the cluster" in err
    assert replicas(shop) == 2
    code, out, err = run(capsys, "scale", "3", *target(user_kubeconfig, "--allow-changes"))
    assert code == 0, err
    assert "scaled deployment web from 2 to 3 replicas" in out and replicas(shop) == 3
    code, out, err = run(capsys, "scale", "2", *target(user_kubeconfig, "--allow-changes"))
    assert code == 0 and replicas(shop) == 2
    settled(shop)


def test_policy_and_node_changes_are_refused_and_node_stop_always(shop: SimHandle, user_kubeconfig: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "policy", "local", *target(user_kubeconfig))
    assert code == 2 and "refused: switching externalTrafficPolicy changes the cluster" in err
    node = f"k3d-{shop.name}-agent-0"
    code, _out, err = run(capsys, "node", "cordon", node, *target(user_kubeconfig))
    assert code == 2 and "refused: node cordon changes the cluster" in err
    code, _out, err = run(capsys, "node", "stop", node, *target(user_kubeconfig, "--allow-changes"))
    assert code == 2 and "refused: node stop" in err and "k3dtui's own" in err
    with shop.http() as client:
        assert not client.get(f"/api/v1/nodes/{node}").json()["spec"].get("unschedulable")
    code, out, err = run(capsys, "policy", "local", "--json", *target(user_kubeconfig, "--allow-changes"))
    assert code == 0 and json.loads(out)["traffic_policy"] == "Local", err
    with shop.http() as client:
        assert client.get("/api/v1/namespaces/shop/services/web").json()["spec"]["externalTrafficPolicy"] == "Local"
    code, out, err = run(capsys, "policy", "cluster", *target(user_kubeconfig, "--allow-changes"))
    assert code == 0 and "externalTrafficPolicy Local -> Cluster" in out
    code, out, err = run(capsys, "node", "list", "--json", *target(user_kubeconfig))
    assert code == 0, err
    assert sorted(n["name"] for n in json.loads(out)["nodes"])[0].startswith(f"k3d-{shop.name}-")


@pytest.mark.parametrize("namespace", ["kube-system", "metallb-system"])
def test_system_namespaces_are_refused_even_with_allow_changes(namespace: str, user_kubeconfig: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["status"], ["kill", "--random", "--allow-changes"]):
        code, out, err = run(capsys, *argv, "--kubeconfig", str(user_kubeconfig), "--namespace", namespace,
                             "--deployment", "coredns")
        assert code == 2 and out == ""
        first = err.splitlines()[0]
        assert first == (f"k3dtui: error: refused: namespace {namespace!r} holds the cluster's own components "
                         "(names ending in -system are never touched by k3dtui, even with --allow-changes)")


def test_missing_objects_and_mixed_options_are_one_line(shop: SimHandle, user_kubeconfig: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--kubeconfig", str(user_kubeconfig), "--namespace", "nope", "--deployment", "web"], 1,
         "namespace 'nope' not found"),
        ([*target(user_kubeconfig)[:4], "--deployment", "nope"], 1, "deployment 'nope' not found in namespace shop"),
        (target(user_kubeconfig, "--service", "nope"), 1, "service 'nope' not found in namespace shop"),
        (["--kubeconfig", str(user_kubeconfig), "--namespace", "shop"], 2, "name the app to attach to"),
        (["--kubeconfig", str(user_kubeconfig), "--namespace", "shop", "--selector", "app in (web,worker)"], 2,
         "2 deployments in namespace shop have pods matching app in (web,worker): web, worker"),
        (["--kubeconfig", str(user_kubeconfig), "--context", "other", "--deployment", "web"], 1,
         "has no context 'other'"),
        (["--sim", *target(user_kubeconfig)], 2, "--sim picks k3dtui's own simulated cluster"),
    ]
    for options, exit_code, says in cases:
        code, _out, err = run(capsys, "status", *options)
        assert code == exit_code, (options, err)
        assert says in err.splitlines()[0], (options, err)
        assert "Traceback" not in err and len(err.splitlines()) <= 2


# -- credentials: exec plugins, expired tokens, RBAC -------------------------------------------------


def _with_user(src: Path, dest: Path, user: dict[str, Any]) -> Path:
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    data["users"][0]["user"] = user
    dest.write_text(yaml.safe_dump(data), encoding="utf-8")
    return dest


def test_an_exec_credential_plugin_is_honoured(shop: SimHandle, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _server, token = shop.server_and_token()
    plugin = tmp_path / "get-token.py"
    plugin.write_text(textwrap.dedent(f"""\
        import json, sys
        open({str(tmp_path / 'ran')!r}, "w").write("yes")
        json.dump({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                   "status": {{"token": {token!r}}}}}, sys.stdout)
        """), encoding="utf-8")
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                          "args": [str(plugin)], "interactiveMode": "Never"}}
    kubeconfig = _with_user(shop.kubeconfig, tmp_path / "exec.yaml", exec_user)
    code, out, err = run(capsys, "status", "--json", *target(kubeconfig))
    assert code == 0, err
    assert json.loads(out)["deployment"]["name"] == "web" and (tmp_path / "ran").read_text() == "yes"

    plugin.write_text("import sys\nprint('token expired: run the login', file=sys.stderr)\nsys.exit(1)\n",
                      encoding="utf-8")
    code, out, err = run(capsys, "status", "--json", *target(kubeconfig))
    lines = err.splitlines()
    assert code == 1 and out == "" and len(lines) == 2
    assert lines[0].startswith("k3dtui: error: the kubeconfig's credential plugin failed (exec:")
    assert "aws eks update-kubeconfig" in lines[1] and "kubelogin" in lines[1]


def test_an_expired_credential_is_one_line_with_the_fix(shop: SimHandle, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = _with_user(shop.kubeconfig, tmp_path / "expired.yaml", {"token": "expired-token"})
    for argv in (["status", "--json"], ["kill", "--random", "--allow-changes"]):
        code, out, err = run(capsys, *argv, *target(kubeconfig))
        lines = err.splitlines()
        assert code == 1 and out == "", err
        assert "the API server refused the kubeconfig's credentials (401 Unauthorized): expired or invalid" in lines[0]
        assert lines[1].startswith("k3dtui: the credentials expired or are invalid: log in again, e.g. `aws eks")


def test_a_viewer_gets_kube_apiservers_403_naming_verb_and_resource(shop: SimHandle, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    viewer = limited_kubeconfig(shop.kubeconfig, tmp_path / "viewer.yaml", "viewer")
    victim = ready_pods(shop, "app=web")[0]
    # the simulated API answers as kube-apiserver does
    server, _token = shop.server_and_token()
    token = (shop.kubeconfig.parent / "viewer-token").read_text().strip()
    with httpx.Client(base_url=server, verify=ssl.create_default_context(cafile=str(shop.kubeconfig.parent / "ca.crt")),
                      headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/namespaces/shop/pods").status_code == 200
        res = client.delete(f"/api/v1/namespaces/shop/pods/{victim}")
        assert res.status_code == 403
        assert res.json() == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'pods "{victim}" is forbidden: User "k3dtui:viewer" cannot delete resource "pods" '
                       'in API group "" in the namespace "shop"',
            "reason": "Forbidden", "details": {"name": victim, "kind": "pods"}, "code": 403,
        }
        res = client.get("/api/v1/namespaces/shop/secrets")
        assert res.status_code == 403 and res.json()["message"] == (
            'secrets is forbidden: User "k3dtui:viewer" cannot list resource "secrets" in API group "" '
            'in the namespace "shop"')
    # kubectl auth can-i tells the truth about it
    for verb, resource, says in (("delete", "pods", "no"), ("list", "pods", "yes"), ("get", "secrets", "no"),
                                 ("patch", "deployments/scale", "no"), ("watch", "nodes", "yes")):
        done = subprocess.run(["/usr/bin/kubectl", "--kubeconfig", str(viewer), "auth", "can-i", verb, resource,
                               "-n", "shop"], capture_output=True, text=True, timeout=30, check=False)
        assert done.stdout.strip() == says, (verb, resource, done.stdout, done.stderr)
    # k3dtui: reading works, a change names what was refused, nothing is deleted
    code, out, err = run(capsys, "status", "--json", *target(viewer))
    assert code == 0 and json.loads(out)["deployment"]["ready"] == 2, err
    code, out, err = run(capsys, "kill", victim, *target(viewer, "--allow-changes"))
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith(
        f'k3dtui: could not kill pod {victim}: the cluster refused: cannot delete pods in namespace "shop" '
        f'(RBAC: pods "{victim}" is forbidden: User "k3dtui:viewer" cannot delete resource "pods" in API group "" '
        'in the namespace "shop") (ask the cluster\'s admin')
    assert victim in ready_pods(shop, "app=web")
    code, out, err = run(capsys, "scale", "+1", *target(viewer, "--allow-changes"))
    assert code == 1 and 'cannot patch deployments.apps/scale in namespace "shop"' in err
    assert replicas(shop) == 2


def test_without_node_permission_status_and_watch_group_pods_by_node(shop: SimHandle, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    nodeless = limited_kubeconfig(shop.kubeconfig, tmp_path / "no-nodes.yaml", "no-nodes")
    expected: dict[str, list[str]] = {}
    for p in pods(shop, "app=web"):
        if not p["metadata"].get("deletionTimestamp"):
            expected.setdefault(p["spec"]["nodeName"], []).append(p["metadata"]["name"])
    code, out, err = run(capsys, "status", "--json", *target(nodeless))
    assert code == 0, err
    data = json.loads(out)
    assert data["nodes_from_pods"] is True
    assert {n["name"]: sorted(p["name"] for p in n["pods"]) for n in data["nodes"]} == \
        {k: sorted(v) for k, v in expected.items()}
    code, out, err = run(capsys, "watch", "--json", "--duration", "1.5", *target(nodeless))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"] == "connected"
    assert not [e for e in lines if e.get("event") == "disconnected"]
    added = {e["pod"]: e["node"] for e in lines if e.get("change") == "added"}
    assert added == {pod: node for node, names in expected.items() for pod in names}


def test_the_live_cluster_of_a_nodeless_user_takes_its_nodes_from_the_pods(shop: SimHandle, tmp_path: Path) -> None:
    from k3dtui.core.live import LiveCluster
    from k3dtui.core.target import Target, resolve_target

    nodeless = limited_kubeconfig(shop.kubeconfig, tmp_path / "no-nodes.yaml", "no-nodes")
    attached = resolve_target(Target(kubeconfig=nodeless, namespace="shop", deployment="web"))
    live = LiveCluster(attached.kubeconfig, context=attached.context, identity=attached.identity)
    live.start(lambda snap: None)
    try:
        snap = wait_for(lambda: (s := live.snapshot()).connected and len(s.pods) == 2 and s, 15.0, "a picture")
        assert live.state.nodes_forbidden
        assert sorted(n.name for n in snap.nodes) == sorted({p.node for p in snap.pods})
        time.sleep(0.3)
        assert live.snapshot().connected
    finally:
        live.stop()


def test_status_text_says_where_it_is_attached(shop: SimHandle, user_kubeconfig: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", *target(user_kubeconfig))
    assert code == 0, err
    assert out.splitlines()[0] == f"attached · {shop.context} · ns shop · deployment/web (app=web) svc/web (read-only)"
    assert "deployment web: 2/2 ready" in out


def test_attach_and_load_check_their_options_before_anything(user_kubeconfig: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "attach", "--kubeconfig", str(user_kubeconfig), "--namespace", "shop")
    assert code == 2 and "name the app to attach to: --deployment NAME or --selector LABELS" in err
    code, _out, err = run(capsys, "attach", "--namespace", "kube-system", "--deployment", "coredns")
    assert code == 2 and "refused: namespace 'kube-system'" in err
    code, _out, err = run(capsys, "attach", "--kubeconfig", str(user_kubeconfig), "--selector", "app in (", )
    assert code == 2 and "--selector 'app in ('" in err
    code, _out, err = run(capsys, "load", "--duration", "1", *target(user_kubeconfig))
    assert code == 2 and "service web (LoadBalancer) has no external address this machine can dial" in err


def test_load_to_an_address_this_machine_cannot_reach_suggests_the_in_cluster_load(
        shop: SimHandle, user_kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    code, _out, err = run(capsys, "load", "--url", f"http://127.0.0.1:{closed}/", "--duration", "1",
                          *target(user_kubeconfig))
    assert code == 1 and f"cannot connect to http://127.0.0.1:{closed}/" in err
    assert "run the load inside the cluster (--in-cluster --allow-changes)" in err and "Traceback" not in err
