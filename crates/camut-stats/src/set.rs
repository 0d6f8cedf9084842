//! The set of statistics one owner records: per-call series, iterations, errors.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;

use crate::LazyHistogram;

/// Identifies a series of HTTP calls: the operation tag and the status class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey {
    /// The call's `operation` tag (default: method and path).
    pub operation: String,
    /// Status class: 200, 300, 400, 500, or 0 for transport errors and timeouts.
    pub status_class: u16,
}

impl CallKey {
    /// The status class as written in tags: `2xx`, …, or `error`.
    pub fn status_label(&self) -> String {
        match self.status_class {
            0 => "error".to_string(),
            c => format!("{}xx", c / 100),
        }
    }
}

/// Statistics of one series of calls.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    /// Calls finished (with or without error).
    pub requests: u64,
    /// Calls that ended in an error (transport, timeout, status ≥ 400).
    pub errors: u64,
    /// Full response time in µs (from the intended start in the open model).
    pub response_time: LazyHistogram,
    /// Time to the response head in µs.
    pub response_begin_time: LazyHistogram,
    /// Raw service time in µs (differs from response_time only in the open model).
    pub service_time: LazyHistogram,
    /// Bytes received per call.
    pub received: LazyHistogram,
    /// Bytes sent per call.
    pub transmitted: LazyHistogram,
    /// TLS handshake time in µs, one value per call that opened an HTTPS connection.
    pub tls_handshake_time: LazyHistogram,
}

impl CallStats {
    fn merge(&mut self, o: &CallStats) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
        add(&mut self.response_time, &o.response_time);
        add(&mut self.response_begin_time, &o.response_begin_time);
        add(&mut self.service_time, &o.service_time);
        add(&mut self.received, &o.received);
        add(&mut self.transmitted, &o.transmitted);
        add(&mut self.tls_handshake_time, &o.tls_handshake_time);
    }
}

/// Iteration counts and durations.
#[derive(Debug, Clone, Default)]
pub struct IterationStats {
    /// Iterations started.
    pub started: u64,
    /// Iterations that completed without error.
    pub completed: u64,
    /// Iterations that ended with an error (thrown, rejected, timed out, interrupted).
    pub failed: u64,
    /// Of the failed, those that timed out (done() never called in time).
    pub timed_out: u64,
    /// Open model: arrivals that found no free VU.
    pub dropped: u64,
    /// done() calls after the first of the same iteration.
    pub done_twice: u64,
    /// Iteration duration in µs (from the intended start in the open model).
    pub duration: LazyHistogram,
}

/// One error message with how often it was seen and a sample stack.
#[derive(Debug, Clone, Default)]
pub struct ErrorCount {
    /// Occurrences.
    pub count: u64,
    /// The first stack seen.
    pub stack: Option<String>,
}

/// Distinct error messages kept per set; further ones are counted under one line.
pub const MAX_ERROR_MESSAGES: usize = 100;
const OTHER_ERRORS: &str = "(other error messages)";

/// Everything one owner records over some time: the unit that is shipped and merged.
#[derive(Debug, Clone, Default)]
pub struct StatsSet {
    /// HTTP call series (FxHash: looked up on every call recorded; the keys are bounded
    /// by `maxOperations`).
    pub calls: rustc_hash::FxHashMap<CallKey, CallStats>,
    /// Iterations.
    pub iterations: IterationStats,
    /// New TCP connections opened.
    pub connections: u64,
    /// Connections open at once (on one drone) at the latest reading; merged as the
    /// largest.
    pub connections_open: u64,
    /// Most connections open at once (on one drone); merged as the largest.
    pub connections_peak: u64,
    /// Errors by message (script errors and call errors).
    pub errors: HashMap<String, ErrorCount>,
    /// What the TSDB connector did with the points.
    pub tsdb: TsdbCounts,
}

