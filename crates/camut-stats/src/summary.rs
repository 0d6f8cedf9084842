//! The summary of a run: what `camut run --summary-json` writes and the server's results hold.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::set::StatsSet;
use crate::threshold::{Aggregate, MetricSource, Threshold, Verdict};

/// Distribution of one metric: milliseconds for times, bytes for sizes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyStats {
    /// From a histogram, dividing every value by `scale` (1000 turns µs into ms).
    pub fn from_histogram(h: &Histogram<u64>, scale: f64) -> Self {
        if h.is_empty() {
            return LatencyStats::default();
        }
        let q = |q: f64| h.value_at_quantile(q) as f64 / scale;
        LatencyStats {
            count: h.len(),
            min: h.min() as f64 / scale,
            avg: h.mean() / scale,
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p99_9: q(0.999),
            max: h.max() as f64 / scale,
        }
    }
}

/// Iteration counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationSummary {
    /// Started.
    pub started: u64,
    /// Completed without error.
    pub completed: u64,
    /// Ended with an error.
    pub failed: u64,
    /// Of the failed, timed out.
    pub timed_out: u64,
    /// Open model: arrivals that found no free VU.
    pub dropped: u64,
    /// Completed + failed per second.
    pub per_s: f64,
}

/// One operation's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationSummary {
    /// The operation tag.
    pub operation: String,
    /// Calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Response time (ms).
    pub response_time: LatencyStats,
}

/// One error message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// The message.
    pub message: String,
    /// Occurrences.
    pub count: u64,
    /// A sample stack.
    pub stack: Option<String>,
}

/// Health of one load-generator worker thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerHealth {
    /// CPU time used (user + sys), seconds.
    pub cpu_s: f64,
    /// CPU time / wall time.
    pub cpu_utilization: f64,
    /// Event-loop lag, 99th percentile, ms.
    pub lag_p99_ms: f64,
    /// Event-loop lag, max, ms.
    pub lag_max_ms: f64,
}

/// Health of the load generator: was it able to keep up?
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Per worker thread.
    pub workers: Vec<WorkerHealth>,
    /// Whether the generator itself was the bottleneck.
    pub saturated: bool,
    /// Why the figures may be invalid, when saturated.
    pub warning: Option<String>,
}

/// Worker CPU utilization above which the generator counts as saturated.
pub const SATURATED_CPU: f64 = 0.9;
/// Event-loop lag p99 above which the generator counts as saturated (ms).
pub const SATURATED_LAG_MS: f64 = 10.0;

impl Health {
    /// Judges saturation from the workers' figures.
    pub fn judge(workers: Vec<WorkerHealth>) -> Health {
        let busiest = workers
            .iter()
            .map(|w| w.cpu_utilization)
            .fold(0.0, f64::max);
        let laggiest = workers.iter().map(|w| w.lag_p99_ms).fold(0.0, f64::max);
        let mut why = Vec::new();
        if busiest > SATURATED_CPU {
            why.push(format!("a worker used {:.0}% of a CPU", busiest * 100.0));
        }
        if laggiest > SATURATED_LAG_MS {
            why.push(format!("event-loop lag p99 reached {laggiest:.1} ms"));
        }
        let saturated = !why.is_empty();
        let warning = saturated.then(|| {
            format!(
                "the load generator was saturated ({}): latencies include time spent waiting in the generator and the figures may be invalid; add threads or drones",
                why.join(", ")
            )
        });
        Health {
            workers,
            saturated,
            warning,
        }
    }
}

/// The summary of a run (or of a campaign across drones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Campaign id.
    pub campaign: String,
    /// Wall-clock duration, seconds.
    pub duration_s: f64,
    /// Virtual users.
    pub vus: u64,
    /// Iteration counts.
    pub iterations: IterationSummary,
    /// HTTP calls.
    pub requests: u64,
    /// Failed HTTP calls.
    pub errors: u64,
    /// Calls per second.
    pub requests_per_s: f64,
    /// TCP connections opened (new ones; reused keep-alive connections are not counted).
    #[serde(alias = "connections")]
    pub connections_opened: u64,
    /// Most TCP connections open at once on one drone (over several drones: the
    /// largest).
    #[serde(default)]
    pub connections_peak: u64,
    /// done() calls after the first in the same iteration.
    pub done_twice: u64,
    /// Per metric (`http.response_time`, `http.response_begin_time`, `http.service_time`,
    /// `http.received`, `http.transmitted`, `http.tls_handshake_time`, `iteration.duration`).
    pub metrics: BTreeMap<String, LatencyStats>,
    /// Per operation.
    pub operations: Vec<OperationSummary>,
    /// Errors by message, most frequent first.
    pub error_messages: Vec<ErrorSummary>,
    /// Threshold verdicts.
    pub thresholds: Vec<Verdict>,
    /// Whether every threshold held.
    pub thresholds_ok: bool,
    /// Load-generator health (absent when merged without it).
    pub health: Option<Health>,
    /// What became of the TSDB points (absent when none were produced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsdb: Option<crate::TsdbCounts>,
}

