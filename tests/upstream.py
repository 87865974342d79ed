"""Where the tests find MetalLB manifests.

Tests that need *the upstream* MetalLB v0.15.2 manifest (its checksum, its full object
list, kubectl applying it) look for it, in order:

1. ``$K3DTUI_METALLB_MANIFEST``: a path the person running the tests names;
2. ``../shared/fixtures/metallb-native-v0.15.2.yaml`` beside the checkout;
3. k3dtui's own download cache (``k3dtui up`` fills it on a connected machine).

A candidate counts only when its sha256 is the pinned one. Such tests carry the
``upstream_manifest`` marker: with no file they skip with a reason saying how to get it,
and with ``CI=true`` they fail instead (see ``conftest.py``).

Tests that only need *a* MetalLB with its webhook use k3dtui's own
``manifests/metallb-minimal.yaml`` (``MINIMAL``), which every checkout has.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from k3dtui.core.metallb import METALLB_SHA256, METALLB_URL, METALLB_VERSION

ENV = "K3DTUI_METALLB_MANIFEST"
CHECKOUT = Path(__file__).resolve().parents[1]
MINIMAL = CHECKOUT / "manifests" / "metallb-minimal.yaml"
FILENAME = f"metallb-native-{METALLB_VERSION}.yaml"


def _user_cache() -> Path:
    # Read before the tests' autouse fixture points K3DTUI_CACHE_DIR at a temporary folder.
    import platformdirs

    base = os.environ.get("K3DTUI_CACHE_DIR") or platformdirs.user_cache_dir("k3dtui")
    return Path(base) / "metallb" / METALLB_VERSION / "metallb-native.yaml"


def _verifies(path: Path) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == METALLB_SHA256
    except OSError:
        return False


def find_upstream() -> tuple[Path | None, str]:
    """The upstream manifest's path, or None and why it is missing (with how to get it)."""
    tried: list[str] = []
    named = os.environ.get(ENV)
    if named:
        path = Path(named).expanduser()
        if _verifies(path):
            return path, ""
        # a path the person named that is missing or wrong is a mistake worth saying
        return None, f"${ENV}={named} is not the MetalLB {METALLB_VERSION} manifest (missing, or sha256 is not {METALLB_SHA256})"
    for candidate in (CHECKOUT.parent / "shared" / "fixtures" / FILENAME, _user_cache()):
        if _verifies(candidate):
            return candidate, ""
        tried.append(str(candidate))
    return None, (
        f"the upstream MetalLB {METALLB_VERSION} manifest is not here (looked in {', '.join(tried)}): "
        f"download {METALLB_URL} and set {ENV}=/path/to/it, or run `k3dtui up` once on a connected machine to cache it"
    )


UPSTREAM, UPSTREAM_MISSING = find_upstream()
# Tests marked ``upstream_manifest`` only run when UPSTREAM is set; this placeholder keeps
# module-level constants typed as a Path.
FIXTURE: Path = UPSTREAM or CHECKOUT / "tests" / ".no-upstream-manifest"
