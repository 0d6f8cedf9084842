//! Running a campaign: worker threads, each with one QuickJS runtime hosting many VU
//! contexts, and the collector that merges what they measure.

pub(crate) mod calls;
mod done;
mod health;
mod hops;
mod timers;
mod vu;
pub(crate) mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camut_stats::{Health, StatsSet, Summary, WorkerHealth};
use thiserror::Error;

use crate::campaign::{Campaign, RunLength};

/// Which drone this engine is, as the test sees it in `camut.drone`.
#[derive(Debug, Clone)]
pub struct DroneInfo {
    /// Drone id (the `client` tag of points).
    pub id: String,
    /// 0-based index among the campaign's drones.
    pub index: u32,
    /// How many drones the campaign runs on.
    pub count: u32,
}

impl Default for DroneInfo {
    fn default() -> Self {
        DroneInfo {
            id: "local".into(),
            index: 0,
            count: 1,
        }
    }
}

/// How to run a campaign on this machine.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Worker threads (each one QuickJS runtime); 0 means one per core.
    pub threads: usize,
    /// This drone.
    pub drone: DroneInfo,
    /// Overrides `users`.
    pub users: Option<u32>,
    /// Overrides `iterations` / `duration`.
    pub length: Option<RunLength>,
    /// `camut.env`.
    pub env: BTreeMap<String, String>,
    /// After a stop, open iterations get this long to call done().
    pub stop_grace: Duration,
    /// How often interval statistics are handed to the observer.
    pub interval: Duration,
    /// Hand every HTTP call to [`Observer::call`] (per-call TSDB points).
    pub call_points: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            threads: 0,
            drone: DroneInfo::default(),
            users: None,
            length: None,
            env: BTreeMap::new(),
            stop_grace: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            call_points: false,
        }
    }
}

/// Console levels of `console.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLevel {
    /// console.debug
    Debug,
    /// console.log / console.info
    Info,
    /// console.warn
    Warn,
    /// console.error
    Error,
}

pub use camut_tsdb::{CallPoint, Point};

/// Progress of a run, handed to the observer with each interval.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Iterations finished (completed or failed).
    pub iterations_done: u64,
    /// Iterations planned (closed model with iterations, or open model), if known.
    pub iterations_planned: Option<u64>,
    /// Planned duration, in duration mode.
    pub duration: Option<Duration>,
    /// HTTP calls so far.
    pub requests: u64,
    /// Failed calls so far.
    pub errors: u64,
}

/// Receives what a run produces. Called from worker threads: keep it quick.
pub trait Observer: Send + Sync {
    /// A `camut.tsdb` point.
    fn point(&self, point: Point);
    /// One HTTP call, when [`RunConfig::call_points`] is set.
    fn call(&self, _call: CallPoint) {}
    /// A `console.*` line of VU `vu`.
    fn console(&self, vu: u64, level: ConsoleLevel, message: &str);
    /// Statistics of one worker's last interval (a delta), with the run's progress.
    fn interval(&self, _delta: &StatsSet, _progress: &Progress) {}
}

/// Asks a run to stop: no iteration starts afterwards; open ones get the grace period.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Triggers the stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a run could not happen.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A worker thread could not be set up.
    #[error("cannot start worker {worker}: {message}")]
    Worker {
        /// Worker index.
        worker: usize,
        /// What failed.
        message: String,
    },
    /// A worker thread panicked: a bug. The run's figures miss what that worker had
    /// not yet shipped, so the run fails rather than report them as complete.
    #[error("worker {worker} crashed: {message}; the figures of this run are incomplete (this is a bug in camut: please report it with the campaign file)")]
    WorkerPanicked {
        /// Worker index.
        worker: usize,
        /// The panic's message.
        message: String,
    },
}

/// Waits for every worker thread; the first that panicked, as an error.
fn join_workers(handles: Vec<std::thread::JoinHandle<()>>) -> Option<EngineError> {
    let mut crashed = None;
    for (worker, h) in handles.into_iter().enumerate() {
        if let Err(payload) = h.join() {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(worker, "worker thread panicked: {message}");
            crashed.get_or_insert(EngineError::WorkerPanicked { worker, message });
        }
    }
    crashed
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The summary, thresholds evaluated.
    pub summary: Summary,
    /// All statistics merged.
    pub totals: StatsSet,
}

