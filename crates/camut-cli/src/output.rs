//! What `camut run` writes: the TSDB's `put` lines and console lines on stdout (or the
//! points to a TSDB with `--tsdb`), a progress line on stderr when it is a terminal.
//!
//! Points always go through a [`Connector`]: one that sends them, or one that prints
//! the lines it would send, so that what is printed is what a TSDB receives.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camut_engine::stats::series::{SeriesPoint, SeriesRecorder};
use camut_engine::stats::StatsSet;
use camut_engine::{CallPoint, ConsoleLevel, Observer, Point, Progress};
use camut_tsdb::{Connector, LineSink};

/// Where `camut run`'s lines go: stdout, or stderr when stdout is reserved for the
/// JSON summary. Shared by the console lines and a printing connector's batches.
#[derive(Clone)]
pub struct Lines(Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>);

impl Lines {
    pub fn new(to_stderr: bool) -> Self {
        let sink: Box<dyn Write + Send> = if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        Lines(Arc::new(Mutex::new(BufWriter::with_capacity(
            64 * 1024,
            sink,
        ))))
    }

    /// Writes `text` as it is: whole lines, each ending with a newline.
    fn write(&self, text: &str) {
        if let Ok(mut out) = self.0.lock() {
            let _ = out.write_all(text.as_bytes());
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.0.lock() {
            let _ = out.flush();
        }
    }

    /// A sink for [`Connector::start_printing`].
    pub fn sink(&self) -> LineSink {
        let lines = self.clone();
        Arc::new(move |batch: &str| lines.write(batch))
    }
}

/// Writes console lines, hands points to the connector, shows progress on stderr and,
/// when asked, keeps the per-second series.
pub struct StdoutObserver {
    out: Lines,
    progress: bool,
    tsdb: Arc<Connector>,
    series: Option<Mutex<SeriesRecorder>>,
}

impl StdoutObserver {
    pub fn new(show_progress: bool, out: Lines, tsdb: Arc<Connector>, series: bool) -> Self {
        StdoutObserver {
            out,
            progress: show_progress && std::io::stderr().is_terminal(),
            tsdb,
            series: series.then(Mutex::default),
        }
    }

    /// The per-second series of the run (empty when it was not kept).
    pub fn take_series(&self) -> Vec<SeriesPoint> {
        self.series
            .as_ref()
            .and_then(|s| s.lock().ok().map(|mut s| std::mem::take(&mut *s).finish()))
            .unwrap_or_default()
    }

    pub fn flush(&self) {
        self.out.flush();
        if self.progress {
            eprint!("\r\x1b[2K");
        }
    }

    fn line(&self, text: &str) {
        self.out.write(&format!("{text}\n"));
    }
}

impl Observer for StdoutObserver {
    fn point(&self, point: Point) {
        self.tsdb.point(point);
    }

    fn call(&self, call: CallPoint) {
        self.tsdb.call(call);
    }

    fn console(&self, _vu: u64, level: ConsoleLevel, message: &str) {
        match level {
            ConsoleLevel::Info => self.line(message),
            ConsoleLevel::Warn => self.line(&format!("[warn] {message}")),
            ConsoleLevel::Error => self.line(&format!("[error] {message}")),
            ConsoleLevel::Debug => self.line(&format!("[debug] {message}")),
        }
    }

    fn interval(&self, delta: &StatsSet, p: &Progress) {
        self.tsdb.stats(delta);
        if let Some(series) = &self.series {
            if let Ok(mut s) = series.lock() {
                s.add(camut_engine::stats::clock::now_ms(), delta);
            }
        }
        self.out.flush();
        if !self.progress {
            return;
        }
        let frac = match (p.iterations_planned, p.duration) {
            (Some(n), _) if n > 0 => p.iterations_done as f64 / n as f64,
            (_, Some(d)) if !d.is_zero() => p.elapsed.as_secs_f64() / d.as_secs_f64(),
            _ => 0.0,
        }
        .clamp(0.0, 1.0);
        let width = 30;
        let filled = (frac * width as f64) as usize;
        eprint!(
            "\r\x1b[2K[{}{}] {:>3.0}%  {}  iterations {}  requests {}  errors {}",
            "=".repeat(filled),
            " ".repeat(width - filled),
            frac * 100.0,
            fmt_elapsed(p.elapsed),
            p.iterations_done,
            p.requests,
            p.errors
        );
    }
}

fn fmt_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}
