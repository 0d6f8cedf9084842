//! Hostile tests and targets against the real `camut run`: huge answers, timer floods,
//! Ctrl-C while the test never ends, memory bombs, and uploads that are not UTF-8.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use camut_integration::{camut_bin, temp_file, wait_for, ServerProcess, TargetProcess};

/// What a bounded `camut run` left: exit status, output, time taken, peak memory.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
    /// Peak resident memory of the process, KB.
    max_rss_kb: i64,
}

impl Ran {
    fn show(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `camut run FILE --env TARGET=… EXTRA…`; `signal` is sent once `ready` holds.
/// Kills it and fails past `limit`.
fn run_bounded(
    target: &TargetProcess,
    file: &Path,
    extra: &[&str],
    limit: Duration,
    mut signal: Option<(&mut dyn FnMut() -> bool, libc::c_int)>,
) -> Ran {
    let dir = file.with_extension("out");
    std::fs::create_dir_all(&dir).unwrap();
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let child = Command::new(camut_bin())
        .arg("run")
        .arg(file)
        .args(["--env", &format!("TARGET={}", target.url)])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("camut run starts");
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Some((ready, sig)) = signal.as_mut() {
            if ready() {
                // SAFETY: signals the child we started.
                unsafe { libc::kill(pid, *sig) };
                signal = None;
            }
        }
        // SAFETY: waits for our own child without blocking; fills status and usage.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if started.elapsed() > limit {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("camut run still ran after {limit:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ran = Ran {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        took: started.elapsed(),
        max_rss_kb: usage.ru_maxrss,
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::mem::forget(child); // reaped above
    ran
}

fn summary(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the summary JSON was written");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).unwrap()
}

fn error_messages(s: &serde_json::Value) -> Vec<String> {
    s["error_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_huge_answer_fails_the_call_by_its_limit_and_closes_the_connection() {
    let target = TargetProcess::start();
    let file = temp_file(
        "huge.js",
        "exports.campaign = { id: 'huge', users: 2, iterations: 2 };\n\
         exports.test = function (done) {\n\
           var T = camut.env.TARGET;\n\
           camut.http({ url: T + '/big?bytes=4000000000', operation: 'big' }, function (err) {\n\
             if (!err) throw new Error('4 GB were accepted');\n\
             camut.http({ url: T + '/big?bytes=5000&chunked=1', maxResponseBytes: 1000, operation: 'chunked' }, function (err2) {\n\
               if (!err2) throw new Error('a chunked body past its own limit was accepted');\n\
               camut.http({ url: T + '/big?bytes=5000', maxResponseBytes: 5000, operation: 'fits' }, function (err3, data) {\n\
                 if (err3 || data.length !== 5000) throw new Error('a body within its limit failed');\n\
                 done();\n\
               });\n\
             });\n\
           });\n\
         };\n",
    );
    let json = file.with_extension("json");
    let ran = run_bounded(
        &target,
        &file,
        &["--summary-json", json.to_str().unwrap()],
        Duration::from_secs(60),
        None,
    );
    let _ = std::fs::remove_file(&file);
    let s = summary(&json);
    assert_eq!(s["iterations"]["completed"], 4, "{s}\n{}", ran.show());
    assert_eq!(
        (s["requests"].as_u64(), s["errors"].as_u64()),
        (Some(12), Some(8))
    );
    let messages = error_messages(&s);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("4000000000 bytes")
                && m.contains("maxResponseBytes (16777216 bytes)")),
        "the default limit is named: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("maxResponseBytes (1000 bytes)")),
        "{messages:?}"
    );
    // Each refused answer closed its connection: 8 refused, each on a fresh one.
    assert!(s["connections_opened"].as_u64().unwrap() >= 8, "{s}");
    assert_eq!(target.served_path("/big"), 12);
}

#[test]
fn discarded_bodies_keep_memory_flat_and_still_count_their_bytes() {
    let target = TargetProcess::start();
    // 2 VUs × 2 calls × 100 MB = 400 MB received.
    let file = temp_file(
        "discard.js",
        "exports.campaign = { id: 'discard', users: 2, iterations: 2, discardResponseBodies: true };\n\
         exports.test = function (done) {\n\
           camut.http(camut.env.TARGET + '/big?bytes=100000000', function (err, data) {\n\
             if (err) throw err;\n\
             if (data !== '') throw new Error('a discarded body was kept: ' + data.length);\n\
             done();\n\
           });\n\
         };\n",
    );
    let json = file.with_extension("json");
    let ran = run_bounded(
        &target,
        &file,
        &["--summary-json", json.to_str().unwrap()],
        Duration::from_secs(120),
        None,
    );
    let _ = std::fs::remove_file(&file);
    let s = summary(&json);
    assert_eq!(s["iterations"]["completed"], 4, "{s}\n{}", ran.show());
    assert_eq!(s["errors"], 0, "{s}");
    let received = &s["metrics"]["http.received"];
    assert_eq!(received["count"], 4);
    assert!(
        received["min"].as_f64().unwrap() >= 99_900_000.0,
        "each call counts its 100 MB: {received}"
    );
    eprintln!(
        "discard: 400 MB received, peak RSS {} MB, took {:?}",
        ran.max_rss_kb / 1024,
        ran.took
    );
    assert!(
        ran.max_rss_kb < 150_000,
        "400 MB went through a process that peaked at {} MB",
        ran.max_rss_kb / 1024
    );
}

/// A test making 5,000 `setInterval(f, 1)` per iteration, never cleared.
const TIMER_FLOOD: &str = "for (var i = 0; i < 5000; i++) setInterval(function () {}, 1);\n";

#[test]
fn thousands_of_one_ms_intervals_do_not_starve_the_end_of_iterations() {
    let target = TargetProcess::start();
    let file = temp_file(
        "flood.js",
        &format!(
            "exports.campaign = {{ id: 'flood', users: 2, iterations: 3 }};\n\
             exports.test = function (done) {{\n\
               {TIMER_FLOOD}\
               camut.http(camut.env.TARGET + '/', function () {{ setTimeout(done, 5); }});\n\
             }};\n"
        ),
    );
    let json = file.with_extension("json");
    let ran = run_bounded(
        &target,
        &file,
        &["--threads", "1", "--summary-json", json.to_str().unwrap()],
        Duration::from_secs(60),
        None,
    );
    let _ = std::fs::remove_file(&file);
    assert!(ran.status.success(), "{}", ran.show());
    let s = summary(&json);
    assert_eq!(s["iterations"]["completed"], 6, "{s}");
    assert_eq!(target.served(), 6);
}

#[test]
fn ctrl_c_ends_a_timer_flood_that_never_calls_done_within_the_grace_period() {
    let target = TargetProcess::start();
    let file = temp_file(
        "flood-stop.js",
        &format!(
            "exports.campaign = {{ id: 'flood-stop', users: 2, duration: '10m' }};\n\
             exports.test = function (done) {{\n\
               {TIMER_FLOOD}\
               var T = camut.env.TARGET;\n\
               camut.http(T + '/', function () {{ camut.http(T + '/?delay_ms=60000', function () {{}}); }});\n\
             }};\n"
        ),
    );
    let json = file.with_extension("json");
    let started = || target.served() >= 2;
    let mut signalled_at = None;
    let mut ready = || {
        let go = started();
        if go {
            signalled_at = Some(Instant::now());
        }
        go
    };
    let ran = run_bounded(
        &target,
        &file,
        &["--threads", "1", "--summary-json", json.to_str().unwrap()],
        Duration::from_secs(60),
        Some((&mut ready, libc::SIGINT)),
    );
    let _ = std::fs::remove_file(&file);
    let since_signal = signalled_at
        .expect("the run got under way and was signalled")
        .elapsed();
    assert!(
        ran.stderr.contains("stopping"),
        "the first Ctrl-C is taken: {}",
        ran.show()
    );
    // The grace period is 10 s; the run has until then, plus its wind-down.
    let s = summary(&json);
    eprintln!("ctrl-c: the run ended {since_signal:?} after SIGINT");
    assert!(
        since_signal < Duration::from_secs(20),
        "the run ended {since_signal:?} after Ctrl-C (grace period: 10 s); it ran {:?}",
        ran.took
    );
    assert_eq!(s["iterations"]["completed"], 0, "{s}");
    assert!(
        error_messages(&s)
            .iter()
            .any(|m| m.contains("stop grace period")),
        "{s}"
    );
}

#[test]
fn a_memory_bomb_names_memory_limit() {
    let target = TargetProcess::start();
    let file = temp_file(
        "bomb.js",
        "exports.campaign = { id: 'bomb', users: 1, iterations: 2, memoryLimit: 16 };\n\
         exports.test = function (done) {\n\
           // Flat 64 KB strings: `s += s` would make ropes, which hit QuickJS's length\n\
           // limit (\"string too long\") long before any memory limit.\n\
           var kept = [];\n\
           while (true) kept.push('x'.repeat(65536) + kept.length);\n\
         };\n",
    );
    let json = file.with_extension("json");
    let ran = run_bounded(
        &target,
        &file,
        &["--summary-json", json.to_str().unwrap()],
        Duration::from_secs(60),
        None,
    );
    let _ = std::fs::remove_file(&file);
    let s = summary(&json);
    assert_eq!(s["iterations"]["failed"], 2, "{s}\n{}", ran.show());
    let messages = error_messages(&s);
    assert!(
        messages
            .iter()
            .all(|m| m.contains("out of memory") && m.contains("memoryLimit")),
        "{messages:?}"
    );
}

/// Raw bytes as a gRPC message, to send what no generated client would.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[test]
fn an_upload_that_is_not_utf8_is_an_invalid_argument() {
    let server = ServerProcess::start("utf8", None);
    let rt = camut_integration::rt();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        // CreateCampaignRequest { file: "x.js", source: <Latin-1 bytes> }.
        let source = b"exports.campaign = { id: 'caf\xe9' };";
        let mut message = vec![0x0a, 4];
        message.extend_from_slice(b"x.js");
        message.push(0x12);
        message.push(source.len() as u8);
        message.extend_from_slice(source);
        grpc.ready().await.unwrap();
        let status = grpc
            .unary(
                tonic::Request::new(message),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/camut.v1.Campaigns/CreateCampaign",
                ),
                RawCodec,
            )
            .await
            .expect_err("a source that is not UTF-8 is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("must be UTF-8"),
            "{}",
            status.message()
        );
    });
    // The server goes on serving.
    assert!(wait_for(5, || server.camut(&["list"]).status.success()));
}

