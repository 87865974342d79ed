"""Shared fixtures for k3dtui's tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upstream import UPSTREAM, UPSTREAM_MISSING


def _missing(reason: str) -> None:
    """Skip for a missing prerequisite; under CI=true, where .ci/run provides it, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("upstream_manifest") and UPSTREAM is None:
        _missing(UPSTREAM_MISSING)
    if item.get_closest_marker("kubectl") and shutil.which("kubectl") is None:
        _missing("kubectl is not on PATH: install it (Debian: `apt-get install kubectl`, or see kubernetes.io/docs/tasks/tools)")


@pytest.fixture
def upstream_manifest() -> Path:
    """The upstream MetalLB manifest's path (skips, or fails under CI=true, without it)."""
    if UPSTREAM is None:
        _missing(UPSTREAM_MISSING)
    assert UPSTREAM is not None
    return UPSTREAM


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own state and cache folders (never the user's)."""
    monkeypatch.setenv("K3DTUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("K3DTUI_CACHE_DIR", str(tmp_path / "cache"))
    yield


def docker_client():  # type: ignore[no-untyped-def]
    """A Docker SDK client that answers, or None. With CI=true a missing engine fails the test."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except Exception as exc:
        _missing(f"no Docker engine answers: {exc}")


@pytest.fixture
def docker_engine():  # type: ignore[no-untyped-def]
    return docker_client()


from tests.simfixtures import *  # noqa: E402,F403 - sim_cluster, sim_app, SimHandle
