"""The request flow: which node announces the app's address, its ``externalTrafficPolicy``,
and switching that policy.

- The announcing node is what MetalLB (>= 0.14) publishes in ``ServiceL2Status`` objects
  (``metallb.io/v1beta1``; ``status.node``, ``status.serviceName``,
  ``status.serviceNamespace``: metallb/metallb ``api/v1beta1/servicel2status_types.go``).
  ``AnnouncerWatch`` reads them every half second in a thread of its own and tells a
  callback (the load generator's ``set_announcer``) when the announcer changes, so each
  response is attributed to the announcer of its moment.
- ``set_traffic_policy`` patches ``spec.externalTrafficPolicy`` of the app's Service
  (``Cluster`` or ``Local``). What each means for the path (kube-proxy's rules, the
  Kubernetes docs "Using Source IP" and "Create an External Load Balancer"): under
  ``Cluster`` any ready pod serves, possibly across nodes, and the pod sees a node's
  address (masquerade); under ``Local`` only pods on the receiving node serve, the pod sees
  the client's address, and MetalLB announces only from nodes that have a ready pod.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kubernetes import client

from k3dtui.core.actions import REQUEST_TIMEOUT, ActionResult
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kubeerrors import is_status, translate
from k3dtui.core.state import announcing_node

POLICIES = ("Cluster", "Local")
L2_API = "metallb.io/v1beta1"
L2_KIND = "ServiceL2Status"


class Lister(Protocol):
    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...


def parse_policy(text: str) -> str:
    """``cluster``/``local`` (any case) → ``Cluster``/``Local``; ValueError otherwise."""
    for policy in POLICIES:
        if text.strip().lower() == policy.lower():
            return policy
    raise ValueError(f"{text!r} is not a traffic policy: use cluster or local")


def read_announcer(kube: Lister, identity: AppIdentity = APP) -> str:
    """The node announcing the app's Service now ("" when none, or MetalLB < 0.14)."""
    try:
        statuses: Sequence[dict[str, Any]] = kube.list(L2_API, L2_KIND, identity.metallb_namespace)
    except K3dtuiError:
        return ""
    return announcing_node(statuses, identity.service, identity.namespace)


class AnnouncerWatch:
    """Polls the announcing node every ``interval`` seconds; ``on_change(node)`` on each change."""

    def __init__(self, read: Callable[[], str], on_change: Callable[[str], None], interval: float = 0.5) -> None:
        self._read = read
        self._on_change = on_change
        self.interval = interval
        self.current = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> str:
        """Read once now (and report a change); the current announcer."""
        try:
            node = self._read()
        except Exception:  # a failed read keeps the last known announcer
            return self.current
        if node and node != self.current:
            self.current = node
            self._on_change(node)
        return self.current

    def start(self) -> None:
        self.poll()
        self._thread = threading.Thread(target=self._run, name="k3dtui-announcer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)


def set_traffic_policy(
    api: Callable[[], client.ApiClient], policy: str, identity: AppIdentity = APP
) -> ActionResult:
    """Set ``spec.externalTrafficPolicy`` of the app's Service (one merge patch)."""
    name, ns = identity.service, identity.namespace
    try:
        policy = parse_policy(policy)
    except ValueError as exc:
        return ActionResult(False, f"refused: {exc}")
    try:
        core = client.CoreV1Api(api())
        try:
            resp: Any = core.read_namespaced_service(
                name, ns, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            current = json.loads(resp.data)
        except Exception as exc:
            if is_status(exc, 404):
                fix = (f"see `kubectl get services -n {ns}`" if identity.attached
                       else "deploy the app first (k3dtui up)")
                return ActionResult(False, f"service {name} not found in namespace {ns}; {fix}")
            raise
        spec = current.get("spec") or {}
        if spec.get("type") not in ("LoadBalancer", "NodePort"):
            return ActionResult(False, f"refused: service {name} is of type {spec.get('type')}, which has no "
                                       "externalTrafficPolicy (it needs LoadBalancer or NodePort)")
        before = str(spec.get("externalTrafficPolicy") or "Cluster")
        if before == policy:
            return ActionResult(True, f"service {name} already has externalTrafficPolicy {policy}; nothing to do")
        core.patch_namespaced_service(
            name, ns, {"spec": {"externalTrafficPolicy": policy}},
            _content_type="application/merge-patch+json", _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
        )
    except Exception as exc:
        host = ""
        try:
            host = str(api().configuration.host)
        except Exception:
            host = ""
        return ActionResult(False, f"could not set the traffic policy of service {name}: {translate(exc, host=host)}")
    return ActionResult(True, f"service {name}: externalTrafficPolicy {before} -> {policy}")
