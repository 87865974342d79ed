"""The one way k3dtui talks to Kubernetes: the official client, through a kubeconfig file.

``make_api_client`` is the one client stack: the setup's ``Kube``, the watchers and actions
of ``LiveCluster`` and the app's Service lookup all build their ``ApiClient`` here. What the
client raises is turned into k3dtui's errors by ``core.kubeerrors``.

The kubeconfig is k3dtui's own copy (``<state>/<provider>/<name>/kubeconfig.yaml``), so the
user's ``~/.kube/config`` is never rewritten by k3dtui.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from k3dtui.core.kubeerrors import KUBECONFIG_HINT, RELOGIN_HINT, KubeconfigError

_LOAD_LOCK = threading.Lock()  # the root-logger handler below is process-wide


class _Captured(logging.Handler):
    """What the client's kubeconfig loader logs while it loads (an exec credential plugin
    that failed is only logged there: ``kubernetes/config/kube_config.py``
    ``_load_from_exec_plugin``), kept instead of printed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def kubeconfig_files(kubeconfig: Path) -> list[Path]:
    """The files of a kubeconfig: one, or several joined by ``os.pathsep`` as in ``$KUBECONFIG``,
    which the client merges as kubectl does (``KubeConfigMerger`` in
    ``kubernetes/config/kube_config.py``: the first file to name a context, cluster or user wins)."""
    return [Path(part) for part in str(kubeconfig).split(os.pathsep) if part]


def kubeconfig_digest(kubeconfig: Path) -> str:
    """A digest of the kubeconfig's files as they are now ("" when none can be read)."""
    digest = hashlib.sha256()
    read = False
    for path in kubeconfig_files(kubeconfig):
        try:
            digest.update(path.read_bytes())
            read = True
        except OSError:
            digest.update(b"\0missing\0")
    return digest.hexdigest() if read else ""


def make_api_client(kubeconfig: Path, context: str | None = None, *, hint: str = KUBECONFIG_HINT) -> client.ApiClient:
    """A fresh ``ApiClient`` for the kubeconfig (one per thread that uses it).

    Raises ``KubeconfigError`` when the file is missing, unreadable or lacks ``context``, or
    its exec credential plugin (``users[].user.exec``) failed. The file is only read.
    """
    configuration = client.Configuration()
    # A proxy only when the kubeconfig names one (`proxy-url`, set by load_kube_config), never
    # from HTTP(S)_PROXY: the cluster's API is local. The client reads those variables by
    # itself otherwise (kubernetes/client/configuration.py, `_proxy_from_env`); NO_PROXY is
    # still honoured for a kubeconfig's proxy (kubernetes/client/rest.py, should_bypass_proxies).
    configuration.proxy = None
    captured = _Captured()
    root = logging.getLogger()
    with _LOAD_LOCK:
        root.addHandler(captured)  # the loader's logging.error() would print (and configure logging)
        try:
            # persist_config=False: k3dtui never writes a kubeconfig it reads (the client would
            # write refreshed gcp/oidc tokens back into it otherwise)
            config.load_kube_config(
                config_file=str(kubeconfig), context=context, client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            raise KubeconfigError(f"cannot use the kubeconfig {kubeconfig}: {exc}", hint) from exc
        finally:
            root.removeHandler(captured)
    failed = [line for line in captured.lines if line.startswith("exec")]
    if failed and not configuration.api_key.get("BearerToken") and not configuration.cert_file:
        detail = " ".join(failed[0].split())[:300]
        raise KubeconfigError(
            f"the kubeconfig's credential plugin failed ({detail})", RELOGIN_HINT,
        )
    configuration.retries = 0  # k3dtui decides when to retry
    return client.ApiClient(configuration)
