#!/usr/bin/env python3
"""Two or more camut binaries side by side on plain HTTP, alternated, with wrk.

    python3 bench/engine_ab.py [--rounds 3] [--iterations 8000] CAMUT [CAMUT ...]

Starts one `camut target` (the first binary's) on 127.0.0.1 pinned to CPU 0, then per
round runs each binary's `camut run bench/campaigns/get.js --threads 1` (50 VUs, the
given iterations per VU) and `wrk -t1 -c50 -d5s`, each pinned to CPU 1. Requests are
counted by the target (`/_camut/stats`), CPU time is the generator's user + sys from
wait4. Prints requests per CPU-second per run, the means, and each mean's ratio to
wrk's. Every run is bounded (iterations, or wrk's 5 s); the target is stopped at the end.
"""

import argparse
import json
import os
import socket
import subprocess
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served(url):
    with urllib.request.urlopen(url + "/_camut/stats", timeout=5) as r:
        return json.load(r)["requests"]


def measure(cmd, url, timeout_s):
    before = served(url)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            raise SystemExit(f"timed out: {' '.join(cmd)}")
        time.sleep(0.05)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return served(url) - before, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("camut", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=8000)
    a = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    target = subprocess.Popen(["taskset", "-c", "0", a.camut[0], "target", "--listen",
                               f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                served(url)
                break
            except OSError:
                time.sleep(0.1)
        campaign = os.path.join(HERE, "campaigns", "get.js")
        rates = {}
        for _ in range(a.rounds):
            for name in a.camut + ["wrk"]:
                if name == "wrk":
                    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c50", "-d5s", url + "/"]
                else:
                    cmd = ["taskset", "-c", "1", name, "run", campaign, "--threads", "1", "-q",
                           "--iterations", str(a.iterations), "--env", "TARGET=" + url]
                n, cpu = measure(cmd, url, 120)
                rates.setdefault(name, []).append(n / cpu)
                print(f"{name}: {n:,} requests, {cpu:.2f} CPU-s, {n / cpu:,.0f} per CPU-second",
                      flush=True)
        wrk = sum(rates["wrk"]) / len(rates["wrk"])
        for name, r in rates.items():
            mean = sum(r) / len(r)
            print(f"{name}: mean {mean:,.0f} requests per CPU-second, {mean / wrk:.3f} x wrk")
    finally:
        target.terminate()
        target.wait(timeout=10)


if __name__ == "__main__":
    main()
