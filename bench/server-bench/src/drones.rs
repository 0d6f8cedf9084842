//! The drones role: N simulated drones over a few HTTP/2 connections to the server.
//!
//! Each drone speaks the drone protocol as `camut-drone` does — Hello, Ready after
//! Configure, Pong to every Ping — and after Start sends, once a second, a Stats delta
//! (the server reads progress from the deltas), then Finished when told. Statistics
//! deltas are drawn from a pool built once at start-up, so that the drones' own cost
//! stays small.
//!
//! The role reports to the server role on stdout, one line per phase:
//!
//! - `READY <drones> <ms>`: every drone got Configure and answered Ready;
//! - `START <at_ms> <late> <ns>…`: when each drone received Start (CLOCK_MONOTONIC ns) and
//!   how many received it after the start time it carries;
//! - `INGEST_BEGIN <cpu_s>`: the first deltas are being sent now;
//! - `INGEST_END <sent> <acked> <requests> <iterations> <ack_p50_us> <ack_p99_us>
//!   <ack_max_us> <lag_ms> <delta_bytes> <cpu_s>`: every delta was acknowledged (`lag_ms`
//!   past the end of the last second);
//! - `FINISHED <drones>`: every drone sent Finished;
//! - `FAIL <reason>` instead of any of them.
//!
//! `cpu_s` is this process's CPU time so far. It exits on `EXIT` or end of file on stdin, so it never outlives the server role.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use camut::v1::{
    self, drone_message::Msg, drones_client::DronesClient, server_command::Cmd, DroneMessage,
};
use camut_stats::{CallKey, StatsSet};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::util::{cpu_seconds, mono_ns, percentile};
use crate::Args;

/// How long the drones have to connect and get Configure.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after READY the first Start may take (the deploy job must end first).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long after the first drone received Start the others may take.
const START_SPREAD: Duration = Duration::from_secs(10);
/// How long after the last second the acknowledgements may take.
const ACK_GRACE: Duration = Duration::from_secs(60);
/// How long the drones wait to be told to finish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the process waits for `EXIT` once everything is done.
const EXIT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the whole role may live.
const LIFETIME: Duration = Duration::from_secs(3600);
/// Distinct statistics deltas the drones send, in turn.
const DELTA_POOL: usize = 64;

/// What the drones are told to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Wait for Start.
    Wait,
    /// Send one delta a second from this instant.
    Ingest(Instant),
    /// Send Finished.
    Finish,
}

/// A command from the server, with when it arrived (CLOCK_MONOTONIC ns, Unix ms).
type Arrival = Result<(Cmd, u64, i64), String>;

/// A statistics delta ready to send, with what it counts.
struct Delta {
    wire: v1::StatsDelta,
    requests: u64,
    iterations: u64,
}

