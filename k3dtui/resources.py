"""Files shipped inside the distribution: the app's build context and the manifests.

They are found through ``importlib.resources`` (``k3dtui/data/app`` and
``k3dtui/data/manifests``), so k3dtui works from a wheel or pipx as from a checkout.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def data() -> Traversable:
    return resources.files("k3dtui") / "data"


def manifest_text(name: str) -> str:
    """The text of ``manifests/<name>``."""
    return (data() / "manifests" / name).read_text(encoding="utf-8")


@contextlib.contextmanager
def app_dir() -> Iterator[Path]:
    """A real folder holding the app's build context (``app/``).

    Installed normally, that is the package's own folder; imported from a zip (a wheel on
    ``sys.path``), the files are copied to a temporary folder for as long as it is used.
    """
    source = data() / "app"
    if isinstance(source, Path):
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="k3dtui-app-") as tmp:
        _copy_tree(source, Path(tmp))
        yield Path(tmp)


def _copy_tree(source: Traversable, target: Path) -> None:
    for entry in source.iterdir():
        if entry.is_dir():
            (target / entry.name).mkdir()
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())
