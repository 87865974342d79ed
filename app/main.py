"""fastapi-random: the app k3dtui deploys to the cluster.

``GET /`` answers which pod and node served the request, in the JSON body and in the
``X-Pod``/``X-Node`` headers (so a load generator can count without parsing JSON), and the
peer address the pod saw (``client`` in the body, ``X-Client``): with
``externalTrafficPolicy: Cluster`` kube-proxy masquerades external traffic, so this is an
address of the node that forwarded the connection; with ``Local`` it is the client's own.
Identity comes from ``POD_NAME``/``NODE_NAME`` (set by the Deployment through the
downward API). ``create_app(pod, node)`` builds an instance with an explicit identity, so
one process can host several pods (the simulated cluster does this).
"""

from __future__ import annotations

import json
import os
import random

from fastapi import FastAPI, Request
from fastapi.responses import Response


def create_app(pod: str | None = None, node: str | None = None) -> FastAPI:
    pod_name = pod if pod is not None else os.environ.get("POD_NAME", "unknown")
    node_name = node if node is not None else os.environ.get("NODE_NAME", "unknown")
    headers = {"X-Pod": pod_name, "X-Node": node_name}
    rng = random.Random()
    app = FastAPI(title="fastapi-random", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/")
    async def root(request: Request) -> Response:
        client = request.client.host if request.client is not None else ""
        body = json.dumps(
            {"pod": pod_name, "node": node_name, "client": client, "random": rng.randint(0, 1_000_000)},
            separators=(",", ":"),
        )
        return Response(content=body, media_type="application/json", headers={**headers, "X-Client": client})

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(content=b'{"status":"ok"}', media_type="application/json", headers=headers)

    return app


app = create_app()
