//! Drones cut off from the server, for real: a drone frozen with SIGSTOP, and the
//! server's port dropped by an nftables rule of the test's own. Each checks that the
//! drone stops loading the target, that what it measured arrives once when the link
//! returns, and that the target's count equals the merged one.

use std::process::Command;
use std::time::{Duration, Instant};

use camut::Client;
use camut_integration::{pids_with, proc_strings, rt, wait_for, ServerProcess, TargetProcess};

/// An nftables table of this test dropping TCP to one port on this host (loopback
/// included): the drone cannot reach the server. Removed on drop, also on failure.
struct Partition {
    table: String,
}

impl Partition {
    fn drop_port(port: u16) -> Partition {
        let table = format!("camut_partition_{}_{port}", std::process::id());
        let rules = format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    tcp dport {port} drop\n  }}\n}}\n"
        );
        let out = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("piped stdin")
                    .write_all(rules.as_bytes())?;
                child.wait_with_output()
            })
            .expect("nft runs (scripts/test.sh installs nftables)");
        assert!(out.status.success(), "nft refused the rules: {out:?}");
        Partition { table }
    }

    fn heal(self) {}
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

/// A one-drone campaign loading `target` from 2 VUs for up to a minute.
fn campaign(id: &str, extra: &str, target: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', drones: 1, users: 2, duration: '60s', deploy: {{ deployer: 'local' }}{extra} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: '{target}/?delay_ms=20', operation: 'load' }}, function () {{ done(); }});\n\
         }};\n"
    )
}

async fn deploy_and_start(c: &Client, server: &ServerProcess, id: &str, source: &str) {
    c.create(&format!("{id}.js"), source).await.unwrap();
    for job in [c.spawn(id).await.unwrap(), c.deploy(id).await.unwrap()] {
        let job = c.wait_job(job.id).await.unwrap();
        assert_eq!(job.state().label(), "complete", "{job:?}\n{}", server.log());
    }
    c.start(id).await.unwrap();
}

/// Waits until the target's count stays the same for `quiet`; the count then.
fn settled(target: &TargetProcess, quiet: Duration, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = target.served();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = target.served();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
    panic!("the target was still being loaded after {within:?} ({last} requests)");
}

/// Waits up to 20 s for campaign `id` to leave the running state; says whether it did.
async fn run_ends(c: &Client, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if c.get(id).await.unwrap().state().label() != "running" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Waits until the campaign's results count what the target served, and returns them.
async fn results_matching(
    c: &Client,
    id: &str,
    served: u64,
    server: &ServerProcess,
) -> camut::v1::CampaignResults {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.results(id).await.unwrap();
        let requests = r.run_summary().requests;
        if requests == served && !r.degraded {
            return r;
        }
        if Instant::now() > deadline {
            panic!(
                "results count {requests} requests (degraded: {}, lost: {:?}) against {served} served\n{}",
                r.degraded,
                r.lost,
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_drone_cut_off_by_the_network_stops_by_itself_and_delivers_everything_once() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("partition", Some("drone_timeout_s = 3\n"));
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    let source = campaign("cut", ", cutOffTimeout: 4", &target.url);
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        deploy_and_start(&c, &server, "cut", &source).await;
        assert!(
            wait_for(15, || target.served() >= 40),
            "the run got under way"
        );
        let partition = Partition::drop_port(port);
        let cut_at = Instant::now();
        // The drone stops within its cutOffTimeout (4 s) and the short grace of its
        // 20 ms iterations; the target then sees nothing more.
        let stopped = settled(&target, Duration::from_secs(4), Duration::from_secs(15));
        assert!(
            cut_at.elapsed() < Duration::from_secs(15),
            "the drone stopped loading {:?} after the cut",
            cut_at.elapsed()
        );
        // (No call to the server while its port is dropped: this test's client is cut
        // off too.)
        // The link stays down about 18 s in all.
        let down = Duration::from_secs(18).saturating_sub(cut_at.elapsed());
        tokio::time::sleep(down).await;
        partition.heal();
        let r = results_matching(&c, "cut", stopped, &server).await;
        assert_eq!(target.served(), stopped, "the drone did not resume loading");
        assert!(
            r.lost
                .iter()
                .any(|l| l.contains("came back and delivered all its statistics")),
            "{:?}",
            r.lost
        );
        let drone = &r.drones[0];
        assert_eq!(drone.requests, stopped, "{r:?}");
        let logs = log_lines(&c, "cut").await;
        assert!(
            logs.iter().any(|l| l.contains("drone local-cut-0 lost")),
            "the server declared the drone lost during the cut: {logs:?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.contains("cut off from the server") && l.contains("cutOffTimeout")),
            "the drone's own account of the cut reached the server: {logs:?}"
        );
        let _ = c.kill("cut").await;
    });
}

#[test]
fn a_frozen_drone_is_told_to_stop_when_it_wakes_and_its_late_calls_are_counted() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("frozen", Some("drone_timeout_s = 3\n"));
    // The drone's own cut-off (30 s by default) is far: the server stops it.
    let source = campaign("frozen", "", &target.url);
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        deploy_and_start(&c, &server, "frozen", &source).await;
        assert!(
            wait_for(15, || target.served() >= 40),
            "the run got under way"
        );
        let drone = pids_with(&["drone", "--id", "local-frozen-0"]);
        assert_eq!(drone.len(), 1);
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, &drone[0].to_string()])
                .status()
                .unwrap()
        };
        signal("-STOP");
        let frozen = settled(&target, Duration::from_secs(1), Duration::from_secs(10));
        // Lost after 3 s of silence; the run, its only drone lost, is over.
        let lost = run_ends(&c, "frozen").await;
        signal("-CONT");
        assert!(
            lost,
            "the frozen drone was declared lost:\n{}",
            server.log()
        );
        let stopped = settled(&target, Duration::from_secs(3), Duration::from_secs(15));
        let r = results_matching(&c, "frozen", stopped, &server).await;
        assert!(stopped >= frozen);
        assert!(
            r.lost
                .iter()
                .any(|l| l.contains("came back and delivered all its statistics")),
            "{:?}",
            r.lost
        );
        let logs = log_lines(&c, "frozen").await;
        assert!(
            logs.iter()
                .any(|l| l.contains("is told to stop its run") && l.contains("declared lost")),
            "{logs:?}"
        );
        // Still nothing more after a while: it did not resume.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(target.served(), stopped);
        let _ = c.kill("frozen").await;
    });
}

