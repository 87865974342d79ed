"""Authentication and authorization reviews: ``kubectl auth whoami`` and ``kubectl auth can-i``.

The simulated cluster's main credential is the kubeconfig's admin token. On k3s that admin
is the client certificate ``CN=system:admin, O=system:masters``; kube-apiserver's
privileged-group authorizer lets ``system:masters`` do everything before RBAC is asked
(k8s.io/apiserver ``pkg/authorization/authorizerfactory`` ``NewPrivilegedGroups``), so
every review of the admin is allowed. The review kinds are create-only and never stored:
the answer is the request with its ``status`` filled in (k8s.io/kubernetes
``pkg/registry/authorization/selfsubjectaccessreview/rest.go``).

Limited credentials (``Principal``): a ``viewer`` token may get, list and watch everything
but Secrets, as the ``view`` ClusterRole grants; a ``no-nodes`` viewer may not read Nodes
either. Anything else gets kube-apiserver's 403 (``forbidden``), and ``kubectl auth can-i``
answers for them truthfully.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from k3dtui.sim.apiserver.errors import NOT_FOUND_MSG, bad_request, json_response
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.apiserver.http import read_body
from k3dtui.sim.store import ApiError, Obj

ADMIN_USER: Obj = {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
REVIEW_GROUPS = ("authentication.k8s.io", "authorization.k8s.io")

READ_VERBS = ("get", "list", "watch")
NO_READ = {"viewer": frozenset({"secrets"}), "no-nodes": frozenset({"secrets", "nodes"})}


@dataclass(frozen=True)
class Principal:
    """Who a bearer token is, and what it may do (``role``: admin, viewer or no-nodes)."""

    username: str
    groups: tuple[str, ...]
    role: str = "admin"

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def user_info(self) -> Obj:
        return {"username": self.username, "groups": list(self.groups)}

    def allows(self, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        if self.admin:
            return True
        if verb not in READ_VERBS or resource in NO_READ.get(self.role, frozenset({"*"})):
            return False
        # the view ClusterRole reads pods/log and pods/status, never exec, attach, port-forward or proxy
        return subresource not in ("exec", "attach", "portforward", "proxy")

    def rules(self) -> Obj:
        if self.admin:
            return {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
        return {"resourceRules": [{"verbs": list(READ_VERBS), "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                                            "/version", "/healthz", "/openapi/*"]}],
                "incomplete": True}  # the resources it may not read are left out, as RBAC has no deny rules


ADMIN = Principal("system:admin", ("system:masters", "system:authenticated"))


def limited(role: str) -> Principal:
    return Principal(f"k3dtui:{role}", ("system:authenticated",), role)


def forbidden(user: Principal, verb: str, group: str, resource: str, subresource: str, namespace: str,
              name: str) -> ApiError:
    """kube-apiserver's 403 for a request the authorizer denied (k8s.io/apiserver
    ``pkg/endpoints/handlers/responsewriters/errors.go`` ``forbiddenMessage``, then
    apimachinery's ``NewForbidden``: ``<resource>[.<group>] ["name"] is forbidden: ...``)."""
    res = f"{resource}/{subresource}" if subresource else resource
    if namespace:
        why = (f'User "{user.username}" cannot {verb} resource "{res}" in API group "{group}" '
               f'in the namespace "{namespace}"')
    else:
        why = f'User "{user.username}" cannot {verb} resource "{res}" in API group "{group}" at the cluster scope'
    qualified = f"{resource}.{group}" if group else resource
    message = f'{qualified} "{name}" is forbidden: {why}' if name else f"{qualified} is forbidden: {why}"
    details: Obj = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return ApiError(403, "Forbidden", message, {k: details[k] for k in ("name", "group", "kind") if k in details})


# resource -> (kind, namespaced)
_REVIEWS: dict[tuple[str, str], tuple[str, bool]] = {
    ("authentication.k8s.io", "selfsubjectreviews"): ("SelfSubjectReview", False),
    ("authentication.k8s.io", "tokenreviews"): ("TokenReview", False),
    ("authorization.k8s.io", "selfsubjectaccessreviews"): ("SelfSubjectAccessReview", False),
    ("authorization.k8s.io", "selfsubjectrulesreviews"): ("SelfSubjectRulesReview", False),
    ("authorization.k8s.io", "subjectaccessreviews"): ("SubjectAccessReview", False),
    ("authorization.k8s.io", "localsubjectaccessreviews"): ("LocalSubjectAccessReview", True),
}