/// Points handed to the TSDB connector and what became of them. At the end of a
/// run `produced = sent + dropped + rejected + unsent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TsdbCounts {
    /// Points queued (including those later dropped).
    pub produced: u64,
    /// Points written (telnet) or acknowledged (HTTP).
    pub sent: u64,
    /// Points whose write failed and were queued again (a point may count twice).
    pub retried: u64,
    /// Oldest points dropped because the queue was full.
    pub dropped: u64,
    /// Points the server refused (HTTP 400): bad names or values, not retried.
    pub rejected: u64,
    /// Points still queued when the end-of-run flush timed out.
    pub unsent: u64,
}

impl TsdbCounts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &TsdbCounts) {
        self.produced = self.produced.saturating_add(o.produced);
        self.sent = self.sent.saturating_add(o.sent);
        self.retried = self.retried.saturating_add(o.retried);
        self.dropped = self.dropped.saturating_add(o.dropped);
        self.rejected = self.rejected.saturating_add(o.rejected);
        self.unsent = self.unsent.saturating_add(o.unsent);
    }

    /// Whether the connector was used at all.
    pub fn is_empty(&self) -> bool {
        *self == TsdbCounts::default()
    }
}

/// The plain counters of a set: everything but its series, histograms and error
/// messages. A wire delta merges through these without building a [`StatsSet`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Iterations started.
    pub started: u64,
    /// Iterations completed without error.
    pub completed: u64,
    /// Iterations that ended with an error.
    pub failed: u64,
    /// Of the failed, those that timed out.
    pub timed_out: u64,
    /// Open model arrivals that found no free VU.
    pub dropped: u64,
    /// done() calls after the first of the same iteration.
    pub done_twice: u64,
    /// New TCP connections opened.
    pub connections: u64,
    /// Connections open at the latest reading (merged as the largest).
    pub connections_open: u64,
    /// Most connections open at once (merged as the largest).
    pub connections_peak: u64,
    /// What the TSDB connector did with the points.
    pub tsdb: TsdbCounts,
}

impl StatsSet {
    /// The series of `key`, created on first use.
    pub fn call(&mut self, key: &CallKey) -> &mut CallStats {
        if !self.calls.contains_key(key) {
            self.calls.insert(key.clone(), CallStats::default());
        }
        self.calls.get_mut(key).expect("inserted above")
    }

    /// Counts an error message (with a sample stack).
    pub fn error(&mut self, message: &str, stack: Option<&str>) {
        self.add_error(message, 1, stack);
    }

    /// Counts `count` occurrences of an error message, keeping the first stack seen.
    pub fn add_error(&mut self, message: &str, count: u64, stack: Option<&str>) {
        let key = if self.errors.len() >= MAX_ERROR_MESSAGES && !self.errors.contains_key(message) {
            OTHER_ERRORS
        } else {
            message
        };
        let e = self.errors.entry(key.to_string()).or_default();
        e.count = e.count.saturating_add(count);
        if e.stack.is_none() {
            e.stack = stack.map(str::to_string);
        }
    }

    /// Adds `other` into `self`: counts add up and histograms merge exactly.
    pub fn merge(&mut self, other: &StatsSet) {
        for (k, v) in &other.calls {
            self.call(k).merge(v);
        }
        self.add_counters(&other.counters());
        add(&mut self.iterations.duration, &other.iterations.duration);
        for (m, e) in &other.errors {
            self.add_error(m, e.count, e.stack.as_deref());
        }
    }

    /// The set's plain counters.
    pub fn counters(&self) -> Counters {
        let it = &self.iterations;
        Counters {
            started: it.started,
            completed: it.completed,
            failed: it.failed,
            timed_out: it.timed_out,
            dropped: it.dropped,
            done_twice: it.done_twice,
            connections: self.connections,
            connections_open: self.connections_open,
            connections_peak: self.connections_peak,
            tsdb: self.tsdb,
        }
    }

