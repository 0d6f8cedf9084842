//! The server's data disk fills up mid-run, for real: its store lives on a small tmpfs
//! of the test's own, which a filler file fills to the last byte for about 8 s. Nothing
//! may be acknowledged that was not stored: the drone keeps what the store refused and
//! sends it again, so once the space is freed the merged count equals the target's.
//! Meanwhile `/healthz`, `/metrics`, the server's log and the start job all say the
//! store cannot be written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use camut::Client;
use camut_integration::cloud::temp_dir;
use camut_integration::{http_request, rt, wait_for, ServerProcess, TargetProcess};

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop, also on failure.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let dir = temp_dir(name);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the test needs root): {out:?}"
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system of `dir` to the last byte with one file; its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // The last partial chunk: whatever bytes still fit.
    for _ in 0..64 * 1024 {
        if f.write_all(&[0]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

/// `/metrics`' value of a sample without labels.
fn metric(addr: &str, name: &str) -> f64 {
    let (status, body) = http_request(addr, "GET", "/metrics", "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

#[test]
fn a_full_disk_loses_no_statistics_and_is_reported_until_space_returns() {
    let disk = Tmpfs::mount("disk-full", "16m");
    let target = TargetProcess::start();
    let server = ServerProcess::start_in("disk-full", &disk.dir, None);
    let source = format!(
        "exports.campaign = {{ id: 'full', drones: 1, users: 2, duration: '20s', deploy: {{ deployer: 'local' }} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: '{}/?delay_ms=20', operation: 'load' }}, function () {{ done(); }});\n\
         }};\n",
        target.url
    );
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("full.js", &source).await.unwrap();
        for job in [
            c.spawn("full").await.unwrap(),
            c.deploy("full").await.unwrap(),
        ] {
            let job = c.wait_job(job.id).await.unwrap();
            assert_eq!(job.state().label(), "complete", "{job:?}\n{}", server.log());
        }
        let (status, body) = http_request(&server.addr, "GET", "/healthz", "");
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let start = c.start("full").await.unwrap();
        assert!(
            wait_for(15, || target.served() >= 40),
            "the run got under way"
        );

        let filler = fill(&disk.dir);
        let full_at = Instant::now();
        let mut unhealthy = String::new();
        assert!(
            wait_for(10, || {
                let (status, body) = http_request(&server.addr, "GET", "/healthz", "");
                unhealthy = body;
                status == 503
            }),
            "/healthz kept answering 200 on a full disk\n{}",
            server.log()
        );
        assert!(
            unhealthy.contains("store: cannot write") && unhealthy.contains("full"),
            "{unhealthy}"
        );
        assert!(
            wait_for(10, || server.log().contains("cannot store stats #")),
            "a refused delta is logged\n{}",
            server.log()
        );
        assert!(metric(&server.addr, "camut_store_write_errors_total") > 0.0);
        assert_eq!(metric(&server.addr, "camut_store_writable"), 0.0);
        // The results so far say what is missing while the store refuses it.
        let so_far = c.results("full").await.unwrap();
        assert!(so_far.degraded, "{so_far:?}");
        assert!(
            so_far
                .lost
                .iter()
                .any(|l| l.contains("the store refused them")),
            "{:?}",
            so_far.lost
        );
        tokio::time::sleep(Duration::from_secs(8).saturating_sub(full_at.elapsed())).await;
        std::fs::remove_file(&filler).unwrap();
        assert!(
            wait_for(10, || http_request(&server.addr, "GET", "/healthz", "").0
                == 200),
            "/healthz recovers once space is freed"
        );

        let start = c.wait_job(start.id).await.unwrap();
        assert_eq!(
            start.state().label(),
            "complete",
            "{start:?}\n{}",
            server.log()
        );
        let served = target.served();
        let r = c.results("full").await.unwrap();
        let summary = r.run_summary();
        assert_eq!(
            summary.requests,
            served,
            "every request the target served is counted once (lost: {:?})\n{}",
            r.lost,
            server.log()
        );
        assert!(!r.degraded, "{:?}", r.lost);
        assert!(
            start
                .log
                .iter()
                .any(|l| l.starts_with("the store cannot be written (")),
            "the start job says the store failed: {:?}",
            start.log
        );
        assert!(
            start
                .log
                .iter()
                .any(|l| l.starts_with("the store can be written again")),
            "{:?}",
            start.log
        );
        assert!(
            wait_for(15, || metric(&server.addr, "camut_store_writable") == 1.0),
            "writable again once no write failed for 10 s"
        );
    });
}