class Authz(Handlers):
    """POST of the review kinds of ``authentication.k8s.io`` and ``authorization.k8s.io``."""

    token: str

    async def _review(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.Response:
        ns = ""
        if len(rest) == 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if len(rest) != 1 or (group, rest[0]) not in _REVIEWS or version != "v1":
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        kind, namespaced = _REVIEWS[(group, rest[0])]
        if namespaced != bool(ns):
            raise ApiError(404, "NotFound", NOT_FOUND_MSG)
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        body = await read_body(request)
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized or malformed: expected a JSON object")
        if body.get("kind", kind) != kind:
            raise bad_request(f"the kind in the data ({body.get('kind')}) does not match the expected kind ({kind})")
        review: Obj = copy.deepcopy(body)
        review["apiVersion"] = f"{group}/{version}"
        review["kind"] = kind
        meta: Obj = review["metadata"] if isinstance(review.get("metadata"), dict) else {}
        review["metadata"] = {**meta, "creationTimestamp": None} if kind == "SelfSubjectReview" else meta
        spec: Obj = review["spec"] if isinstance(review.get("spec"), dict) else {}
        review["status"] = self._review_status(kind, spec, ns, _requester(request), request.get(PRINCIPAL, ADMIN))
        if kind == "SelfSubjectReview":
            review.pop("spec", None)
        return json_response(review, status=201)

    def _review_status(self, kind: str, spec: dict[str, Any], ns: str, user: Obj, who: Principal) -> Obj:
        if kind == "SelfSubjectReview":
            return {"userInfo": user}
        if not who.admin and kind.startswith("Self"):
            if kind == "SelfSubjectRulesReview":
                return who.rules()
            attrs = spec.get("resourceAttributes")
            if not isinstance(attrs, dict):
                return {"allowed": False}
            ok = who.allows(str(attrs.get("verb", "")), str(attrs.get("group", "")),
                            str(attrs.get("resource", "")), str(attrs.get("subresource", "")))
            return {"allowed": True} if ok else {"allowed": False}
        if not who.admin:
            # creating TokenReviews and SubjectAccessReviews needs more than view
            raise forbidden(who, "create", "authorization.k8s.io" if "Access" in kind else "authentication.k8s.io",
                            kind.lower() + "s", "", ns, "")
        if kind == "TokenReview":
            token = str(spec.get("token", ""))
            if token and token == self.token:
                return {"authenticated": True, "user": copy.deepcopy(ADMIN_USER), "audiences": spec.get("audiences") or []}
            return {"user": {}, "error": "invalid bearer token"}
        if "system:masters" not in user["groups"] and kind.startswith("Self"):
            # an impersonated user: the simulated cluster has no RBAC rules that grant it anything
            if kind == "SelfSubjectRulesReview":
                return {"resourceRules": [], "nonResourceRules": [], "incomplete": False}
            return {"allowed": False}
        if kind == "SelfSubjectRulesReview":
            # what the cluster-admin ClusterRole grants, as kube-apiserver reports it
            return {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        attrs = spec.get("resourceAttributes")
        if isinstance(attrs, dict) and ns and attrs.get("namespace", ns) != ns:
            raise bad_request(f"spec.resourceAttributes.namespace must match the namespace of the request ({ns})")
        if kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
            subject = str(spec.get("user", ""))
            groups = spec.get("groups") or []
            if subject != ADMIN_USER["username"] and "system:masters" not in groups:
                # the simulated cluster has no RBAC evaluation: only the admin is known
                return {"allowed": False, "reason": f"the simulated cluster knows only {ADMIN_USER['username']}"}
        return {"allowed": True}


PRINCIPAL = web.RequestKey("k3dtui_principal", Principal)  # who sent the request (set by the dispatcher)


def _requester(request: web.Request) -> Obj:
    """Who asks: the admin, or whom the admin impersonates (``kubectl --as``/``--as-group``:
    the ``Impersonate-User``/``Impersonate-Group`` headers, k8s.io/apiserver
    ``pkg/endpoints/filters/impersonation.go``, which adds ``system:authenticated``)."""
    who: Principal = request.get(PRINCIPAL, ADMIN)
    name = request.headers.get("Impersonate-User")
    if not who.admin:
        return who.user_info()
    if not name:
        return copy.deepcopy(ADMIN_USER)
    groups = [g for g in request.headers.getall("Impersonate-Group", []) if g]
    if "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return {"username": name, "groups": groups}