/// A set seen over a duration: what thresholds are computed from.
pub struct StatsView<'a> {
    /// The statistics.
    pub stats: &'a StatsSet,
    /// Over how long, seconds.
    pub duration_s: f64,
}

const TIME_METRICS: [&str; 4] = [
    "http.response_time",
    "http.response_begin_time",
    "http.service_time",
    "http.tls_handshake_time",
];

impl StatsView<'_> {
    fn histogram(&self, metric: &str, filter: Option<(&str, &str)>) -> Option<Histogram<u64>> {
        let mut h = crate::histogram();
        if metric == "iteration.duration" {
            h.add(&self.stats.iterations.duration).ok()?;
            return Some(h);
        }
        for (k, c) in &self.stats.calls {
            if !matches_filter(k, filter) {
                continue;
            }
            let src = match metric {
                "http.response_time" => &c.response_time,
                "http.response_begin_time" => &c.response_begin_time,
                "http.service_time" => &c.service_time,
                "http.received" => &c.received,
                "http.transmitted" => &c.transmitted,
                "http.tls_handshake_time" => &c.tls_handshake_time,
                _ => return None,
            };
            h.add(src).ok()?;
        }
        Some(h)
    }
}

fn matches_filter(k: &crate::CallKey, filter: Option<(&str, &str)>) -> bool {
    match filter {
        None => true,
        Some(("operation", v)) => k.operation == v,
        Some(("status", v)) => k.status_label() == v || k.status_class.to_string() == v,
        Some(_) => false,
    }
}

impl MetricSource for StatsView<'_> {
    fn aggregate(&self, metric: &str, filter: Option<(&str, &str)>, agg: Aggregate) -> Option<f64> {
        let per_s = |n: u64| {
            if self.duration_s > 0.0 {
                n as f64 / self.duration_s
            } else {
                0.0
            }
        };
        let calls = || {
            self.stats
                .calls
                .iter()
                .filter(|(k, _)| matches_filter(k, filter))
                .fold((0u64, 0u64), |(r, e), (_, c)| {
                    (r + c.requests, e + c.errors)
                })
        };
        let it = &self.stats.iterations;
        match (metric, agg) {
            ("http.errors", Aggregate::Count) => Some(calls().1 as f64),
            ("http.errors", Aggregate::Rate) => {
                let (r, e) = calls();
                (r > 0).then(|| e as f64 / r as f64)
            }
            ("http.requests" | "http.reqs", Aggregate::Count) => Some(calls().0 as f64),
            ("http.requests" | "http.reqs", Aggregate::Rate) => Some(per_s(calls().0)),
            ("http.connections", Aggregate::Count) => Some(self.stats.connections as f64),
            ("http.connections", Aggregate::Max) => Some(self.stats.connections_peak as f64),
            ("iterations", Aggregate::Count) => Some(it.completed as f64),
            ("iterations", Aggregate::Rate) => Some(per_s(it.completed)),
            ("iterations.failed", Aggregate::Count) => Some(it.failed as f64),
            ("iterations.failed", Aggregate::Rate) => {
                let n = it.completed + it.failed;
                (n > 0).then(|| it.failed as f64 / n as f64)
            }
            ("iterations.dropped", Aggregate::Count) => Some(it.dropped as f64),
            ("iterations.dropped", Aggregate::Rate) => {
                let n = it.started + it.dropped;
                (n > 0).then(|| it.dropped as f64 / n as f64)
            }
            (m, a) => {
                let h = self.histogram(m, filter)?;
                if h.is_empty() {
                    return None;
                }
                let scale = if TIME_METRICS.contains(&m) || m == "iteration.duration" {
                    1000.0
                } else {
                    1.0
                };
                Some(match a {
                    Aggregate::Min => h.min() as f64 / scale,
                    Aggregate::Max => h.max() as f64 / scale,
                    Aggregate::Avg => h.mean() / scale,
                    Aggregate::Percentile(p) => h.value_at_quantile(p / 100.0) as f64 / scale,
                    Aggregate::Count => h.len() as f64,
                    Aggregate::Rate => per_s(h.len()),
                })
            }
        }
    }
}

