"""Browser tests: a real headless Chromium (Debian's package, installed by .ci/run) driven by
Playwright. Without Chromium or Playwright they skip and say how to get them; under CI=true
they fail instead."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from tests.conftest import _missing


def chromium_path() -> str | None:
    explicit = os.environ.get("K3DTUI_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser"):
        if importlib.util.find_spec("playwright") is None:
            _missing("the Python package playwright is not installed: pip install -e '.[dev]'")
        if chromium_path() is None:
            _missing("no Chromium on PATH: install Debian's (apt-get install chromium) or set K3DTUI_CHROMIUM")
