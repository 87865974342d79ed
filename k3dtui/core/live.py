"""``LiveCluster``: the one facade the TUI and the CLI use for the running app.

``start(on_change)`` opens one watcher thread per kind (nodes, the app's pods, its
Deployment and Service, MetalLB's ServiceL2Status objects, Events in the namespace); every
change lands in a ``ClusterState`` and ``on_change`` receives a fresh ``ClusterSnapshot``,
coalesced (a change after a quiet moment at once; a sustained burst at most one per
``coalesce_interval``, 20/s by default), from a thread of
the LiveCluster's own. The actions (kill, scale) work without ``start()``.

A restarted cluster comes back with a new address, token or CA in its kubeconfig: every
client is made from the kubeconfig as it is now. A watcher whose request failed reads the
kubeconfig again while it waits to retry and, when it changed, moves to a new client and
lists afresh (``ClusterSnapshot.server_generation`` grows; the view is not ``connected``
until every kind has listed from the new server). The actions make a new client when the
kubeconfig changed, and refuse while the watched picture is stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from k3dtui.core import state as st
from k3dtui.core.actions import ActionResult, Actions
from k3dtui.core.identity import APP, AppIdentity
from k3dtui.core.kube import kubeconfig_digest, make_api_client
from k3dtui.core.models import ClusterSnapshot
from k3dtui.core.watch import ListCall, Watcher, WatchSettings

# kinds the view does without when the credentials may not list them (403, e.g. a user of an
# attached cluster bound to one namespace): nodes then come from the pods' spec.nodeName
FORBIDDEN_OK = frozenset({st.NODES, st.L2STATUSES, st.LEASES, st.EVENTS})


class LiveCluster:
    def __init__(
        self,
        kubeconfig: Path,
        *,
        context: str | None = None,
        identity: AppIdentity = APP,
        max_replicas: int | None = None,
        watch_settings: WatchSettings | None = None,
        coalesce_interval: float = 0.05,
    ) -> None:
        """``max_replicas`` overrides the identity's upper replica bound (a convenience)."""
        if max_replicas is not None:
            identity = dataclasses.replace(identity, max_replicas=max_replicas)
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.identity = identity
        self.namespace = identity.namespace
        self.app_label = identity.app
        self.deployment = identity.deployment
        self.service = identity.service
        self.max_replicas = identity.max_replicas
        self.watch_settings = watch_settings or WatchSettings()
        self.state = st.ClusterState(identity, expected=st.KINDS)
        self._coalescer: st.Coalescer | None = None
        self._coalesce_interval = coalesce_interval
        self._watchers: list[Watcher] = []
        self._clients: list[client.ApiClient] = []
        self._client_sigs: list[str] = []  # the kubeconfig each watcher's client was made from
        self._clients_lock = threading.Lock()
        self._signature_seen = ""  # the kubeconfig the watchers last moved to
        self._local = threading.local()
        self._actions = Actions(self._action_client, identity)

    # -- watching --------------------------------------------------------------------------
    def start(self, on_change: Callable[[ClusterSnapshot], None]) -> None:
        if self._watchers:
            raise RuntimeError("LiveCluster already started")
        sources = self._sources()
        signature = self.kubeconfig_signature()
        clients = [self._new_client() for _ in sources]  # raises before any thread starts
        self._client_sigs = [signature for _ in sources]
        self._signature_seen = signature
        coalescer = st.Coalescer(lambda: on_change(self.state.snapshot()), self._coalesce_interval)
        self._coalescer = coalescer
        self.state.on_update = coalescer.notify
        coalescer.start()
        self._clients = clients
        for index, ((kind, make_call, absent_ok), api) in enumerate(zip(sources, clients, strict=True)):
            watcher = Watcher(
                kind, make_call(api), self.state, settings=self.watch_settings, absent_ok=absent_ok,
                forbidden_ok=kind in FORBIDDEN_OK,
                refresh=functools.partial(self._refresh, index, make_call),
            )
            self._watchers.append(watcher)
        for watcher in self._watchers:
            watcher.start()

    def snapshot(self) -> ClusterSnapshot:
        return self.state.snapshot()

    @property
    def watchers(self) -> tuple[Watcher, ...]:
        return tuple(self._watchers)

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop(timeout=0)
        for watcher in self._watchers:
            watcher.stop(timeout=2.0)
        if self._coalescer is not None:
            self._coalescer.stop()
        self.state.on_update = None
        for api in self._clients:
            with contextlib.suppress(Exception):
                api.close()
        self._watchers = []
        self._clients = []
        self._coalescer = None

    def _sources(self) -> list[tuple[str, Callable[[client.ApiClient], ListCall], bool]]:
        ns = self.namespace

        def nodes(api: client.ApiClient) -> ListCall:
            return functools.partial(client.CoreV1Api(api).list_node)

        def pods(api: client.ApiClient) -> ListCall:
            return functools.partial(
                client.CoreV1Api(api).list_namespaced_pod, ns, label_selector=self.identity.label_selector
            )

        def deployments(api: client.ApiClient) -> ListCall:
            return functools.partial(
                client.AppsV1Api(api).list_namespaced_deployment,
                ns,
                field_selector=f"metadata.name={self.deployment}",
            )

        def services(api: client.ApiClient) -> ListCall:
            return functools.partial(
                client.CoreV1Api(api).list_namespaced_service,
                ns,
                field_selector=f"metadata.name={self.service}",
            )

        def l2(api: client.ApiClient) -> ListCall:
            return functools.partial(
                client.CustomObjectsApi(api).list_namespaced_custom_object,
                "metallb.io",
                "v1beta1",
                self.identity.metallb_namespace,
                "servicel2statuses",
            )

        def events(api: client.ApiClient) -> ListCall:
            return functools.partial(client.CoreV1Api(api).list_namespaced_event, ns)

        def leases(api: client.ApiClient) -> ListCall:
            # the kubelets' heartbeats: one Lease per node, renewed every 10 s
            return functools.partial(client.CoordinationV1Api(api).list_namespaced_lease, "kube-node-lease")

        return [
            (st.NODES, nodes, False),
            (st.PODS, pods, False),
            (st.DEPLOYMENTS, deployments, False),
            (st.SERVICES, services, False),
            (st.L2STATUSES, l2, True),
            (st.EVENTS, events, False),
            (st.LEASES, leases, True),
        ]

    # -- reconnection ----------------------------------------------------------------------
    def kubeconfig_signature(self) -> str:
        """A digest of the kubeconfig as it is now ("" when it cannot be read)."""
        return kubeconfig_digest(self.kubeconfig)

    @property
    def server(self) -> str:
        """The API server the watchers use now (from the kubeconfig they were made from)."""
        with self._clients_lock:
            api = self._clients[0] if self._clients else None
        if api is None:
            return ""
        return str(getattr(api.configuration, "host", "") or "")

    def _refresh(self, index: int, make_call: Callable[[client.ApiClient], ListCall]) -> ListCall | None:
        """Watcher ``index``'s request failed: a new call when the kubeconfig changed."""
        signature = self.kubeconfig_signature()
        with self._clients_lock:
            if not signature or index >= len(self._client_sigs) or signature == self._client_sigs[index]:
                return None
        try:
            api = self._new_client()
        except Exception:
            return None  # half-written or not yet valid: the next look tries again
        with self._clients_lock:
            old = self._clients[index]
            self._clients[index] = api
            self._client_sigs[index] = signature
            first = signature != self._signature_seen
            self._signature_seen = signature
        with contextlib.suppress(Exception):
            old.close()
        if first:
            self.state.new_server()
        return make_call(api)

    def _stale(self) -> ActionResult | None:
        """While watching, an action is refused when the picture is not the server's now."""
        if not self._watchers:
            return None
        snap = self.state.snapshot()
        if snap.connected:
            return None
        return ActionResult(False, f"refused: the view is stale ({snap.error}); nothing changed, "
                                   "try again once it is connected")

    # -- actions ---------------------------------------------------------------------------
    def kill(self, pod: str, *, force: bool = False) -> ActionResult:
        return self._stale() or self._actions.kill(pod, force=force)

    def kill_random(self, *, force: bool = False) -> ActionResult:
        return self._stale() or self._actions.kill_random(force=force)

    def scale_to(self, replicas: int) -> ActionResult:
        return self._stale() or self._actions.scale_to(replicas)

    def scale_by(self, delta: int) -> ActionResult:
        return self._stale() or self._actions.scale_by(delta)

    def set_traffic_policy(self, policy: str) -> ActionResult:
        """``Cluster`` or ``Local`` on the app's Service (``core.flow``)."""
        from k3dtui.core.flow import set_traffic_policy

        return set_traffic_policy(self._action_client, policy, self.identity)

    # -- clients ---------------------------------------------------------------------------
    def _new_client(self) -> client.ApiClient:
        """Raises ``KubeconfigError`` (a ``K3dtuiError``) when the kubeconfig cannot be used."""
        return make_api_client(self.kubeconfig, self.context)

    def _action_client(self) -> client.ApiClient:
        """This thread's client, made anew when the kubeconfig changed (a restarted cluster)."""
        signature = self.kubeconfig_signature()
        api: client.ApiClient | None = getattr(self._local, "api", None)
        if api is None or getattr(self._local, "signature", None) != signature:
            if api is not None:
                with contextlib.suppress(Exception):
                    api.close()
            api = self._new_client()
            self._local.api = api
            self._local.signature = signature
        return api