/// Everything workers share.
pub(crate) struct Shared {
    pub campaign: Campaign,
    pub config: RunConfig,
    pub users: u32,
    pub length: RunLength,
    pub threads: usize,
    pub observer: Arc<dyn Observer>,
    pub stop: StopHandle,
    /// Connections the workers hold open: `http.connections`.
    pub open_connections: Arc<crate::http::OpenConnections>,
    /// The drone's bound on distinct operations, shared by its workers.
    pub operations: std::sync::Mutex<camut_stats::OperationCap>,
}

pub(crate) enum WorkerMsg {
    Ready {
        worker: usize,
        result: Result<(), String>,
    },
    Interval {
        delta: Box<StatsSet>,
    },
    Done {
        health: WorkerHealth,
    },
}

/// Runs every iteration of one drone and returns the summary. Blocks until the end.
pub fn run(
    campaign: &Campaign,
    config: RunConfig,
    observer: Arc<dyn Observer>,
    stop: StopHandle,
) -> Result<RunResult, EngineError> {
    let users = config.users.unwrap_or(campaign.options.users).max(1);
    let length = config.length.unwrap_or(campaign.options.length);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = if config.threads == 0 {
        cores
    } else {
        config.threads
    }
    .clamp(1, users as usize);
    let shared = Arc::new(Shared {
        campaign: campaign.clone(),
        config,
        users,
        length,
        threads,
        observer,
        stop,
        open_connections: Arc::default(),
        operations: std::sync::Mutex::new(camut_stats::OperationCap::new(
            campaign.options.max_operations,
        )),
    });
    let (tx, rx) = mpsc::channel::<WorkerMsg>();
    let start_gate = Arc::new(std::sync::Barrier::new(threads + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut handles = Vec::new();
    for w in 0..threads {
        let (shared, tx, gate, at) = (
            shared.clone(),
            tx.clone(),
            start_gate.clone(),
            start_at.clone(),
        );
        let h = std::thread::Builder::new()
            .name(format!("camut-worker-{w}"))
            .spawn(move || worker::run_worker(w, shared, tx, gate, at))
            .map_err(|e| EngineError::Worker {
                worker: w,
                message: e.to_string(),
            })?;
        handles.push(h);
    }
    drop(tx);
    // Every worker builds its VUs, then all start together.
    let mut failure = None;
    for _ in 0..threads {
        match rx.recv() {
            Ok(WorkerMsg::Ready {
                worker,
                result: Err(message),
            }) => failure = Some(EngineError::Worker { worker, message }),
            Ok(_) => {}
            Err(_) => {
                failure = Some(EngineError::Worker {
                    worker: 0,
                    message: "worker thread ended early".into(),
                })
            }
        }
    }
    if failure.is_some() {
        shared.stop.stop();
    }
    let started = Instant::now();
    let _ = start_at.set(started);
    start_gate.wait();

    let planned = match (length, campaign.options.arrival_rate) {
        (RunLength::Iterations(n), None) => Some(n.saturating_mul(users as u64)),
        (RunLength::Iterations(n), Some(_)) => Some(n),
        (RunLength::Duration(_), _) => None,
    };
    let mut totals = StatsSet::default();
    let mut workers_health = Vec::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            WorkerMsg::Interval { delta } => {
                totals.merge(&delta);
                let (requests, errors) = totals.request_totals();
                let progress = Progress {
                    elapsed: started.elapsed(),
                    iterations_done: totals.iterations.completed + totals.iterations.failed,
                    iterations_planned: planned,
                    duration: match length {
                        RunLength::Duration(d) => Some(d),
                        _ => None,
                    },
                    requests,
                    errors,
                };
                shared.observer.interval(&delta, &progress);
            }
            WorkerMsg::Done { health } => workers_health.push(health),
            WorkerMsg::Ready { .. } => {}
        }
    }
    if let Some(e) = failure.or(join_workers(handles)) {
        return Err(e);
    }
    let duration_s = started.elapsed().as_secs_f64();
    let summary = Summary::build(
        &campaign.options.id,
        users as u64,
        &totals,
        duration_s,
        &campaign.options.thresholds,
        Some(Health::judge(workers_health)),
    );
    Ok(RunResult { summary, totals })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_panicked_fails_the_run_with_its_message() {
        let ok = std::thread::spawn(|| {});
        let crashed = std::thread::spawn(|| panic!("index out of bounds"));
        match join_workers(vec![ok, crashed]) {
            Some(EngineError::WorkerPanicked { worker, message }) => {
                assert_eq!((worker, message.as_str()), (1, "index out of bounds"));
            }
            other => panic!("expected a crash, got {other:?}"),
        }
        assert!(join_workers(vec![std::thread::spawn(|| {})]).is_none());
    }
}
