"""The one place that turns a failure talking to Kubernetes into a k3dtui error.

Every caller of the API (the setup's ``Kube``, the watchers, the actions, the load command's
Service lookup) hands what the client raised to ``translate``; it returns a ``K3dtuiError``
subclass with one line saying what went wrong and, where there is one, what to do:

- an answer with an error status → ``ApiRefused`` (``NotFound`` 404, ``Conflict`` 409,
  ``Forbidden`` 401/403, ``Invalid`` 422, ``Expired`` 410), keeping the server's message;
- no answer at all (refused, reset, timed out, DNS) → ``ApiUnreachable``;
- TLS failures → ``ApiTlsError``; a kubeconfig that cannot be used → ``KubeconfigError``.

The kubernetes client and urllib3 are imported only when an error is translated, so this
module costs nothing to import.
"""

from __future__ import annotations

import json
import re
import ssl

from k3dtui.core.errors import K3dtuiError

UNREACHABLE_HINT = "check the cluster is running (`k3dtui status`), then try again"
KUBECONFIG_HINT = "create or start the cluster first (`k3dtui up`, or `k3dtui sim start`)"
RELOGIN_HINT = ("the credentials expired or are invalid: log in again, e.g. `aws eks update-kubeconfig`, "
                "`gcloud container clusters get-credentials`, `kubelogin` or `az aks get-credentials`, then retry")
RBAC_HINT = "ask the cluster's admin for that permission (a Role/RoleBinding), or use a kubeconfig whose user has it"

