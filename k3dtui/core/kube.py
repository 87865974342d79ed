"""The one way k3dtui talks to Kubernetes: the official client, through a kubeconfig file.

``make_api_client`` is the one client stack: the setup's ``Kube``, the watchers and actions
of ``LiveCluster`` and the app's Service lookup all build their ``ApiClient`` here. What the
client raises is turned into k3dtui's errors by ``core.kubeerrors``.

The kubeconfig is k3dtui's own copy (``<state>/<provider>/<name>/kubeconfig.yaml``), so the
user's ``~/.kube/config`` is never rewritten by k3dtui.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from k3dtui.core.kubeerrors import KUBECONFIG_HINT, KubeconfigError


def make_api_client(kubeconfig: Path, context: str | None = None) -> client.ApiClient:
    """A fresh ``ApiClient`` for the kubeconfig (one per thread that uses it).

    Raises ``KubeconfigError`` when the file is missing, unreadable or lacks ``context``.
    """
    configuration = client.Configuration()
    # A proxy only when the kubeconfig names one (`proxy-url`, set by load_kube_config), never
    # from HTTP(S)_PROXY: the cluster's API is local. The client reads those variables by
    # itself otherwise (kubernetes/client/configuration.py, `_proxy_from_env`); NO_PROXY is
    # still honoured for a kubeconfig's proxy (kubernetes/client/rest.py, should_bypass_proxies).
    configuration.proxy = None
    try:
        config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        raise KubeconfigError(f"cannot use the kubeconfig {kubeconfig}: {exc}", KUBECONFIG_HINT) from exc
    configuration.retries = 0  # k3dtui decides when to retry
    return client.ApiClient(configuration)
