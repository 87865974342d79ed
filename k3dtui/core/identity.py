"""The app's identity: every name k3dtui gives the objects it creates, in one frozen value.

The names are those of the workflow k3dtui automates, so each of its commands works
verbatim on a k3dtui cluster (`kubectl get deployment fastapi-app`, `kubectl get
ipaddresspool first-pool -n metallb-system`, ...). Pass an ``AppIdentity`` instead of
writing a name: the manifests are rendered from it, the live view watches it, the actions
are confined to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LegacyNames:
    """Names an earlier k3dtui used; ``up`` finds objects under them and carries them over."""

    deployment: str = "fastapi"
    pool: str = "k3dtui-pool"
    l2advertisement: str = "k3dtui-l2"


@dataclass(frozen=True)
class AppIdentity:
    namespace: str = "default"
    app: str = "fastapi"  # the value of the ``app`` label on the Deployment, its pods and the Service
    deployment: str = "fastapi-app"
    container: str = "fastapi"
    service: str = "fastapi-service"
    service_port: int = 80
    container_port: int = 3000
    image: str = "fastapi-random:latest"
    metallb_namespace: str = "metallb-system"
    pool: str = "first-pool"
    l2advertisement: str = "example"
    min_replicas: int = 0
    max_replicas: int = 50
    legacy: LegacyNames = field(default_factory=LegacyNames)

    @property
    def label_selector(self) -> str:
        """The selector of the app's pods, as the API takes it (``app=fastapi``)."""
        return f"app={self.app}"

    @property
    def labels(self) -> dict[str, str]:
        return {"app": self.app}


APP = AppIdentity()
