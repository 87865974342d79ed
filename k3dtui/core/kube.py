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
    config.load_kube_config(
        config_file=str(kubeconfig), context=context, client_configuration=configuration
    )
    configuration.retries = 0  # k3dtui decides when to retry
    return client.ApiClient(configuration)
