//! Camut's drone: the agent an instance runs. It dials the server, says Hello with its
//! campaign's join token, and follows the command stream: Configure (compile the
//! campaign, answer Ready or the compile error), Start (run the engine at the shared
//! time), Stop, Shutdown, Ping.
//!
//! With a `tsdb` section in the campaign, points go to that OpenTSDB server through
//! `camut_tsdb::Connector` (per-call points or per-interval aggregates); at the run's
//! end the connector is flushed (bounded by `flushTimeout`) and its counts — sent,
//! retried, dropped — are shipped with the statistics and logged.
//!
//! Statistics deltas are numbered and kept until the server acknowledges them: if the
//! server goes away the run goes on, deltas wait in a bounded buffer (the oldest ones
//! are merged together when it fills — exact, never dropped) and are resent after
//! reconnecting; the server stores each number once, so nothing is counted twice.
//!
//! A drone cut off from the server does not load the target unseen for long: once the
//! server has left its statistics unacknowledged, or said nothing, for the campaign's
//! `cutOffTimeout` (30 s by default), the drone stops its run by itself and keeps what
//! it has not delivered. When it reconnects, the server's Welcome says whether the run
//! goes on; a drone the server declared lost is told to stop (docs/RELIABILITY.md).

#![warn(missing_docs)]

mod buffer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use camut::v1::{
    self, drone_message::Msg, drones_client::DronesClient, server_command::Cmd, DroneMessage,
};
use camut_engine::stats::StatsSet;
use camut_engine::{
    CallPoint, Campaign, ConsoleLevel, DroneInfo, Observer, Point, Progress, RunConfig, StopHandle,
};
use camut_tsdb::Connector;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use buffer::Outbox;

/// The protocol version this drone speaks.
const PROTOCOL: i32 = v1::ProtocolVersion::ProtocolVersion1 as i32;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct DroneConfig {
    /// Server URL (`http://host:port`) or `host:port`.
    pub server: String,
    /// The campaign's join token.
    pub token: String,
    /// This drone's id (the instance id).
    pub id: String,
    /// How an `https://` server's certificate is checked.
    pub tls: camut::tls::TlsOptions,
}

/// Why the drone stopped.
#[derive(Debug, Error)]
pub enum DroneError {
    /// The server refused the drone for good (bad token, wrong protocol).
    #[error("the server refused this drone: {0}")]
    Refused(String),
}

