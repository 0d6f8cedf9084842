//! The server's recent log lines, kept in memory for `camut logs` and the UI, and
//! followed live.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use camut::v1::LogLine;
use tokio::sync::broadcast;

use crate::core::Core;
use crate::store::now_ms;

/// Lines kept.
const KEEP: usize = 10_000;
/// Bytes of messages kept at most (each line is also cut to
/// [`camut::logs::MAX_LINE_BYTES`]).
pub const KEEP_BYTES: usize = 8 << 20;

/// A ring of recent lines plus a live feed.
pub struct LogBuffer {
    lines: Mutex<Ring>,
    feed: broadcast::Sender<LogLine>,
}

/// The kept lines and the bytes their messages hold.
#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer {
            lines: Mutex::new(Ring::default()),
            feed: broadcast::channel(1024).0,
        }
    }
}

/// Levels in order.
pub fn level_rank(level: &str) -> u8 {
    match level {
        "debug" => 0,
        "info" => 1,
        "warn" => 2,
        "error" => 3,
        _ => 1,
    }
}

impl LogBuffer {
    /// Records a line (and emits it through tracing).
    pub fn push(&self, level: &str, source: &str, campaign: &str, message: impl Into<String>) {
        let line = LogLine {
            time_ms: now_ms(),
            level: level.into(),
            source: source.into(),
            campaign: campaign.into(),
            message: camut::logs::bounded_line(message.into()),
        };
        match level {
            "error" => tracing::error!(source, campaign, "{}", line.message),
            "warn" => tracing::warn!(source, campaign, "{}", line.message),
            "debug" => tracing::debug!(source, campaign, "{}", line.message),
            _ => tracing::info!(source, campaign, "{}", line.message),
        }
        self.keep(line);
    }

    /// Records a line that tracing has already seen.
    fn keep(&self, line: LogLine) {
        if let Ok(mut ring) = self.lines.lock() {
            ring.bytes += line.message.len();
            ring.lines.push_back(line.clone());
            while ring.lines.len() > KEEP || ring.bytes > KEEP_BYTES {
                let Some(old) = ring.lines.pop_front() else {
                    break;
                };
                ring.bytes -= old.message.len();
            }
        }
        let _ = self.feed.send(line);
    }

    /// The last `n` lines matching the filter.
    pub fn recent(&self, n: usize, campaign: &str, min_level: u8) -> Vec<LogLine> {
        let ring = self.lines.lock();
        let mut out: Vec<LogLine> = ring
            .iter()
            .flat_map(|r| r.lines.iter().rev())
            .filter(|l| matches(l, campaign, min_level))
            .take(n)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// New lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.feed.subscribe()
    }
}

/// Whether a line passes a campaign and level filter.
pub fn matches(l: &LogLine, campaign: &str, min_level: u8) -> bool {
    (campaign.is_empty() || l.campaign == campaign) && level_rank(&l.level) >= min_level
}

/// A `tracing` layer that copies the in-process deployers' events (targets
/// `camut_deployer…`) into a server's service log, so that `camut logs` and the console
/// show them. Install it in the subscriber at start-up, then [`LogTap::attach`] the
/// core's log buffer once it exists; events before that are only printed.
#[derive(Clone, Default)]
pub struct LogTap(Arc<OnceLock<Arc<LogBuffer>>>);

impl LogTap {
    /// From now on, copies events into `core`'s log.
    pub fn attach(&self, core: &Core) {
        let _ = self.0.set(core.logs.clone());
    }
}

/// Collects an event's message and fields; `campaign` is kept apart.
#[derive(Default)]
struct Fields {
    message: String,
    campaign: String,
    rest: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "campaign" => self.campaign = format!("{value:?}").trim_matches('"').to_string(),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "campaign" => self.campaign = value.to_string(),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogTap {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("camut_deployer") {
            return;
        }
        let Some(logs) = self.0.get() else {
            return;
        };
        let mut f = Fields::default();
        event.record(&mut f);
        let level = match *meta.level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            _ => "debug",
        };
        let kind = meta.target().rsplit("::").next().unwrap_or("deployer");
        logs.keep(LogLine {
            time_ms: now_ms(),
            level: level.into(),
            source: format!("deployer {kind}"),
            campaign: f.campaign,
            message: format!("{}{}", f.message, f.rest),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_bounded_in_bytes_and_lines_are_cut() {
        let logs = LogBuffer::default();
        for i in 0..3000 {
            logs.push(
                "info",
                "drone-1",
                "c",
                format!("{i} {}", "y".repeat(100_000)),
            );
        }
        let ring = logs.lines.lock().unwrap();
        assert!(ring.bytes <= KEEP_BYTES, "{}", ring.bytes);
        assert_eq!(
            ring.bytes,
            ring.lines.iter().map(|l| l.message.len()).sum::<usize>()
        );
        assert!(ring
            .lines
            .iter()
            .all(|l| l.message.len() <= camut::logs::MAX_LINE_BYTES));
        assert!(ring.lines.back().unwrap().message.starts_with("2999 "));
        drop(ring);
        assert_eq!(logs.recent(5, "c", 0).len(), 5);
    }
}
