//! A run's per-second series: what the live charts draw, what the HTML report charts and
//! what `--series` exports (CSV or JSON).
//!
//! Each point is made from one interval's [`StatsSet`] — every delta of the run lands in
//! exactly one interval — so the points' requests and errors add up exactly to the
//! run's totals, overall and per operation. Percentiles come from the interval's merged
//! histograms, never from averaging.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::set::StatsSet;

/// One operation's figures in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationPoint {
    /// The operation tag.
    pub operation: String,
    /// Calls that ended in the interval.
    pub requests: u64,
    /// Of those, failed calls.
    pub errors: u64,
    /// Response time p50, ms.
    pub p50_ms: f64,
    /// Response time p90, ms.
    pub p90_ms: f64,
    /// Response time p99, ms.
    pub p99_ms: f64,
    /// Response time max, ms.
    pub max_ms: f64,
}

/// One interval (about a second) of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// When the interval ended, Unix ms.
    pub time_ms: i64,
    /// Iterations in flight at the end of the interval (all drones): the busy VUs.
    pub active_vus: u64,
    /// Every operation together (its `operation` is empty).
    pub total: OperationPoint,
    /// Per operation, by name.
    pub operations: Vec<OperationPoint>,
}

fn figures(
    operation: &str,
    requests: u64,
    errors: u64,
    h: &hdrhistogram::Histogram<u64>,
) -> OperationPoint {
    let q = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    OperationPoint {
        operation: operation.to_string(),
        requests,
        errors,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
    }
}

impl SeriesPoint {
    /// The point of one interval's statistics, ending at `time_ms`.
    pub fn from_interval(time_ms: i64, interval: &StatsSet, active_vus: u64) -> SeriesPoint {
        let per_op = interval.by_operation();
        let mut all = crate::histogram();
        for calls in per_op.values() {
            let _ = all.add(&calls.response_time);
        }
        let (requests, errors) = interval.request_totals();
        SeriesPoint {
            time_ms,
            active_vus,
            total: figures("", requests, errors, &all),
            operations: per_op
                .iter()
                .map(|(op, c)| figures(op, c.requests, c.errors, &c.response_time))
                .collect(),
        }
    }
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str =
    "time_ms,operation,requests,errors,p50_ms,p90_ms,p99_ms,max_ms,active_vus";

/// The series as CSV: per point, one row with operation `*` (every operation together)
/// then one row per operation; `active_vus` is the point's, on each of its rows.
pub fn to_csv(points: &[SeriesPoint]) -> String {
    let mut o = String::with_capacity(64 * points.len() * 2);
    o.push_str(CSV_HEADER);
    o.push('\n');
    for p in points {
        for (name, op) in std::iter::once(("*", &p.total))
            .chain(p.operations.iter().map(|op| (op.operation.as_str(), op)))
        {
            let _ = writeln!(
                o,
                "{},{},{},{},{},{},{},{},{}",
                p.time_ms,
                csv_field(name),
                op.requests,
                op.errors,
                op.p50_ms,
                op.p90_ms,
                op.p99_ms,
                op.max_ms,
                p.active_vus
            );
        }
    }
    o
}

/// The series as JSON: `{"campaign": ID, "points": [SeriesPoint…]}`.
pub fn to_json(campaign: &str, points: &[SeriesPoint]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        campaign: &'a str,
        points: &'a [SeriesPoint],
    }
    serde_json::to_string(&Doc { campaign, points }).unwrap_or_default()
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Gathers a local run's per-worker deltas into one point per wall-clock second.
#[derive(Debug, Default)]
pub struct SeriesRecorder {
    second: i64,
    pending: StatsSet,
    in_flight: i64,
    points: Vec<SeriesPoint>,
}

impl SeriesRecorder {
    /// Adds a delta that arrived at `now_ms`; a delta of a new second closes the last
    /// one's point.
    pub fn add(&mut self, now_ms: i64, delta: &StatsSet) {
        let second = now_ms.div_euclid(1000);
        if second != self.second {
            self.close();
            self.second = second;
        }
        let it = &delta.iterations;
        let ended = it.completed.saturating_add(it.failed);
        self.in_flight = self
            .in_flight
            .saturating_add((it.started as i64).saturating_sub(ended as i64));
        self.pending.merge(delta);
    }

    fn close(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let interval = std::mem::take(&mut self.pending);
        self.points.push(SeriesPoint::from_interval(
            (self.second + 1) * 1000,
            &interval,
            self.in_flight.max(0) as u64,
        ));
    }

    /// The points, the last second's included.
    pub fn finish(mut self) -> Vec<SeriesPoint> {
        self.close();
        self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::CallKey;

    fn delta(op: &str, status_class: u16, requests: u64, errors: u64, micros: u64) -> StatsSet {
        let mut s = StatsSet::default();
        let c = s.call(&CallKey {
            operation: op.into(),
            status_class,
        });
        c.requests = requests;
        c.errors = errors;
        for _ in 0..requests {
            c.response_time.record(micros).unwrap();
        }
        s.iterations.started = requests + 1;
        s.iterations.completed = requests;
        s
    }

    #[test]
    fn points_add_up_to_the_totals_per_operation() {
        let mut rec = SeriesRecorder::default();
        let deltas = [
            (1_000, delta("home", 200, 5, 0, 1_000)),
            (1_500, delta("cart,1", 500, 2, 2, 1_500)),
            (2_100, delta("home", 200, 3, 0, 4_000)),
            (4_000, delta("home", 0, 1, 1, 1_000)),
        ];
        let mut totals = StatsSet::default();
        for (t, d) in &deltas {
            rec.add(*t, d);
            totals.merge(d);
        }
        let points = rec.finish();
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].time_ms, 2_000);
        assert_eq!(points[0].total.requests, 7);
        assert_eq!(points[0].active_vus, 2);
        assert_eq!(points[2].active_vus, 4);
        assert_eq!(points[0].operations.len(), 2);
        assert_eq!(points[0].total.max_ms, 1.5);
        let sum = |op: &str| -> (u64, u64) {
            points
                .iter()
                .flat_map(|p| p.operations.iter().filter(|o| o.operation == op))
                .fold((0, 0), |a, o| (a.0 + o.requests, a.1 + o.errors))
        };
        assert_eq!(sum("home"), (9, 1));
        assert_eq!(sum("cart,1"), (2, 2));
        let all: u64 = points.iter().map(|p| p.total.requests).sum();
        assert_eq!(all, totals.request_totals().0);
        let csv = to_csv(&points);
        assert!(csv.starts_with(CSV_HEADER));
        assert!(csv.contains("\n2000,*,7,2,1,1.5,1.5,1.5,2\n"), "{csv}");
        assert!(
            csv.contains("\n2000,\"cart,1\",2,2,1.5,1.5,1.5,1.5,2\n"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 1 + 3 + 2 + 2);
        let json: serde_json::Value = serde_json::from_str(&to_json("c", &points)).unwrap();
        assert_eq!(json["campaign"], "c");
        assert_eq!(json["points"][0]["operations"][1]["operation"], "home");
        assert_eq!(json["points"][0]["total"]["requests"], 7);
    }
}
