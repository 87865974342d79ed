"""Which provider k3dtui uses: k3d when Docker answers and k3d v5 is on PATH, else the
embedded simulated cluster, with the reason either way."""

from __future__ import annotations

from collections.abc import Callable

from k3dtui.core.errors import K3dtuiError
from k3dtui.core.provider import ClusterInfo, Provider


def probe_docker(timeout: float = 3.0) -> tuple[bool, str]:
    """(answers, one line: the engine version or why not)."""
    from k3dtui.core import docker as dockerx  # the Docker SDK: only when asked (not for --sim)

    try:
        cli = dockerx.connect(timeout=timeout)
        version = cli.version().get("Version", "?")
    except K3dtuiError as exc:
        return False, exc.message
    except Exception as exc:  # any SDK/transport failure is "not reachable"
        return False, dockerx.not_reachable(exc).message
    try:
        ep = dockerx.endpoint()
        where = ep.host if ep.context == "default" else f"{ep.host} (Docker context {ep.context!r})"
    except K3dtuiError:
        where = dockerx.engine_address()
    return True, f"Docker {version} at {where}"


def probe_k3d(timeout: float = 10.0) -> tuple[bool, str]:
    """(k3d v5 usable, one line: the version or why not)."""
    from k3dtui.core import k3d

    try:
        version = k3d.version_sync(timeout=timeout)
        k3d.require_v5(version)
    except K3dtuiError as exc:
        return False, exc.message
    return True, f"k3d {version}"


def k3d_usable() -> tuple[bool, str]:
    """(the k3d provider can be used, the reason)."""
    docker_ok, docker_why = probe_docker()
    if not docker_ok:
        return False, docker_why
    k3d_ok, k3d_why = probe_k3d()
    if not k3d_ok:
        return False, k3d_why
    return True, f"{docker_why} and {k3d_why} on PATH"


def _cleanup_stale_generators() -> None:
    """In-network load generators left by a k3dtui that was killed (k3dtui.core.innetwork)."""
    import contextlib

    from k3dtui.core import docker as dockerx
    from k3dtui.core.innetwork import cleanup_stale

    with contextlib.suppress(K3dtuiError):
        cleanup_stale(dockerx.connect(timeout=3.0))


def select_provider(name: str, force_sim: bool) -> tuple[Provider, str]:
    """(provider, one-line reason it was chosen)."""
    if not force_sim:
        ok, why = k3d_usable()
        if ok:
            from k3dtui.core.k3d_provider import K3dProvider

            _cleanup_stale_generators()
            return K3dProvider(name), f"k3d: {why}"
        reason = f"simulated cluster: {why}"
    else:
        reason = "simulated cluster: --sim given"
    from k3dtui.sim.provider import SimProvider

    return SimProvider(name), reason


def _sim_clusters() -> list[ClusterInfo]:
    """Simulated clusters whose state folder has a live daemon (through ``SimProvider``)."""
    from k3dtui.core import paths
    from k3dtui.sim.provider import SimProvider

    root = paths.state_dir() / "sim"
    found: list[ClusterInfo] = []
    if not root.is_dir():
        return found
    for folder in sorted(root.iterdir()):
        if not folder.is_dir():
            continue
        provider = SimProvider(folder.name)
        if provider.pid() is None:
            continue
        state = provider.state()
        try:
            servers, agents = int(state.get("servers", 1)), int(state.get("agents", 0))
        except (TypeError, ValueError):
            servers, agents = 1, 0
        found.append(ClusterInfo(folder.name, servers, agents, servers, agents))
    return found


def sim_dial_for(server: str) -> Callable[[str, int], tuple[str, int]] | None:
    """The load-balancer map of k3dtui's running simulated cluster whose API server is
    ``server``, or None (any other cluster: its addresses are dialled as they are). A simulated
    cluster's external IPs exist only inside k3dtui, so ``attach`` and ``load`` attached to
    one reach them through its map, as ``k3dtui --sim`` does."""
    from k3dtui.sim.provider import SimProvider

    for info in _sim_clusters():
        provider = SimProvider(info.name)
        if provider.server() == server:
            return provider.dial
    return None


def serve_sim(name: str, servers: int, agents: int) -> int:
    """Run the simulated cluster ``name`` in the foreground until Ctrl+C; the exit code."""
    from k3dtui.sim import daemon

    return daemon.main(["serve", "--name", name, "--servers", str(servers), "--agents", str(agents)])


def list_clusters(force_sim: bool) -> list[ClusterInfo]:
    """The clusters on this host of the provider ``select_provider`` would choose: k3d's
    (``k3d cluster list``) when k3d is usable and not ``force_sim``, else the running
    simulated ones."""
    if not force_sim and k3d_usable()[0]:
        import asyncio

        from k3dtui.core import k3d

        return asyncio.run(k3d.cluster_list())
    return _sim_clusters()
