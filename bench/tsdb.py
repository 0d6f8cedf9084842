#!/usr/bin/env python3
"""TSDB benchmark: what the OpenTSDB connector costs and how fast it pushes.

    python3 bench/tsdb.py [--camut target/release/camut] [--quick] [--json PATH]

Figures (see bench/README.md):

* points/s over telnet: `camut run` of bench/campaigns/points.js (custom points
  only, per-call mode) to Debian's victoria-metrics on loopback, from the start of
  the run to the end of its flush; side by side, a plain Python socket writing the
  same number of pre-formatted `put` lines to the same listener (the TSDB's own
  ceiling). Every point is read back from victoria-metrics' export API.
* requests per generator CPU-second of `camut run --threads 1` of
  bench/campaigns/get.js (50 VUs, one GET per iteration) against `camut target`:
  without a TSDB, with per-call points and with aggregates, both to
  victoria-metrics over telnet. Rounds alternate the three so that drift in the
  machine's speed hits them alike; the median of the rounds is reported.

The target and victoria-metrics are pinned to CPU 0, camut to CPU 1. Only
127.0.0.1 is contacted; every run has a time limit. Nothing is built here.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from engine import (  # noqa: E402 - bench/engine.py holds the shared plumbing
    CAMPAIGNS, BenchError, Target, camut_run, child_env, find_camut, log, pinned,
)

URLOPEN = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Victoria:
    """victoria-metrics on free loopback ports, pinned to `cpu`, in `out_dir`."""

    def __init__(self, out_dir, cpu):
        self.telnet = free_port()
        self.http = free_port()
        self.dir = os.path.join(out_dir, "vm-data")
        shutil.rmtree(self.dir, ignore_errors=True)
        exe = shutil.which("victoria-metrics")
        if not exe:
            raise BenchError("victoria-metrics not found: apt-get install victoria-metrics")
        cmd = pinned(cpu, [exe, f"-opentsdbListenAddr=127.0.0.1:{self.telnet}",
                           f"-httpListenAddr=127.0.0.1:{self.http}", f"-storageDataPath={self.dir}",
                           "-retentionPeriod=100y"])
        log("victoria-metrics: " + " ".join(cmd))
        self.log = open(os.path.join(out_dir, "vm.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=child_env())
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.telnet), 1).close()
                socket.create_connection(("127.0.0.1", self.http), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BenchError("victoria-metrics did not start; see vm.log")
                time.sleep(0.1)

    def samples(self, selector, want, wait_s=60):
        """Samples matching `selector` once `want` are there (ingestion is asynchronous)."""
        deadline = time.monotonic() + wait_s
        n = 0
        while True:
            URLOPEN(urllib.request.Request(f"http://127.0.0.1:{self.http}/internal/force_flush",
                                           method="POST"), timeout=30).read()
            q = urllib.parse.urlencode({"match[]": selector})
            with URLOPEN(f"http://127.0.0.1:{self.http}/api/v1/export?{q}", timeout=120) as r:
                n = sum(len(json.loads(line)["values"]) for line in r if line.strip())
            if n >= want or time.monotonic() > deadline:
                return n
            time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


SINK = """
import socket, sys, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
def drain(c):
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""