impl Summary {
    /// Builds the summary of `stats` over `duration_s` and evaluates `thresholds` on it.
    pub fn build(
        campaign: &str,
        vus: u64,
        stats: &StatsSet,
        duration_s: f64,
        thresholds: &[Threshold],
        health: Option<Health>,
    ) -> Summary {
        let view = StatsView { stats, duration_s };
        let (requests, errors) = stats.request_totals();
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let mut metrics = BTreeMap::new();
        for (name, scale) in [
            ("http.response_time", 1000.0),
            ("http.response_begin_time", 1000.0),
            ("http.service_time", 1000.0),
            ("http.received", 1.0),
            ("http.transmitted", 1.0),
            ("http.tls_handshake_time", 1000.0),
            ("iteration.duration", 1000.0),
        ] {
            if let Some(h) = view.histogram(name, None) {
                if !h.is_empty() {
                    metrics.insert(name.to_string(), LatencyStats::from_histogram(&h, scale));
                }
            }
        }
        let operations = stats
            .by_operation()
            .into_iter()
            .map(|(op, calls)| OperationSummary {
                operation: op.to_string(),
                requests: calls.requests,
                errors: calls.errors,
                response_time: LatencyStats::from_histogram(&calls.response_time, 1000.0),
            })
            .collect();
        let mut error_messages: Vec<ErrorSummary> = stats
            .errors
            .iter()
            .map(|(m, e)| ErrorSummary {
                message: m.clone(),
                count: e.count,
                stack: e.stack.clone(),
            })
            .collect();
        error_messages.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        let verdicts: Vec<Verdict> = thresholds.iter().map(|t| t.evaluate(&view)).collect();
        let it = &stats.iterations;
        Summary {
            campaign: campaign.to_string(),
            duration_s,
            vus,
            iterations: IterationSummary {
                started: it.started,
                completed: it.completed,
                failed: it.failed,
                timed_out: it.timed_out,
                dropped: it.dropped,
                per_s: per_s(it.completed + it.failed),
            },
            requests,
            errors,
            requests_per_s: per_s(requests),
            connections_opened: stats.connections,
            connections_peak: stats.connections_peak,
            done_twice: it.done_twice,
            metrics,
            operations,
            error_messages,
            thresholds_ok: verdicts.iter().all(|v| v.ok),
            thresholds: verdicts,
            health,
            tsdb: (!stats.tsdb.is_empty()).then_some(stats.tsdb),
        }
    }

