"""Files shipped inside the distribution: the app's build context and the manifests.

They are found through ``importlib.resources`` (``k3dtui/data/app`` and
``k3dtui/data/manifests``), so k3dtui works from a wheel or pipx as from a checkout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path


def data() -> Traversable:
    return resources.files("k3dtui") / "data"


def manifest_text(name: str) -> str:
    """The text of ``manifests/<name>``."""
    return (data() / "manifests" / name).read_text(encoding="utf-8")


@contextlib.contextmanager
def app_dir() -> Iterator[Path]:
    """A real folder holding the app's build context (``app/``)."""
    with resources.as_file(data() / "app") as path:
        yield Path(path)
