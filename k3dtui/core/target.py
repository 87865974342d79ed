"""Attach to an app k3dtui did not create, on any cluster the user's kubeconfig reaches.

A ``Target`` is what the options name (``--kubeconfig``, ``--context``, ``--namespace``,
``--deployment`` or ``--selector``, ``--service``, ``--allow-changes``); ``resolve_target``
reads the kubeconfig (never writes it) and the cluster, and returns an ``Attached``: the
kubeconfig and context in effect, the API server, the namespace, and an ``AppIdentity``
naming that Deployment, its pods' selector and its Service, for ``LiveCluster``, the
actions and ``status``.

The safety rules live here: ``kube-system`` and every namespace ending in ``-system`` are
refused (whatever ``allow_changes`` says); a missing namespace, Deployment or Service is
refused with one line and the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from k3dtui.core.errors import K3dtuiError, UsageError
from k3dtui.core.identity import (
    AppIdentity,
    parse_selector,
    selector_from_label_selector,
    selector_matches,
)
from k3dtui.core.kube import kubeconfig_files, make_api_client
from k3dtui.core.kubeerrors import KubeconfigError, is_status, translate

Obj = dict[str, Any]

TARGET_HINT = "give --kubeconfig PATH (or set KUBECONFIG) and --context CTX of the cluster to attach to"
REQUEST_TIMEOUT = (5.0, 20.0)


@dataclass(frozen=True)
class Target:
    """What the target options name; None means "as kubectl would"."""

    kubeconfig: Path | None = None  # None: $KUBECONFIG (its first file), else ~/.kube/config
    context: str | None = None  # None: the kubeconfig's current-context
    namespace: str | None = None  # None: the context's namespace, else "default"
    deployment: str | None = None
    selector: str | None = None  # a label selector (app=web,tier in (a,b))
    service: str | None = None  # None: the Service whose selector picks the pods, if one does
    allow_changes: bool = False


@dataclass(frozen=True)
class Attached:
    """An app on another cluster, resolved: what the commands and the live view act on."""

    kubeconfig: Path
    context: str
    server: str
    namespace: str
    identity: AppIdentity
    allow_changes: bool = False
    attached: bool = True
    app_text: str = ""  # for headers: ``deployment/web (app=web) svc/web``

    @property
    def mode_text(self) -> str:
        return "allow-changes" if self.allow_changes else "read-only"

    def header_text(self) -> str:
        """``attached · <context> · ns <namespace> · <app_text>``."""
        return f"attached · {self.context} · ns {self.namespace} · {self.app_text}"


def default_kubeconfig(environ: dict[str, str] | None = None) -> Path:
    """The kubeconfig kubectl reads: ``$KUBECONFIG``'s files that exist (kubectl skips the
    missing ones and merges the rest, the first to name something winning; k3dtui hands the
    list, joined by ``os.pathsep``, to the client, which merges the same way), else
    ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    listed = [Path(p).expanduser() for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p.strip()]
    existing = [p for p in listed if p.is_file()]
    if existing:
        return Path(os.pathsep.join(str(p) for p in existing))
    if listed:
        return listed[0]
    return Path("~/.kube/config").expanduser()


def refused_namespace(namespace: str) -> str:
    """Why k3dtui never acts in ``namespace`` ("" when it may)."""
    if namespace == "kube-system" or namespace.endswith("-system"):
        return (f"refused: namespace {namespace!r} holds the cluster's own components (names ending in "
                "-system are never touched by k3dtui, even with --allow-changes)")
    return ""


def _body(resp: Any) -> Obj:
    data = json.loads(resp.data)
    return data if isinstance(data, dict) else {}


def _contexts(path: Path) -> tuple[list[str], str, dict[str, str]]:
    """(context names, current-context, namespace per context) of the kubeconfig (read only)."""
    try:
        contexts, active = config.list_kube_config_contexts(config_file=str(path))
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        raise KubeconfigError(f"cannot use the kubeconfig {path}: {' '.join(str(exc).split())}", TARGET_HINT) from None
    names = [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]
    namespaces = {
        str(c.get("name")): str((c.get("context") or {}).get("namespace") or "")
        for c in contexts or [] if isinstance(c, dict)
    }
    current = str((active or {}).get("name") or "") if isinstance(active, dict) else ""
    return names, current, namespaces


