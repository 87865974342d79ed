"""core and sim never import textual, nor the UI.

(rich may be loaded by a third-party package, e.g. httpx's optional CLI, so it is not
checked here; the import-linter contract checks that k3dtui's own modules never import it.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["k3dtui.core", "k3dtui.sim", "k3dtui.cli"])
def test_importing_package_loads_no_textual(package: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] == 'textual' or n.startswith('k3dtui.ui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{package} pulled in: {out.stdout.strip()}"


def test_the_commands_import_neither_the_kubernetes_client_nor_the_simulators_internals() -> None:
    """Importing every command module (what `k3dtui --help` does) loads no kubernetes client,
    Docker SDK, urllib3 nor the simulator's server side: those come with core, when used."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import k3dtui.commands as pkg\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('kubernetes', 'docker', 'urllib3')\n"
        "             or n.startswith(('k3dtui.sim.api', 'k3dtui.sim.store', 'k3dtui.sim.controllers',\n"
        "                              'k3dtui.sim.statefiles', 'k3dtui.sim.daemon')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"k3dtui.commands pulled in: {out.stdout.strip()}"
