"""`k3dtui actions`: not built yet (owned by its issue)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    return None