def check_target_options(target: Target) -> None:
    """The checks that need no cluster (UsageError, exit 2, before anything is read)."""
    if target.namespace is not None:
        refusal = refused_namespace(target.namespace)
        if refusal:
            raise UsageError(refusal, "attach to your app's own namespace (--namespace NS)")
    if target.selector is not None:
        try:
            parse_selector(target.selector)
        except ValueError as exc:
            raise UsageError(f"--selector {target.selector!r}: {exc}", "e.g. --selector app=web") from None
    if target.deployment is None and target.selector is None:
        raise UsageError("name the app to attach to: --deployment NAME or --selector LABELS",
                         "e.g. --deployment web (see `kubectl get deployments -n NS`)")


def resolve_target(target: Target) -> Attached:
    """Read the kubeconfig and the cluster; the app the target names, or a ``K3dtuiError``."""
    check_target_options(target)
    path = Path(target.kubeconfig).expanduser() if target.kubeconfig is not None else default_kubeconfig()
    if not all(f.is_file() for f in kubeconfig_files(path)):
        raise KubeconfigError(f"no kubeconfig at {path}", TARGET_HINT)
    names, current, namespaces = _contexts(path)
    context = target.context or current
    if not context:
        raise KubeconfigError(f"the kubeconfig {path} has no current-context", "give --context CTX: "
                              + (", ".join(names) or "it has no contexts"))
    if context not in names:
        raise KubeconfigError(f"the kubeconfig {path} has no context {context!r}",
                              f"give --context with one of: {', '.join(names) or '(none)'}")
    namespace = target.namespace or namespaces.get(context) or "default"
    refusal = refused_namespace(namespace)
    if refusal:
        raise UsageError(refusal, "attach to your app's own namespace (--namespace NS)")
    api = make_api_client(path, context, hint=TARGET_HINT)
    server = str(api.configuration.host or "")
    try:
        return _resolve(api, target, path, context, server, namespace)
    finally:
        api.close()


