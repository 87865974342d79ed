"""Where a load run goes from: this host straight to the Service's address when that
address is routable from here, otherwise a container inside the cluster's network
(``k3dtui.core.innetwork``). Decided before the run, and said to the user."""

from __future__ import annotations

from dataclasses import dataclass

from k3dtui.core.load import LoadGenerator
from k3dtui.core.models import LoadSettings
from k3dtui.core.provider import Provider, Reachability

DIRECT = "direct"
IN_NETWORK = "in-network"


@dataclass(frozen=True)
class LoadPlan:
    where: str  # DIRECT or IN_NETWORK
    network: str  # the cluster's Docker network ("" when direct)
    reach: Reachability

    @property
    def says(self) -> str:
        """One line for the user: what the load run will do, and why."""
        if self.where == DIRECT:
            return f"load goes straight from this host to the Service: {self.reach.explanation}"
        return (f"load runs inside the cluster's network, in a container on {self.network} "
                f"(the Service's address is not routable from here: {self.reach.explanation})")


def plan_load(provider: Provider) -> LoadPlan:
    """Check reachability first (a probe of a node address where the engine allows)."""
    reach = provider.reachability()
    if reach.routable or provider.kind != "k3d":
        return LoadPlan(DIRECT, "", reach)
    network = str(getattr(provider, "network_name", f"k3d-{provider.name}"))
    return LoadPlan(IN_NETWORK, network, reach)


def app_image() -> str:
    """The app image k3dtui builds (the identity's image): the generator's image base."""
    from k3dtui.core.identity import AppIdentity

    return AppIdentity().image


def make_generator(plan: LoadPlan, settings: LoadSettings, base_image: str | None = None) -> LoadGenerator:
    if plan.where == DIRECT:
        return LoadGenerator(settings)
    from k3dtui.core.innetwork import InNetworkLoadGenerator

    return InNetworkLoadGenerator(settings, network=plan.network, base_image=base_image or app_image())
