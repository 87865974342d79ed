"""Bad input gets the Status error a real API server gives, and the server keeps serving."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from k3dtui.core.kube import make_api_client
from k3dtui.sim.store import ApiError
from k3dtui.sim.testing import ApiThread, run_api_in_thread
from tests.sim.test_api_client import DEPLOY, raw


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    with run_api_in_thread(tmp_path) as a:
        yield a


@pytest.fixture
def kc(api: ApiThread) -> Iterator[client.ApiClient]:
    c = make_api_client(api.kubeconfig)
    yield c
    c.close()


def still_serving(api: ApiThread) -> None:
    assert raw(api, "GET", "/version").json()["gitVersion"] == "v1.31.5+k3s1"
    assert raw(api, "GET", "/api/v1/namespaces/default/pods").json()["kind"] == "PodList"


def status_of(resp: Any) -> dict[str, Any]:
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == resp.status_code
    return body


def test_malformed_body_is_400(api: ApiThread) -> None:
    resp = raw(api, "POST", "/apis/apps/v1/namespaces/default/deployments", b'{"apiVersion": "apps/v1", "kind": ')
    body = status_of(resp)
    assert resp.status_code == 400 and body["reason"] == "BadRequest"
    assert "malformed" in body["message"]
    still_serving(api)
    # a body of the wrong kind for the path
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    resp = raw(api, "POST", "/apis/apps/v1/namespaces/default/deployments", pod)
    assert resp.status_code == 400 and "does not match the expected kind" in status_of(resp)["message"]
    # no kind at all
    resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}})
    assert resp.status_code == 400 and "Kind" in status_of(resp)["message"]
    # a list where an object belongs
    resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps", [1, 2])
    assert resp.status_code == 400
    # a malformed JSON patch
    raw(api, "POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    resp = raw(api, "PATCH", "/api/v1/namespaces/default/configmaps/cm", [{"op": "frobnicate", "path": "/x"}],
               content_type="application/json-patch+json")
    assert resp.status_code == 422 and "frobnicate" in status_of(resp)["message"]
    still_serving(api)


def test_unknown_kind_is_404(api: ApiThread, kc: client.ApiClient) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    resp = raw(api, "POST", "/apis/example.com/v1/namespaces/default/widgets", widget)
    body = status_of(resp)
    assert resp.status_code == 404 and body["reason"] == "NotFound"
    assert body["message"] == "the server could not find the requested resource"
    resp = raw(api, "GET", "/api/v1/namespaces/default/widgets")
    assert resp.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        DynamicClient(kc).resources.get(api_version="example.com/v1", kind="Widget")
    # a namespace that does not exist
    resp = raw(api, "POST", "/api/v1/namespaces/nowhere/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    assert resp.status_code == 404 and status_of(resp)["message"] == 'namespaces "nowhere" not found'
    still_serving(api)


def test_negative_replicas_and_missing_fields_are_422(api: ApiThread, kc: client.ApiClient) -> None:
    apps = client.AppsV1Api(kc)
    bad = copy.deepcopy(DEPLOY)
    bad["spec"]["replicas"] = -1
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", bad)
    assert exc.value.status == 422
    body = json.loads(exc.value.body)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0')
    assert body["details"]["causes"][0]["field"] == "spec.replicas"
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"
    for field in ("selector", "template"):
        broken = copy.deepcopy(DEPLOY)
        del broken["spec"][field]
        resp = raw(api, "POST", "/apis/apps/v1/namespaces/default/deployments", broken)  # the client checks too
        assert resp.status_code == 422 and f"spec.{field}: Required value" in status_of(resp)["message"]
    # the scale subresource refuses negative counts too
    apps.create_namespaced_deployment("default", DEPLOY)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -3}})
    assert exc.value.status == 422
    assert json.loads(exc.value.body)["message"].startswith('Scale.autoscaling "web" is invalid: spec.replicas')
    # a patch that would make the object invalid is refused and changes nothing
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": -2}})
    assert exc.value.status == 422
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 2
    # a pod without containers, a bad name
    core = client.CoreV1Api(kc)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}})
    assert exc.value.status == 422
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})
    assert exc.value.status == 422 and "metadata.name" in json.loads(exc.value.body)["message"]
    still_serving(api)


def test_wrong_or_missing_token_is_401(api: ApiThread) -> None:
    for token in ("wrong", ""):
        resp = raw(api, "GET", "/api/v1/namespaces/default/pods", token=token)
        body = status_of(resp)
        assert resp.status_code == 401 and body["reason"] == "Unauthorized"
    resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps",
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, token="wrong")
    assert resp.status_code == 401
    assert raw(api, "GET", "/api/v1/namespaces/default/configmaps").json()["items"] == []
    # what a real cluster shows anyone: /version and health, without credentials (a wrong token still fails)
    assert raw(api, "GET", "/version", token="").status_code == 200
    assert raw(api, "GET", "/healthz", token="").text == "ok"
    assert raw(api, "GET", "/version", token="wrong").status_code == 401
    assert raw(api, "GET", "/apis", token="").status_code == 401
    # the Python client with a wrong token
    cfg = client.Configuration()
    cfg.host = api.url
    cfg.api_key = {"authorization": "Bearer nope"}
    ca = Path(api.kubeconfig).parent / "bad-ca.pem"
    ca.write_text(api.server.ca_pem or "")
    cfg.ssl_ca_cert = str(ca)
    with client.ApiClient(cfg) as bad, pytest.raises(ApiException) as exc:
        client.CoreV1Api(bad).list_namespaced_pod("default")
    assert exc.value.status == 401
    still_serving(api)


def test_conflicts_are_409(api: ApiThread, kc: client.ApiClient) -> None:
    apps = client.AppsV1Api(kc)
    apps.create_namespaced_deployment("default", DEPLOY)
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", DEPLOY)
    assert exc.value.status == 409
    body = json.loads(exc.value.body)
    assert body["reason"] == "AlreadyExists" and body["message"] == 'deployments.apps "web" already exists'
    stale = apps.read_namespaced_deployment("web", "default")
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    stale.spec.replicas = 7
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "default", stale)
    assert exc.value.status == 409
    body = json.loads(exc.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"].startswith('Operation cannot be fulfilled on deployments.apps "web": the object has been modified')
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 3
    still_serving(api)


def test_protected_namespace_is_403(api: ApiThread) -> None:
    resp = raw(api, "DELETE", "/api/v1/namespaces/default")
    assert resp.status_code == 403
    assert status_of(resp)["message"] == 'namespaces "default" is forbidden: this namespace may not be deleted'
    still_serving(api)


def test_unsupported_media_types_are_415(api: ApiThread) -> None:
    resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps", b"\xa1", content_type="application/cbor")
    assert resp.status_code == 415 and status_of(resp)["reason"] == "UnsupportedMediaType"
    # protobuf is understood; an envelope that names no kind is malformed
    resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps", b"\x6b\x38\x73\x00", content_type="application/vnd.kubernetes.protobuf")
    assert resp.status_code == 400 and status_of(resp)["reason"] == "BadRequest"
    raw(api, "POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    resp = raw(api, "PATCH", "/api/v1/namespaces/default/configmaps/cm", {"data": {}}, content_type="text/plain")
    assert resp.status_code == 415
    still_serving(api)


def test_admission_refusal(tmp_path: Path) -> None:
    def refuse(op: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        if (new.get("data") or {}).get("bad"):
            raise ApiError(403, "Forbidden", f'admission webhook "check" denied the request: {op} refused')

    from k3dtui.sim import gvrs

    with run_api_in_thread(tmp_path, setup=lambda s: s.add_admission(gvrs.CONFIGMAPS, refuse)) as api:
        ok = raw(api, "POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
        assert ok.status_code == 201
        resp = raw(api, "POST", "/api/v1/namespaces/default/configmaps",
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"bad": "1"}})
        assert resp.status_code == 403 and "CREATE refused" in status_of(resp)["message"]
        resp = raw(api, "PATCH", "/api/v1/namespaces/default/configmaps/a", {"data": {"bad": "1"}},
                   content_type="application/merge-patch+json")
        assert resp.status_code == 403 and "UPDATE refused" in status_of(resp)["message"]
        still_serving(api)