# kube-apiserver's Forbidden message (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/
# errors.go, forbiddenMessage): User "u" cannot VERB resource "RES[/SUB]" in API group "G"
# in the namespace "NS" | at the cluster scope
_FORBIDDEN = re.compile(
    r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)" in API group "(?P<group>[^"]*)"'
    r'(?: in the namespace "(?P<ns>[^"]*)"| at the cluster scope)?'
)


class ApiUnreachable(K3dtuiError):
    """The API server could not be reached at all (or stopped answering)."""


class ApiTlsError(ApiUnreachable):
    """The TLS handshake with the API server failed (a stale kubeconfig, usually)."""


class KubeconfigError(K3dtuiError):
    """The kubeconfig is missing, unreadable or lacks the context asked for."""


class ApiRefused(K3dtuiError):
    """The API server answered with an error status (``status``, ``reason``, ``body``)."""

    def __init__(self, message: str, *, status: int, reason: str, body: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.reason = reason
        self.body = body


class NotFound(ApiRefused):
    """404: the object (or the kind) does not exist."""


class Conflict(ApiRefused):
    """409: already exists, or a write lost a race."""


class Forbidden(ApiRefused):
    """401/403: the credentials may not do this."""


class Invalid(ApiRefused):
    """422: the object was refused by validation (or an admission webhook said so)."""


class Expired(ApiRefused):
    """410: the resourceVersion is too old (a watch must list again)."""


_BY_STATUS: dict[int, type[ApiRefused]] = {
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Expired,
    422: Invalid,
}


def server_message(body: str | bytes | None) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, else the body itself (shortened)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except ValueError:
        pass
    return " ".join(text.split())[:300]


def _api_status(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, reason, body) when ``exc`` is an answer of the API server with an error status."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError

    if isinstance(exc, ApiException | DynamicApiError):
        status = int(getattr(exc, "status", 0) or 0)
        if status:
            body = getattr(exc, "body", None)
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
            return status, str(getattr(exc, "reason", "") or "").strip(), text
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, then what it wraps (urllib3's ``reason``, ``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    out: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        out.append(cur)
        for nxt in (getattr(cur, "reason", None), cur.__cause__, cur.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return out


def _unreachable_why(exc: BaseException) -> tuple[str, bool] | None:
    """(why, is_tls) when ``exc`` means no usable answer came from the server."""
    import urllib3.exceptions as u3

    chain = _chain(exc)
    for cur in chain:
        if isinstance(cur, ssl.SSLError | u3.SSLError):
            detail = str(getattr(cur, "reason", "") or "") if isinstance(cur, ssl.SSLError) else ""
            return f"TLS failed: {detail or str(cur).split(': ')[-1] or type(cur).__name__}", True
    for cur in chain:
        if isinstance(cur, ConnectionRefusedError) or (
            isinstance(cur, u3.NewConnectionError) and "refused" in str(cur).lower()
        ):
            return "connection refused", False
    for cur in chain:
        if isinstance(cur, u3.ConnectTimeoutError):
            return "connection timed out", False
        if isinstance(cur, u3.ReadTimeoutError):
            return "read timed out: it stopped answering", False
        if isinstance(cur, u3.NewConnectionError):
            return str(cur).split(": ", 1)[-1], False
    for cur in chain:
        if isinstance(cur, u3.ProtocolError | ConnectionError):
            return "the connection broke", False
        if isinstance(cur, u3.MaxRetryError | u3.TimeoutError | TimeoutError):
            return "no answer", False
    return None


def translate(
    exc: BaseException,
    doing: str = "",
    *,
    host: str = "",
    unreachable_hint: str = UNREACHABLE_HINT,
) -> K3dtuiError:
    """The k3dtui error for ``exc`` raised while ``doing`` something against ``host``.

    A ``K3dtuiError`` is returned as it is; an exception this module does not recognise
    becomes a plain ``K3dtuiError`` naming its type.
    """
    known = translate_known(exc, doing, host=host, unreachable_hint=unreachable_hint)
    if known is not None:
        return known
    prefix = f"{doing}: " if doing else ""
    return K3dtuiError(f"{prefix}{type(exc).__name__}: {exc}".rstrip(": "))


def translate_known(
    exc: BaseException,
    doing: str = "",
    *,
    host: str = "",
    unreachable_hint: str = UNREACHABLE_HINT,
) -> K3dtuiError | None:
    """Like ``translate``, but None for an exception that is not about the API server."""
    if isinstance(exc, K3dtuiError):
        return exc
    prefix = f"{doing}: " if doing else ""
    answered = _api_status(exc)
    if answered is not None:
        status, reason, body = answered
        msg = server_message(body) or reason or str(exc)
        cls = _BY_STATUS.get(status, ApiRefused)
        hint = ""
        code = f"{status} {reason}" if reason else str(status)
        text = f"{prefix}the API server refused ({code}): {msg}"
        if status == 401:
            hint = RELOGIN_HINT
            text = f"{prefix}the API server refused the kubeconfig's credentials ({code}): expired or invalid"
        elif status == 403:
            hint = RBAC_HINT
            named = forbidden_text(msg)
            if named:
                text = f"{prefix}{named}"
        return cls(text, status=status, reason=reason, body=body, hint=hint)
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, ConfigException):
        return KubeconfigError(f"{prefix}the kubeconfig cannot be used: {exc}", KUBECONFIG_HINT)
    why = _unreachable_why(exc)
    if why is not None:
        text, tls = why
        where = f" at {host}" if host else ""
        if tls:
            return ApiTlsError(
                f"{prefix}cannot talk to the Kubernetes API server{where} ({text})",
                "the kubeconfig does not match the server: get a fresh one with `k3dtui up`",
            )
        return ApiUnreachable(f"{prefix}cannot reach the Kubernetes API server{where} ({text})", unreachable_hint)
    return None


def forbidden_text(message: str) -> str:
    """A 403's one line, naming the verb and resource refused:
    ``the cluster refused: cannot delete pods in namespace "shop" (RBAC: <the server's message>)``;
    "" when ``message`` is not kube-apiserver's authorizer message."""
    m = _FORBIDDEN.search(message)
    if m is None:
        return ""
    base, _, sub = m.group("resource").partition("/")
    resource = (f"{base}.{m.group('group')}" if m.group("group") else base) + (f"/{sub}" if sub else "")
    where = f' in namespace "{m.group("ns")}"' if m.group("ns") else " at the cluster scope"
    return f"the cluster refused: cannot {m.group('verb')} {resource}{where} (RBAC: {message})"


def describe(exc: BaseException, *, host: str = "") -> str:
    """One line saying what went wrong talking to the API server (no hint)."""
    return translate(exc, host=host).message


def is_status(exc: BaseException, *statuses: int) -> bool:
    """Whether ``exc`` is an answer of the API server with one of ``statuses``."""
    if isinstance(exc, ApiRefused):
        return exc.status in statuses
    answered = _api_status(exc)
    return answered is not None and answered[0] in statuses


__all__ = [
    "ApiRefused",
    "ApiTlsError",
    "ApiUnreachable",
    "Conflict",
    "Expired",
    "Forbidden",
    "Invalid",
    "KubeconfigError",
    "NotFound",
    "describe",
    "forbidden_text",
    "is_status",
    "server_message",
    "translate",
    "translate_known",
]