class Sink:
    """A TCP listener that reads and discards, pinned to `cpu`: a TSDB that costs
    next to nothing, to measure what the points cost camut alone."""

    def __init__(self, cpu):
        self.proc = subprocess.Popen(pinned(cpu, [sys.executable, "-c", SINK]), stdout=subprocess.PIPE,
                                     env=child_env())
        self.port = int(self.proc.stdout.readline())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def with_tsdb(src, out_dir, name, tsdb):
    """A copy of campaign `src` with a `tsdb` section appended."""
    path = os.path.join(out_dir, name + ".js")
    with open(src, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        out.write(f.read())
        out.write(f"\nexports.campaign.tsdb = {json.dumps(tsdb)};\n")
    return path


def bench_points(camut, vm, out_dir, points, cpu):
    users = 10
    iterations = max(1, points // (users * 100))
    total = users * iterations * 100
    campaign = with_tsdb(os.path.join(CAMPAIGNS, "points.js"), out_dir, "points", {
        "host": "127.0.0.1", "mode": "call", "precision": "s", "queue": total, "flushTimeout": 600000,
    })
    run, summary = camut_run(camut, campaign, out_dir, "points",
                             ["--threads", "1", "--users", str(users), "--iterations", str(iterations),
                              "--tsdb", f"127.0.0.1:{vm.telnet}"], 900, cpu)
    t = summary.get("tsdb") or {}
    if t.get("produced") != total or t.get("sent") != total:
        raise BenchError(f"points: expected {total} produced and sent, got {t}")
    arrived = vm.samples('{__name__="bench.points",campaign="bench-points"}', total)
    # The same number of lines, formatted beforehand, written by one plain socket.
    now = int(time.time())
    lines = b"".join(b"put bench.raw %d %d campaign=bench-raw client=py vu=%d slot=s%d\n"
                     % (now, i % 100, i % 10 + 1, i % 10) for i in range(total))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", vm.telnet)) as s:
        s.sendall(lines)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    raw_s = time.monotonic() - started
    raw_arrived = vm.samples('{__name__="bench.raw"}', total)
    return {
        "points": total,
        "camut_wall_s": run.wall_s,
        "camut_cpu_s": run.cpu_s,
        "camut_points_per_s": total / run.wall_s,
        "camut_points_per_cpu_s": total / run.cpu_s,
        "arrived": arrived,
        "raw_socket_s": raw_s,
        "raw_points_per_s": total / raw_s,
        "raw_arrived": raw_arrived,
    }


def bench_requests(camut, target, vm, sink, out_dir, seconds, rounds, cpu):
    """Requests per camut CPU-second without a TSDB, with per-call points, with aggregates.

    Two loads: get.js in a closed loop (as fast as the target answers) and
    get_rate.js at a fixed 20,000 requests/s, where every variant does the same work
    whatever the TSDB takes from CPU 0 (which the target shares with it). Per-call
    points go to victoria-metrics and, to see camut's own cost, to a discarding sink.
    """
    call = {"host": "127.0.0.1", "mode": "call", "precision": "s", "queue": 5_000_000, "flushTimeout": 600_000}
    tsdb = {
        "call": (call, vm.telnet),
        "call-sink": (call, sink.port),
        "aggregate": ({"host": "127.0.0.1", "precision": "s"}, vm.telnet),
    }
    result = {}
    for load, file in (("closed", "get.js"), ("rate", "get_rate.js")):
        src = os.path.join(CAMPAIGNS, file)
        variants = {"off": (src, [])}
        for mode, (section, port) in tsdb.items():
            variants[mode] = (with_tsdb(src, out_dir, f"{load}-{mode}", section),
                              ["--tsdb", f"127.0.0.1:{port}"])
        per = {k: [] for k in variants}
        for r in range(rounds):
            for name, (campaign, extra) in variants.items():
                args = ["--threads", "1", "--duration", f"{seconds}s", "--env", f"TARGET={target.url}"] + extra
                run, summary = camut_run(camut, campaign, out_dir, f"{load}-{name}-{r}", args,
                                         seconds * 6 + 60, cpu)
                requests = int(summary.get("requests") or 0)
                t = summary.get("tsdb") or {}
                if t.get("dropped") or t.get("unsent"):
                    raise BenchError(f"{load}-{name}: points were dropped, the figures would flatter: {t}")
                per[name].append(requests / run.cpu_s)
                log(f"  {load} round {r + 1} {name}: {requests} requests, {run.cpu_s:.2f} CPU-s, "
                    f"{requests / run.cpu_s:,.0f} req/CPU-s, tsdb points sent {t.get('sent', 0)}")
        med = {k: statistics.median(v) for k, v in per.items()}
        result[load] = {
            "requests_per_cpu_s": med,
            "all": per,
            "call_vs_off": med["call"] / med["off"],
            "call_sink_vs_off": med["call-sink"] / med["off"],
            "aggregate_vs_off": med["aggregate"] / med["off"],
        }
    result["rounds"] = rounds
    result["seconds"] = seconds
    return result


def main():
    ap = argparse.ArgumentParser(description="Camut TSDB connector benchmark. Loopback only.")
    ap.add_argument("--camut", help="camut binary (default: target/release/camut)")
    ap.add_argument("--quick", action="store_true", help="smaller runs (~1 minute)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    ap.add_argument("--out", metavar="DIR", help="logs and summaries (default: bench/out/tsdb-DATE)")
    args = ap.parse_args()
    camut = find_camut(args.camut)
    if not os.access(camut, os.X_OK):
        log(f"camut binary not found at {camut}; build it first:\n    cargo build --release -p camut-cli")
        return 2
    target_cpu, gen_cpu = (0, 1) if len(os.sched_getaffinity(0)) >= 2 else (0, 0)
    out_dir = args.out or os.path.join(HERE, "out", "tsdb-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    log(f"logs and summaries: {out_dir}")
    points = 200_000 if args.quick else 1_000_000
    seconds, rounds = (3, 2) if args.quick else (5, 3)
    vm = Victoria(out_dir, target_cpu)
    sink = Sink(target_cpu)
    try:
        log("points/s over telnet")
        p = bench_points(camut, vm, out_dir, points, gen_cpu)
        with Target(pinned(target_cpu, [camut, "target", "--listen", "127.0.0.1:0"]), out_dir) as target:
            log("requests per CPU-second, TSDB off / per-call / aggregates")
            r = bench_requests(camut, target, vm, sink, out_dir, seconds, rounds, gen_cpu)
    finally:
        vm.stop()
        sink.stop()
    result = {"points": p, "requests": r}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print("| points over telnet to victoria-metrics | points/s | |")
    print("|---|---|---|")
    print(f"| camut run, 1 worker, {p['points']:,} `camut.tsdb` points | {p['camut_points_per_s']:,.0f} "
          f"| {p['camut_wall_s']:.2f} s, {p['camut_points_per_cpu_s']:,.0f} per camut CPU-s; "
          f"{p['arrived']:,} read back |")
    print(f"| plain Python socket, the same lines pre-formatted | {p['raw_points_per_s']:,.0f} "
          f"| {p['raw_arrived']:,} read back |")
    print(f"| camut / plain socket | {p['camut_points_per_s'] / p['raw_points_per_s']:.2f} | |")
    print()
    print("| requests per camut CPU-s | TSDB off | per-call points to a sink | per-call points to VM "
          "| aggregates to VM |")
    print("|---|---|---|---|---|")

    def less(x):
        return f"{(1 - x) * 100:.1f}% less"

    for load, label in (("closed", "closed loop, 50 VUs"), ("rate", "20,000 req/s fixed")):
        m, x = r[load]["requests_per_cpu_s"], r[load]
        print(f"| {label} | {m['off']:,.0f} | {m['call-sink']:,.0f} ({less(x['call_sink_vs_off'])}) "
              f"| {m['call']:,.0f} ({less(x['call_vs_off'])}) "
              f"| {m['aggregate']:,.0f} ({less(x['aggregate_vs_off'])}) |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"bench: {e}")
        sys.exit(1)
