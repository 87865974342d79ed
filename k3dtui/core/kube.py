"""The one way k3dtui talks to Kubernetes: the official client, through a kubeconfig file.

The kubeconfig is k3dtui's own copy (``<state>/<provider>/<name>/kubeconfig.yaml``), so the
user's ``~/.kube/config`` is never rewritten by k3dtui.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config


def make_api_client(kubeconfig: Path, context: str | None = None) -> client.ApiClient:
    """A fresh ``ApiClient`` for the kubeconfig (one per thread that uses it)."""
    configuration = client.Configuration()
    # A proxy only when the kubeconfig names one (`proxy-url`, set by load_kube_config), never
    # from HTTP(S)_PROXY: the cluster's API is local. The client reads those variables by
    # itself otherwise (kubernetes/client/configuration.py, `_proxy_from_env`); NO_PROXY is
    # still honoured for a kubeconfig's proxy (kubernetes/client/rest.py, should_bypass_proxies).
    configuration.proxy = None
    config.load_kube_config(
        config_file=str(kubeconfig), context=context, client_configuration=configuration
    )
    configuration.retries = 0  # k3dtui decides when to retry
    return client.ApiClient(configuration)