    /// The summary as a human-readable report (what `camut run` prints at the end).
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let it = &self.iterations;
        let _ = writeln!(
            o,
            "campaign {}: {} VUs, finished in {:.2} s",
            self.campaign, self.vus, self.duration_s
        );
        let _ = writeln!(
            o,
            "  iterations  {} completed, {} failed ({} timed out), {} dropped   {:.1}/s",
            it.completed, it.failed, it.timed_out, it.dropped, it.per_s
        );
        let _ = writeln!(
            o,
            "  requests    {} ({} errors, {:.2}%)   {:.1} req/s   connections: {} opened, {} at most at once",
            self.requests,
            self.errors,
            if self.requests > 0 {
                self.errors as f64 * 100.0 / self.requests as f64
            } else {
                0.0
            },
            self.requests_per_s,
            self.connections_opened,
            self.connections_peak
        );
        if let Some(t) = self.metrics.get("http.tls_handshake_time") {
            let _ = writeln!(
                o,
                "  tls         {} handshakes   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
                t.count, t.p50, t.p99, t.max
            );
        }
        if self.done_twice > 0 {
            let _ = writeln!(o, "  done twice  {} (each counted once)", self.done_twice);
        }
        if let Some(t) = &self.tsdb {
            let _ = writeln!(
                o,
                "  tsdb        {} points: {} sent, {} dropped (queue full), {} rejected, {} unsent; {} retried",
                t.produced, t.sent, t.dropped, t.rejected, t.unsent, t.retried
            );
        }
        if !self.operations.is_empty() {
            let _ = writeln!(o, "\n  response time (ms)");
            let w = self
                .operations
                .iter()
                .map(|op| op.operation.len())
                .max()
                .unwrap_or(9)
                .max(9);
            let _ = writeln!(
                o,
                "  {:<w$} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "operation",
                "requests",
                "errors",
                "min",
                "p50",
                "p90",
                "p95",
                "p99",
                "p99.9",
                "max"
            );
            for op in &self.operations {
                let l = &op.response_time;
                let _ = writeln!(
                    o,
                    "  {:<w$} {:>9} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    op.operation,
                    op.requests,
                    op.errors,
                    l.min,
                    l.p50,
                    l.p90,
                    l.p95,
                    l.p99,
                    l.p99_9,
                    l.max
                );
            }
        }
        if !self.error_messages.is_empty() {
            let _ = writeln!(o, "\n  errors");
            for e in self.error_messages.iter().take(10) {
                let _ = writeln!(o, "  {:>8}  {}", e.count, e.message);
                if let Some(s) = e
                    .stack
                    .as_deref()
                    .and_then(|s| s.lines().find(|l| !l.trim().is_empty()))
                {
                    let _ = writeln!(o, "            {}", s.trim());
                }
            }
            if self.error_messages.len() > 10 {
                let _ = writeln!(
                    o,
                    "  … {} more messages in the JSON summary",
                    self.error_messages.len() - 10
                );
            }
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(o, "\n  thresholds");
            for v in &self.thresholds {
                let value = v
                    .value
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "no data".into());
                let _ = writeln!(
                    o,
                    "  {} {} {}   (value {})",
                    if v.ok { "✓" } else { "✗" },
                    v.metric,
                    v.expr,
                    value
                );
            }
        }
        if let Some(h) = &self.health {
            let _ = writeln!(o, "\n  generator");
            for (i, w) in h.workers.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "  worker {i}: cpu {:.2} s ({:.0}%), event-loop lag p99 {:.2} ms, max {:.2} ms",
                    w.cpu_s,
                    w.cpu_utilization * 100.0,
                    w.lag_p99_ms,
                    w.lag_max_ms
                );
            }
            if let Some(warn) = &h.warning {
                let _ = writeln!(o, "  WARNING: {warn}");
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallKey;
    use serde_json::json;

    #[test]
    fn summary_counts_and_thresholds() {
        let mut s = StatsSet::default();
        let c = s.call(&CallKey {
            operation: "GET /".into(),
            status_class: 200,
        });
        for i in 1..=100u64 {
            c.requests += 1;
            c.response_time.record(i * 1000).unwrap();
        }
        s.call(&CallKey {
            operation: "GET /".into(),
            status_class: 500,
        })
        .requests += 1;
        s.call(&CallKey {
            operation: "GET /".into(),
            status_class: 500,
        })
        .errors += 1;
        s.iterations.completed = 101;
        let t = Threshold::parse_all(&json!({"http.response_time": ["p99 < 100", "max < 50"], "http.errors": ["rate < 0.05"]}))
            .unwrap();
        let sum = Summary::build("c", 1, &s, 2.0, &t, None);
        assert_eq!(sum.requests, 101);
        assert_eq!(sum.errors, 1);
        assert_eq!(sum.requests_per_s, 50.5);
        assert!((sum.metrics["http.response_time"].max - 100.0).abs() < 0.1);
        let ok = |e: &str| sum.thresholds.iter().find(|v| v.expr == e).unwrap().ok;
        assert!(ok("p99 < 100"));
        assert!(!ok("max < 50"));
        assert!(ok("rate < 0.05"));
        assert!(!sum.thresholds_ok);
        let text = sum.render_text();
        assert!(text.contains("✗ http.response_time max < 50"), "{text}");
    }

    #[test]
    fn saturation_is_judged() {
        let ok = Health::judge(vec![WorkerHealth {
            cpu_utilization: 0.5,
            lag_p99_ms: 1.0,
            ..Default::default()
        }]);
        assert!(!ok.saturated && ok.warning.is_none());
        let bad = Health::judge(vec![WorkerHealth {
            cpu_utilization: 0.99,
            lag_p99_ms: 30.0,
            ..Default::default()
        }]);
        assert!(bad.saturated);
        assert!(bad.warning.unwrap().contains("may be invalid"));
    }
}