/// What the drones report to the role's main task.
#[derive(Default)]
struct Shared {
    ready: AtomicUsize,
    failed: Mutex<Vec<String>>,
    /// (arrival ns, arrived after its start time) per drone that received Start.
    starts: Mutex<Vec<(u64, bool)>>,
    at_ms: AtomicU64,
    all_acked: AtomicUsize,
    ack_latency_us: Mutex<Vec<u64>>,
    sent: AtomicU64,
    acked: AtomicU64,
    requests: AtomicU64,
    iterations: AtomicU64,
    finished: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn msg(m: Msg) -> DroneMessage {
    DroneMessage { msg: Some(m) }
}

use camut_stats::clock::now_ms as unix_ms;

/// Runs the drones role to its end.
pub fn main(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    let r = rt.block_on(async {
        match tokio::time::timeout(LIFETIME, run(args)).await {
            Ok(r) => r,
            Err(_) => bail!("the drones role ran for over {LIFETIME:?}"),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

/// Waits until `done` holds, checking every 10 ms, at most `within`; false on timeout.
async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(args: &Args) -> Result<()> {
    let server = args
        .server
        .clone()
        .context("--server is required with --role drones")?;
    ensure!(
        server.starts_with("127.0.0.1:"),
        "the drones only dial 127.0.0.1 (got {server})"
    );
    let token = args
        .token
        .clone()
        .context("--token is required with --role drones")?;
    let n = args.drones.max(1) as usize;
    let seconds = args.seconds.max(1) as usize;

    // The server role ends this process by writing EXIT or closing stdin.
    std::thread::spawn(|| {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "EXIT" => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::process::exit(0);
    });

    let pool: Arc<Vec<Delta>> = Arc::new(delta_pool(DELTA_POOL));
    let delta_bytes = pool
        .iter()
        .map(|d| {
            msg(Msg::Stats(v1::Stats {
                seq: 1,
                delta: Some(d.wire.clone()),
            }))
            .encoded_len()
        })
        .sum::<usize>()
        / pool.len();

    let t_connect = Instant::now();
    let mut channels: Vec<Channel> = Vec::new();
    for c in 0..args.channels.max(1) {
        let ch = Endpoint::from_shared(format!("http://{server}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connection {c} to {server}"))?;
        channels.push(ch);
    }
    let shared = Arc::new(Shared::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Wait);
    for i in 0..n {
        let ch = channels[i % channels.len()].clone();
        let (token, shared, phase, pool) = (
            token.clone(),
            shared.clone(),
            phase_rx.clone(),
            pool.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = drone(i, ch, token, &shared, phase, &pool, seconds).await {
                lock(&shared.failed).push(format!("sim-{i}: {e:#}"));
            }
        });
    }
    let failure = |shared: &Shared| -> Option<String> {
        let f = lock(&shared.failed);
        f.first()
            .map(|e| format!("{} drones failed; first: {e}", f.len()))
    };

    // READY
    let all_ready = wait_until(READY_TIMEOUT, || {
        shared.ready.load(Ordering::Relaxed) + lock(&shared.failed).len() >= n
    })
    .await;
    if let Some(e) = failure(&shared) {
        bail!(e);
    }
    ensure!(
        all_ready,
        "only {} of {n} drones got Configure within {READY_TIMEOUT:?}",
        shared.ready.load(Ordering::Relaxed)
    );
    println!("READY {n} {}", t_connect.elapsed().as_millis());

    // START
    let any = wait_until(START_TIMEOUT, || {
        !lock(&shared.starts).is_empty() || !lock(&shared.failed).is_empty()
    })
    .await;
    ensure!(any, "no drone received Start within {START_TIMEOUT:?}");
    wait_until(START_SPREAD, || {
        lock(&shared.starts).len() + lock(&shared.failed).len() >= n
    })
    .await;
    if let Some(e) = failure(&shared) {
        bail!(e);
    }
    let started = {
        let starts = lock(&shared.starts);
        let late = starts.iter().filter(|s| s.1).count();
        let ns: Vec<String> = starts.iter().map(|s| s.0.to_string()).collect();
        println!(
            "START {} {late} {}",
            shared.at_ms.load(Ordering::Relaxed),
            ns.join(" ")
        );
        starts.len()
    };

    // INGEST
    let epoch = Instant::now() + Duration::from_millis(200);
    phase_tx.send_replace(Phase::Ingest(epoch));
    tokio::time::sleep_until(epoch).await;
    println!("INGEST_BEGIN {:.3}", cpu_seconds());
    let last = epoch + Duration::from_secs(seconds as u64);
    tokio::time::sleep_until(last).await;
    let acked = wait_until(ACK_GRACE, || {
        shared.all_acked.load(Ordering::Relaxed) + lock(&shared.failed).len() >= started
    })
    .await;
    let lag_ms = Instant::now().saturating_duration_since(last).as_millis();
    if let Some(e) = failure(&shared) {
        bail!(e);
    }
    ensure!(
        acked,
        "only {} of {started} drones had every delta acknowledged {ACK_GRACE:?} after the last one",
        shared.all_acked.load(Ordering::Relaxed)
    );
    let mut lat = std::mem::take(&mut *lock(&shared.ack_latency_us));
    lat.sort_unstable();
    println!(
        "INGEST_END {} {} {} {} {} {} {} {lag_ms} {delta_bytes} {:.3}",
        shared.sent.load(Ordering::Relaxed),
        shared.acked.load(Ordering::Relaxed),
        shared.requests.load(Ordering::Relaxed),
        shared.iterations.load(Ordering::Relaxed),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
        cpu_seconds(),
    );

    // FINISHED
    phase_tx.send_replace(Phase::Finish);
    let finished = wait_until(FINISH_TIMEOUT, || {
        shared.finished.load(Ordering::Relaxed) + lock(&shared.failed).len() >= started
    })
    .await;
    if let Some(e) = failure(&shared) {
        bail!(e);
    }
    ensure!(finished, "not every drone sent Finished");
    println!("FINISHED {started}");

    // The stdin thread ends the process.
    tokio::time::sleep(EXIT_TIMEOUT).await;
    bail!("no EXIT from the server role within {EXIT_TIMEOUT:?}")
}

/// Receives the next command, failing at `deadline` or when the stream ends.
async fn recv(
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    deadline: Instant,
    what: &str,
) -> Result<(Cmd, u64, i64)> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Some(Ok(a))) => Ok(a),
        Ok(Some(Err(e))) => bail!("the stream failed while waiting for {what}: {e}"),
        Ok(None) => bail!("the server ended the stream while waiting for {what}"),
        Err(_) => bail!("no {what} in time"),
    }
}

/// One simulated drone, from Hello to Finished.
async fn drone(
    i: usize,
    channel: Channel,
    token: String,
    shared: &Shared,
    mut phase: watch::Receiver<Phase>,
    pool: &[Delta],
    seconds: usize,
) -> Result<()> {
    let (tx, rx) = mpsc::channel::<DroneMessage>(64);
    tx.send(msg(Msg::Hello(v1::Hello {
        protocol: v1::ProtocolVersion::ProtocolVersion1 as i32,
        drone_id: format!("sim-{i}"),
        token,
        running_campaign: String::new(),
        last_seq_sent: 0,
    })))
    .await?;
    let mut inbound = DronesClient::new(channel)
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| anyhow::anyhow!("Connect refused: {s}"))?
        .into_inner();

