//! Test harness: a real HTTP target on loopback and an observer that keeps everything.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use camut_engine::stats::StatsSet;
use camut_engine::{
    CallPoint, Campaign, ConsoleLevel, Observer, Point, Progress, RunConfig, RunResult, StopHandle,
};
use camut_target::Target;

#[derive(Default)]
pub struct Capture {
    pub points: Mutex<Vec<Point>>,
    pub calls: Mutex<Vec<CallPoint>>,
    pub console: Mutex<Vec<(u64, ConsoleLevel, String)>>,
    /// Iterations finished, as last reported with an interval.
    pub iterations_done: AtomicU64,
}

impl Observer for Capture {
    fn point(&self, p: Point) {
        self.points.lock().unwrap().push(p);
    }
    fn call(&self, c: CallPoint) {
        self.calls.lock().unwrap().push(c);
    }
    fn console(&self, vu: u64, level: ConsoleLevel, message: &str) {
        self.console
            .lock()
            .unwrap()
            .push((vu, level, message.to_string()));
    }
    fn interval(&self, _delta: &StatsSet, progress: &Progress) {
        self.iterations_done
            .store(progress.iterations_done, Ordering::SeqCst);
    }
}

impl Capture {
    pub fn lines(&self) -> Vec<String> {
        self.console
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.2.clone())
            .collect()
    }
}

/// A target on a runtime of its own, alive as long as this value.
pub struct Env {
    pub target: Target,
    _rt: tokio::runtime::Runtime,
}

impl Env {
    pub fn new() -> Env {
        Self::with(false)
    }

    /// A target serving HTTPS with a self-signed certificate (`target.certificate`).
    pub fn new_tls() -> Env {
        Self::with(true)
    }

    fn with(tls: bool) -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let target = if tls {
            rt.block_on(Target::start_tls())
        } else {
            rt.block_on(Target::start())
        };
        Env {
            target: target.unwrap(),
            _rt: rt,
        }
    }

    /// The target's certificate as a JS string literal.
    pub fn ca_js(&self) -> String {
        serde_json::to_string(self.target.certificate.as_deref().expect("a TLS target")).unwrap()
    }

    /// Runs `source` (with `TARGET` in camut.env) and returns the result and what was observed.
    pub fn run(&self, source: &str, threads: usize) -> (RunResult, Arc<Capture>) {
        self.run_with(
            source,
            RunConfig {
                threads,
                ..RunConfig::default()
            },
        )
    }

    pub fn run_with(&self, source: &str, mut config: RunConfig) -> (RunResult, Arc<Capture>) {
        let campaign = Campaign::from_source("test.js", source)
            .unwrap_or_else(|e| panic!("campaign loads: {e}"));
        config.env.insert("TARGET".into(), self.target.url());
        let capture = Arc::new(Capture::default());
        let result =
            camut_engine::run(&campaign, config, capture.clone(), StopHandle::new()).expect("run");
        (result, capture)
    }
}
