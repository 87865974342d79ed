"""The one mapping from what the kubernetes client raises to k3dtui's errors."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError

from k3dtui.core import kubeerrors as ke
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.kube import make_api_client


def _api_exc(status: int, reason: str, message: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = f'{{"kind":"Status","message":"{message}","code":{status}}}'
    return exc


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, ke.NotFound), (409, ke.Conflict), (403, ke.Forbidden),
     (422, ke.Invalid), (410, ke.Expired), (500, ke.ApiRefused)],
)
def test_an_error_status_becomes_its_class_with_the_servers_message(status: int, cls: type) -> None:
    err = ke.translate(_api_exc(status, "Why", "the server says so"), "reading Pod default/x")
    assert type(err) is cls
    assert isinstance(err, ke.ApiRefused) and err.status == status
    assert err.message == f"reading Pod default/x: the API server refused ({status} Why): the server says so"
    assert "\n" not in str(err)


def test_the_dynamic_clients_errors_map_the_same_way() -> None:
    exc = DynamicApiError(_api_exc(409, "Conflict", "already exists"))
    err = ke.translate(exc)
    assert isinstance(err, ke.Conflict) and err.message == "the API server refused (409 Conflict): already exists"
    assert ke.is_status(exc, 409) and not ke.is_status(exc, 404)


def test_connection_refused_names_the_host_and_says_what_to_do() -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        "/api",
        urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused"),  # type: ignore[arg-type]
    )
    err = ke.translate(refused, "listing Pod", host="https://127.0.0.1:6443")
    assert type(err) is ke.ApiUnreachable
    assert err.message == "listing Pod: cannot reach the Kubernetes API server at https://127.0.0.1:6443 (connection refused)"
    assert err.hint == ke.UNREACHABLE_HINT


def test_timeouts_and_broken_connections_are_unreachable() -> None:
    read = urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out")  # type: ignore[arg-type]
    assert ke.describe(read) == "cannot reach the Kubernetes API server (read timed out: it stopped answering)"
    broken = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    assert isinstance(ke.translate(broken), ke.ApiUnreachable)


def test_tls_failures_are_their_own_error_with_a_fix() -> None:
    tls = urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.SSLError(ssl.SSLError(1, "CERTIFICATE_VERIFY_FAILED"))  # type: ignore[arg-type]
    )
    err = ke.translate(tls, host="https://127.0.0.1:6443")
    assert type(err) is ke.ApiTlsError
    assert "TLS failed" in err.message and "k3dtui up" in err.hint


def test_k3dtui_errors_pass_through_and_unknown_ones_are_named() -> None:
    mine = K3dtuiError("already said")
    assert ke.translate(mine) is mine
    assert ke.translate_known(ValueError("odd")) is None
    assert ke.translate(ValueError("odd"), "doing x").message == "doing x: ValueError: odd"


def test_make_api_client_refuses_an_unusable_kubeconfig_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ke.KubeconfigError) as info:
        make_api_client(tmp_path / "missing.yaml")
    assert str(tmp_path / "missing.yaml") in info.value.message and "k3dtui up" in info.value.hint


def test_a_real_refused_connection_through_the_client_stack(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n",
        encoding="utf-8",
    )
    api = make_api_client(kubeconfig)
    try:
        with pytest.raises(Exception) as info:
            client.CoreV1Api(api).list_node(_request_timeout=2)
    finally:
        api.close()
    err = ke.translate(info.value, host=f"http://127.0.0.1:{port}")
    assert type(err) is ke.ApiUnreachable and "connection refused" in err.message


def test_a_401_says_the_credentials_expired_and_how_to_log_in_again() -> None:
    err = ke.translate(_api_exc(401, "Unauthorized", "Unauthorized"), "list pods")
    assert type(err) is ke.Forbidden and err.status == 401
    assert err.message == ("list pods: the API server refused the kubeconfig's credentials (401 Unauthorized): "
                           "expired or invalid")
    assert "aws eks update-kubeconfig" in err.hint and "kubelogin" in err.hint
    assert "\n" not in err.message


def test_a_403_of_rbac_names_the_verb_and_the_resource() -> None:
    msg = ('pods \\"web-1\\" is forbidden: User \\"k3dtui:viewer\\" cannot delete resource \\"pods\\" '
           'in API group \\"\\" in the namespace \\"shop\\"')
    err = ke.translate(_api_exc(403, "Forbidden", msg))
    assert type(err) is ke.Forbidden
    assert err.message.startswith('the cluster refused: cannot delete pods in namespace "shop" (RBAC: pods "web-1"')
    cluster = ke.forbidden_text('nodes is forbidden: User "v" cannot list resource "nodes" in API group "" at the cluster scope')
    assert cluster.startswith("the cluster refused: cannot list nodes at the cluster scope (RBAC: ")
    scale = ke.forbidden_text('User "v" cannot patch resource "deployments/scale" in API group "apps" in the namespace "shop"')
    assert scale.startswith('the cluster refused: cannot patch deployments.apps/scale in namespace "shop"')
    assert "role" in err.hint.lower()
