"""Pool: the inspected cluster network, a suggested MetalLB range in two editable fields
with live validation, its size, a one-line picture of the subnet; Confirm installs
MetalLB and applies the pool with every event visible."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.network import NetworkInfo
from k3dtui.core.pool import PoolChoice
from k3dtui.ui.screens.setup import error_text
from k3dtui.ui.screens.steps import PipelineScreen
from k3dtui.ui.widgets.progress import StepProgress


def subnet_picture(network: NetworkInfo, start: str, end: str, width: int = 48) -> Text:
    """``172.20.0.0 ▕●●·····························████▏ 172.20.255.255``: used addresses
    (●), the range (█), a used address inside the range (✖), free space (·)."""
    net = ipaddress.ip_network(network.subnet, strict=False)
    first, size = int(net.network_address), net.num_addresses
    cells = ["·"] * width

    def cell(ip: str) -> int | None:
        try:
            value = int(ipaddress.ip_address(ip)) - first
        except ValueError:
            return None
        return value * width // size if 0 <= value < size else None

    lo, hi = cell(start), cell(end)
    if lo is not None and hi is not None and lo <= hi:
        for i in range(lo, hi + 1):
            cells[i] = "█"
    used_cells = {c for c in (cell(ip) for ip in network.used) if c is not None}
    try:
        a, b = int(ipaddress.ip_address(start)), int(ipaddress.ip_address(end))
    except ValueError:
        a, b = 1, 0
    clash = any(a <= int(ipaddress.ip_address(ip)) <= b for ip in network.used)
    for c in used_cells:
        cells[c] = "✖" if cells[c] == "█" and clash else "●"
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{net.network_address} ▕", style="dim")
    styles = {"·": "grey35", "█": "green", "●": "bold cyan", "✖": "bold red"}
    for ch in cells:
        text.append(ch, style=styles[ch])
    text.append(f"▏ {net.broadcast_address}", style="dim")
    return text


class PoolScreen(PipelineScreen):
    PAGE = "2 MetalLB pool"
    CSS_PATH = "pool.tcss"
    STEPS = ["metallb", "pool"]
    SPANS = ["pool", "metallb", "pool"]  # the pool choice, MetalLB, the pool applied
    CHANGING = frozenset({"confirm"})
    BINDINGS = [
        Binding("ctrl+s", "confirm", "confirm", id="pool.confirm", tooltip="Install MetalLB and apply this address pool"),
        Binding("ctrl+r", "inspect", "re-inspect", id="pool.inspect", tooltip="Inspect the cluster network again"),
        Binding("ctrl+n", "next", "next", id="pool.next", tooltip="Go on to deploying the app"),
    ]
    COMMAND_TITLES = {
        "confirm": "Install MetalLB and apply the pool",
        "inspect": "Inspect the cluster network again",
        "next": "Next: deploy the app",
    }

    @dataclass
    class Inspected(Message):
        network: NetworkInfo

    @dataclass
    class Applied(Message):
        pool_range: str

    class Done(Message):
        """The pool is in place: the app moves on to the deploy screen."""

    def __init__(self) -> None:
        super().__init__()
        self.network: NetworkInfo | None = None
        self.choice: PoolChoice | None = None
        self.busy = False
        self.applied = False

    def compose(self) -> ComposeResult:
        yield self.header_widget()
        with Horizontal(id="top"):
            with Vertical(id="network-side"):
                yield Label("Cluster network", classes="section")
                yield Static(Text("inspecting…", style="dim"), id="network")
                yield DataTable(id="members", cursor_type="none", zebra_stripes=True)
            with Vertical(id="range-side"):
                yield Label("MetalLB address range", classes="section")
                with Horizontal(id="range-fields"):
                    with Vertical():
                        yield Label("First address", classes="field-label")
                        yield Input("", id="start", placeholder="inspecting the network…")
                        yield Static("", id="start-error", classes="field-error")
                    with Vertical():
                        yield Label("Last address", classes="field-label")
                        yield Input("", id="end", placeholder="inspecting the network…")
                        yield Static("", id="end-error", classes="field-error")
                yield Static("", id="count")
                yield Static("", id="picture")
                with Horizontal(id="pool-buttons"):
                    yield Button("Install MetalLB + apply pool", id="confirm", variant="primary")
                    yield Button("Next: deploy →", id="next", variant="success")
        yield self.progress()
        yield self.log_widget()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#members", DataTable)
        table.add_column("container", key="name")
        table.add_column("IP", key="ip")
        self.query_one("#next").display = False
        if self.k3d.read_only:
            self.query_one("#confirm", Button).disabled = True
        self.focus_first_action()
        self.action_inspect()

    def action_inspect(self) -> None:
        def work() -> None:
            self.post_message(self.Inspected(self.backend.inspect_network(self.emit)))

        self.run_io(work, name="inspect network", exclusive=True)

    def on_pool_screen_inspected(self, message: Inspected) -> None:
        net = self.network = message.network
        info = Text()
        info.append("network ", style="dim")
        info.append(net.name, style="bold")
        info.append("\nsubnet  ", style="dim")
        info.append(net.subnet, style="bold")
        info.append("\ngateway ", style="dim")
        info.append(net.gateway or "(none named)", style="bold")
        self.query_one("#network", Static).update(info)
        table = self.query_one("#members", DataTable)
        with self.app.batch_update():
            table.clear()
            if net.gateway:
                table.add_row("gateway", net.gateway, key="gateway")
            for m in net.members:
                table.add_row(m.name, m.ip or "—", key=m.name)
        try:
            choice = self.backend.suggest_range(net)
        except K3dtuiError as exc:
            self.query_one("#start-error", Static).update(error_text(exc))
            return
        self.query_one("#start", Input).placeholder = f"e.g. {choice.start}"
        self.query_one("#end", Input).placeholder = f"e.g. {choice.end}"
        self.query_one("#start", Input).value = choice.start
        self.query_one("#end", Input).value = choice.end
        self.validate()

    def example(self, field: str, net: NetworkInfo) -> str:
        """An address from this network's own free range (never another subnet's)."""
        try:
            choice = self.backend.suggest_range(net)
        except K3dtuiError:
            return ""
        return choice.start if field == "start" else choice.end

    def field_problem(self, field: str, value: str, net: NetworkInfo) -> str:
        """One address alone, in words about that address (not about a one-address range)."""
        which = "first" if field == "start" else "last"
        example = self.example(field, net)
        eg = f", e.g. {example}" if example else ""
        if not value:
            return f"type the {which} address{eg}"
        try:
            ip = ipaddress.IPv4Address(value)
            subnet = ipaddress.IPv4Network(net.subnet, strict=False)
        except ValueError:
            return f"{value!r} is not an IPv4 address{eg}"
        if ip not in subnet:
            return f"{value} is outside the network's subnet {net.subnet}{eg}"
        if ip in (subnet.network_address, subnet.broadcast_address):
            kind = "network" if ip == subnet.network_address else "broadcast"
            return f"{value} is the {kind} address of {net.subnet}{eg}"
        if value == net.gateway:
            return f"{value} is the network's gateway{eg}"
        owner = next((m.name for m in net.members if m.ip == value), "")
        if owner:
            return f"{value} is in use by {owner}{eg}"
        try:
            self.backend.validate_range(f"{value}-{value}", net)
        except K3dtuiError as exc:
            return error_text(exc)
        return ""

    def validate(self) -> PoolChoice | None:
        """Each field checked alone (message under it), then the range as a whole."""
        net = self.network
        if net is None:
            return None
        start = self.query_one("#start", Input).value.strip()
        end = self.query_one("#end", Input).value.strip()
        problems = {"start": "", "end": ""}
        for field, value in (("start", start), ("end", end)):
            problems[field] = self.field_problem(field, value, net)
        choice: PoolChoice | None = None
        if not any(problems.values()):
            try:
                choice = self.backend.validate_range(f"{start}-{end}", net)
            except K3dtuiError as exc:
                problems["end"] = error_text(exc)
        for field, problem in problems.items():
            self.query_one(f"#{field}-error", Static).update(problem)
            self.query_one(f"#{field}", Input).set_class(bool(problem), "-invalid")
        self.choice = choice
        count = Text()
        if choice is not None:
            count.append(f"{choice.size} addresses", style="bold green")
            count.append(f"  {choice.range}", style="dim")
        else:
            count.append("no valid range", style="bold red")
        self.query_one("#count", Static).update(count)
        self.query_one("#picture", Static).update(subnet_picture(net, start, end))
        self.query_one("#confirm", Button).disabled = choice is None or self.busy or self.k3d.read_only
        self.refresh_bindings()
        return choice

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("start", "end"):
            self.validate()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "start":
            self.query_one("#end", Input).focus()
        else:
            self.call_after_refresh(self.run_action, "confirm")

    def action_state(self, action: str) -> bool | None:
        if action == "next":
            return self.applied
        if action == "confirm":
            return None if (self.busy or self.choice is None) else True
        return True

    def action_confirm(self) -> None:
        if self.busy or not self.allowed("confirm"):
            return
        choice = self.validate()
        if choice is None:
            return
        self.busy = True
        self.query_one("#confirm", Button).disabled = True
        self.query_one(StepProgress).begin()
        pool_range = choice.range

        def work() -> None:
            # the steps `k3dtui up` runs: the range checked against the network now (the
            # cluster this session created is removed when it does not fit), MetalLB, the pool
            chosen = self.backend.choose_pool(pool_range, self.emit)
            self.backend.install_metallb(self.emit)
            self.backend.apply_pool(chosen, self.emit)
            self.post_message(self.Applied(chosen))

        self.run_io(work, name="MetalLB and pool")

    def on_pool_screen_applied(self, message: Applied) -> None:
        self.busy = False
        self.applied = True
        self.query_one(StepProgress).finish(True, f"MetalLB ready, pool {message.pool_range} applied")
        nxt = self.query_one("#next", Button)
        nxt.display = True
        nxt.focus()
        self.refresh_bindings()

    def action_next(self) -> None:
        if self.applied:
            self.post_message(self.Done())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("confirm", "next"):
            self.call_after_refresh(self.run_action, event.button.id)

    def failed(self, what: str) -> None:
        self.busy = False
        self.validate()

    def go_back(self) -> None:
        if not self.busy:
            self.k3d.open_setup()
