//! The connector: the queue, the aggregator and the sender thread.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use camut_stats::{StatsSet, TsdbCounts};
use tokio::sync::Notify;

use crate::aggregate::Aggregator;
use crate::config::{Mode, TsdbConfig};
use crate::point::{CallPoint, Entry, Point};
use crate::queue::Queue;
use crate::transport::{Conn, LineSink, SendError};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a point waits for its batch to fill before it is sent anyway: writing
/// every few points would cost a system call and a thread wake-up each time.
const LINGER: Duration = Duration::from_millis(50);
/// How often a growing drop count is logged.
const DROP_LOG_EVERY: Duration = Duration::from_secs(5);

struct Inner {
    config: TsdbConfig,
    base: crate::encode::Base,
    queue: Mutex<Queue>,
    aggregator: Option<Mutex<Aggregator>>,
    wake: Notify,
    /// Set by `finish`: the sender flushes until then, then stops.
    deadline: Mutex<Option<Instant>>,
    /// Instead of a TSDB: where the telnet lines are written.
    sink: Option<LineSink>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends points to one OpenTSDB-compatible server from a background thread.
///
/// Every method returns at once: points wait in a bounded queue and the thread
/// writes them in batches as soon as a connection is up, reconnecting with backoff
/// (100 ms doubling to 5 s). [`Connector::finish`] flushes within the configured
/// `flushTimeout` and reports what was sent, retried, dropped and left unsent.
pub struct Connector {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Connector {
    /// Starts the sender thread for `campaign` as seen from drone `client`.
    pub fn start(config: TsdbConfig, campaign: &str, client: &str) -> std::io::Result<Connector> {
        Self::start_with(config, campaign, client, None)
    }

    /// Like [`Connector::start`], but the points are written to `sink` as the telnet
    /// `put` lines the TSDB would receive (same mode, precision, batching and
    /// aggregation), instead of being sent: `camut run` without `--tsdb`.
    pub fn start_printing(
        config: TsdbConfig,
        campaign: &str,
        client: &str,
        sink: LineSink,
    ) -> std::io::Result<Connector> {
        Self::start_with(config, campaign, client, Some(sink))
    }

