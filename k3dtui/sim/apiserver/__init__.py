"""The simulated cluster's Kubernetes API server (aiohttp, on 127.0.0.1), split by concern:

- ``app``: :class:`ApiServer`: the aiohttp application, authentication, path routing
- ``discovery``: aggregated and legacy discovery; ``openapi`` (``openapi_pb``): OpenAPI v2 and v3
- ``crud``: get, list, create, replace, delete (one object or a collection)
- ``patching``: JSON, merge and strategic merge patches, server-side apply
- ``subresources``: scale, status and finalize, binding, eviction; ``logs``: pods/log
- ``streams``, ``portforward`` (with ``spdy``): exec/attach and port-forward over WebSocket
- ``authz``: the review kinds; ``metrics``: metrics.k8s.io; ``protobuf`` (``pbschema``): protobuf bodies
- ``watch``: watches with selectors, resume and bookmarks
- ``http``, ``errors``, ``tls``: request plumbing, ``Status`` responses, the certificate

Every write goes through :mod:`k3dtui.sim.registry` (the per-kind rules the controllers
use too). Everything runs on the event loop that called :meth:`ApiServer.start` (the
store is not thread-safe).
"""

from __future__ import annotations

from k3dtui.sim.apiserver.app import ApiServer
from k3dtui.sim.apiserver.errors import json_response, status_response, success_status
from k3dtui.sim.apiserver.handlers import Admission
from k3dtui.sim.apiserver.tls import make_certificates

__all__ = ["Admission", "ApiServer", "json_response", "make_certificates", "status_response", "success_status"]