/// What the engine thread reports.
enum EngineEvent {
    Delta(Box<StatsSet>),
    Log(&'static str, String),
    /// The TSDB connector's final counts.
    Tsdb(camut_tsdb::TsdbCounts),
    /// The run's summary (boxed: it is much larger than the other events).
    Done(Result<Box<v1::RunSummary>, String>),
}

struct EngineObserver(mpsc::UnboundedSender<EngineEvent>, Option<Arc<Connector>>);

impl Observer for EngineObserver {
    fn point(&self, p: Point) {
        match &self.1 {
            Some(tsdb) => tsdb.point(p),
            // Without a `tsdb` section the points go to the log stream, as `camut run` prints them.
            None => {
                let _ = self
                    .0
                    .send(EngineEvent::Log("debug", camut_tsdb::put_line(&p)));
            }
        }
    }
    fn call(&self, c: CallPoint) {
        if let Some(tsdb) = &self.1 {
            tsdb.call(c);
        }
    }
    fn console(&self, vu: u64, level: ConsoleLevel, message: &str) {
        let level = match level {
            ConsoleLevel::Debug => "debug",
            ConsoleLevel::Info => "info",
            ConsoleLevel::Warn => "warn",
            ConsoleLevel::Error => "error",
        };
        let _ = self
            .0
            .send(EngineEvent::Log(level, format!("vu {vu}: {message}")));
    }
    fn interval(&self, delta: &StatsSet, _progress: &Progress) {
        if let Some(tsdb) = &self.1 {
            tsdb.stats(delta);
        }
        let _ = self.0.send(EngineEvent::Delta(Box::new(delta.clone())));
    }
}

/// A campaign compiled on the server's Configure, ready to start.
#[derive(Clone)]
struct Configured {
    campaign: Campaign,
    index: u32,
    count: u32,
    /// `camut.env`.
    env: std::collections::BTreeMap<String, String>,
}

/// What the drone knows of its link to the server, read by the run's watchdog.
struct Link {
    epoch: Instant,
    /// When the server was last heard from (ms since `epoch`).
    heard_ms: AtomicU64,
    /// When the oldest delta the server has not acknowledged was made (ms since
    /// `epoch`; `u64::MAX`: none).
    unacked_since_ms: AtomicU64,
}

impl Link {
    fn new() -> Self {
        Link {
            epoch: Instant::now(),
            heard_ms: AtomicU64::new(0),
            unacked_since_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The server said something.
    fn heard(&self) {
        self.heard_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The age of the oldest delta the server has not acknowledged, if any.
    fn unacked_for(&self, age: Option<Duration>) {
        let since = age.map_or(u64::MAX, |a| {
            self.now_ms().saturating_sub(a.as_millis() as u64)
        });
        self.unacked_since_ms.store(since, Ordering::Relaxed);
    }

    /// Why the drone counts as cut off after `limit`, if it does: statistics left
    /// unacknowledged that long (the server cannot be reached, or cannot answer), or
    /// nothing heard that long (it does not speak).
    fn cut_off(&self, limit: Duration) -> Option<String> {
        let now = self.now_ms();
        let limit_ms = limit.as_millis() as u64;
        let unacked = self.unacked_since_ms.load(Ordering::Relaxed);
        if unacked != u64::MAX && now.saturating_sub(unacked) > limit_ms {
            return Some(format!(
                "the server has acknowledged none of this drone's statistics for {} s",
                (now - unacked) / 1000
            ));
        }
        let heard = self.heard_ms.load(Ordering::Relaxed);
        (now.saturating_sub(heard) > limit_ms).then(|| {
            format!(
                "nothing was heard from the server for {} s",
                (now - heard) / 1000
            )
        })
    }
}

/// How often the watchdog of a run checks the link.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(250);

/// Stops the run once the drone is cut off for `limit` (the campaign's `cutOffTimeout`).
async fn watchdog(
    link: Arc<Link>,
    stop: StopHandle,
    limit: Duration,
    events: mpsc::UnboundedSender<EngineEvent>,
) {
    let mut every = tokio::time::interval(WATCHDOG_PERIOD);
    loop {
        every.tick().await;
        if stop.is_stopped() {
            return;
        }
        if let Some(why) = link.cut_off(limit) {
            let line = format!(
                "cut off from the server: {why} (cutOffTimeout is {} s); this drone stops \
                 its run and keeps its statistics until the server takes them",
                limit.as_secs_f64()
            );
            tracing::error!("{line}");
            let _ = events.send(EngineEvent::Log("error", line));
            stop.stop();
            return;
        }
    }
}

/// The drone's state across connections.
struct Drone {
    config: DroneConfig,
    campaign: Option<Configured>,
    /// Campaign id of the run started (running or finished), for Hello.
    run_campaign: String,
    stop: Option<StopHandle>,
    outbox: Outbox,
    events_tx: mpsc::UnboundedSender<EngineEvent>,
    link: Arc<Link>,
    /// The watchdog of the run going on.
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Runs the drone until the server says Shutdown (or refuses it).
pub async fn run(config: DroneConfig) -> Result<(), DroneError> {
    raise_open_file_limit();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut drone = Drone {
        config,
        campaign: None,
        run_campaign: String::new(),
        stop: None,
        outbox: Outbox::default(),
        events_tx,
        link: Arc::new(Link::new()),
        watchdog: None,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match drone.session(&mut events).await {
            Ok(SessionEnd::Shutdown) => return Ok(()),
            Err(e) => return Err(e),
            Ok(SessionEnd::Lost(why)) => {
                tracing::warn!(server = %drone.config.server, "connection lost ({why}); retrying in {backoff:?}");
                let wake = tokio::time::sleep(backoff);
                tokio::pin!(wake);
                loop {
                    tokio::select! {
                        _ = &mut wake => break,
                        Some(ev) = events.recv() => drone.on_engine(ev, None).await,
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if drone.outbox.is_empty() {
            backoff = backoff.min(Duration::from_secs(1));
        }
    }
}

fn url(server: &str) -> String {
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

impl Drone {
    async fn session(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    ) -> Result<SessionEnd, DroneError> {
        let endpoint = match tonic::transport::Endpoint::from_shared(url(&self.config.server)) {
            Ok(e) => e.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true),
            Err(e) => {
                return Err(DroneError::Refused(format!(
                    "bad server address '{}': {e}",
                    self.config.server
                )))
            }
        };
        let channel = match self.config.tls.connect(endpoint).await {
            Ok(c) => c,
            Err(e) => {
                let mut text = camut::client::error_chain(&e);
                let hint = camut::tls::hint(&url(&self.config.server), &text);
                if !hint.is_empty() {
                    text = format!("{text} ({hint})");
                }
                return Ok(SessionEnd::Lost(text));
            }
        };
        let (tx, rx) = mpsc::channel::<DroneMessage>(1024);
        let hello = v1::Hello {
            protocol: PROTOCOL,
            drone_id: self.config.id.clone(),
            token: self.config.token.clone(),
            running_campaign: self.run_campaign.clone(),
            last_seq_sent: self.outbox.last_seq(),
        };
        let _ = tx.send(msg(Msg::Hello(hello))).await;
        let mut inbound = match DronesClient::new(channel)
            .connect(ReceiverStream::new(rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unauthenticated
                        | tonic::Code::FailedPrecondition
                        | tonic::Code::InvalidArgument
                ) =>
            {
                return Err(DroneError::Refused(s.message().to_string()))
            }
            Err(s) => return Ok(SessionEnd::Lost(s.message().to_string())),
        };
        loop {
            tokio::select! {
                cmd = inbound.message() => match cmd {
                    Ok(Some(v1::ServerCommand { cmd: Some(cmd) })) => {
                        self.link.heard();
                        if let Some(end) = self.on_command(cmd, &tx).await {
                            return Ok(end);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(SessionEnd::Lost("the server closed the stream".into())),
                    Err(s) => return Ok(SessionEnd::Lost(s.message().to_string())),
                },
                Some(ev) = events.recv() => self.on_engine(ev, Some(&tx)).await,
            }
        }
    }

    async fn on_command(
        &mut self,
        cmd: Cmd,
        tx: &mpsc::Sender<DroneMessage>,
    ) -> Option<SessionEnd> {
        match cmd {
            Cmd::Welcome(w) => {
                self.outbox.ack_deltas(w.acked_seq);
                self.link.unacked_for(self.outbox.unacked_for());
                if w.stop_run {
                    let line = format!("the server stops this drone's run: {}", w.stop_reason);
                    tracing::warn!("{line}");
                    let _ = self.events_tx.send(EngineEvent::Log("warn", line));
                    if let Some(stop) = &self.stop {
                        stop.stop();
                    }
                }
                for m in self.outbox.pending() {
                    let _ = tx.send(m).await;
                }
            }
            Cmd::Configure(_) if self.stop.is_some() => {
                // A new configuration would drop what the run going on has not delivered.
                let message = "this drone is still ending its previous run; deploy again \
                               once it has finished"
                    .to_string();
                let _ = tx
                    .send(msg(Msg::CompileError(v1::CompileError { message })))
                    .await;
            }
            Cmd::Configure(c) => {
                let file = c.file.clone();
                let source = c.source.clone();
                let compiled =
                    tokio::task::spawn_blocking(move || Campaign::from_source(&file, &source))
                        .await;
                let reply = match compiled {
                    Ok(Ok(mut campaign)) => {
                        let default = c.default_tsdb.as_ref().and_then(default_tsdb);
                        match resolve_tsdb(&mut campaign.options.tsdb, default) {
                            Ok(()) => {
                                self.campaign = Some(Configured {
                                    campaign,
                                    index: c.drone_index,
                                    count: c.drone_count,
                                    env: c.env.clone().into_iter().collect(),
                                });
                                self.run_campaign.clear();
                                self.outbox = Outbox::default();
                                Msg::Ready(v1::Ready {})
                            }
                            Err(message) => Msg::CompileError(v1::CompileError { message }),
                        }
                    }
                    Ok(Err(e)) => Msg::CompileError(v1::CompileError {
                        message: e.to_string(),
                    }),
                    Err(e) => Msg::CompileError(v1::CompileError {
                        message: format!("compiler crashed: {e}"),
                    }),
                };
                let _ = tx.send(msg(reply)).await;
            }
            Cmd::Start(s) => self.start(s.at_ms),
            Cmd::Stop(_) => {
                if let Some(stop) = &self.stop {
                    stop.stop();
                }
            }
            Cmd::Shutdown(_) => {
                if let Some(stop) = &self.stop {
                    stop.stop();
                }
                return Some(SessionEnd::Shutdown);
            }
            Cmd::Ping(p) => {
                let _ = tx.send(msg(Msg::Pong(v1::Pong { nonce: p.nonce }))).await;
            }
            Cmd::Ack(a) => {
                self.outbox.ack(a.seq);
                self.link.unacked_for(self.outbox.unacked_for());
            }
        }
        None
    }

    fn start(&mut self, at_ms: i64) {
        let Some(Configured {
            campaign,
            index,
            count,
            env,
        }) = self.campaign.clone()
        else {
            tracing::warn!("Start without a configured campaign: ignored");
            return;
        };
        if self.stop.is_some() {
            tracing::warn!("Start while a run is going on: ignored");
            return;
        }
        let stop = StopHandle::new();
        self.stop = Some(stop.clone());
        self.run_campaign = campaign.options.id.clone();
        self.link.heard();
        self.watchdog = Some(tokio::spawn(watchdog(
            self.link.clone(),
            stop.clone(),
            campaign.options.cut_off_timeout,
            self.events_tx.clone(),
        )));
        let tsdb = match campaign.options.tsdb.clone() {
            None => None,
            Some(cfg) => match Connector::start(cfg, &campaign.options.id, &self.config.id) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    let _ = self.events_tx.send(EngineEvent::Log(
                        "error",
                        format!("cannot start the TSDB connector, points are lost: {e}"),
                    ));
                    None
                }
            },
        };
        let observer = Arc::new(EngineObserver(self.events_tx.clone(), tsdb.clone()));
        let done = self.events_tx.clone();
        let config = RunConfig {
            call_points: tsdb.as_ref().is_some_and(|t| t.wants_calls()),
            drone: DroneInfo {
                id: self.config.id.clone(),
                index,
                count,
            },
            env,
            ..RunConfig::default()
        };
        let now_ms = camut_engine::stats::clock::now_ms();
        let wait = Duration::from_millis((at_ms - now_ms).clamp(0, 60_000) as u64);
        let started = std::thread::Builder::new()
            .name("camut-run".into())
            .spawn(move || {
                std::thread::sleep(wait);
                let result = camut_engine::run(&campaign, config, observer, stop);
                let counts = tsdb.map(|t| t.finish());
                if let Some(c) = counts {
                    let line = format!(
                        "TSDB points: {} produced, {} sent, {} dropped (queue full), {} rejected, {} unsent, {} retried",
                        c.produced, c.sent, c.dropped, c.rejected, c.unsent, c.retried
                    );
                    let level = if c.dropped + c.rejected + c.unsent > 0 { "warn" } else { "info" };
                    let _ = done.send(EngineEvent::Log(level, line));
                    let _ = done.send(EngineEvent::Tsdb(c));
                }
                let result = result
                    .map(|mut r| {
                        r.summary.tsdb = counts;
                        Box::new(camut::summary::to_wire(&r.summary))
                    })
                    .map_err(|e| e.to_string());
                let _ = done.send(EngineEvent::Done(result));
            });
        if let Err(e) = started {
            let _ = self
                .events_tx
                .send(EngineEvent::Done(Err(format!("cannot start the run: {e}"))));
        }
    }

    /// Handles what the engine reported; sends it when connected, keeps it until acked.
    async fn on_engine(&mut self, ev: EngineEvent, tx: Option<&mpsc::Sender<DroneMessage>>) {
        let out: Vec<DroneMessage> = match ev {
            // The server reads a drone's progress from its stored deltas: one message a
            // second, not two.
            EngineEvent::Delta(delta) => {
                let stats = self.outbox.push_stats(&delta, tx.is_some());
                self.link.unacked_for(self.outbox.unacked_for());
                let mut out = vec![stats];
                out.extend(self.outbox.throttle_report_now(false));
                out
            }
            EngineEvent::Log(level, line) => self.outbox.push_log(level, line),
            EngineEvent::Tsdb(counts) => {
                let delta = StatsSet {
                    tsdb: counts,
                    ..StatsSet::default()
                };
                vec![self.outbox.push_stats(&delta, tx.is_some())]
            }
            EngineEvent::Done(result) => {
                self.stop = None;
                if let Some(w) = self.watchdog.take() {
                    w.abort();
                }
                let summary = match result {
                    Ok(summary) => Some(*summary),
                    Err(e) => {
                        let logs = self
                            .outbox
                            .push_log("error", format!("the run failed: {e}"));
                        if let Some(tx) = tx {
                            for log in logs {
                                let _ = tx.send(log).await;
                            }
                        }
                        None
                    }
                };
                let mut out: Vec<DroneMessage> =
                    self.outbox.throttle_report_now(true).into_iter().collect();
                out.push(self.outbox.finish(summary));
                out
            }
        };
        if let Some(tx) = tx {
            for m in out {
                let _ = tx.send(m).await;
            }
        }
    }
}

/// The campaign's `tsdb` section with its address: a file without a section takes the
/// server's default; one without a host takes the default's host and port and keeps
/// its own way of sending; without a default, a host is required.
fn resolve_tsdb(
    section: &mut Option<camut_tsdb::TsdbConfig>,
    default: Option<camut_tsdb::TsdbConfig>,
) -> Result<(), String> {
    match (section.as_mut(), default) {
        (None, default) => *section = default,
        (Some(s), _) if s.has_host() => {}
        (Some(s), Some(d)) => s.set_address(d.host, d.port),
        (Some(_), None) => {
            return Err(
                "campaign option `tsdb.host` is required: give it in the file's \
                        `tsdb` section, or a default TSDB in the server's config"
                    .to_string(),
            )
        }
    }
    Ok(())
}

/// The server's default `tsdb` section, for a campaign whose file has none.
fn default_tsdb(settings: &v1::TsdbSettings) -> Option<camut_tsdb::TsdbConfig> {
    match camut_tsdb::TsdbConfig::from_settings(settings) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("the server's default TSDB is unusable, no points are sent: {e}");
            None
        }
    }
}

pub(crate) fn msg(m: Msg) -> DroneMessage {
    DroneMessage { msg: Some(m) }
}

/// Raises the soft open-file limit to the hard limit: each VU may hold connections.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_tsdb;
    use camut_tsdb::{Mode, TsdbConfig};

    fn section(json: serde_json::Value) -> TsdbConfig {
        TsdbConfig::from_options(json.as_object().unwrap()).unwrap()
    }

    #[test]
    fn a_section_without_host_takes_the_servers_address() {
        let default = || Some(section(serde_json::json!({"host": "tsdb", "port": 4343})));
        let mut s = Some(section(serde_json::json!({"mode": "call"})));
        resolve_tsdb(&mut s, default()).unwrap();
        let s = s.unwrap();
        assert_eq!((s.address().as_str(), s.mode), ("tsdb:4343", Mode::Call));
        let mut none = None;
        resolve_tsdb(&mut none, default()).unwrap();
        assert_eq!(none.unwrap().address(), "tsdb:4343");
        let mut own = Some(section(serde_json::json!({"host": "own"})));
        resolve_tsdb(&mut own, default()).unwrap();
        assert_eq!(own.unwrap().address(), "own:4242");
        let mut hostless = Some(section(serde_json::json!({"mode": "call"})));
        let e = resolve_tsdb(&mut hostless, None).unwrap_err();
        assert!(e.contains("`tsdb.host` is required"), "{e}");
    }
}
