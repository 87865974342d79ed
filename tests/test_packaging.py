"""k3dtui works from a wheel, not only from a checkout: app/ and manifests/ ship inside the
distribution and are found through importlib.resources."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (found,) = out.glob("k3dtui-*.whl")
    return found


def test_wheel_carries_the_app_and_the_manifests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("app/main.py", "app/Dockerfile", "app/requirements.txt",
                 "manifests/app.yaml", "manifests/k3d-cluster.yaml", "manifests/metallb-pool.yaml",
                 "manifests/metallb-minimal.yaml"):
        assert f"k3dtui/data/{path}" in names, f"{path} missing from {wheel.name}"
    entry = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "k3dtui = k3dtui.cli:main" in entry


def test_resources_resolve_from_the_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    """Import k3dtui from the wheel file (zipimport), far from any checkout, and read the
    files it ships: a path relative to the repository would not resolve there."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import k3dtui, k3dtui.resources as r\n"
        "assert k3dtui.__file__.startswith(sys.argv[1]), k3dtui.__file__\n"
        "assert 'kind: Deployment' in r.manifest_text('app.yaml')\n"
        "with r.app_dir() as d:\n"
        "    assert (d / 'Dockerfile').read_text().startswith('#')\n"
        "    assert 'def create_app' in (d / 'main.py').read_text()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code, str(wheel)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
