"""Soak: N minutes of pod kills and scaling under new-connection load, on the simulated cluster.

Starts `k3dtui up --sim` in a temporary state folder, then runs `k3dtui load --new-connections`
for the whole time while a pod of the app is killed every --kill-every seconds and the app is
scaled between --low and --high every --scale-every seconds. Every --sample seconds it
prints the RSS and open fds of every k3dtui process (the daemon, its data plane, the load
command and its worker). At the end: requests, errors by kind, the per-pod sum check
(sum of per-pod responses = requests - errors) and whether memory stayed flat (the last
quarter's RSS within 15 % of the second quarter's).

    python tests/benchmarks/bench_soak.py [--minutes 10] [--kill-every 2] [--scale-every 30]

Not part of the test run (tests/benchmarks is not collected); every request goes to 127.0.0.1.

Measured on the 2-core development VM, 10 minutes, a kill every 2 s, 3 <-> 8 every 30 s,
8 new-connection workers: 1,196,097 requests, 171 errors (0.014 %: 168 timeouts, 3 resets),
per-pod sum = requests - errors exactly; the daemon's RSS flat (115 MiB from 4 min on), the
load's processes flat, but the data plane grew ~30 MiB a minute (50 -> 318 MiB): every killed
pod's log text was kept. Since then the data plane keeps the logs of 32 stopped pods at most
(sim/podio.py MAX_STOPPED). Re-run for 3.5 minutes with that bound: 506,216 requests, 0.041 %
errors, sum exact; the data plane flat at 92-93 MiB from 80 s on; the daemon still warming up
(59 -> 100 MiB at 200 s; the 10-minute run had it flat at 115 MiB from 4 min on), so the
script's own verdict says GROWING for runs this short. The 10-minute run with the bound (and
the controllers' bounded turns): 1,161,396 requests, 325 errors (0.028 %: 314 timeouts, 11
resets), 290 kills, 20 scales, per-pod sum = requests - errors exactly; the daemon flat at
140 MiB from 4 min on, the data plane flat at 97 MiB from 90 s on, fds flat (86-116 in all);
the script's verdict: flat (312.5 MiB at 150 s, 347.7 MiB at 570 s, all processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
NAME = "soak"


def k3dtui(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k3dtui", "--sim", *argv, "--name", NAME], env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def processes(root_pids: list[int]) -> dict[str, psutil.Process]:
    """Every k3dtui process: the given ones and their children, by a short label."""
    found: dict[str, psutil.Process] = {}
    for pid in root_pids:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for p in family:
            try:
                with_args = " ".join(p.cmdline()[1:4])
            except psutil.Error:
                continue  # gone, or a zombie not reaped yet
            found[f"{p.pid} {with_args}"[:60]] = p
    return found


def sample(procs: dict[str, psutil.Process]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for label, p in procs.items():
        try:
            out[label] = (p.memory_info().rss, p.num_fds())
        except psutil.Error:
            continue
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kill-every", type=float, default=2.0)
    ap.add_argument("--scale-every", type=float, default=30.0)
    ap.add_argument("--low", type=int, default=3)
    ap.add_argument("--high", type=int, default=8)
    ap.add_argument("--sample", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="k3dtui-soak-") as tmp:
        env = {**os.environ, "K3DTUI_STATE_DIR": f"{tmp}/state", "K3DTUI_CACHE_DIR": f"{tmp}/cache",
               "PYTHONPATH": str(ROOT)}
        up = k3dtui(env, "up", "--replicas", str(args.low))
        if up.returncode != 0:
            print(up.stderr, file=sys.stderr)
            return 1
        state = json.loads((Path(tmp) / "state" / "sim" / NAME / "state.json").read_text())
        load = subprocess.Popen(
            [sys.executable, "-m", "k3dtui", "--sim", "load", "--name", NAME, "--json", "--new-connections",
             "--duration", str(seconds), "--concurrency", str(args.concurrency), "--max-error-share", "100"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        roots = [int(state["pid"]), load.pid]
        start = time.monotonic()
        next_kill, next_scale, next_sample = start + args.kill_every, start + args.scale_every, start
        high = False
        kills = scales = 0
        history: list[tuple[float, dict[str, tuple[int, int]]]] = []
        try:
            while load.poll() is None and time.monotonic() - start < seconds + 30:
                now = time.monotonic()
                if now >= next_kill:
                    kills += k3dtui(env, "kill", "--random").returncode == 0
                    next_kill += args.kill_every
                if now >= next_scale:
                    high = not high
                    scales += k3dtui(env, "scale", str(args.high if high else args.low)).returncode == 0
                    next_scale += args.scale_every
                if now >= next_sample:
                    snap = sample(processes(roots))
                    history.append((now - start, snap))
                    rss = sum(r for r, _ in snap.values())
                    fds = sum(f for _, f in snap.values())
                    print(f"{now - start:7.0f} s  rss {rss / 2**20:8.1f} MiB  fds {fds:5d}  "
                          + "  ".join(f"[{k.split()[0]} {r / 2**20:.0f}M/{f}]" for k, (r, f) in snap.items()),
                          flush=True)
                    next_sample += args.sample
                time.sleep(0.05)
            out, err = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
            k3dtui(env, "down", "--yes")
    result = json.loads(out)
    errors = sum(result["errors"].values())
    per_pod = sum(result["per_pod"].values())
    print(f"requests {result['requests']:,}  responses {per_pod:,}  errors {errors:,} "
          f"({100 * errors / max(1, result['requests']):.3f} %) by kind {result['errors']}")
    print(f"kills {kills}  scales {scales}  load exit {load.returncode}")
    ok_sum = per_pod == result["requests"] - errors
    print(f"per-pod sum = requests - errors: {'yes' if ok_sum else 'NO'} ({per_pod:,} vs {result['requests'] - errors:,})")
    flat = True
    if len(history) >= 4:
        # the processes that ran through: the second quarter's sample against the last one
        # taken while the load still ran (the load's own processes end with it)
        quarter = len(history) // 4
        t_early, early_s = history[quarter]
        t_late, late_s = history[-2]
        both = set(early_s) & set(late_s)
        early = sum(early_s[k][0] for k in both)
        late = sum(late_s[k][0] for k in both)
        flat = late <= early * 1.15
        print(f"memory of {len(both)} processes: {early / 2**20:.1f} MiB at {t_early:.0f} s, "
              f"{late / 2**20:.1f} MiB at {t_late:.0f} s: {'flat' if flat else 'GROWING'}")
    if err.strip():
        print(err.strip().splitlines()[-1], file=sys.stderr)
    return 0 if ok_sum and flat else 1


if __name__ == "__main__":
    sys.exit(main())
