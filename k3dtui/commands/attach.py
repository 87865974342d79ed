"""`k3dtui attach [target options]`, and the target options every command that acts on the app takes.

``target_parser()`` is the shared parent parser: ``--kubeconfig``, ``--context``,
``--namespace``, ``--deployment``, ``--selector``, ``--service``, ``--allow-changes``. When
any of the first six is given, the command acts on that app (``core.target``) instead of
k3dtui's own cluster; ``--sim`` with them is a usage error. Attached, a changing action is
refused without ``--allow-changes`` before anything is sent (``refuse_unless_allowed``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k3dtui.core.errors import UsageError

if TYPE_CHECKING:
    from k3dtui.core.target import Attached, Target

TARGET_OPTIONS = ("kubeconfig", "context", "namespace", "deployment", "selector", "service")


def target_parser() -> argparse.ArgumentParser:
    """The target options, as a parent parser for a subcommand."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group(
        "attach to another cluster's app (read-only unless --allow-changes; the kubeconfig is only read)")
    group.add_argument("--kubeconfig", metavar="PATH", default=None,
                       help="the kubeconfig to read (default: $KUBECONFIG's first file, else ~/.kube/config)")
    group.add_argument("--context", metavar="CTX", default=None, help="its context (default: its current-context)")
    group.add_argument("--namespace", metavar="NS", default=None,
                       help="the app's namespace (default: the context's, else default; *-system is refused)")
    group.add_argument("--deployment", metavar="NAME", default=None, help="the app's Deployment")
    group.add_argument("--selector", metavar="LABELS", default=None,
                       help="or the app's pods by label selector (e.g. app=web); their one Deployment is found")
    group.add_argument("--service", metavar="NAME", default=None,
                       help="the app's Service (default: the one whose selector picks the pods, if any)")
    group.add_argument("--allow-changes", action="store_true", default=False,
                       help="attached: allow kill, scale, policy, cordon/drain and in-cluster load (only on the named Deployment)")
    return parser


def target_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, option, None) is not None for option in TARGET_OPTIONS)


def target_of(args: argparse.Namespace) -> Target:
    from k3dtui.core.target import Target

    path = getattr(args, "kubeconfig", None)
    return Target(
        kubeconfig=Path(path).expanduser() if path else None,
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
        deployment=getattr(args, "deployment", None),
        selector=getattr(args, "selector", None),
        service=getattr(args, "service", None),
        allow_changes=bool(getattr(args, "allow_changes", False)),
    )


def refuse_unless_allowed(args: argparse.Namespace, what: str) -> None:
    """Attached without ``--allow-changes``: a changing action is a usage error (exit 2, nothing sent)."""
    if target_given(args) and not getattr(args, "allow_changes", False):
        raise UsageError(
            f"refused: {what} changes the cluster, and an attached cluster is read-only; nothing was sent",
            "add --allow-changes to allow it (it acts only on the named Deployment and its pods)",
        )


def attached_for(args: argparse.Namespace, *, changing: str = "") -> Attached | None:
    """The app the target options name (resolved against its cluster), or None for k3dtui's
    own cluster. ``changing``: the action, refused before any request unless allowed."""
    if not target_given(args):
        return None
    if getattr(args, "sim", False):
        raise UsageError("--sim picks k3dtui's own simulated cluster; it does not go with the target options "
                         "(--kubeconfig, --context, --namespace, --deployment, --selector, --service)",
                         "drop --sim to attach, or drop the target options")
    from k3dtui.core.target import check_target_options, resolve_target

    target = target_of(args)
    check_target_options(target)
    if changing:
        refuse_unless_allowed(args, changing)
    return resolve_target(target)


def live_for(attached: Attached, max_replicas: int | None = None) -> Any:
    from k3dtui.core.live import LiveCluster

    return LiveCluster(attached.kubeconfig, context=attached.context, identity=attached.identity,
                       max_replicas=max_replicas)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "attach",
        parents=[target_parser()],
        help="open the live view on an app of any cluster your kubeconfig reaches (read-only unless --allow-changes)",
        description=(
            "Open the live view, with no setup screens, on a Deployment (and its Service) of any "
            "cluster your kubeconfig reaches: pods grouped by node, live. Read-only unless "
            "--allow-changes: kill and scale then act only on that Deployment. Namespaces ending "
            "in -system are refused. The kubeconfig is only read, never written."
        ),
    )
    parser.add_argument(
        "--identity", metavar="SPEC", default="",
        help="where each response names the pod that served it, for the load panel's per-pod split: "
        "header:NAME (e.g. header:X-Hostname) or json:FIELD (json:hostname); k3dtui's own app needs none",
    )
    parser.set_defaults(func=attach_command)


def attach_command(args: argparse.Namespace) -> int:
    from k3dtui.core.target import check_target_options

    check_target_options(target_of(args))  # --deployment or --selector, before the cluster is read
    identity = str(getattr(args, "identity", "") or "")
    if identity:
        from k3dtui.core.load import validate_settings
        from k3dtui.core.models import LoadSettings

        validate_settings(LoadSettings(identity=identity), need_url=False)
    attached = attached_for(args)
    assert attached is not None
    from k3dtui.ui.app import run_attached

    return int(run_attached(attached, read_only=bool(getattr(args, "read_only", False)), identity=identity))


__all__ = ["attached_for", "live_for", "refuse_unless_allowed", "register", "target_given", "target_of",
           "target_parser"]
