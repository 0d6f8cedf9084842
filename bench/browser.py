#!/usr/bin/env python3
"""Browser-emulation benchmark: memory per emulated VU and parse+query speed,
camut side by side with node + jsdom + jQuery and node + cheerio, in one run.

    cargo build --release -p camut-engine-run
    python3 bench/browser.py            # ~2 minutes
    python3 bench/browser.py --quick    # fewer documents

1. writes a 20 KB product-listing page (deterministic) and serves it on
   127.0.0.1 from this process (http.server, only loopback);
   camut runs are `camut-engine-run` (bench/engine-run: the engine of `camut run`
   without the server and cloud SDK, so a release build is quick); it prints its own
   peak RSS (VmHWM);
2. memory: peak RSS of a run of bench/campaigns/browser_idle.js (each VU loads
   the page, makes jQuery with a query, waits 4 s) at --users 10 and --users 1000:
   (RSS@1000 - RSS@10) / 990; and the same for bench/campaigns/idle.js (no
   browser emulation) for comparison;
3. speed: documents per CPU-second (user+sys of the whole process from wait4):
   camut (bench/campaigns/browser_speed.js, one VU, one thread), node + jsdom +
   jQuery and node + cheerio (bench/browser/peer.js), each parsing the page and
   running the same three jQuery queries; the checksums of the three must agree.
   The node packages are installed into bench/browser/node_modules by `npm install`
   (versions pinned in bench/browser/package.json) when missing.

Prints a markdown table for docs/PERFORMANCE.md.
"""

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine  # noqa: E402  (shares the measured-run helpers)
from engine import BenchError, log  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "browser")
MEMORY_USERS = (10, 1000)


def make_page():
    """A 20 KB shop page: head, search form, 60 products, footer links."""
    items = []
    for i in range(60):
        items.append(
            f'<li class="product{" sale" if i % 7 == 0 else ""}" data-id="{i}">'
            f'<a class="product-link" href="/p/{i}">Product {i}</a>'
            f'<span class="price">{(i * 37) % 100}.{i % 10}0</span>'
            f'<img src="/img/{i}.png" alt="item {i}"></li>'
        )
    links = "".join(f'<a href="/c/{c}">Category {c}</a> ' for c in range(20))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Shop</title>"
        "<link rel='stylesheet' href='/s.css'><script>var analytics = 1;</script></head><body>"
        "<header><nav>" + links + "</nav>"
        "<form id='search' action='/search'><input type='text' name='q' value='shoes'>"
        "<select name='sort'><option value='p'>price</option><option value='n' selected>name</option></select>"
        "<button type='submit'>Go</button></form></header>"
        "<main><h1>Products</h1><ul class='products'>" + "".join(items) + "</ul></main>"
    )
    filler = "<footer><p class='legal'>" + ("Terms and conditions apply. " * 10) + "</p></footer>"
    while len(page) + len(filler) < 20 * 1024 - 20:
        page += filler
    page += "</body></html>"
    return page


class PageServer:
    """Serves the page at /page.html on 127.0.0.1 from a thread of this process."""

    def __init__(self, page):
        body = page.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 4096  # 1,000 VUs connect at once
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page.html"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def peak_rss_kb(run):
    """The child's own peak RSS: the `VmHWM:` line camut-engine-run prints. (wait4's
    maxrss keeps the RSS this Python process had when it forked the child.)"""
    for line in run.stderr_tail(50).splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise BenchError(f"{' '.join(run.cmd)}: no VmHWM line on stderr (use bench/engine-run)")


def ensure_node_peers(may_install):
    if not shutil.which("node"):
        raise BenchError("node is not installed: apt-get install -y nodejs npm")
    if os.path.isdir(os.path.join(NODE_DIR, "node_modules", "jsdom")):
        return
    if not may_install:
        raise BenchError("bench/browser/node_modules is missing; run without --no-install")
    log("  $ npm install (bench/browser)")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True,
                   env=engine.child_env())