def _resolve(api: client.ApiClient, target: Target, path: Path, context: str, server: str,
             namespace: str) -> Attached:
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    try:
        core.read_namespace(namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    except Exception as exc:
        if is_status(exc, 404):
            raise K3dtuiError(f"namespace {namespace!r} not found in context {context}",
                              "give the app's namespace with --namespace NS (see `kubectl get namespaces`)") from None
        if not is_status(exc, 403):  # a user bound to one namespace may not read Namespace objects
            raise translate(exc, f"read namespace {namespace}", host=server) from None
    deployment = _find_deployment(apps, target, namespace, server)
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    name = str(meta.get("name") or "")
    template = (spec.get("template") or {})
    template_labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
    selector = target.selector or selector_from_label_selector(spec.get("selector"))
    if not selector:
        raise K3dtuiError(f"deployment {name} in namespace {namespace} has no pod selector", "name the pods with --selector LABELS")
    if target.selector and not selector_matches(target.selector, template_labels):
        raise UsageError(f"--selector {target.selector} does not select the pods of deployment {name}",
                         f"its pods are labelled {','.join(f'{k}={v}' for k, v in sorted(template_labels.items()))}")
    containers = (template.get("spec") or {}).get("containers") or [{}]
    first = containers[0] if isinstance(containers[0], dict) else {}
    service = _find_service(core, target, namespace, template_labels, server)
    svc_name = str((service.get("metadata") or {}).get("name") or "") if service else ""
    ports = ((service or {}).get("spec") or {}).get("ports") or [{}]
    port0 = ports[0] if isinstance(ports[0], dict) else {}
    target_port = port0.get("targetPort")
    container_ports = first.get("ports") or [{}]
    container_port = int(target_port) if isinstance(target_port, int) else int(
        (container_ports[0] if isinstance(container_ports[0], dict) else {}).get("containerPort") or 80)
    replicas = spec.get("replicas")
    identity = AppIdentity(
        namespace=namespace,
        app=template_labels.get("app", name),
        deployment=name,
        container=str(first.get("name") or name),
        service=svc_name,
        service_port=int(port0.get("port") or 80),
        container_port=container_port,
        image=str(first.get("image") or ""),
        max_replicas=max(50, int(replicas) if isinstance(replicas, int) else 0),
        selector=selector,
        attached=True,
    )
    app_text = f"deployment/{name} ({selector})" + (f" svc/{svc_name}" if svc_name else "")
    return Attached(kubeconfig=path, context=context, server=server, namespace=namespace, identity=identity,
                    allow_changes=target.allow_changes, app_text=app_text)


def _find_deployment(apps: client.AppsV1Api, target: Target, namespace: str, server: str) -> Obj:
    if target.deployment is not None:
        try:
            return _body(apps.read_namespaced_deployment(
                target.deployment, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        except Exception as exc:
            if is_status(exc, 404):
                raise K3dtuiError(f"deployment {target.deployment!r} not found in namespace {namespace}",
                                  f"name one of `kubectl get deployments -n {namespace}` with --deployment") from None
            raise translate(exc, f"read deployment {target.deployment}", host=server) from None
    selector = str(target.selector)
    try:
        listing = _body(apps.list_namespaced_deployment(namespace, _preload_content=False,
                                                        _request_timeout=REQUEST_TIMEOUT))
    except Exception as exc:
        raise translate(exc, f"list the deployments in namespace {namespace}", host=server) from None
    owners = [
        d for d in listing.get("items") or []
        if isinstance(d, dict) and selector_matches(
            selector, ((((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}))
    ]
    if len(owners) == 1:
        return owners[0]
    if not owners:
        raise K3dtuiError(f"no deployment in namespace {namespace} has pods matching {selector}",
                          "check the labels (`kubectl get pods --show-labels`) or name it with --deployment")
    names = ", ".join(sorted(str((d.get("metadata") or {}).get("name")) for d in owners))
    raise UsageError(f"{len(owners)} deployments in namespace {namespace} have pods matching {selector}: {names}",
                     "name one with --deployment NAME")


def _find_service(core: client.CoreV1Api, target: Target, namespace: str, pod_labels: dict[str, str],
                  server: str) -> Obj | None:
    if target.service is not None:
        try:
            return _body(core.read_namespaced_service(target.service, namespace, _preload_content=False,
                                                      _request_timeout=REQUEST_TIMEOUT))
        except Exception as exc:
            if is_status(exc, 404):
                raise K3dtuiError(f"service {target.service!r} not found in namespace {namespace}",
                                  f"name one of `kubectl get services -n {namespace}` with --service, or leave it out") from None
            raise translate(exc, f"read service {target.service}", host=server) from None
    try:
        listing = _body(core.list_namespaced_service(namespace, _preload_content=False,
                                                     _request_timeout=REQUEST_TIMEOUT))
    except Exception as exc:
        if is_status(exc, 403):
            return None  # may not list Services: no Service, load then needs --url
        raise translate(exc, f"list the services in namespace {namespace}", host=server) from None
    matching: list[Obj] = []
    for svc in listing.get("items") or []:
        sel = ((svc.get("spec") or {}).get("selector") or {}) if isinstance(svc, dict) else {}
        if sel and all(pod_labels.get(str(k)) == str(v) for k, v in sel.items()):
            matching.append(svc)
    if len(matching) > 1:  # prefer the one reachable from outside
        balanced = [s for s in matching if (s.get("spec") or {}).get("type") == "LoadBalancer"]
        matching = balanced if len(balanced) == 1 else matching
    if len(matching) == 1:
        return matching[0]
    if matching:
        names = ", ".join(sorted(str((s.get("metadata") or {}).get("name")) for s in matching))
        raise UsageError(f"{len(matching)} services in namespace {namespace} select the app's pods: {names}",
                         "name one with --service NAME")
    return None


__all__ = ["Attached", "Target", "check_target_options", "default_kubeconfig", "refused_namespace", "resolve_target"]


Dial = Callable[[str, int], tuple[str, int]]


def service_url(attached: Attached, dial: Dial | None = None) -> str:
    """``http://ADDRESS:PORT/`` of the attached app's Service as this machine reaches it: its
    LoadBalancer ingress (``ip``, else ``hostname``: cloud load balancers give a name) and its
    first port. ``dial`` maps a cluster address to the one this machine dials (a simulated
    cluster of k3dtui's: ``providers.sim_dial_for``). A ``UsageError`` naming what to do
    instead when the Service has no external address."""
    ident = attached.identity
    if not ident.service:
        raise UsageError(f"no Service selects the pods of {attached.app_text}",
                         "give --url http://HOST:PORT/, or run the load inside the cluster with --in-cluster")
    api = make_api_client(attached.kubeconfig, attached.context, hint=TARGET_HINT)
    try:
        svc = _body(client.CoreV1Api(api).read_namespaced_service(
            ident.service, attached.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
    except Exception as exc:
        raise translate(exc, f"read service {ident.service}", host=attached.server) from None
    finally:
        api.close()
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    first = ingress[0] if ingress and isinstance(ingress[0], dict) else {}
    host = str(first.get("ip") or first.get("hostname") or "")
    if not host:
        kind = str((svc.get("spec") or {}).get("type") or "ClusterIP")
        raise UsageError(f"service {ident.service} ({kind}) has no external address this machine can dial",
                         "give --url http://HOST:PORT/ (e.g. through `kubectl port-forward`), or run the load "
                         "inside the cluster with --in-cluster")
    port = ident.service_port
    if dial is not None:
        host, port = dial(host, port)
    return f"http://{host}:{port}/"
