//! What `camut run` writes: tsdb points as OpenTSDB `put` lines and console lines on
//! stdout (or the points to a TSDB with `--tsdb`), a progress line on stderr when it
//! is a terminal.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camut_engine::stats::StatsSet;
use camut_engine::{CallPoint, ConsoleLevel, Observer, Point, Progress};
use camut_tsdb::{put_line, Connector};

/// Writes points and console lines to stdout (or stderr when stdout is reserved for
/// the JSON summary), progress to stderr.
pub struct StdoutObserver {
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
    progress: bool,
    tsdb: Option<Arc<Connector>>,
}

impl StdoutObserver {
    pub fn new(show_progress: bool, lines_to_stderr: bool, tsdb: Option<Arc<Connector>>) -> Self {
        let sink: Box<dyn Write + Send> = if lines_to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        StdoutObserver {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, sink)),
            progress: show_progress && std::io::stderr().is_terminal(),
            tsdb,
        }
    }

    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
        if self.progress {
            eprint!("\r\x1b[2K");
        }
    }

    fn line(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.write_all(b"\n");
        }
    }
}

impl Observer for StdoutObserver {
    fn point(&self, point: Point) {
        match &self.tsdb {
            Some(t) => t.point(point),
            None => self.line(&put_line(&point)),
        }
    }

    fn call(&self, call: CallPoint) {
        if let Some(t) = &self.tsdb {
            t.call(call);
        }
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
        if let Some(t) = &self.tsdb {
            t.stats(delta);
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
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
