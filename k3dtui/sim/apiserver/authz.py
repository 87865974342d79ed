"""Authentication and authorization reviews: ``kubectl auth whoami`` and ``kubectl auth can-i``.

The simulated cluster has one credential, the kubeconfig's admin token. On k3s that admin
is the client certificate ``CN=system:admin, O=system:masters``; kube-apiserver's
privileged-group authorizer lets ``system:masters`` do everything before RBAC is asked
(k8s.io/apiserver ``pkg/authorization/authorizerfactory`` ``NewPrivilegedGroups``), so
every review of the admin is allowed. The review kinds are create-only and never stored:
the answer is the request with its ``status`` filled in (k8s.io/kubernetes
``pkg/registry/authorization/selfsubjectaccessreview/rest.go``).
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from k3dtui.sim.apiserver.errors import NOT_FOUND_MSG, bad_request, json_response
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.apiserver.http import read_body
from k3dtui.sim.store import ApiError, Obj

ADMIN_USER: Obj = {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
REVIEW_GROUPS = ("authentication.k8s.io", "authorization.k8s.io")

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
        review["status"] = self._review_status(kind, spec, ns, _requester(request))
        if kind == "SelfSubjectReview":
            review.pop("spec", None)
        return json_response(review, status=201)

    def _review_status(self, kind: str, spec: dict[str, Any], ns: str, user: Obj) -> Obj:
        if kind == "SelfSubjectReview":
            return {"userInfo": user}
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


def _requester(request: web.Request) -> Obj:
    """Who asks: the admin, or whom the admin impersonates (``kubectl --as``/``--as-group``:
    the ``Impersonate-User``/``Impersonate-Group`` headers, k8s.io/apiserver
    ``pkg/endpoints/filters/impersonation.go``, which adds ``system:authenticated``)."""
    name = request.headers.get("Impersonate-User")
    if not name:
        return copy.deepcopy(ADMIN_USER)
    groups = [g for g in request.headers.getall("Impersonate-Group", []) if g]
    if "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return {"username": name, "groups": groups}
