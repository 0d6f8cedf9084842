#!/usr/bin/env python3
"""Soak benchmark: one server, two drones, a long open-model run with faults.

    python3 bench/soak.py [--camut PATH] [--minutes 30] [--rate 100] [--json PATH]

What it does (only 127.0.0.1 is contacted; the run has a time limit):

* starts two `camut target`s, A and B, and one `camut server` (local deployer);
* runs a campaign of two drones, open model (`arrivalRate` per drone), for
  `--minutes`; the drone in seat 0 (`camut.drone.index`) loads target A, the other
  target B, so that what each target served is what one drone made;
* at `--kill-at` (fraction of the run, default 1/3) SIGKILLs drone local-soak-0 and starts it
  again with the same command line: the server declares it lost, the new process
  dials in and is told the run is over for it;
* at `--flap-at` (default 2/3) drops the server's port with an nftables rule for
  `--flap-s` seconds (default 5, under the server's 10 s drone timeout): both drones
  keep loading, hold their statistics and deliver them when the link returns;
* samples the RSS of the server and of both drones every `--sample-s` seconds and
  prints a table per minute;
* at the end compares, per drone, what its target served with what the results
  merged: the surviving drone must match exactly (lost 0, double-counted 0); the
  killed one may fall short by what it made after its last stored delta, which the
  results must report (`degraded`, the drone named in `lost`); more than served is a
  double count.

Needs root for nftables (`nft`, Debian's nftables); `--no-flap` leaves the flap out.
Exit status: 0 when every check held, 1 when one failed, 2 when a tool or the binary
is missing.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from engine import BenchError, Target, child_env, find_camut, free_port, log  # noqa: E402
from ec2_deploy import cli, stop, wait_port  # noqa: E402

CAMPAIGN = "soak"


def rss_kb(pid):
    """Resident memory of a process, KB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def drone_pid(index):
    """The pid of the campaign's local drone `local-soak-INDEX`, or None."""
    out = subprocess.run(["pgrep", "-f", "--", f"--id local-{CAMPAIGN}-{index}"],
                         capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    return pids[0] if pids else None


def campaign_source(targets, rate, seconds):
    return (
        f"exports.campaign = {{ id: '{CAMPAIGN}', drones: 2, users: 200, arrivalRate: {rate}, "
        f"duration: '{seconds}s', deploy: {{ deployer: 'local' }} }};\n"
        f"var targets = {json.dumps(targets)};\n"
        "exports.test = function (done) {\n"
        "  camut.http({ url: targets[camut.drone.index] + '/?delay_ms=5', operation: 'get' },\n"
        "             function () { done(); });\n"
        "};\n"
    )


class Flap:
    """An nftables table dropping TCP to one port on this host for a while."""

    def __init__(self, port):
        self.table = f"camut_soak_{os.getpid()}"
        self.port = port

    def __enter__(self):
        rules = (f"table inet {self.table} {{\n  chain input {{\n"
                 "    type filter hook input priority 0; policy accept;\n"
                 f"    tcp dport {self.port} drop\n  }}\n}}\n")
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["nft", "delete", "table", "inet", self.table], check=False)
        return False