    // The reader answers Pings at once and hands every other command on, timed.
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Arrival>();
    let pong_tx = tx.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + LIFETIME;
        loop {
            let next = match tokio::time::timeout_at(deadline, inbound.message()).await {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(s)) => {
                    let _ = cmd_tx.send(Err(s.to_string()));
                    break;
                }
            };
            let (ns, ms) = (mono_ns(), unix_ms());
            match next.cmd {
                Some(Cmd::Ping(p)) => {
                    let _ = pong_tx
                        .send(msg(Msg::Pong(v1::Pong { nonce: p.nonce })))
                        .await;
                }
                Some(cmd) => {
                    let Ok(()) = cmd_tx.send(Ok((cmd, ns, ms))) else {
                        break;
                    };
                }
                None => {}
            }
        }
    });

    // Welcome, then Configure: answer Ready.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut welcomed = false;
    loop {
        match recv(&mut cmd_rx, deadline, "Configure").await?.0 {
            Cmd::Welcome(_) => welcomed = true,
            Cmd::Configure(_) if welcomed => break,
            other => bail!("unexpected {other:?} before Configure"),
        }
    }
    tx.send(msg(Msg::Ready(v1::Ready {}))).await?;
    shared.ready.fetch_add(1, Ordering::Relaxed);

    // Start.
    let deadline = Instant::now() + START_TIMEOUT + START_SPREAD;
    loop {
        match recv(&mut cmd_rx, deadline, "Start").await? {
            (Cmd::Start(s), ns, ms) => {
                shared.at_ms.store(s.at_ms as u64, Ordering::Relaxed);
                lock(&shared.starts).push((ns, ms > s.at_ms));
                break;
            }
            (Cmd::Ack(_), _, _) => {}
            (other, _, _) => bail!("unexpected {other:?} before Start"),
        }
    }

    // One delta a second, from the shared epoch (camut-drone sends no Progress: the
    // server reads a drone's progress from its deltas).
    let epoch = tokio::time::timeout(START_SPREAD + Duration::from_secs(10), async {
        phase.wait_for(|p| *p != Phase::Wait).await.map(|p| *p)
    })
    .await
    .context("no ingestion phase in time")??;
    let Phase::Ingest(epoch) = epoch else {
        return Ok(());
    };
    let end = epoch + Duration::from_secs(seconds as u64) + ACK_GRACE;
    let mut sent_ns = vec![0u64; seconds];
    let mut latencies = Vec::with_capacity(seconds);
    let (mut k, mut acked) = (0usize, 0u64);
    while k < seconds || acked < seconds as u64 {
        tokio::select! {
            _ = tokio::time::sleep_until(epoch + Duration::from_secs(k as u64)), if k < seconds => {
                let d = &pool[(i * 7 + k) % pool.len()];
                sent_ns[k] = mono_ns();
                tx.send(msg(Msg::Stats(v1::Stats {
                    seq: k as u64 + 1,
                    delta: Some(d.wire.clone()),
                })))
                .await?;
                shared.sent.fetch_add(1, Ordering::Relaxed);
                shared.requests.fetch_add(d.requests, Ordering::Relaxed);
                shared.iterations.fetch_add(d.iterations, Ordering::Relaxed);
                k += 1;
            }
            a = recv(&mut cmd_rx, end, "Ack") => {
                if let (Cmd::Ack(a), ns, _) = a? {
                    let upto = a.seq.min(k as u64);
                    for seq in acked + 1..=upto {
                        latencies.push(ns.saturating_sub(sent_ns[seq as usize - 1]) / 1000);
                    }
                    if upto > acked {
                        shared.acked.fetch_add(upto - acked, Ordering::Relaxed);
                        acked = upto;
                    }
                }
            }
        }
    }
    lock(&shared.ack_latency_us).extend(latencies);
    shared.all_acked.fetch_add(1, Ordering::Relaxed);

    // Finished when told.
    tokio::time::timeout(FINISH_TIMEOUT, phase.wait_for(|p| *p == Phase::Finish))
        .await
        .context("not told to finish in time")??;
    tx.send(msg(Msg::Finished(v1::Finished {
        last_seq: seconds as u64,
        summary: None,
    })))
    .await?;
    shared.finished.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// xorshift64*: a small deterministic generator for the deltas.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A response time in µs: log-normal around 40 ms (about 5 ms to 300 ms).
