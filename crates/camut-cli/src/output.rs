//! What `camut run` writes: tsdb points as OpenTSDB `put` lines and console lines on
//! stdout, a progress line on stderr when it is a terminal.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use camut_engine::stats::StatsSet;
use camut_engine::{ConsoleLevel, Observer, Point, Progress};

/// Writes points and console lines to stdout (or stderr when stdout is reserved for
/// the JSON summary), progress to stderr.
pub struct StdoutObserver {
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
    progress: bool,
}

impl StdoutObserver {
    pub fn new(show_progress: bool, lines_to_stderr: bool) -> Self {
        let sink: Box<dyn Write + Send> = if lines_to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        StdoutObserver {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, sink)),
            progress: show_progress && std::io::stderr().is_terminal(),
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

/// An OpenTSDB telnet `put` line: `put <metric> <timestamp-ms> <value> k=v …`.
pub fn put_line(p: &Point) -> String {
    let mut s = format!("put {} {} {}", sanitize(&p.metric), p.timestamp_ms, p.value);
    for (k, v) in &p.tags {
        let (k, v) = (sanitize(k), sanitize(v));
        if !k.is_empty() && !v.is_empty() {
            s.push(' ');
            s.push_str(&k);
            s.push('=');
            s.push_str(&v);
        }
    }
    s
}

/// OpenTSDB allows letters, digits and `-_./` in names and tag values.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Observer for StdoutObserver {
    fn point(&self, point: &Point) {
        self.line(&put_line(point));
    }

    fn console(&self, _vu: u64, level: ConsoleLevel, message: &str) {
        match level {
            ConsoleLevel::Info => self.line(message),
            ConsoleLevel::Warn => self.line(&format!("[warn] {message}")),
            ConsoleLevel::Error => self.line(&format!("[error] {message}")),
            ConsoleLevel::Debug => self.line(&format!("[debug] {message}")),
        }
    }

    fn interval(&self, _delta: &StatsSet, p: &Progress) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_lines_are_opentsdb_telnet() {
        let p = Point {
            metric: "shop.cart size".into(),
            timestamp_ms: 1_700_000_000_123,
            value: 3.5,
            tags: vec![
                ("campaign".into(), "a b".into()),
                ("url".into(), "http://h:1/x?y=1".into()),
                ("e".into(), String::new()),
            ],
        };
        assert_eq!(
            put_line(&p),
            "put shop.cart_size 1700000000123 3.5 campaign=a_b url=http_//h_1/x_y_1"
        );
    }
}