def restart_drone(pid, log_path):
    """SIGKILLs a drone and starts it again with the same command line and environment."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    out = open(log_path, "wb")
    return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def main():
    ap = argparse.ArgumentParser(description="soak benchmark: one server, two drones, faults (loopback only)")
    ap.add_argument("--camut", help="the camut binary (default: the release build)")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=100, help="iterations started per second per drone")
    ap.add_argument("--kill-at", type=float, default=1 / 3, help="fraction of the run when local-soak-0 is SIGKILLed")
    ap.add_argument("--flap-at", type=float, default=2 / 3, help="fraction of the run when the network flaps")
    ap.add_argument("--flap-s", type=float, default=5)
    ap.add_argument("--no-flap", action="store_true")
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--json", help="also write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print its path")
    args = ap.parse_args()
    camut = find_camut(args.camut)
    if not os.access(camut, os.X_OK):
        log(f"no camut binary at {camut}: cargo build --release -p camut-cli")
        return 2
    if not args.no_flap and not shutil.which("nft"):
        log("nft is missing: apt-get install nftables (or --no-flap)")
        return 2
    seconds = int(args.minutes * 60)
    work = tempfile.mkdtemp(prefix="camut-soak-")
    procs = []
    samples = []
    events = []
    checks = []
    try:
        targets = []
        for name in ("a", "b"):
            d = os.path.join(work, f"target-{name}")
            os.makedirs(d)
            t = Target([camut, "target", "--listen", "127.0.0.1:0"], d)
            t.__enter__()
            procs.append(t)
            targets.append(t)
        data = os.path.join(work, "server")
        os.makedirs(data)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [camut, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(data, "server.log"), "wb"),
            stderr=subprocess.STDOUT, env=child_env({"CAMUT_LOG": "info"}), start_new_session=True)
        wait_port(port, 30, "camut server")
        src = os.path.join(work, f"{CAMPAIGN}.js")
        with open(src, "w") as f:
            f.write(campaign_source([t.url for t in targets], args.rate, seconds))
        cli(camut, url, "new", src)
        cli(camut, url, "spawn", CAMPAIGN)
        cli(camut, url, "deploy", CAMPAIGN)
        cli(camut, url, "start", CAMPAIGN, "--no-wait")
        began = time.monotonic()
        log(f"soak: {args.minutes} min, {args.rate}/s per drone; work directory {work}")
        kill_at = began + seconds * args.kill_at
        flap_at = None if args.no_flap else began + seconds * args.flap_at
        restarted = None
        deadline = began + seconds + 120
        next_sample = began
        finished = False
        while time.monotonic() < deadline:
            now = time.monotonic()
            if restarted is None and now >= kill_at:
                pid = drone_pid(0)
                if pid is None:
                    raise BenchError(f"local-{CAMPAIGN}-0 is not running at the kill")
                served = [t.requests() for t in targets]
                restarted = restart_drone(pid, os.path.join(work, "drone-0-restarted.log"))
                events.append({"t_s": round(now - began),
                               "event": f"local-{CAMPAIGN}-0 (pid {pid}) SIGKILLed with {served[0]} + "
                                        f"{served[1]} requests served (A + B), started again as pid "
                                        f"{restarted.pid}"})
                log(events[-1]["event"])
            if flap_at is not None and now >= flap_at:
                flap_at = None
                with Flap(port):
                    events.append({"t_s": round(now - began),
                                   "event": f"server port {port} dropped for {args.flap_s} s"})
                    log(events[-1]["event"])
                    time.sleep(args.flap_s)
            if now >= next_sample:
                next_sample += args.sample_s
                samples.append({
                    "t_s": round(now - began),
                    "server_kb": rss_kb(server.pid),
                    "drone0_kb": rss_kb(drone_pid(0) or 0),
                    "drone1_kb": rss_kb(drone_pid(1) or 0),
                    "served_a": targets[0].requests(),
                    "served_b": targets[1].requests(),
                })
            if now > began + seconds:
                r = json.loads(cli(camut, url, "results", CAMPAIGN, "--json"))
                if r["finished"]:
                    finished = True
                    break
            time.sleep(1)
        if not finished:
            raise BenchError(f"the run did not finish within {seconds + 120} s")
        # Finished: every request the drones made was answered, so the targets counted it.
        served_by_target = [t.requests() for t in targets]
        r = json.loads(cli(camut, url, "results", CAMPAIGN, "--json"))
        # Seats (camut.drone.index) go in the order drones join, so drone local-soak-N
        # loads the target of its seat, whatever N.
        rows = {d["id"]: d for d in (r["summary"] or {}).get("drones", [])}
        ids = [f"local-{CAMPAIGN}-{i}" for i in (0, 1)]
        served = [served_by_target[rows[i]["index"]] if i in rows else 0 for i in ids]
        merged = [rows.get(i, {}).get("requests", 0) for i in ids]
        lost_lines = r["lost"]
        survivor_ok = merged[1] == served[1]
        checks.append((f"{ids[1]} (never killed): merged == served", survivor_ok,
                       f"{merged[1]} merged, {served[1]} served"))
        checks.append(("no double count", merged[0] <= served[0] and merged[1] <= served[1],
                       f"merged {merged}, served {served}"))
        shortfall = served[0] - merged[0]
        reported = r["degraded"] and any(ids[0] in x for x in lost_lines)
        checks.append((f"{ids[0]} (killed): shortfall reported", shortfall == 0 or reported,
                       f"{shortfall} requests short; degraded={r['degraded']}; lost={lost_lines}"))
        summary_total = (r["summary"] or {}).get("requests", 0)
        checks.append(("total merged == sum of drones", summary_total == sum(merged),
                       f"{summary_total} vs {sum(merged)}"))
    finally:
        if "server" in locals():
            try:
                subprocess.run([camut, "-s", url, "kill", CAMPAIGN], capture_output=True, timeout=60,
                               env=child_env())
            except Exception:  # noqa: BLE001 - best effort clean-up
                pass
            stop(server)
        if "restarted" in locals() and restarted is not None:
            stop(restarted)
        subprocess.run(["pkill", "-KILL", "-f", "--", f"--id local-{CAMPAIGN}-"], check=False)
        for t in procs:
            t.stop()
        if args.keep:
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"## Soak: {args.minutes:g} min, {args.rate:g} iterations/s per drone, "
          f"{datetime.date.today().isoformat()}\n")
    for e in events:
        print(f"- at {e['t_s']} s: {e['event']}")
    print(f"\n| minute | server RSS MB | {CAMPAIGN}-0 RSS MB | {CAMPAIGN}-1 RSS MB | served A | served B |")
    print("|---:|---:|---:|---:|---:|---:|")
    per_minute = {}
    for s in samples:
        per_minute[s["t_s"] // 60] = s
    for minute, s in sorted(per_minute.items()):
        print(f"| {minute} | {s['server_kb'] / 1024:.1f} | {s['drone0_kb'] / 1024:.1f} | "
              f"{s['drone1_kb'] / 1024:.1f} | {s['served_a']} | {s['served_b']} |")
    print(f"\nlocal-{CAMPAIGN}-0: served {served[0]}, merged {merged[0]} (short by {shortfall}, "
          f"reported: {reported}); local-{CAMPAIGN}-1: served {served[1]}, merged {merged[1]}")
    for name, ok, detail in checks:
        print(f"- {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"minutes": args.minutes, "rate": args.rate, "events": events, "samples": samples,
                       "served": served, "merged": merged, "lost": lost_lines,
                       "checks": [{"name": n, "ok": o, "detail": d} for n, o, d in checks]}, f, indent=2)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