    /// Adds plain counters into `self`, as [`StatsSet::merge`] does: sums, except the
    /// connection gauges, which keep the largest.
    pub fn add_counters(&mut self, c: &Counters) {
        let it = &mut self.iterations;
        it.started = it.started.saturating_add(c.started);
        it.completed = it.completed.saturating_add(c.completed);
        it.failed = it.failed.saturating_add(c.failed);
        it.timed_out = it.timed_out.saturating_add(c.timed_out);
        it.dropped = it.dropped.saturating_add(c.dropped);
        it.done_twice = it.done_twice.saturating_add(c.done_twice);
        self.connections = self.connections.saturating_add(c.connections);
        self.connections_open = self.connections_open.max(c.connections_open);
        self.connections_peak = self.connections_peak.max(c.connections_peak);
        self.tsdb.add(&c.tsdb);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        let it = &self.iterations;
        self.calls.is_empty()
            && it.started == 0
            && it.completed == 0
            && it.failed == 0
            && it.dropped == 0
            && it.done_twice == 0
            && it.duration.is_empty()
            && self.errors.is_empty()
            && self.connections == 0
            && self.connections_open == 0
            && self.connections_peak == 0
            && self.tsdb.is_empty()
    }

    /// Requests and errors over all series.
    pub fn request_totals(&self) -> (u64, u64) {
        self.calls.values().fold((0, 0), |(r, e): (u64, u64), c| {
            (r.saturating_add(c.requests), e.saturating_add(c.errors))
        })
    }

    /// Per operation (all status classes together), by name: requests, errors and the
    /// response-time histogram (µs).
    pub fn by_operation(&self) -> BTreeMap<&str, OperationCalls> {
        let mut ops: BTreeMap<&str, OperationCalls> = BTreeMap::new();
        for (k, c) in &self.calls {
            let e = ops.entry(&k.operation).or_default();
            e.requests = e.requests.saturating_add(c.requests);
            e.errors = e.errors.saturating_add(c.errors);
            let _ = e.response_time.add(&*c.response_time);
        }
        ops
    }
}

/// One operation's calls over its status classes: see [`StatsSet::by_operation`].
#[derive(Debug, Clone)]
pub struct OperationCalls {
    /// Calls finished.
    pub requests: u64,
    /// Of those, failed.
    pub errors: u64,
    /// Full response time in µs.
    pub response_time: Histogram<u64>,
}

impl Default for OperationCalls {
    fn default() -> Self {
        OperationCalls {
            requests: 0,
            errors: 0,
            response_time: crate::histogram(),
        }
    }
}

fn add(into: &mut LazyHistogram, from: &LazyHistogram) {
    into.add(from);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram;

    fn key(op: &str, s: u16) -> CallKey {
        CallKey {
            operation: op.into(),
            status_class: s,
        }
    }

    #[test]
    fn merge_is_exact() {
        let mut a = StatsSet::default();
        let mut b = StatsSet::default();
        let mut all = histogram();
        for i in 1..=1000u64 {
            let s = if i % 2 == 0 { &mut a } else { &mut b };
            let c = s.call(&key("GET /", 200));
            c.requests += 1;
            c.response_time.record(i * 37).unwrap();
            all.record(i * 37).unwrap();
        }
        b.call(&key("GET /", 0)).errors += 3;
        b.error("timeout", None);
        b.error("timeout", Some("at x"));
        a.merge(&b);
        let merged = &a.calls[&key("GET /", 200)];
        assert_eq!(merged.requests, 1000);
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                merged.response_time.value_at_quantile(q),
                all.value_at_quantile(q)
            );
        }
        assert_eq!(a.request_totals(), (1000, 3));
        assert_eq!(a.errors["timeout"].count, 2);
        assert_eq!(a.errors["timeout"].stack.as_deref(), Some("at x"));
    }

    #[test]
    fn a_set_with_only_completions_is_not_empty() {
        let mut s = StatsSet::default();
        assert!(s.is_empty());
        s.iterations.completed = 1;
        assert!(
            !s.is_empty(),
            "iterations ending in a later interval than they started must be shipped"
        );
    }

    #[test]
    fn error_messages_are_bounded() {
        let mut s = StatsSet::default();
        for i in 0..(MAX_ERROR_MESSAGES + 50) {
            s.error(&format!("e{i}"), None);
        }
        assert_eq!(s.errors.len(), MAX_ERROR_MESSAGES + 1);
        assert_eq!(s.errors[OTHER_ERRORS].count, 50);
    }
}
