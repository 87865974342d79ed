"""Setup: name/servers/agents validated as you type, the doctor's findings, the existing
cluster to reuse or delete, and Create with k3d's output streaming into a log."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from k3dtui.core.doctor import Check
from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import ClusterInfo
from k3dtui.ui.backend import HeaderInfo
from k3dtui.ui.screens.modals import ConfirmScreen
from k3dtui.ui.screens.steps import PipelineScreen
from k3dtui.ui.widgets.progress import StepProgress


def error_text(exc: K3dtuiError) -> str:
    return exc.message + (f" — {exc.hint}" if exc.hint else "")


class SetupScreen(PipelineScreen):
    PAGE = "1 setup"
    CSS_PATH = "setup.tcss"
    STEPS = ["cluster"]
    CHANGING = frozenset({"create", "delete_existing", "delete_listed"})
    BINDINGS = [
        Binding("ctrl+s", "create", "create", id="setup.create", tooltip="Create the cluster (or reuse the one that exists)"),
        Binding("ctrl+r", "doctor", "doctor", id="setup.doctor", tooltip="Run the environment checks again"),
        Binding("ctrl+n", "next", "next", id="setup.next", tooltip="Go on to the MetalLB address pool"),
        Binding("ctrl+d", "delete_listed", "delete", id="setup.delete_listed", tooltip="Delete the cluster highlighted in the list (asks first)"),
    ]
    COMMAND_TITLES = {
        "create": "Create the cluster",
        "doctor": "Run the doctor checks again",
        "next": "Next: MetalLB address pool",
        "delete_listed": "Delete the highlighted cluster…",
    }
    PALETTE_ONLY = (("delete_existing", "Delete the existing cluster", "Delete it (asks for confirmation)"),)

    @dataclass
    class DoctorDone(Message):
        findings: list[Check]

    @dataclass
    class Found(Message):
        name: str
        info: ClusterInfo | None
        header: HeaderInfo

    @dataclass
    class Listed(Message):
        clusters: list[ClusterInfo]

    @dataclass
    class Created(Message):
        name: str

    @dataclass
    class Deleted(Message):
        name: str

    class Done(Message):
        """The cluster runs: the app moves on to the pool screen."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self.created = False
        self.existing: ClusterInfo | None = None
        self.listed: list[ClusterInfo] = []
        self._find_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield self.header_widget()
        with Horizontal(id="top"):
            with VerticalScroll(id="form"):
                yield Label("Cluster name", classes="field-label")
                yield Input(self.k3d.header_info.name, id="name", placeholder="simple-app-cluster")
                yield Static("", id="name-error", classes="field-error")
                with Horizontal(id="counts"):
                    with Vertical():
                        yield Label("Servers", classes="field-label")
                        yield Input("1", id="servers", type="integer")
                        yield Static("", id="servers-error", classes="field-error")
                    with Vertical():
                        yield Label("Agents", classes="field-label")
                        yield Input("2", id="agents", type="integer")
                        yield Static("", id="agents-error", classes="field-error")
                with Horizontal(id="form-buttons"):
                    yield Button("Create cluster", id="create", variant="primary")
                    yield Button("Next: pool →", id="next", variant="success")
                yield Static("", id="form-error", classes="field-error")
                yield Label("Clusters on this host", classes="section")
                table: DataTable[str] = DataTable(id="clusters", cursor_type="row", zebra_stripes=True)
                table.add_columns("name", "servers", "agents", "state")
                yield table
                yield Static(Text("enter: reuse it and go on · ctrl+d: delete it", style="dim"), id="clusters-hint")
            with VerticalScroll(id="side"):
                yield Label("Doctor", classes="section")
                yield Static(Text("checking…", style="dim"), id="doctor")
                yield Label("Existing cluster", classes="section")
                yield Static(Text("looking…", style="dim"), id="existing")
                with Horizontal(id="existing-buttons"):
                    yield Button("Reuse", id="reuse")
                    yield Button("Delete…", id="delete", variant="error")
        yield self.progress()
        yield self.log_widget()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#next").display = False
        self.query_one("#existing-buttons").display = False
        if self.k3d.read_only:
            self.query_one("#create", Button).disabled = True
            self.query_one("#form-error", Static).update("read-only: creating and deleting are off")
        self.focus_first_action()
        self.action_doctor()
        self._lookup()
        self.list_clusters()

    # -- validation as you type --------------------------------------------------------
    def _check(self, field: str) -> bool:
        value = self.query_one(f"#{field}", Input).value.strip()
        message = ""
        try:
            if field == "name":
                self.backend.validate_name(value)
            else:
                number = int(value)
                if field == "servers":
                    self.backend.validate_counts(number, 2)
                else:
                    self.backend.validate_counts(1, number)
        except ValueError:
            message = f"{field} must be a whole number, e.g. {'1' if field == 'servers' else '2'}"
        except K3dtuiError as exc:
            message = error_text(exc)
        self.query_one(f"#{field}-error", Static).update(message)
        self.query_one(f"#{field}", Input).set_class(bool(message), "-invalid")
        return not message

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("name", "servers", "agents"):
            self._check(event.input.id)
            self.query_one("#form-error", Static).update("")
        if event.input.id == "name" and self._check("name"):
            if self._find_timer is not None:
                self._find_timer.stop()
            self._find_timer = self.set_timer(0.4, self._lookup)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        order = ["name", "servers", "agents"]
        if event.input.id in order[:-1]:
            self.query_one(f"#{order[order.index(event.input.id) + 1]}", Input).focus()
        else:
            self.call_after_refresh(self.run_action, "create")

    def spec(self) -> tuple[str, int, int] | None:
        fields_ok = [self._check(f) for f in ("name", "servers", "agents")]
        if not all(fields_ok):
            self.query_one("#form-error", Static).update("fix the fields marked above first")
            return None
        name = self.query_one("#name", Input).value.strip()
        servers = int(self.query_one("#servers", Input).value)
        agents = int(self.query_one("#agents", Input).value)
        try:
            self.backend.validate_counts(servers, agents)
        except K3dtuiError as exc:
            self.query_one("#form-error", Static).update(error_text(exc))
            return None
        return name, servers, agents

    # -- doctor, existing cluster ------------------------------------------------------
    def action_doctor(self) -> None:
        backend = self.backend  # read on the UI thread: the screen may be gone when work runs

        def work() -> None:
            self.post_message(self.DoctorDone(backend.doctor()))

        self.run_io(work, name="doctor", exclusive=True)

    def on_setup_screen_doctor_done(self, message: DoctorDone) -> None:
        text = Text()
        for i, f in enumerate(message.findings):
            if i:
                text.append("\n")
            mark, style = ("✓", "green") if f.ok else (("✗", "bold red") if f.required else ("!", "bold yellow"))
            text.append(f"{mark} ", style=style)
            text.append(f.name, style="bold")
            text.append(f"  {f.detail}")
            if not f.ok and f.fix:
                text.append(f"\n    → {f.fix}", style="yellow")
        self.query_one("#doctor", Static).update(text)

    def _lookup(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        try:
            self.backend.validate_name(name)
        except K3dtuiError:
            return  # the field shows why; nothing to look up

        backend = self.backend  # read on the UI thread: the screen may be gone when work runs

        def work() -> None:
            header = backend.use_name(name)
            self.post_message(self.Found(name, backend.find(), header))

        self.run_io(work, name="find", exclusive=True)

    def on_setup_screen_found(self, message: Found) -> None:
        self.k3d.set_header(message.header)
        self.existing = message.info
        text = Text()
        info = message.info
        if info is None:
            text.append(f"no cluster named '{message.name}' yet — Create makes it", style="dim")
        else:
            text.append(f"'{info.name}' ", style="bold")
            text.append("running" if info.running else "stopped", style="green" if info.running else "yellow")
            text.append(
                f"\n{info.servers_running}/{info.servers} servers, {info.agents_running}/{info.agents} agents"
            )
        self.query_one("#existing", Static).update(text)
        self.query_one("#existing-buttons").display = info is not None
        self.query_one("#reuse", Button).disabled = self.k3d.read_only or self.busy
        self.query_one("#delete", Button).disabled = self.k3d.read_only or self.busy

    # -- every cluster on this host: reuse or delete ------------------------------------
    def list_clusters(self) -> None:
        backend = self.backend  # read on the UI thread: the screen may be gone when work runs

        def work() -> None:
            self.post_message(self.Listed(backend.list_clusters()))

        self.run_io(work, name="list clusters", exclusive=True)

    def on_setup_screen_listed(self, message: Listed) -> None:
        self.listed = list(message.clusters)
        table = self.query_one("#clusters", DataTable)
        table.clear()
        for info in self.listed:
            state = Text("running", style="green") if info.running else Text("stopped", style="yellow")
            table.add_row(
                info.name, f"{info.servers_running}/{info.servers}", f"{info.agents_running}/{info.agents}", state,
                key=info.name,
            )
        table.display = bool(self.listed)
        hint = self.query_one("#clusters-hint", Static)
        if not self.listed:
            hint.update(Text("none yet", style="dim"))
        elif self.k3d.read_only:
            hint.update(Text("enter: use its name (read-only: no reuse or delete)", style="dim"))
        else:
            hint.update(Text("enter: reuse it and go on · ctrl+d: delete it", style="dim"))
        self.refresh_bindings()

    def highlighted(self) -> ClusterInfo | None:
        table = self.query_one("#clusters", DataTable)
        if not self.listed or not (0 <= table.cursor_row < len(self.listed)):
            return None
        return self.listed[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        info = next((c for c in self.listed if c.name == name), None)
        if info is None:
            return
        self.query_one("#name", Input).value = info.name
        self.query_one("#servers", Input).value = str(info.servers)
        self.query_one("#agents", Input).value = str(info.agents)
        if self.allowed("create"):
            self.call_after_refresh(self.run_action, "create")

    def highlighted_visible(self) -> bool:
        """The highlighted row is on screen (ctrl+d never deletes a row the user cannot see)."""
        table = self.query_one("#clusters", DataTable)
        if not table.display or not self.listed or table.region.height == 0:
            return False
        y = table.region.y + table.header_height + table.cursor_row - round(table.scroll_y)
        form = self.query_one("#form").region
        inside_table = table.region.y + table.header_height <= y < table.region.bottom
        return inside_table and form.y <= y < form.bottom

    def action_delete_listed(self) -> None:
        info = self.highlighted()
        if info is None or self.busy or not self.allowed("delete_listed"):
            return
        if not self.highlighted_visible():
            self.query_one("#clusters", DataTable).focus()  # scrolls it into view
            self.notify("the highlighted cluster was out of view: check it, then ctrl+d again", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(info.name, switch=True)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete the cluster '{info.name}'?",
                f"This deletes the cluster '{info.name}' with its nodes, MetalLB and the app.",
                f"Delete {info.name}",
            ),
            answered,
        )

    # -- actions -----------------------------------------------------------------------
    def action_state(self, action: str) -> bool | None:
        if action == "next":
            return self.created
        if action == "delete_existing":
            return self.existing is not None and not self.busy
        if action == "delete_listed":
            return bool(self.listed) and not self.busy
        if action == "create":
            return not self.busy
        return True

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for button in ("#create", "#reuse", "#delete"):
            self.query_one(button, Button).disabled = busy or self.k3d.read_only
        self.refresh_bindings()

    def action_create(self) -> None:
        if self.busy or not self.allowed("create"):
            return
        spec = self.spec()
        if spec is None:
            return
        name, servers, agents = spec
        self._set_busy(True)
        self.query_one(StepProgress).begin()

        def work() -> None:
            self.k3d.call_from_thread(self.k3d.set_header, self.backend.use_name(name))
            self.backend.create_cluster(servers, agents, self.emit, reuse=True)
            self.post_message(self.Created(name))

        self.run_io(work, name="create cluster")

    def on_setup_screen_created(self, message: Created) -> None:
        self._set_busy(False)
        self.created = True
        self.query_one(StepProgress).finish(True, f"cluster {message.name} is ready")
        nxt = self.query_one("#next", Button)
        nxt.display = True
        nxt.focus()
        self.refresh_bindings()
        self._lookup()
        self.list_clusters()

    def action_next(self) -> None:
        if self.created:
            self.post_message(self.Done())

    def action_delete_existing(self) -> None:
        info = self.existing
        if info is None or not self.allowed("delete_existing"):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(info.name)

        self.app.push_screen(
            ConfirmScreen(
                "Delete the cluster?",
                f"This deletes the k3d cluster '{info.name}' with its nodes, MetalLB and the app.",
                f"Delete {info.name}",
            ),
            answered,
        )

    def _delete(self, name: str, *, switch: bool = False) -> None:
        self._set_busy(True)
        self.query_one(StepProgress).begin()
        current = self.query_one("#name", Input).value.strip()

        def work() -> None:
            if switch:
                self.backend.use_name(name)
            try:
                self.backend.delete_cluster(self.emit)
            finally:
                if switch and current != name:
                    self.backend.use_name(current)
            self.post_message(self.Deleted(name))

        self.run_io(work, name="delete cluster")

    def on_setup_screen_deleted(self, message: Deleted) -> None:
        self._set_busy(False)
        if message.name == self.query_one("#name", Input).value.strip():
            self.created = False
            self.query_one("#next").display = False
        self.query_one(StepProgress).finish(True, f"cluster {message.name} deleted")
        self._lookup()
        self.list_clusters()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = {"create": "create", "reuse": "create", "next": "next", "delete": "delete_existing"}.get(
            event.button.id or ""
        )
        if action:
            self.call_after_refresh(self.run_action, action)

    def failed(self, what: str) -> None:
        self._set_busy(False)
