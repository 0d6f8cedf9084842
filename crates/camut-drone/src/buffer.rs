//! What the drone owes the server: numbered statistics deltas until acknowledged, recent
//! log lines, and the Finished message — bounded, resent after a reconnection.

use std::collections::VecDeque;
use std::time::Instant;

use camut::v1::{self, drone_message::Msg, DroneMessage};
use camut_engine::stats::StatsSet;

use crate::msg;

/// Unacknowledged deltas kept before the oldest are merged together.
const MAX_DELTAS: usize = 600;
/// Log lines kept while disconnected.
const MAX_LOGS: usize = 1000;
/// Log lines sent per second at most; the others are counted and reported in one line.
pub(crate) const MAX_LOGS_PER_SECOND: u32 = 100;

#[derive(Default)]
pub(crate) struct Outbox {
    next_seq: u64,
    /// Unacknowledged deltas, oldest first: number, delta, whether it was sent, when
    /// it was made (a merged delta keeps the older time).
    deltas: VecDeque<(u64, StatsSet, bool, Instant)>,
    logs: VecDeque<v1::Log>,
    dropped_logs: u64,
    /// The second lines are being counted in, and how many were sent in it.
    log_window: Option<(std::time::Instant, u32)>,
    /// Lines not sent because of [`MAX_LOGS_PER_SECOND`], not yet reported.
    throttled_logs: u64,
    finished: Option<v1::Finished>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty() && self.logs.is_empty()
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// Numbers a new delta and keeps it; returns the message to send. `sent` says
    /// whether it goes out now.
    pub fn push_stats(&mut self, delta: &StatsSet, sent: bool) -> DroneMessage {
        self.next_seq += 1;
        let seq = self.next_seq;
        if self.deltas.len() >= MAX_DELTAS {
            // Merge the two oldest deltas that never went out (exact). The merged one
            // keeps the later number; the earlier number is never used, so the server,
            // which stores each number once, cannot count anything twice.
            let pair = (0..self.deltas.len().saturating_sub(1))
                .find(|&i| !self.deltas[i].2 && !self.deltas[i + 1].2);
            if let Some(i) = pair {
                let (_, older, _, made) = self.deltas.remove(i).expect("index in range");
                self.deltas[i].1.merge(&older);
                self.deltas[i].3 = made;
            }
        }
        self.deltas
            .push_back((seq, delta.clone(), sent, Instant::now()));
        stats_msg(seq, delta)
    }

    /// How long the server has left statistics unacknowledged: the age of the oldest
    /// delta it does not hold; `None` when it holds them all.
    pub fn unacked_for(&self) -> Option<std::time::Duration> {
        self.deltas.front().map(|d| d.3.elapsed())
    }

    /// Keeps a log line (cut to [`camut::logs::MAX_LINE_BYTES`]) and returns the messages
    /// to send: none past [`MAX_LOGS_PER_SECOND`] lines in the current second, and a
    /// line counting those once the next second begins.
    pub fn push_log(&mut self, level: &str, line: String) -> Vec<DroneMessage> {
        let mut out: Vec<DroneMessage> = self.throttle_report().into_iter().collect();
        let (_, sent) = self
            .log_window
            .get_or_insert((std::time::Instant::now(), 0));
        if *sent >= MAX_LOGS_PER_SECOND {
            self.throttled_logs += 1;
            return out;
        }
        *sent += 1;
        out.push(self.keep_log(level, camut::logs::bounded_line(line)));
        out
    }

    /// Once the second in which lines were dropped is over (or at the end, `force`), the
    /// line that counts them.
    pub fn throttle_report_now(&mut self, force: bool) -> Option<DroneMessage> {
        let over = self
            .log_window
            .is_some_and(|(since, _)| since.elapsed() >= std::time::Duration::from_secs(1));
        if over {
            self.log_window = None;
        }
        if (over || force) && self.throttled_logs > 0 {
            let n = std::mem::take(&mut self.throttled_logs);
            return Some(self.keep_log(
                "warn",
                format!("{n} log lines were dropped: more than {MAX_LOGS_PER_SECOND} a second"),
            ));
        }
        None
    }

    fn throttle_report(&mut self) -> Option<DroneMessage> {
        self.throttle_report_now(false)
    }

    fn keep_log(&mut self, level: &str, line: String) -> DroneMessage {
        let log = v1::Log {
            level: level.into(),
            line,
        };
        if self.logs.len() >= MAX_LOGS {
            self.logs.pop_front();
            self.dropped_logs += 1;
        }
        self.logs.push_back(log.clone());
        msg(Msg::Log(log))
    }