    fn start_with(
        config: TsdbConfig,
        campaign: &str,
        client: &str,
        sink: Option<LineSink>,
    ) -> std::io::Result<Connector> {
        let aggregator =
            (config.mode == Mode::Aggregate).then(|| Mutex::new(Aggregator::new(campaign, client)));
        let inner = Arc::new(Inner {
            base: crate::encode::Base::new(campaign, client),
            queue: Mutex::new(Queue::new(config.queue)),
            config,
            aggregator,
            wake: Notify::new(),
            deadline: Mutex::new(None),
            sink,
        });
        let for_thread = inner.clone();
        let thread = std::thread::Builder::new()
            .name("camut-tsdb".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => tokio::task::LocalSet::new().block_on(&rt, send_loop(for_thread)),
                    Err(e) => tracing::error!("the TSDB connector cannot start: {e}"),
                }
            })?;
        tracing::debug!(
            tsdb = %inner.config.address(),
            printing = inner.sink.is_some(),
            protocol = ?inner.config.protocol,
            mode = ?inner.config.mode,
            "TSDB connector started"
        );
        Ok(Connector {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &TsdbConfig {
        &self.inner.config
    }

    /// Whether per-call points are wanted.
    pub fn wants_calls(&self) -> bool {
        self.inner.config.mode == Mode::Call
    }

    /// A `camut.tsdb` point: queued as the test wrote it, in every mode.
    pub fn point(&self, p: Point) {
        self.push(Entry::Point(p));
    }

    /// One HTTP call (per-call mode; ignored in aggregate mode).
    pub fn call(&self, c: CallPoint) {
        if self.inner.aggregator.is_none() {
            self.push(Entry::Call(c));
        }
    }

    /// A statistics delta (aggregate mode; ignored in per-call mode).
    pub fn stats(&self, s: &StatsSet) {
        if let Some(a) = &self.inner.aggregator {
            lock(a).add_stats(s);
        }
    }

    fn push(&self, e: Entry) {
        if lock(&self.inner.queue).push(e, self.inner.config.batch) {
            self.inner.wake.notify_one();
        }
    }

    /// What happened to the points so far.
    pub fn counts(&self) -> TsdbCounts {
        lock(&self.inner.queue).counts
    }

    /// Flushes (the last aggregates too) within `flushTimeout`, stops the thread and
    /// returns the final counts; points still queued then are counted as unsent.
    pub fn finish(&self) -> TsdbCounts {
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            *lock(&self.inner.deadline) = Some(Instant::now() + self.inner.config.flush_timeout);
            self.inner.wake.notify_one();
            let _ = handle.join();
        }
        let c = self.counts();
        let level_warn = c.dropped + c.unsent + c.rejected > 0;
        let msg = format!(
            "TSDB points: {} produced, {} sent, {} dropped (queue full), {} rejected, {} unsent, {} retried",
            c.produced, c.sent, c.dropped, c.rejected, c.unsent, c.retried
        );
        if level_warn {
            tracing::warn!("{msg}");
        } else {
            tracing::info!("{msg}");
        }
        c
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if lock(&self.thread).is_some() {
            self.finish();
        }
    }
}

fn now_ms() -> u64 {
    camut_stats::clock::now_ms().max(0) as u64
}

async fn send_loop(inner: Arc<Inner>) {
    let cfg = &inner.config;
    let mut conn: Option<Conn> = None;
    let mut backoff = MIN_BACKOFF;
    let mut last_tick = Instant::now();
    let mut down_since: Option<Instant> = None;
    let mut dropped_logged = 0u64;
    let mut last_drop_log = Instant::now() - DROP_LOG_EVERY;
    let mut buf = String::new();
    let mut last_send = Instant::now();
    loop {
        let deadline = *lock(&inner.deadline);
        if let Some(agg) = &inner.aggregator {
            if deadline.is_some() || last_tick.elapsed() >= cfg.interval {
                let secs = last_tick.elapsed().as_secs_f64();
                last_tick = Instant::now();
                let points = lock(agg).drain(now_ms(), secs);
                let mut q = lock(&inner.queue);
                for p in points {
                    q.push(Entry::Point(p), usize::MAX);
                }
            }
        }
        let dropped = lock(&inner.queue).counts.dropped;
        if dropped > dropped_logged && last_drop_log.elapsed() >= DROP_LOG_EVERY {
            tracing::warn!(
                "TSDB queue full ({} points): {} oldest points dropped so far",
                cfg.queue,
                dropped
            );
            dropped_logged = dropped;
            last_drop_log = Instant::now();
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            lock(&inner.queue).abandon();
            break;
        }
        let batch = {
            let mut q = lock(&inner.queue);
            let linger =
                deadline.is_none() && q.points() < cfg.batch && last_send.elapsed() < LINGER;
            if linger {
                Vec::new()
            } else {
                q.take(cfg.batch)
            }
        };
        if batch.is_empty() {
            if deadline.is_some() {
                break;
            }
            let mut wait = LINGER.saturating_sub(last_send.elapsed());
            if wait.is_zero() {
                wait = LINGER;
            }
            if inner.aggregator.is_some() {
                wait = wait.min(cfg.interval.saturating_sub(last_tick.elapsed()));
            }
            let wait = wait.max(Duration::from_millis(1));
            let _ = tokio::time::timeout(wait, inner.wake.notified()).await;
            continue;
        }
        last_send = Instant::now();
        let n: u64 = batch.iter().map(|e| e.points() as u64).sum();
        if conn.is_none() {
            let limit = deadline.map_or(CONNECT_TIMEOUT, |d| {
                d.saturating_duration_since(Instant::now())
                    .min(CONNECT_TIMEOUT)
            });
            match tokio::time::timeout(limit, Conn::connect(cfg, inner.sink.as_ref())).await {
                Ok(Ok(c)) => {
                    if let Some(since) = down_since.take() {
                        tracing::info!(
                            tsdb = %cfg.address(),
                            "TSDB reachable again after {:.1} s",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    conn = Some(c);
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "connect timed out".to_string(),
                    };
                    lock(&inner.queue).requeue(batch);
                    if down_since.is_none() {
                        tracing::warn!(
                            tsdb = %cfg.address(),
                            "cannot reach the TSDB ({why}); points wait in the queue, retrying with backoff"
                        );
                        down_since = Some(Instant::now());
                    }
                    let mut pause = backoff;
                    if let Some(d) = deadline {
                        pause = pause.min(d.saturating_duration_since(Instant::now()));
                    }
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        match c.send(&batch, cfg, &inner.base, &mut buf).await {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                lock(&inner.queue).counts.sent += n;
            }
            Err(SendError::Rejected(why)) => {
                lock(&inner.queue).counts.rejected += n;
                tracing::warn!(tsdb = %cfg.address(), "the TSDB refused {n} points: {why}");
            }
            Err(SendError::Io(why)) => {
                conn = None;
                let mut q = lock(&inner.queue);
                q.counts.retried += n;
                q.requeue(batch);
                drop(q);
                if down_since.is_none() {
                    tracing::warn!(tsdb = %cfg.address(), "writing to the TSDB failed ({why}); reconnecting");
                    down_since = Some(Instant::now());
                }
            }
        }
    }
}
