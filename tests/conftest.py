"""Shared fixtures for k3dtui's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


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
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture
def docker_engine():  # type: ignore[no-untyped-def]
    return docker_client()


from tests.simfixtures import *  # noqa: E402,F403 - sim_cluster, sim_app, SimHandle