fn latency_us(rng: &mut u64) -> u64 {
    let u: f64 = (0..4)
        .map(|_| (next(rng) >> 11) as f64 / (1u64 << 53) as f64)
        .sum::<f64>()
        - 2.0;
    (40_000.0 * u.exp()).max(1.0) as u64
}

/// `count` distinct deltas, each one second of a drone: two call series of about a
/// hundred calls each, the iterations that made them, a few errors and connections.
fn delta_pool(count: usize) -> Vec<Delta> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    (0..count).map(|_| delta(&mut rng)).collect()
}

fn delta(rng: &mut u64) -> Delta {
    let mut s = StatsSet::default();
    let (mut requests, mut errors) = (0, 0);
    let mut iterations = u64::MAX;
    for op in ["GET /products/{id}", "POST /cart"] {
        let n = 90 + next(rng) % 21;
        let failed = next(rng) % 3;
        let c = s.call(&CallKey {
            operation: op.into(),
            status_class: 200,
        });
        for _ in 0..n {
            let rt = latency_us(rng);
            let _ = c.response_time.record(rt);
            let _ = c.response_begin_time.record(rt * 4 / 5 + 1);
            let _ = c.service_time.record(rt);
            let _ = c.received.record(800 + next(rng) % 20_000);
            let _ = c.transmitted.record(150 + next(rng) % 600);
        }
        c.requests = n;
        c.errors = failed;
        requests += n;
        errors += failed;
        iterations = iterations.min(n);
    }
    for _ in 0..errors {
        s.error("POST /cart: 503 Service Unavailable", None);
    }
    let it = &mut s.iterations;
    it.started = iterations;
    it.failed = errors.min(iterations);
    it.completed = iterations - it.failed;
    for _ in 0..iterations {
        let _ = it.duration.record(latency_us(rng) + latency_us(rng));
    }
    s.connections = next(rng) % 4;
    Delta {
        wire: camut::stats::to_wire(&s),
        requests,
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_round_trip_and_count_what_they_hold() {
        let pool = delta_pool(4);
        for d in &pool {
            let set = camut::stats::from_wire(&d.wire).expect("decodes");
            assert_eq!(set.request_totals().0, d.requests);
            assert_eq!(set.calls.len(), 2);
            assert_eq!(
                set.iterations.completed + set.iterations.failed,
                d.iterations
            );
            assert!((180..=220).contains(&d.requests));
        }
    }

    #[test]
    fn lines_stay_on_one_line() {
        assert_eq!(crate::util::one_line("a\nb"), "a b");
    }
}
