"""The flow panel: the path a request takes, with the numbers of the running load.

``client → 172.20.255.200 (ARP: agent-1) → kube-proxy Cluster → server-0 33% · agent-0 34%
· agent-1 33% │ cross-node 67% │ pods saw 10.42.2.0 (masqueraded)`` (on two lines, the path
then the figures, when one does not fit)

It reads the screen's cluster picture (``snapshot.service``: the announcing node and the
traffic policy) and its newest load snapshot (``load``: responses per serving node, the
cross-node share, the source addresses the pods saw), so the live screen only has to mount
it. It shows itself from 100 columns up (below, the header line says the essentials).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from k3dtui.core.models import LoadSnapshot, ServiceView
from k3dtui.ui.widgets.pods import short_node_name
from k3dtui.ui.widgets.text import TextLine

MIN_WIDTH = 100  # columns: below, the panel is hidden

# the help screen's explanation of each term the panel uses, one sentence each
TERMS: tuple[tuple[str, str], ...] = (
    ("ARP", "ARP announcement: in MetalLB's layer-2 mode one node answers ARP for the service "
            "address, so every connection enters the cluster at that node."),
    ("kube-proxy", "kube-proxy: the rules on each node that send a connection for the service to "
                   "one ready pod, chosen once per connection."),
    ("masq", "masquerading: under Cluster kube-proxy rewrites the source address, so the pod sees "
             "the forwarding node's address instead of the client's."),
    ("policy", "externalTrafficPolicy: Cluster lets any node's pod serve (maybe across nodes); "
               "Local keeps traffic on the announcing node's pods and the client's address (t switches)."),
)


def flow_parts(service: ServiceView | None, load: LoadSnapshot | None, *, compact: bool = False) -> tuple[Text, Text]:
    """(the path with each serving node's share, the cross-node share and what the pods saw);
    ``compact``: the path without its decoration, for narrow terminals. A load run inside the
    cluster (``per_worker``) enters at the Service's ClusterIP from the worker pods, so its path
    has no ARP and no external traffic policy, and its cross-node share is counted from each
    worker's own node."""
    path = Text(no_wrap=True, overflow="ellipsis")
    figures = Text(no_wrap=True, overflow="ellipsis")
    if service is None or not service.external_ip:
        path.append("flow: the service has no external address yet", style="dim")
        return path, figures
    policy = service.traffic_policy
    workers = load.per_worker if load is not None else {}
    inside = bool(workers)
    if inside:  # the in-cluster load's workers dial the Service's ClusterIP: no ARP, no external policy
        path.append("" if compact else f"{len(workers)} worker pods → ", style="dim")
        path.append(f"{service.name} ClusterIP", style="bold magenta")
        path.append(" → kube-proxy ", style="dim")
        path.append("any ready pod", style="bold")
    else:
        if not compact:
            path.append("client → ", style="dim")
        path.append(service.external_ip, style="bold magenta")
        if service.announcing_node:
            path.append(" ARP " if compact else " (ARP: ", style="dim")
            path.append(short_node_name(service.announcing_node), style="bold")
            path.append("" if compact else ")", style="dim")
        else:
            why = "no ready pod on any node, Local" if policy == "Local" else "no speaker"
            path.append(f" (no node announces: {why})", style="bold yellow")
        path.append(" → kube-proxy ", style="dim")
        path.append(policy, style="bold cyan" if policy == "Local" else "bold")
    path.append(" → ", style="dim")
    if load is None or not load.responses:
        running = load is not None and load.running
        path.append("counting…" if running else "start load (l) to see the path in numbers", style="dim")
        return path, figures
    total = load.responses
    nodes = sorted(load.per_node.items(), key=lambda kv: (-kv[1], kv[0]))
    for i, (node, n) in enumerate(nodes):
        if i:
            path.append(" · ", style="dim")
        path.append(short_node_name(node), style="bold" if node == service.announcing_node else "")
        path.append(f" {n / total:.0%}")
    share = load.cross_node_share
    figures.append("cross-node ", style="dim")
    figures.append("-" if share is None else f"{share:.0%}", style="bold yellow" if share else "bold green")
    if load.client_addrs:
        figures.append("  │  pods saw ", style="dim")
        addrs = sorted(load.client_addrs.items(), key=lambda kv: (-kv[1], kv[0]))
        figures.append(", ".join(a for a, _ in addrs), style="bold")
        figures.append(" (the workers' pod IPs)" if inside else " (masqueraded)" if policy == "Cluster"
                       else " (the client's own)", style="dim")
    return path, figures


def flow_text(service: ServiceView | None, load: LoadSnapshot | None, width: int) -> Text:
    """The panel's text for ``width`` columns: one line when it fits, else two."""
    path, figures = flow_parts(service, load)
    if path.cell_len > width:
        path, figures = flow_parts(service, load, compact=True)
    if not figures.plain:
        return path
    sep = "  │  "
    if path.cell_len + len(sep) + figures.cell_len <= width:
        return Text.assemble(path, (sep, "dim"), figures, no_wrap=True, overflow="ellipsis")
    return Text.assemble(path, "\n", figures, no_wrap=True, overflow="ellipsis")


class FlowPanel(TextLine):
    """One line under the status line; follows the screen's ``snapshot`` and ``load``."""

    DEFAULT_CSS = """
    FlowPanel { height: 1; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Any, ...] | None = None

    def on_mount(self) -> None:
        self.refresh_flow()
        self.set_interval(0.2, self.refresh_flow)

    def on_resize(self) -> None:
        self.refresh_flow()

    def refresh_flow(self) -> None:
        screen: Any = self.screen
        snapshot = getattr(screen, "snapshot", None)
        service: ServiceView | None = getattr(snapshot, "service", None)
        load: LoadSnapshot | None = getattr(screen, "load", None)
        width = self.app.size.width
        self.display = width >= MIN_WIDTH
        key = (service, None if load is None else (load.responses, load.running, load.elapsed), width)
        if key == self._shown:
            return
        self._shown = key
        text = flow_text(service, load, max(1, (self.size.width or width) - 2))
        lines = text.plain.count("\n") + 1
        if self.styles.height is None or self.styles.height.value != lines:
            self.styles.height = lines
        self.set(text)
