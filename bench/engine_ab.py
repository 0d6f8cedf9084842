#!/usr/bin/env python3
"""Two or more camut binaries side by side on plain HTTP, alternated, with wrk.

    python3 bench/engine_ab.py [--rounds 3] [--iterations 8000] CAMUT [CAMUT ...]

The plain-HTTP row of bench/engine.py alone, with its plumbing: one `camut target`
(the first binary's) pinned to CPU 0; per round, each binary's `camut run
bench/campaigns/get.js --threads 1` (50 VUs, the given iterations per VU) and
`wrk -t1 -c50 -d5s`, each pinned to CPU 1. Requests are counted by the target, CPU
time is the generator's user + sys from wait4. Prints requests per CPU-second per run,
the means, and each mean's ratio to wrk's. Every run is bounded; the target is stopped
at the end.
"""

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine import BenchError, Target, bench_camut_throughput, bench_wrk, log, pinned  # noqa: E402

WRK_SECONDS = 5


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("camut", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=8000, help="iterations per VU of each camut run")
    a = ap.parse_args()
    wrk = shutil.which("wrk")
    if not wrk:
        log("wrk is missing: apt-get install wrk")
        return 2
    out_dir = tempfile.mkdtemp(prefix="camut-engine-ab-")
    rates = {}
    with Target(pinned(0, [a.camut[0], "target", "--listen", "127.0.0.1:0"]), out_dir) as target:
        for r in range(a.rounds):
            for i, camut in enumerate(a.camut):
                f = bench_camut_throughput(camut, target, out_dir, WRK_SECONDS, a.iterations, 1,
                                           name=f"camut{i}-round{r}", label=camut)
                rates.setdefault(camut, []).append(f["requests_per_cpu_s"])
            f = bench_wrk(wrk, target, out_dir, WRK_SECONDS, 1, name=f"wrk-round{r}")
            rates.setdefault("wrk", []).append(f["requests_per_cpu_s"])
    wrk_mean = sum(rates["wrk"]) / len(rates["wrk"])
    for name, runs in rates.items():
        mean = sum(runs) / len(runs)
        print(f"{name}: mean {mean:,.0f} requests per CPU-second, {mean / wrk_mean:.3f} x wrk")
    shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
