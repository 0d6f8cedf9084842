//! The server's recent log lines, kept in memory for `camut logs` and the UI, and
//! followed live.

use std::collections::VecDeque;
use std::sync::Mutex;

use camut::v1::LogLine;
use tokio::sync::broadcast;

use crate::store::now_ms;

/// Lines kept.
const KEEP: usize = 10_000;

/// A ring of recent lines plus a live feed.
pub struct LogBuffer {
    lines: Mutex<VecDeque<LogLine>>,
    feed: broadcast::Sender<LogLine>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer {
            lines: Mutex::new(VecDeque::new()),
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
            message: message.into(),
        };
        match level {
            "error" => tracing::error!(source, campaign, "{}", line.message),
            "warn" => tracing::warn!(source, campaign, "{}", line.message),
            "debug" => tracing::debug!(source, campaign, "{}", line.message),
            _ => tracing::info!(source, campaign, "{}", line.message),
        }
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() >= KEEP {
                lines.pop_front();
            }
            lines.push_back(line.clone());
        }
        let _ = self.feed.send(line);
    }

    /// The last `n` lines matching the filter.
    pub fn recent(&self, n: usize, campaign: &str, min_level: u8) -> Vec<LogLine> {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let mut out: Vec<LogLine> = lines
            .into_iter()
            .rev()
            .filter(|l| matches(l, campaign, min_level))
            .take(n)
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