/// One second of a drone's statistics: `requests` calls and iterations, histograms empty.
fn plain_delta(requests: u64) -> camut::v1::StatsDelta {
    camut::v1::StatsDelta {
        calls: vec![camut::v1::CallSeries {
            operation: "GET /".into(),
            status_class: 200,
            requests,
            ..Default::default()
        }],
        iterations: Some(camut::v1::IterationCounts {
            started: requests,
            completed: requests,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The next command the server sends a drone (20 s at most).
async fn next_cmd(
    inbound: &mut tonic::Streaming<camut::v1::ServerCommand>,
) -> camut::v1::server_command::Cmd {
    tokio::time::timeout(Duration::from_secs(20), inbound.message())
        .await
        .expect("the server answers within 20 s")
        .unwrap()
        .and_then(|c| c.cmd)
        .expect("a command")
}

/// Resident memory of a process, KB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A drone speaking the protocol by hand sends a forty-byte histogram header that claims
/// 2·10⁹ payload bytes between two valid deltas: the server refuses it on arrival
/// (never stored, never allocated for), counts the valid ones, and says in the results
/// what it refused.
#[test]
fn a_crafted_histogram_from_a_drone_is_refused_and_reported() {
    use camut::v1::{drone_message::Msg, server_command::Cmd, DroneMessage};
    use camut_integration::{pids_with, proc_strings};

    let server = ServerProcess::start("crafted", None);
    let source = "exports.campaign = { id: 'crafted', drones: 1, users: 1, iterations: 1, \
                  deploy: { deployer: 'local' } };\n\
                  exports.test = function (done) { done(); };\n";
    let rt = camut_integration::rt();
    rt.block_on(async {
        let c = camut::Client::connect(&server.addr, None).await.unwrap();
        c.create("crafted.js", source).await.unwrap();
        for job in [
            c.spawn("crafted").await.unwrap(),
            c.deploy("crafted").await.unwrap(),
        ] {
            let job = c.wait_job(job.id).await.unwrap();
            assert_eq!(job.state().label(), "complete", "{job:?}\n{}", server.log());
        }
        // The local deployer's drone holds the campaign's join token on its command
        // line: this test takes its token and its seat.
        let id = "local-crafted-0";
        let pid = *pids_with(&["drone", id])
            .first()
            .expect("the local drone runs");
        let args = proc_strings(pid, "cmdline");
        let token = args[args.iter().position(|a| a == "--token").unwrap() + 1].clone();
        // SAFETY: kills the drone process this test's server started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };

        let (tx, rx) = tokio::sync::mpsc::channel::<DroneMessage>(16);
        let send = |m: Msg| {
            let tx = tx.clone();
            async move { tx.send(DroneMessage { msg: Some(m) }).await.unwrap() }
        };
        send(Msg::Hello(camut::v1::Hello {
            protocol: 1,
            drone_id: id.into(),
            token,
            ..Default::default()
        }))
        .await;
        let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut drones = camut::v1::drones_client::DronesClient::new(channel);
        let mut inbound = drones
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        // Welcome, then Configure: the drone says it is ready, and the run can start
        // once the server has seen that.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !matches!(next_cmd(&mut inbound).await, Cmd::Configure(_)) {
            assert!(tokio::time::Instant::now() < deadline, "no Configure");
        }
        send(Msg::Ready(camut::v1::Ready {})).await;
        let started = loop {
            match c.start("crafted").await {
                Ok(job) => break job,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "start refused: {e}\n{}",
                        server.log()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        while !matches!(next_cmd(&mut inbound).await, Cmd::Start(_)) {}
        let mut crafted = vec![0u8; 40];
        crafted[..4].copy_from_slice(&0x1c84_9313u32.to_be_bytes());
        crafted[4..8].copy_from_slice(&2_000_000_000u32.to_be_bytes());
        let mut bad = plain_delta(5);
        bad.calls[0].response_time = crafted.into();
        for (seq, delta) in [(1, plain_delta(3)), (2, bad), (3, plain_delta(4))] {
            send(Msg::Stats(camut::v1::Stats {
                seq,
                delta: Some(delta),
            }))
            .await;
            loop {
                if let Cmd::Ack(a) = next_cmd(&mut inbound).await {
                    assert_eq!(
                        a.seq, seq,
                        "each delta is acknowledged, the invalid one too"
                    );
                    break;
                }
            }
        }
        send(Msg::Finished(camut::v1::Finished {
            last_seq: 3,
            summary: None,
        }))
        .await;
        let job = c.wait_job(started.id).await.unwrap();
        assert_eq!(job.state().label(), "complete", "{job:?}\n{}", server.log());
        let r = c.results("crafted").await.unwrap();
        assert_eq!(r.run_summary().requests, 7, "the valid deltas only");
        assert!(r.degraded, "{r:?}");
        assert!(
            r.lost.iter().any(|l| l.starts_with(
                "local-crafted-0: 1 statistics deltas were invalid and are not counted (first: #2"
            ) && l.contains("announces 2000000000 payload bytes")),
            "{:?}",
            r.lost
        );
        let rss = rss_kb(server.pid());
        assert!(rss < 200_000, "the server holds {rss} KB");
    });
}