    pub fn finish(&mut self, summary: Option<v1::RunSummary>) -> DroneMessage {
        let f = v1::Finished {
            last_seq: self.next_seq,
            summary,
        };
        self.finished = Some(f.clone());
        msg(Msg::Finished(f))
    }

    /// The server holds every delta up to `seq` (an Ack on the current stream).
    pub fn ack(&mut self, seq: u64) {
        self.ack_deltas(seq);
        // Logs ride on the same ordered stream: an ack means they arrived too.
        self.logs.clear();
    }

    /// The server holds every delta up to `seq` (a Welcome: what it kept from earlier
    /// streams). Logs are kept for [`Outbox::pending`]: those sent on a stream that
    /// died, e.g. while the link was cut, never arrived.
    pub fn ack_deltas(&mut self, seq: u64) {
        while self.deltas.front().is_some_and(|(s, ..)| *s <= seq) {
            self.deltas.pop_front();
        }
    }

    /// Everything to resend after a reconnection, in order.
    pub fn pending(&mut self) -> Vec<DroneMessage> {
        let mut out: Vec<DroneMessage> = self
            .deltas
            .iter_mut()
            .map(|(s, d, sent, _)| {
                *sent = true;
                stats_msg(*s, d)
            })
            .collect();
        if self.dropped_logs > 0 {
            out.push(msg(Msg::Log(v1::Log {
                level: "warn".into(),
                line: format!(
                    "{} log lines were dropped while the server was unreachable",
                    self.dropped_logs
                ),
            })));
            self.dropped_logs = 0;
        }
        out.extend(self.logs.iter().cloned().map(|l| msg(Msg::Log(l))));
        if let Some(f) = &self.finished {
            out.push(msg(Msg::Finished(f.clone())));
        }
        out
    }
}

fn stats_msg(seq: u64, delta: &StatsSet) -> DroneMessage {
    msg(Msg::Stats(v1::Stats {
        seq,
        delta: Some(camut::stats::to_wire(delta)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(n: u64) -> StatsSet {
        let mut s = StatsSet::default();
        s.iterations.completed = n;
        s
    }

    fn log_lines(msgs: &[DroneMessage]) -> Vec<String> {
        msgs.iter()
            .filter_map(|m| match &m.msg {
                Some(Msg::Log(l)) => Some(l.line.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn log_lines_are_cut_and_throttled_and_the_drops_reported() {
        let mut o = Outbox::default();
        let big = o.push_log("info", "x".repeat(5 << 20));
        let lines = log_lines(&big);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].len() <= camut::logs::MAX_LINE_BYTES);
        assert!(
            lines[0].contains("5242880 bytes in all"),
            "{}",
            &lines[0][8000..]
        );
        let mut sent = 1;
        for i in 0..250 {
            sent += log_lines(&o.push_log("info", format!("line {i}"))).len();
        }
        assert_eq!(
            sent, MAX_LOGS_PER_SECOND as usize,
            "at most the rate in one second"
        );
        let report = log_lines(&o.throttle_report_now(true).into_iter().collect::<Vec<_>>());
        assert_eq!(
            report,
            [format!(
                "151 log lines were dropped: more than {MAX_LOGS_PER_SECOND} a second"
            )]
        );
        assert!(o.throttle_report_now(true).is_none(), "reported once");
    }

    #[test]
    fn unacked_deltas_are_resent_and_bounded_exactly() {
        let mut o = Outbox::default();
        // Three went out before the connection dropped; the rest wait.
        for _ in 0..3 {
            o.push_stats(&delta(1), true);
        }
        for _ in 0..(MAX_DELTAS + 10) {
            o.push_stats(&delta(1), false);
        }
        assert_eq!(o.deltas.len(), MAX_DELTAS);
        let total: u64 = o
            .deltas
            .iter()
            .map(|(_, d, ..)| d.iterations.completed)
            .sum();
        assert_eq!(total, (MAX_DELTAS + 13) as u64, "merging keeps every count");
        let sent: Vec<u64> = o
            .deltas
            .iter()
            .take(3)
            .map(|(s, d, ..)| s * 100 + d.iterations.completed)
            .collect();
        assert_eq!(
            sent,
            vec![101, 201, 301],
            "deltas that went out are never merged"
        );
        o.ack(100);
        assert!(o.deltas.iter().all(|(s, ..)| *s > 100));
        o.finish(None);
        let pending = o.pending();
        assert!(matches!(
            pending.last().unwrap().msg,
            Some(Msg::Finished(_))
        ));
    }
}