#[test]
fn a_drone_restarted_mid_run_is_lost_and_the_run_ends_without_it() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("restarted", None);
    let source = campaign("restarted", "", &target.url);
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        deploy_and_start(&c, &server, "restarted", &source).await;
        // Under way, with statistics stored.
        let mut stored = 0;
        for _ in 0..100 {
            stored = c.results("restarted").await.unwrap().run_summary().requests;
            if stored > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(stored > 0, "no statistics stored:\n{}", server.log());
        // The drone's process dies and the same command line starts again at once,
        // as a supervisor would: the new process does not hold the run.
        let pid = pids_with(&["drone", "--id", "local-restarted-0"]);
        assert_eq!(pid.len(), 1);
        let argv = proc_strings(pid[0], "cmdline");
        let env = proc_strings(pid[0], "environ");
        // SAFETY: kills the drone process this test's server started.
        unsafe { libc::kill(pid[0] as libc::pid_t, libc::SIGKILL) };
        let killed = settled(&target, Duration::from_secs(1), Duration::from_secs(10));
        let mut again = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env.iter().filter_map(|kv| kv.split_once('=')))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The run, its only drone lost, ends well before its 60 s.
        let over = run_ends(&c, "restarted").await;
        let _ = again.kill();
        let _ = again.wait();
        assert!(
            over,
            "the run ended without the restarted drone:\n{}",
            server.log()
        );
        let r = c.results("restarted").await.unwrap();
        assert!(r.degraded, "{r:?}");
        assert!(
            r.lost
                .iter()
                .any(|l| l.contains("local-restarted-0") && l.contains("new process")),
            "{:?}",
            r.lost
        );
        // Counted: what the drone stored before it died; never more than served.
        let merged = r.run_summary().requests;
        assert!(
            merged > 0 && merged <= killed,
            "{merged} merged, {killed} served"
        );
        assert_eq!(
            target.served(),
            killed,
            "the new process did not load the target"
        );
        let _ = c.kill("restarted").await;
    });
}

/// The server's log lines about a campaign.
async fn log_lines(c: &Client, campaign: &str) -> Vec<String> {
    let mut stream = c
        .tail(camut::v1::TailRequest {
            lines: 2000,
            campaign: campaign.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Ok(Some(line)) = stream.message().await {
        out.push(line.message);
    }
    out
}

#[test]
fn stop_ends_a_timer_flooding_run_on_a_drone_within_the_grace_period() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("flood-stop", None);
    let source = format!(
        "exports.campaign = {{ id: 'fstop', drones: 1, users: 2, duration: '10m', deploy: {{ deployer: 'local' }} }};\n\
         exports.test = function (done) {{\n\
           for (var i = 0; i < 5000; i++) setInterval(function () {{}}, 1);\n\
           camut.http('{t}/', function () {{ camut.http('{t}/?delay_ms=60000', function () {{}}); }});\n\
         }};\n",
        t = target.url
    );
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        deploy_and_start(&c, &server, "fstop", &source).await;
        assert!(
            wait_for(20, || target.served() >= 2),
            "the run got under way"
        );
        let asked = Instant::now();
        let stop = c.stop("fstop").await.unwrap();
        let stop = c.wait_job(stop.id).await.unwrap();
        assert_eq!(
            stop.state().label(),
            "complete",
            "{stop:?}\n{}",
            server.log()
        );
        assert!(
            asked.elapsed() < Duration::from_secs(25),
            "stop took {:?} (grace period: 10 s)",
            asked.elapsed()
        );
        assert_eq!(c.get("fstop").await.unwrap().state().label(), "stopped");
        let _ = c.kill("fstop").await;
    });
}
