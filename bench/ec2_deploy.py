#!/usr/bin/env python3
"""EC2 deploy benchmark: what the ec2 deployer uploads, and how long a deploy takes.

    python3 bench/ec2_deploy.py [--camut PATH] [--upload PATH ...] [--instances 2] [--rounds 2]

For each binary given with --upload (default: the release `camut`, and the
`profiling` build beside it when there is one — the release profile as it was
before it dropped debug info), side by side in one run:

* its size on disk and the bytes sent to each instance (gzip-compressed when that
  saves at least a fifth, as the deployer decides; read from the server's log);
* the wall time of `camut deploy` of a campaign of N instances (default 2): the
  ssh connection, the version check, the upload, the start command and the wait
  until every drone has dialled in.

The EC2 API is moto_server on 127.0.0.1 and every instance is one OpenSSH server
on 127.0.0.1 (the ec2 deployer's `address_override`, a test-only setting), as in
docs/EC2.md's "Try it locally"; the drones are real processes. Rounds alternate the
binaries so that drift in the machine's speed hits them alike; the median is
reported. Each round uploads to a fresh remote path, so every deploy uploads.
Nothing is built here; needs moto_server (pip install 'moto[server]'), sshd and
ssh-keygen (openssh-server, openssh-client), gzip, and root (sshd's /run/sshd).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from engine import BenchError, child_env, find_camut, free_port, log  # noqa: E402

MOTO_IMAGE = "ami-03cf127a"  # an image moto ships with
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def wait_port(port, within_s, what):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {within_s} s")


def start(cmd, log_path, env=None):
    f = open(log_path, "wb")
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                            env=child_env(env), start_new_session=True)


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)


class Peers:
    """moto_server and a throw-away sshd on free loopback ports, in `work`."""

    def __init__(self, work, no_gzip=False):
        self.work = work
        self.procs = []
        self.no_gzip = no_gzip

    def __enter__(self):
        try:
            self.moto_port = free_port()
            self.procs.append(start(["moto_server", "-H", "127.0.0.1", "-p", str(self.moto_port)],
                                    os.path.join(self.work, "moto.log")))
            wait_port(self.moto_port, 30, "moto_server")
            ssh = os.path.join(self.work, "sshd")
            os.makedirs(ssh)
            keygen(os.path.join(ssh, "host_key"))
            self.user_key = os.path.join(ssh, "user_key")
            keygen(self.user_key)
            shutil.copy(self.user_key + ".pub", os.path.join(ssh, "authorized_keys"))
            os.makedirs("/run/sshd", exist_ok=True)
            self.ssh_port = free_port()
            conf = os.path.join(ssh, "sshd_config")
            with open(conf, "w") as f:
                f.write(f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nHostKey {ssh}/host_key\n"
                        f"AuthorizedKeysFile {ssh}/authorized_keys\nPasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                        f"PidFile {ssh}/sshd.pid\nMaxSessions 64\nMaxStartups 64\n")
                if self.no_gzip:
                    # The "instances" find no gzip: their PATH is a directory of links to
                    # every command but gzip, so the deployer uploads uncompressed.
                    path = os.path.join(ssh, "bin")
                    os.makedirs(path)
                    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
                        for name in os.listdir(d) if os.path.isdir(d) else []:
                            link = os.path.join(path, name)
                            if name != "gzip" and not os.path.lexists(link):
                                os.symlink(os.path.join(d, name), link)
                    f.write(f"SetEnv PATH={path}\n")
            self.known_hosts = os.path.join(ssh, "known_hosts")
            with open(ssh + "/host_key.pub") as pub, open(self.known_hosts, "w") as f:
                f.write(f"[127.0.0.1]:{self.ssh_port} {pub.read()}")
            sshd = shutil.which("sshd") or "/usr/sbin/sshd"
            self.procs.append(start([sshd, "-D", "-f", conf, "-E", os.path.join(ssh, "sshd.log")],
                                    os.path.join(ssh, "sshd.out")))
            wait_port(self.ssh_port, 15, "sshd")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            stop(p)
        # The deployer's ssh master connections outlive a server killed mid-way.
        if hasattr(self, "ssh_port"):
            subprocess.run(["pkill", "-KILL", "-f", f"ssh -E .* -p {self.ssh_port} "], check=False)
        return False


def server_config(peers, upload, remote):
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    return f"""default_deployer = "aws"
[deployers.aws]
kind = "ec2"
[deployers.aws.settings]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{peers.moto_port}"
image = "{MOTO_IMAGE}"
instance_type = "t3.micro"
running_timeout_s = 30
[deployers.aws.settings.ssh]
user = "{user}"
key_file = "{peers.user_key}"
known_hosts_file = "{peers.known_hosts}"
host_key_policy = "strict"
address_override = "127.0.0.1:{peers.ssh_port}"
sudo = ""
local_binary = "{upload}"
remote_binary = "{remote}/bin/camut"
drone_config = "{remote}/{{id}}.env"
start_command = "set -a; . {{config}}; set +a; exec {{binary}} drone"
connect_retry_s = 20
configure_timeout_s = 300
"""


def campaign_source(name, instances, target_url):
    return (f"exports.campaign = {{ id: '{name}', drones: {instances}, users: 1, iterations: 1, "
            f"deploy: {{ deployer: 'aws', zone: 'us-east-1a' }} }};\n"
            f"exports.test = function (done) {{ camut.http('{target_url}/', function () {{ done(); }}); }};\n")


def cli(camut, url, *args, timeout_s=600):
    out = subprocess.run([camut, "-s", url, *args], capture_output=True, text=True,
                         env=child_env(), timeout=timeout_s)
    if out.returncode != 0:
        raise BenchError(f"camut {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def one_deploy(camut, peers, upload, instances, work, n):
    """Spawns, deploys (timed) and kills a campaign whose drones run `upload`; returns
    (seconds, bytes sent per instance, gzip?)."""
    remote = os.path.join(work, f"remote-{n}")
    os.makedirs(remote)
    data = os.path.join(work, f"server-{n}")
    os.makedirs(data)
    conf = os.path.join(data, "camut.toml")
    with open(conf, "w") as f:
        f.write(server_config(peers, upload, remote))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = os.path.join(data, "server.log")
    server = start([camut, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", data, "-c", conf],
                   server_log, dict(AWS_ENV, CAMUT_LOG="info"))
    try:
        wait_port(port, 30, "camut server")
        name = f"deploy{n}"
        src = os.path.join(work, f"{name}.js")
        with open(src, "w") as f:
            f.write(campaign_source(name, instances, "http://127.0.0.1:9"))
        cli(camut, url, "new", src)
        cli(camut, url, "spawn", name)
        began = time.monotonic()
        cli(camut, url, "deploy", name)
        took = time.monotonic() - began
        with open(server_log, errors="replace") as f:
            text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        sent = [int(m.group(1)) for m in re.finditer(r"bytes=(\d+)", text)]
        gz = [m.group(1) == "true" for m in re.finditer(r"gzip=(\w+)", text)]
        if len(sent) < instances:
            raise BenchError(f"{upload}: {len(sent)} uploads logged for {instances} instances (log: {server_log})")
        cli(camut, url, "kill", name)
        return took, statistics.median(sent), all(gz)
    finally:
        stop(server)
        # The drones run detached on the "instances": end them.
        subprocess.run(["pkill", "-KILL", "-f", f"{remote}/bin/camut drone"], check=False)


def main():
    ap = argparse.ArgumentParser(description="ec2 deployer upload and deploy-time benchmark (loopback only)")
    ap.add_argument("--camut", help="the camut binary running the server (default: the release build)")
    ap.add_argument("--upload", action="append",
                    help="a binary to upload as the drones' camut (repeatable; default: release, and profiling)")
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-gzip", action="store_true",
                    help="instances without gzip: every upload goes uncompressed (as before compression)")
    ap.add_argument("--json", help="also write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print its path")
    args = ap.parse_args()
    camut = find_camut(args.camut)
    if not os.access(camut, os.X_OK):
        log(f"no camut binary at {camut}: cargo build --release -p camut-cli")
        return 2
    uploads = args.upload or [camut]
    if not args.upload:
        profiling = os.path.join(os.path.dirname(os.path.dirname(camut)), "profiling", "camut")
        if os.access(profiling, os.X_OK):
            uploads.append(profiling)
    for tool in ("moto_server", "ssh-keygen", "gzip"):
        if not shutil.which(tool):
            log(f"{tool} is missing: pip install 'moto[server]'; apt-get install openssh-server openssh-client gzip")
            return 2
    work = tempfile.mkdtemp(prefix="camut-ec2-bench-")
    rows = {u: [] for u in uploads}
    try:
        with Peers(work, args.no_gzip) as peers:
            n = 0
            for r in range(args.rounds):
                for u in uploads:
                    n += 1
                    took, sent, gz = one_deploy(camut, peers, u, args.instances, work, n)
                    log(f"round {r + 1}: {u}: deploy of {args.instances} instances {took:.2f} s, "
                        f"{sent / 1e6:.1f} MB sent per instance (gzip: {gz})")
                    rows[u].append((took, sent, gz))
    finally:
        subprocess.run(["pkill", "-KILL", "-f", f"{work}/remote-"], check=False)
        if args.keep:
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "instances": args.instances,
        "rounds": args.rounds,
        "binaries": [
            {
                "path": u,
                "size_bytes": os.path.getsize(u),
                "sent_bytes_per_instance": statistics.median(x[1] for x in rs),
                "gzip": all(x[2] for x in rs),
                "deploy_s_median": statistics.median(x[0] for x in rs),
                "deploy_s": [round(x[0], 3) for x in rs],
            }
            for u, rs in rows.items()
        ],
    }
    print(f"| binary | size | sent per instance | deploy of {args.instances} instances (median of {args.rounds}) |")
    print("|---|---|---|---|")
    for b in result["binaries"]:
        print(f"| {b['path']} | {b['size_bytes'] / 1e6:.1f} MB | {b['sent_bytes_per_instance'] / 1e6:.1f} MB"
              f"{' (gzip)' if b['gzip'] else ''} | {b['deploy_s_median']:.2f} s |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
