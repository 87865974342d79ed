"""What a person can do to the running app: kill a pod, kill a random one, scale.

Every action is confined to the app: its namespace, pods carrying its ``app`` label and
owned by a ReplicaSet that its one Deployment owns (a pod that merely carries the label is
refused), and that Deployment (scaled through the ``scale`` subresource). Anything else is refused before a
request that changes something is made. Every action returns an ``ActionResult`` (ok and a
one-line message saying what happened or why not); none raises for a cluster-side problem.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client

from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeerrors import is_status, translate

Obj = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SCALE_TEXT = re.compile(r"^([+-]?)(\d{1,6})$")

REQUEST_TIMEOUT = (3.0, 10.0)  # connect, read


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str


def valid_pod_name(name: str) -> bool:
    """A Kubernetes object name (DNS-1123 subdomain, at most 253 characters)."""
    return 0 < len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def parse_scale(text: str) -> tuple[Literal["to", "by"], int]:
    """``"5"`` → ("to", 5); ``"+1"`` → ("by", 1); ``"-2"`` → ("by", -2). ValueError otherwise."""
    match = _SCALE_TEXT.match(text.strip())
    if not match:
        raise ValueError(
            f"{text!r} is not a replica count: use N (e.g. 5) to scale to N, or +N/-N to scale by N"
        )
    sign, digits = match.groups()
    value = int(digits)
    if sign == "":
        return "to", value
    return "by", -value if sign == "-" else value


def _body(resp: Any) -> Obj:
    data = json.loads(resp.data)
    return data if isinstance(data, dict) else {}


def _controller_ref(meta: Obj) -> Obj | None:
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def failure(api: Callable[[], client.ApiClient], exc: BaseException, what: str) -> ActionResult:
    """One line: what could not be done and why (``core.kubeerrors`` says why, naming the API
    server of ``api()`` when one can be made)."""
    try:
        host = str(api().configuration.host)
    except Exception:
        host = ""
    return ActionResult(False, f"could not {what}: {translate(exc, host=host)}")


class Actions:
    """The app's actions against the API server (one ``ApiClient`` from ``api``), confined to
    the app named by ``identity`` (its namespace, ``app`` label, Deployment, replica bounds)."""

    def __init__(
        self,
        api: Callable[[], client.ApiClient],
        identity: AppIdentity = APP,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self.identity = identity
        self.namespace = identity.namespace
        self.app_label = identity.app
        self.deployment = identity.deployment
        self.min_replicas = identity.min_replicas
        self.max_replicas = identity.max_replicas
        self._rng = rng or random.Random()

    # -- kill ------------------------------------------------------------------------------
    def kill(self, pod: str, *, force: bool = False) -> ActionResult:
        if not valid_pod_name(pod):
            return ActionResult(False, f"refused: {pod!r} is not a valid pod name")
        try:
            core = client.CoreV1Api(self._api())
            try:
                current = _body(
                    core.read_namespaced_pod(
                        pod, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                    )
                )
            except Exception as exc:
                if is_status(exc, 404):
                    return self._gone(pod)
                raise
            refusal = self._refuse_pod(current)
            if refusal:
                return ActionResult(False, refusal)
            owners = self._app_replicasets()
            refusal, owner = self._refuse_owner(current, owners)
            if refusal:
                return ActionResult(False, refusal)
            meta = current.get("metadata") or {}
            node = (current.get("spec") or {}).get("nodeName") or ""
            if meta.get("deletionTimestamp") and not force:
                return ActionResult(
                    False,
                    f"pod {pod} is already terminating; nothing changed (force-kill removes it now)",
                )
            try:
                deleted = _body(
                    core.delete_namespaced_pod(
                        pod,
                        self.namespace,
                        grace_period_seconds=0 if force else None,
                        propagation_policy="Background",
                        _preload_content=False,
                        _request_timeout=REQUEST_TIMEOUT,
                    )
                )
            except Exception as exc:
                if is_status(exc, 404):
                    return self._gone(pod)
                raise
        except Exception as exc:
            return self._failure(exc, f"kill pod {pod}")
        where = f" on {node}" if node else ""
        if force:
            return ActionResult(True, f"pod {pod}{where} deleted now (grace period 0)")
        grace = (deleted.get("metadata") or {}).get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (current.get("spec") or {}).get("terminationGracePeriodSeconds")
        grace_text = f" (grace period {grace}s)" if grace is not None else ""
        if not (deleted.get("metadata") or {}).get("deletionTimestamp"):
            # Unscheduled or finished pods are removed at once.
            return ActionResult(True, f"pod {pod}{where} deleted")
        wanted = ((owner or {}).get("spec") or {}).get("replicas")
        if isinstance(wanted, int) and wanted > 0:
            after = f"the Deployment starts a replacement (its ReplicaSet wants {wanted})"
        else:
            after = "no replacement comes (its ReplicaSet wants 0 pods)"
        return ActionResult(True, f"pod {pod}{where} is terminating{grace_text}; {after}")

    def kill_random(self, *, force: bool = False) -> ActionResult:
        try:
            core = client.CoreV1Api(self._api())
            listing = _body(
                core.list_namespaced_pod(
                    self.namespace,
                    label_selector=self.identity.label_selector,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            )
            owners = self._app_replicasets()
        except Exception as exc:
            return self._failure(exc, "list the app's pods")
        candidates = sorted(
            str(p["metadata"]["name"])
            for p in listing.get("items") or []
            if isinstance(p, dict)
            and (p.get("status") or {}).get("phase") == "Running"
            and not (p.get("metadata") or {}).get("deletionTimestamp")
            and self._refuse_pod(p) == ""
            and self._refuse_owner(p, owners)[0] == ""
        )
        if not candidates:
            return ActionResult(
                False, f"no Running pod of the app ({self.identity.label_selector}) to kill; nothing changed"
            )
        return self.kill(self._rng.choice(candidates), force=force)

    # -- scale -----------------------------------------------------------------------------
    def scale_to(self, replicas: int) -> ActionResult:
        if not self.min_replicas <= replicas <= self.max_replicas:
            return ActionResult(
                False,
                f"refused: {replicas} replicas is outside {self._bounds}; nothing changed",
            )
        return self._scale(lambda current: replicas)

    def scale_by(self, delta: int) -> ActionResult:
        return self._scale(lambda current: current + delta, delta=delta)

    def _scale(self, target: Callable[[int], int], delta: int | None = None) -> ActionResult:
        name = self.deployment
        try:
            apps = client.AppsV1Api(self._api())
            try:
                scale = _body(
                    apps.read_namespaced_deployment_scale(
                        name, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                    )
                )
            except Exception as exc:
                if is_status(exc, 404):
                    fix = (f"see `kubectl get deployments -n {self.namespace}`" if self.identity.attached
                           else "deploy the app first (k3dtui up)")
                    return ActionResult(False, f"deployment {name} not found in namespace {self.namespace}; {fix}")
                raise
            spec_replicas = (scale.get("spec") or {}).get("replicas")
            current = int(spec_replicas) if isinstance(spec_replicas, int) else 0
            wanted = target(current)
            if not self.min_replicas <= wanted <= self.max_replicas:
                how = f"{current}{delta:+d} = {wanted}" if delta is not None else str(wanted)
                return ActionResult(
                    False,
                    f"refused: {how} replicas is outside {self._bounds}; nothing changed",
                )
            if wanted == current:
                return ActionResult(True, f"deployment {name} already has {current} replicas; nothing to do")
            apps.patch_namespaced_deployment_scale(
                name,
                self.namespace,
                {"spec": {"replicas": wanted}},
                _content_type="application/merge-patch+json",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            return self._failure(exc, f"scale deployment {name}")
        return ActionResult(True, f"scaled deployment {name} from {current} to {wanted} replicas")

    # -- helpers ---------------------------------------------------------------------------
    def _refuse_pod(self, pod: Obj) -> str:
        """Why this pod is not the app's to touch ("" when it is)."""
        meta = pod.get("metadata") or {}
        name = meta.get("name", "?")
        namespace = meta.get("namespace") or self.namespace
        if namespace != self.namespace:
            return f"refused: pod {name} is in namespace {namespace}, not the app's ({self.namespace})"
        labels = meta.get("labels") or {}
        if not self.identity.matches(labels):
            if self.identity.selector:
                return (f"refused: pod {name} is not part of the app (its labels do not match "
                        f"{self.identity.label_selector})")
            app = labels.get("app")
            owner = f"app={app}" if app else "no app label"
            return f"refused: pod {name} is not part of the app (it has {owner}, the app's pods have app={self.app_label})"
        return ""

    def _app_replicasets(self) -> dict[str, Obj]:
        """The ReplicaSets the app's Deployment controls, by uid (one list request)."""
        listing = _body(
            client.AppsV1Api(self._api()).list_namespaced_replica_set(
                self.namespace,
                label_selector=self.identity.label_selector,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )
        owned: dict[str, Obj] = {}
        for rs in listing.get("items") or []:
            meta = (rs.get("metadata") or {}) if isinstance(rs, dict) else {}
            ref = _controller_ref(meta)
            if ref and ref.get("kind") == "Deployment" and ref.get("name") == self.deployment and meta.get("uid"):
                owned[str(meta["uid"])] = rs
        return owned

    def _refuse_owner(self, pod: Obj, owners: dict[str, Obj]) -> tuple[str, Obj | None]:
        """(why this pod is not the Deployment's to replace, "" when it is; its ReplicaSet)."""
        meta = pod.get("metadata") or {}
        name = meta.get("name", "?")
        ref = _controller_ref(meta)
        if ref is None:
            return (f"refused: pod {name} has {self.identity.label_selector} but no controller owns it, so it is not "
                    f"the app's (deployment {self.deployment}'s pods belong to its ReplicaSets); "
                    "nothing changed"), None
        rs = owners.get(str(ref.get("uid", "")))
        if ref.get("kind") != "ReplicaSet" or rs is None:
            return (f"refused: pod {name} is owned by {ref.get('kind', '?')} {ref.get('name', '?')}, not by a "
                    f"ReplicaSet of deployment {self.deployment}; nothing changed"), None
        return "", rs

    def _gone(self, pod: str) -> ActionResult:
        return ActionResult(False, f"pod {pod} not found in namespace {self.namespace} (already gone?)")

    @property
    def _bounds(self) -> str:
        return f"{self.min_replicas}..{self.max_replicas}"

    def _failure(self, exc: BaseException, what: str) -> ActionResult:
        return failure(self._api, exc, what)