def node_docs_per_cpu_s(kind, page_path, n, out_dir):
    run = engine.run_measured(["node", os.path.join(NODE_DIR, "peer.js"), kind, page_path, str(n)], 600, out_dir,
                              "peer-" + kind)
    if run.rc != 0:
        raise BenchError(f"node {kind} failed:\n{run.stderr_tail()}")
    words = run.stdout().split()
    return n / run.cpu_s, int(words[3]), run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camut", help="camut-engine-run binary (default: $CARGO_TARGET_DIR or target/release/camut-engine-run)")
    ap.add_argument("--quick", action="store_true", help="fewer documents per speed run")
    ap.add_argument("--out", metavar="DIR", help="logs and summaries (default: bench/out/browser-DATE)")
    ap.add_argument("--no-install", action="store_true", help="do not npm install the node peers")
    ap.add_argument("--skip-node", action="store_true", help="camut only")
    args = ap.parse_args()
    camut = args.camut or os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(engine.ROOT, "target"),
                                       "release", "camut-engine-run")
    if not os.access(camut, os.X_OK):
        raise BenchError(f"no binary at {camut}: cargo build --release -p camut-engine-run")
    out_dir = args.out or os.path.join(HERE, "out", "browser-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    page = make_page()
    page_path = os.path.join(out_dir, "page.html")
    with open(page_path, "w", encoding="utf-8") as f:
        f.write(page)
    docs = 300 if args.quick else 1500
    fig = {"page_bytes": len(page.encode())}
    with PageServer(page) as server:
        env = ["--env", "PAGE=" + server.url]
        # Memory: browser VUs (and, for the breakdown, stopped after the window and
        # after the page), then plain VUs (no option) for comparison.
        for name, campaign, stage in (("browser", "browser_idle.js", "jquery"), ("window", "browser_idle.js", "window"),
                                      ("page", "browser_idle.js", "page"), ("plain", "idle.js", "")):
            rss = {}
            for users in MEMORY_USERS:
                run, summary = engine.camut_run(camut, os.path.join(HERE, "campaigns", campaign), out_dir,
                                                f"mem-{name}-{users}",
                                                ["--users", str(users), "--threads", "1", "--env", "STAGE=" + stage]
                                                + env, 300, None)
                if engine.completed(summary) != users:
                    raise BenchError(f"mem-{name}-{users}: {engine.completed(summary)} of {users} iterations "
                                     f"completed: {summary.get('error_messages')}")
                rss[users] = peak_rss_kb(run)
            lo, hi = MEMORY_USERS
            fig[f"{name}_rss_kb"] = rss
            fig[f"{name}_kb_per_vu"] = (rss[hi] - rss[lo]) / (hi - lo)
        # Speed.
        run, summary = engine.camut_run(camut, os.path.join(HERE, "campaigns", "browser_speed.js"), out_dir,
                                        "speed-camut", ["--iterations", str(docs), "--threads", "1"] + env, 600, None)
        if engine.completed(summary) != docs:
            raise BenchError(f"speed-camut: {engine.completed(summary)} of {docs}: {summary.get('error_messages')}")
        fig["camut_docs_per_cpu_s"] = docs / run.cpu_s
    if not args.skip_node:
        ensure_node_peers(not args.no_install)
        for kind in ("jsdom", "cheerio"):
            n = max(50, docs // (6 if kind == "jsdom" else 1))
            rate, checksum, _ = node_docs_per_cpu_s(kind, page_path, n, out_dir)
            fig[f"{kind}_docs_per_cpu_s"] = rate
            fig[f"{kind}_checksum_per_doc"] = checksum / n
    with open(os.path.join(out_dir, "figures.json"), "w") as f:
        json.dump(fig, f, indent=2)
    print(f"| page | {fig['page_bytes']:,} bytes |")
    print("|---|---:|")
    lo, hi = MEMORY_USERS
    print(f"| memory per browser VU, (RSS@{hi:,} − RSS@{lo}) / {hi - lo} | **{fig['browser_kb_per_vu']:.1f} KB** |")
    print(f"| peak RSS at {lo} / {hi:,} browser VUs | {fig['browser_rss_kb'][lo] / 1024:.1f} MB / "
          f"{fig['browser_rss_kb'][hi] / 1024:.1f} MB |")
    print(f"| breakdown: a VU with its window only (no page) | {fig['window_kb_per_vu']:.1f} KB |")
    print(f"| breakdown: + the 20 KB page in its document | {fig['page_kb_per_vu'] - fig['window_kb_per_vu']:.1f} KB |")
    print(f"| breakdown: + jQuery made, one query run | {fig['browser_kb_per_vu'] - fig['page_kb_per_vu']:.1f} KB |")
    print(f"| memory per VU without the option (idle.js) | {fig['plain_kb_per_vu']:.1f} KB |")
    print(f"| camut: documents per CPU-second | **{fig['camut_docs_per_cpu_s']:,.0f}** |")
    if not args.skip_node:
        for kind, label in (("jsdom", "node + jsdom + jQuery"), ("cheerio", "node + cheerio")):
            r = fig[f"{kind}_docs_per_cpu_s"]
            print(f"| {label}: documents per CPU-second | {r:,.0f} (camut ×{fig['camut_docs_per_cpu_s'] / r:.2f}) |")
        print(f"| checksum per document (jsdom / cheerio) | {fig['jsdom_checksum_per_doc']:.0f} / "
              f"{fig['cheerio_checksum_per_doc']:.0f} |")
    log(f"figures in {out_dir}/figures.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
