"""Deploy: replicas, then image build (streaming), import, apply, per-replica readiness,
the external IP as soon as MetalLB assigns it, and a reachability probe; a clear panel
when the IP is not routable from this host."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Footer, Input, Label, Static

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import Reachability
from k3dtui.core.session import PipelineEvent
from k3dtui.ui.screens.setup import error_text
from k3dtui.ui.screens.steps import PipelineScreen
from k3dtui.ui.widgets.pods import short_pod_name
from k3dtui.ui.widgets.progress import StepProgress

POD_LINE = re.compile(r"^pod (\S+?):? ")

STEP_TITLES = {
    "image": "build the image and import it into the nodes",
    "deploy": "apply the Deployment and the LoadBalancer Service",
    "probe": "probe the external IP",
}


class DeployScreen(PipelineScreen):
    PAGE = "3 deploy"
    CSS_PATH = "deploy.tcss"
    STEPS = ["image", "deploy", "probe"]
    SPANS = ["image", "deploy", "deploy", "probe"]  # image, replicas Ready, external IP, probe
    CHANGING = frozenset({"deploy"})
    BINDINGS = [
        Binding("ctrl+s", "deploy", "deploy", id="deploy.deploy", tooltip="Build, import and deploy the app"),
        Binding("ctrl+n", "next", "live view", id="deploy.next", tooltip="Open the live view"),
    ]
    COMMAND_TITLES = {"deploy": "Build, import and deploy the app", "next": "Open the live view"}

    @dataclass
    class Deployed(Message):
        ip: str
        url: str  # the URL that answered; "" when not probed
        reach: Reachability
        skipped: str = ""  # why the probe was skipped (0 replicas), when it was
        kubeconfig: str = ""  # for `export KUBECONFIG=…`

    class Done(Message):
        """Deployed: the app moves on to the live view."""

    def __init__(self, *, deployed: bool = False) -> None:
        super().__init__()
        self.busy = False
        self.deployed = deployed  # the app runs already (opened from the live view)
        self.states: dict[str, str] = dict.fromkeys(self.STEPS, "waiting")
        self.ready: tuple[int, int] | None = None
        self.pods: Mapping[str, Any] = {}
        self.ip = ""
        self.url = ""
        self.kubeconfig = ""

    def compose(self) -> ComposeResult:
        yield self.header_widget()
        with Horizontal(id="top"):
            with Vertical(id="form"):
                yield Label("Replicas", classes="field-label")
                yield Input("3", id="replicas", type="integer")
                yield Static("", id="replicas-error", classes="field-error")
                with Horizontal(id="deploy-buttons"):
                    yield Button("Deploy", id="deploy", variant="primary")
                    yield Button("Live view →", id="next", variant="success")
            with Vertical(id="status"):
                yield Label("Steps", classes="section")
                yield Static(id="steps")
                yield Static(id="reach", classes="reach")
        yield self.progress()
        yield self.log_widget()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#next").display = self.deployed
        self.query_one("#reach").display = False
        if self.k3d.read_only:
            self.query_one("#deploy", Button).disabled = True
        self.focus_first_action()
        self.render_steps()

    def replicas(self) -> int | None:
        text = self.query_one("#replicas", Input).value.strip()
        problem = ""
        value: int | None = None
        try:
            value = int(text)
            self.backend.validate_replicas(value)
        except ValueError:
            problem, value = "replicas must be a whole number, e.g. 3", None
        except K3dtuiError as exc:
            problem, value = error_text(exc), None
        self.query_one("#replicas-error", Static).update(problem)
        self.query_one("#replicas", Input).set_class(bool(problem), "-invalid")
        return value

    def on_input_changed(self, event: Input.Changed) -> None:
        self.replicas()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.call_after_refresh(self.run_action, "deploy")

    def render_steps(self) -> None:
        marks = {"waiting": ("○", "dim"), "running": ("●", "bold yellow"), "done": ("✓", "bold green"),
                 "failed": ("✗", "bold red"), "skipped": ("-", "yellow")}
        text = Text()
        for i, step in enumerate(self.STEPS):
            if i:
                text.append("\n")
            mark, style = marks[self.states[step]]
            text.append(f"{mark} ", style=style)
            text.append(STEP_TITLES[step], style="" if self.states[step] != "waiting" else "dim")
            if step == "deploy" and self.ready is not None:
                ready, desired = self.ready
                text.append("\n    replicas ready ")
                text.append("■" * ready, style="green")
                text.append("□" * max(0, desired - ready), style="grey50")
                text.append(f" {ready}/{desired}", style="bold")
                listed = sorted(self.pods.items())
                for pod, state in listed[:6]:
                    text.append(f"\n      {short_pod_name(pod)} ", style="dim")
                    text.append(str(state), style="green" if str(state).startswith("Ready") else "yellow")
                if len(listed) > 6:
                    text.append(f"\n      … and {len(listed) - 6} more", style="dim")
            if step == "deploy":
                text.append("\n    external IP ")
                text.append(self.ip or "pending…", style="bold magenta" if self.ip else "dim")
            if step == "probe" and self.url:
                # the one line that works from this machine (the full lines are in the log)
                text.append("\n    open ", style="dim")
                text.append(self.url, style="bold magenta")
                if self.ip and self.url.replace(":80/", "/") != f"http://{self.ip}/":
                    text.append("  (from this machine)", style="dim")
        self.query_one("#steps", Static).update(text)

    def step_event(self, event: PipelineEvent) -> None:
        if event.step in self.states:
            if event.kind == "start":
                self.states[event.step] = "running"
            elif event.kind == "done":
                self.states[event.step] = "done"
            elif event.kind == "failed":
                self.states[event.step] = "failed"
        data = event.data or {}
        want = data.get("want", data.get("desired"))
        if "ready" in data and want is not None:
            self.ready = (int(data["ready"]), int(want))
        if isinstance(data.get("pods"), Mapping):
            self.pods = dict(data["pods"])
        elif event.step == "deploy" and (data.get("pod") or POD_LINE.match(event.message)):
            match = POD_LINE.match(event.message)
            pod = str(data.get("pod") or (match.group(1) if match else ""))
            if "ready" in data:
                state = "Ready" + (f" on {data['node']}" if data.get("node") else "")
            else:
                state = event.message.split(": ", 1)[-1]
            self.pods = {**self.pods, pod: state}
        if data.get("ip") or data.get("external_ip"):
            self.ip = str(data.get("ip") or data["external_ip"])
        self.render_steps()

    def action_state(self, action: str) -> bool | None:
        if action == "next":
            return self.deployed
        if action == "deploy":
            return not self.busy
        return True

    def action_deploy(self) -> None:
        if self.busy or not self.allowed("deploy"):
            return
        replicas = self.replicas()
        if replicas is None:
            return
        self.busy = True
        self.query_one("#deploy", Button).disabled = True
        self.states = dict.fromkeys(self.STEPS, "waiting")
        self.query_one(StepProgress).begin()
        self.refresh_bindings()
        backend = self.backend

        def work() -> None:
            # the steps `k3dtui up` runs, over the same session
            backend.build_and_import(self.emit)
            backend.deploy_app(replicas, self.emit)
            ip = backend.wait_external_ip(self.emit)
            reach = backend.reachability()
            probe = backend.probe(self.emit)
            url = probe.dial_url if probe.answered else ""
            skipped = probe.note if reach.routable and not probe.answered else ""
            self.post_message(self.Deployed(ip, url, reach, skipped, backend.kubeconfig_path()))

        self.run_io(work, name="deploy")

    def on_deploy_screen_deployed(self, message: Deployed) -> None:
        self.busy = False
        self.deployed = True
        self.ip, self.url = message.ip, message.url
        self.kubeconfig = message.kubeconfig
        self.states["deploy"] = "done"
        reach = self.query_one("#reach", Static)
        if message.skipped:
            self.states["probe"] = "skipped"
            self.query_one(StepProgress).finish(True, f"deployed at {message.ip}; probe skipped: {message.skipped}")
        elif message.reach.routable:
            self.states["probe"] = "done"
            self.query_one(StepProgress).finish(True, f"the app answers at {message.url}")
        else:
            self.states["probe"] = "skipped"
            panel = Text()
            panel.append(f"{message.ip} is not routable from this host\n", style="bold")
            panel.append(message.reach.explanation)
            panel.append("\nThe live view still shows pods, kills and scaling; load needs a route.", style="dim")
            reach.update(panel)
            reach.display = True
            self.query_one(StepProgress).finish(True, f"deployed; {message.ip} is not reachable from here")
        self.render_steps()
        if message.url:
            self.write_log(Text.assemble(("open:    ", "bold"), (message.url, "bold magenta"), (
                f"  (from this machine; {message.ip} is the cluster's own address)"
                if message.url.replace(":80/", "/") != f"http://{message.ip}/" else "", "dim")))
        if message.kubeconfig:
            self.write_log(Text.assemble(("kubectl: ", "bold"), (f"export KUBECONFIG={message.kubeconfig}", "bold")))
        nxt = self.query_one("#next", Button)
        nxt.display = True
        nxt.focus()
        self.refresh_bindings()

    def action_next(self) -> None:
        if self.deployed:
            self.post_message(self.Done())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("deploy", "next"):
            self.call_after_refresh(self.run_action, event.button.id)

    def go_back(self) -> None:
        if not self.busy:
            self.k3d.open_pool()

    def failed(self, what: str) -> None:
        self.busy = False
        self.query_one("#deploy", Button).disabled = self.k3d.read_only
        for step, state in self.states.items():
            if state == "running":
                self.states[step] = "failed"
        self.render_steps()
        self.refresh_bindings()
