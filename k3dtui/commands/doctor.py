"""`k3dtui doctor [--json]`: what this machine has for the real path; exit 0 when k3d is usable."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "doctor",
        parents=[common],
        help="check Docker, k3d, kubectl and routing; say which provider k3dtui will use",
        description="Check what the real k3d path needs. Exit code 0 when the k3d provider "
        "is usable, 1 otherwise (k3dtui then uses the simulated cluster).",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from k3dtui.core.doctor import k3d_usable, report_json, run_doctor

    report = run_doctor(getattr(args, "name", None))
    checks = report.checks
    usable = k3d_usable(checks)
    if args.json:
        print(json.dumps(report_json(checks, report.engine, report.reach)))
        return 0 if usable else 1
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(f"[{mark}] {c.name.ljust(width)}  {c.detail}")
        if not c.ok and c.fix:
            print(f"       {' ' * width}  fix: {c.fix}")
    eng = report.engine
    if eng.context is not None:
        print(f"engine: context {eng.context!r}, endpoint {eng.endpoint}, kind {eng.kind}")
    print("load: " + ("direct to the MetalLB IP" if report.reach.routable
                      else "inside the cluster's network (a container on k3d-<name>)"))
    print("k3d provider usable" if usable else "k3d provider NOT usable: k3dtui will use the simulated cluster")
    return 0 if usable else 1
