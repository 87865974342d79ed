"""The entry point of one in-cluster load worker: a pod of k3dtui's load Job.

Shipped in the load run's ConfigMap as ``worker.py`` next to ``loadworker.py`` (both standard
library only; ``k3dtui.core.incluster`` builds the ConfigMap). It runs the same worker as a
local load run, with no parent to talk to: the settings come in ``K3DTUI_LOAD`` (the run's
totals and ``workers``: this worker takes its share by ``JOB_COMPLETION_INDEX``), and its
cumulative figures go out as one JSON line on stdout about twice a second, then a last line
with ``"final": true``. It exits 0 at its deadline (or request count), and on SIGTERM (the Job
was deleted) after writing the final line. A worker that cannot start writes a final line
with ``"failed"`` and exits 1.

Each line: ``seq`` (grows by one per line), ``pod``, ``node``, ``index``, the worker's figures
(``requests``, ``responses``, ``rps``, ``status``, ``errors``, ``per_pod``, ``per_node``,
``client_addrs``, ``elapsed``, ``final``, ``finished_reason``), ``pod_nodes`` (each answering
pod → the node its X-Node header named, when it names one) and ``hist``/``window_hist``
(sparse latency histograms, bucket → count, in ``loadworker``'s buckets) so that the reader can
merge the workers' latencies exactly.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

try:  # inside the pod the two files sit side by side
    from loadworker import (  # type: ignore[import-not-found,unused-ignore]
        _UNKNOWN,
        RunSettings,
        Worker,
        _runner,
    )
except ImportError:  # pragma: no cover - imported from the package (tests, type checks)
    from k3dtui.core.loadworker import _UNKNOWN, RunSettings, Worker, _runner

SETTINGS_ENV = "K3DTUI_LOAD"
EVERY = 0.5  # seconds between lines
RESOLVE_FOR = 10.0  # seconds a worker retries resolving the Service's name before it gives up


def share(total: int, workers: int, index: int) -> int:
    """This worker's part of ``total`` split over ``workers`` (the first ones take the rest)."""
    return total // workers + (1 if index < total % workers else 0)


def settings_for(raw: dict[str, Any], index: int) -> RunSettings:
    """The run's totals → this worker's settings (concurrency, rate and requests split)."""
    workers = max(1, int(raw.get("workers") or 1))
    index = min(max(0, index), workers - 1)
    rate = raw.get("rate")
    requests = raw.get("requests")
    return RunSettings(
        url=str(raw["url"]),
        mode=str(raw.get("mode") or "keep-alive"),
        concurrency=max(1, share(int(raw.get("concurrency") or 1), workers, index)),
        rate=None if rate is None else float(rate) / workers,
        duration=None if raw.get("duration") is None else float(raw["duration"]),
        requests=None if requests is None else max(1, share(int(requests), workers, index)),
        timeout=float(raw.get("timeout") or 2.0),
        identity=str(raw.get("identity") or ""),
    )


class Lines:
    """The worker's ``publish`` hook: one JSON line per ``EVERY`` seconds, and the final one."""

    def __init__(self, worker: Worker, out: Any, pod: str, node: str, index: int) -> None:
        self.worker = worker
        self.out = out
        self.base = {"pod": pod, "node": node, "index": index}
        self.seq = 0
        self.last = 0.0

    def __call__(self, snap: dict[str, Any]) -> None:
        final = bool(snap.get("final"))
        now = time.monotonic()
        if not final and now - self.last < EVERY:
            return
        self.last = now
        self.write(snap)

    def write(self, snap: dict[str, Any]) -> None:
        stats = self.worker.stats
        hist, window = stats.histograms()
        pod_nodes: dict[str, str] = {}
        for results in stats.by_announcer.values():
            for _code, pod, node, _client in results:
                if pod != _UNKNOWN and node != _UNKNOWN:
                    pod_nodes[pod.decode("latin-1")] = node.decode("latin-1")
        line = {k: v for k, v in snap.items() if k not in ("rps_history", "sent_at", "epoch", "paths")}
        line.update(self.base, seq=self.seq, hist=hist, window_hist=window, pod_nodes=pod_nodes)
        self.seq += 1
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.out.flush()


def _failed(out: Any, why: str, base: dict[str, Any]) -> int:
    out.write(json.dumps({**base, "seq": 0, "final": True, "running": False, "failed": why}) + "\n")
    out.flush()
    return 1


def main(out: Any = None) -> int:
    out = out if out is not None else sys.stdout
    pod = os.environ.get("POD_NAME", "")
    node = os.environ.get("NODE_NAME", "")
    index = int(os.environ.get("JOB_COMPLETION_INDEX") or 0)
    base = {"pod": pod, "node": node, "index": index}
    try:
        settings = settings_for(json.loads(os.environ[SETTINGS_ENV]), index)
    except (KeyError, ValueError, TypeError) as exc:
        return _failed(out, f"bad {SETTINGS_ENV}: {exc}", base)
    deadline = time.monotonic() + RESOLVE_FOR
    while True:
        try:
            worker = Worker(settings, None)
            break
        except OSError as exc:  # the Service's name may not resolve for a moment
            if time.monotonic() >= deadline:
                return _failed(out, f"cannot resolve {settings.url}: {exc}", base)
            time.sleep(0.5)
        except ValueError as exc:
            return _failed(out, str(exc), base)
    lines = Lines(worker, out, pod, node, index)
    worker.publish = lines
    # the Job was deleted (or the run stopped): end with the final line, then exit
    signal.signal(signal.SIGTERM, lambda *_: worker._finish("stopped"))
    signal.signal(signal.SIGINT, lambda *_: worker._finish("stopped"))
    try:
        with _runner() as runner:
            runner.run(worker.run())
    except Exception as exc:  # a bug: say so on the log rather than with a traceback only
        return _failed(out, f"{type(exc).__name__}: {exc}", base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
