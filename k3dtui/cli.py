"""argv → settings → either the TUI or a headless command.

Every subcommand lives in ``k3dtui/commands/<module>.py`` and registers itself through
``register(subparsers, common)``; ``common`` carries ``--sim`` and ``--name``.
Errors of k3dtui's own (``K3dtuiError``) print one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from k3dtui import __version__
from k3dtui.core.errors import K3dtuiError, file_error

DEFAULT_NAME = "simple-app-cluster"

COMMAND_MODULES = ("doctor", "sim", "cluster", "pool", "actions", "load", "serve", "node", "policy", "attach")


def common_parser(*, inherit: bool = False) -> argparse.ArgumentParser:
    """``--sim`` and ``--name``. With ``inherit`` (a subcommand's copy) they have no default of
    their own, so ``k3dtui --sim up`` keeps what was given before the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("cluster")
    group.add_argument(
        "--sim",
        action="store_true",
        default=argparse.SUPPRESS if inherit else False,
        help="use the embedded simulated cluster instead of k3d (the default when Docker or k3d is missing)",
    )
    group.add_argument(
        "--name",
        default=argparse.SUPPRESS if inherit else DEFAULT_NAME,
        help=f"the cluster name (default: {DEFAULT_NAME})",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    inherited = common_parser(inherit=True)
    parser = argparse.ArgumentParser(
        prog="k3dtui",
        parents=[common],
        description=(
            "Build a multi-node k3d cluster with MetalLB and a load-balanced FastAPI app, then "
            "watch Kubernetes balance traffic: pods per node, live, with the responses each pod "
            "served. Without a subcommand, opens the terminal UI."
        ),
    )
    parser.add_argument("--version", action="version", version=f"k3dtui {__version__}")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="TUI: disable every action that changes the cluster",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"k3dtui.commands.{module}").register(sub, inherited)
    return parser


def _report(exc: K3dtuiError) -> int:
    print(f"k3dtui: error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"k3dtui: {exc.hint}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        name = getattr(args, "name", None)
        if name is not None:  # one check for every command taking --name (the TUI's too)
            from k3dtui.core.spec import validate_name

            validate_name(name)
        if args.command is None:
            from k3dtui.ui.app import run_tui

            return int(run_tui(args))
        code: int = args.func(args)
        return code
    except K3dtuiError as exc:
        return _report(exc)
    except OSError as exc:  # k3dtui's own files: a read-only or full state folder, never a traceback
        return _report(file_error(exc))
    except Exception as exc:  # a bug: still one line (K3DTUI_DEBUG=1 shows the traceback)
        if os.environ.get("K3DTUI_DEBUG"):
            raise
        return _report(K3dtuiError(f"unexpected {type(exc).__name__}: {exc}",
                                   "this is a bug in k3dtui: run again with K3DTUI_DEBUG=1 for the traceback and report it"))
    except KeyboardInterrupt:
        print("k3dtui: interrupted", file=sys.stderr)
        return 130
