"""Pods' streaming subresources over WebSocket: ``exec`` and ``attach`` (and the channel
protocol :mod:`.portforward` shares).

Since Kubernetes 1.30/1.31 kubectl opens ``exec``/``attach`` as a WebSocket with the
subprotocol ``v5.channel.k8s.io`` (older clients and the Python client ask for
``v4.channel.k8s.io``): every binary message starts with one byte naming its channel,
0 stdin, 1 stdout, 2 stderr, 3 error (a JSON ``Status``), 4 resize, and in v5 255 "close
this channel" (k8s.io/apimachinery ``pkg/util/remotecommand/constants.go`` and
``pkg/util/httpstream/wsstream/conn.go``; k8s.io/client-go ``tools/remotecommand/websocket.go``).

The simulated containers are the app's server processes: there is no shell or any other
program to run, so an exec is accepted, then answered on the error channel with a Status
that says so (kubectl prints it and exits non-zero), as kubelet reports a command the
container runtime could not start. A client that asks for SPDY (``Upgrade: SPDY/3.1``) gets
a plain 400 Status: this API server speaks only WebSocket.
"""

from __future__ import annotations

import contextlib

import orjson
from aiohttp import web

from k3dtui.sim.apiserver.errors import bad_request
from k3dtui.sim.apiserver.handlers import Handlers
from k3dtui.sim.kinds import Kind
from k3dtui.sim.store import Obj

# the channel subprotocols, newest first (the server picks the first the client offers)
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
ERROR_CHANNEL = 3
CLOSE_CHANNEL = 255  # v5: "I will send nothing more on channel N"


def refuse_spdy(request: web.Request) -> None:
    """A 400 Status for a SPDY upgrade (or any request that is not a WebSocket upgrade)."""
    upgrade = request.headers.get("Upgrade", "")
    if upgrade.lower() != "websocket":
        what = f"the {upgrade} protocol" if upgrade else "a request that is not a WebSocket upgrade"
        raise bad_request(
            f"the simulated cluster does not support {what}: its streaming subresources (exec, attach, "
            "portforward) speak WebSocket only, as kubectl 1.31 and later use"
        )


def stream_status(message: str, *, reason: str = "InternalError", code: int = 500, exit_code: int | None = None) -> bytes:
    status: Obj = {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if exit_code is not None:
        status["details"] = {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}
    return orjson.dumps(status)


class PodStreams(Handlers):
    """``exec`` and ``attach``; ``portforward`` comes from :class:`.portforward.PortForward`."""

    def _stream_target(self, kind: Kind, ns: str, name: str, container: str | None) -> Obj:
        """The pod a stream is for, checked as kube-apiserver does before it dials kubelet
        (k8s.io/kubernetes ``pkg/registry/core/pod/strategy.go`` ``ExecLocation``)."""
        pod = self.store.require(kind.gvr, ns, name)
        spec = pod.get("spec") or {}
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        if container and container not in names + [str(c.get("name")) for c in spec.get("initContainers") or []]:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if not container and len(names) != 1 and names:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: {names}")
        if not spec.get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        return pod

    async def _exec(self, request: web.Request, kind: Kind, ns: str, name: str, sub: str) -> web.StreamResponse:
        q = request.query
        pod = self._stream_target(kind, ns, name, q.get("container"))
        container = q.get("container") or str(((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", ""))
        command = q.getall("command", [])
        if sub == "exec" and not command:
            raise bad_request("you must specify at least 1 command")
        refuse_spdy(request)
        phase = (pod.get("status") or {}).get("phase")
        ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True, heartbeat=None)
        await ws.prepare(request)
        if phase in ("Succeeded", "Failed"):
            message = f"cannot {sub} into a container in a completed pod; current phase is {phase}"
            status = stream_status(message, reason="BadRequest", code=400)
        elif sub == "attach":
            status = stream_status(
                f"the simulated cluster cannot attach to container {container} in pod {name}: its output is "
                f"only in its log (kubectl logs -f {name})", reason="BadRequest", code=400)
        else:
            program = command[0]
            status = stream_status(
                f"Internal error occurred: error executing command in container: the simulated cluster's "
                f"container {container} in pod {name} is the app's server process, with no shell or other "
                f"programs: {program!r} cannot run (use kubectl logs or kubectl port-forward instead)",
                exit_code=126,
            )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(bytes([ERROR_CHANNEL]) + status)
            await ws.close()
        return ws

