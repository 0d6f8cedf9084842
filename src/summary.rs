//! Run summaries to and from their wire form ([`v1::RunSummary`]), so that the server,
//! the CLI, the console and the client crate read results typed, never as JSON.

use camut_stats::summary::{
    ErrorSummary, Health, IterationSummary, LatencyStats, OperationSummary, WorkerHealth,
};
use camut_stats::{Summary, TsdbCounts, Verdict};

use crate::v1;

fn latency_to_wire(l: &LatencyStats) -> v1::LatencySummary {
    v1::LatencySummary {
        count: l.count,
        min: l.min,
        avg: l.avg,
        p50: l.p50,
        p90: l.p90,
        p95: l.p95,
        p99: l.p99,
        p99_9: l.p99_9,
        max: l.max,
    }
}

fn latency_from_wire(l: &v1::LatencySummary) -> LatencyStats {
    LatencyStats {
        count: l.count,
        min: l.min,
        avg: l.avg,
        p50: l.p50,
        p90: l.p90,
        p95: l.p95,
        p99: l.p99,
        p99_9: l.p99_9,
        max: l.max,
    }
}

/// A threshold verdict's wire form.
pub fn verdict_to_wire(v: &Verdict) -> v1::ThresholdVerdict {
    v1::ThresholdVerdict {
        metric: v.metric.clone(),
        expr: v.expr.clone(),
        ok: v.ok,
        value: v.value,
    }
}

/// A threshold verdict from its wire form.
pub fn verdict_from_wire(v: &v1::ThresholdVerdict) -> Verdict {
    Verdict {
        metric: v.metric.clone(),
        expr: v.expr.clone(),
        ok: v.ok,
        value: v.value,
    }
}

fn tsdb_to_wire(t: &TsdbCounts) -> v1::TsdbCounts {
    v1::TsdbCounts {
        produced: t.produced,
        sent: t.sent,
        retried: t.retried,
        dropped: t.dropped,
        rejected: t.rejected,
        unsent: t.unsent,
    }
}

pub(crate) fn tsdb_from_wire(t: &v1::TsdbCounts) -> TsdbCounts {
    TsdbCounts {
        produced: t.produced,
        sent: t.sent,
        retried: t.retried,
        dropped: t.dropped,
        rejected: t.rejected,
        unsent: t.unsent,
    }
}

/// The wire form of a summary.
pub fn to_wire(s: &Summary) -> v1::RunSummary {
    let it = &s.iterations;
    v1::RunSummary {
        campaign: s.campaign.clone(),
        duration_s: s.duration_s,
        vus: s.vus,
        iterations: Some(v1::IterationSummary {
            started: it.started,
            completed: it.completed,
            failed: it.failed,
            timed_out: it.timed_out,
            dropped: it.dropped,
            per_s: it.per_s,
        }),
        requests: s.requests,
        errors: s.errors,
        requests_per_s: s.requests_per_s,
        connections_opened: s.connections_opened,
        connections_peak: s.connections_peak,
        done_twice: s.done_twice,
        metrics: s
            .metrics
            .iter()
            .map(|(k, l)| (k.clone(), latency_to_wire(l)))
            .collect(),
        operations: s
            .operations
            .iter()
            .map(|o| v1::OperationSummary {
                operation: o.operation.clone(),
                requests: o.requests,
                errors: o.errors,
                response_time: Some(latency_to_wire(&o.response_time)),
            })
            .collect(),
        error_messages: s
            .error_messages
            .iter()
            .map(|e| v1::ErrorSummary {
                message: e.message.clone(),
                count: e.count,
                stack: e.stack.clone(),
            })
            .collect(),
        thresholds: s.thresholds.iter().map(verdict_to_wire).collect(),
        thresholds_ok: s.thresholds_ok,
        health: s.health.as_ref().map(|h| v1::GeneratorHealth {
            workers: h
                .workers
                .iter()
                .map(|w| v1::WorkerHealth {
                    cpu_s: w.cpu_s,
                    cpu_utilization: w.cpu_utilization,
                    lag_p99_ms: w.lag_p99_ms,
                    lag_max_ms: w.lag_max_ms,
                })
                .collect(),
            saturated: h.saturated,
            warning: h.warning.clone(),
        }),
        tsdb: s.tsdb.as_ref().map(tsdb_to_wire),
    }
}

/// A summary from its wire form.
pub fn from_wire(s: &v1::RunSummary) -> Summary {
    let it = s.iterations.unwrap_or_default();
    Summary {
        campaign: s.campaign.clone(),
        duration_s: s.duration_s,
        vus: s.vus,
        iterations: IterationSummary {
            started: it.started,
            completed: it.completed,
            failed: it.failed,
            timed_out: it.timed_out,
            dropped: it.dropped,
            per_s: it.per_s,
        },
        requests: s.requests,
        errors: s.errors,
        requests_per_s: s.requests_per_s,
        connections_opened: s.connections_opened,
        connections_peak: s.connections_peak,
        done_twice: s.done_twice,
        metrics: s
            .metrics
            .iter()
            .map(|(k, l)| (k.clone(), latency_from_wire(l)))
            .collect(),
        operations: s
            .operations
            .iter()
            .map(|o| OperationSummary {
                operation: o.operation.clone(),
                requests: o.requests,
                errors: o.errors,
                response_time: o
                    .response_time
                    .as_ref()
                    .map(latency_from_wire)
                    .unwrap_or_default(),
            })
            .collect(),
        error_messages: s
            .error_messages
            .iter()
            .map(|e| ErrorSummary {
                message: e.message.clone(),
                count: e.count,
                stack: e.stack.clone(),
            })
            .collect(),
        thresholds: s.thresholds.iter().map(verdict_from_wire).collect(),
        thresholds_ok: s.thresholds_ok,
        health: s.health.as_ref().map(health_from_wire),
        tsdb: s.tsdb.as_ref().map(tsdb_from_wire),
    }
}

/// A generator's health from its wire form.
pub fn health_from_wire(h: &v1::GeneratorHealth) -> Health {
    Health {
        workers: h
            .workers
            .iter()
            .map(|w| WorkerHealth {
                cpu_s: w.cpu_s,
                cpu_utilization: w.cpu_utilization,
                lag_p99_ms: w.lag_p99_ms,
                lag_max_ms: w.lag_max_ms,
            })
            .collect(),
        saturated: h.saturated,
        warning: h.warning.clone(),
    }
}

impl v1::CampaignResults {
    /// The merged summary, typed (empty before any statistics arrived).
    pub fn run_summary(&self) -> Summary {
        self.summary.as_ref().map(from_wire).unwrap_or_default()
    }

    /// The verdicts as JUnit XML for a CI system: one test case per threshold (its
    /// failure names the expression and the value) and one, "no drone lost, no data
    /// lost", that fails when the run is degraded.
    pub fn junit_xml(&self) -> String {
        let verdicts: Vec<Verdict> = self.thresholds.iter().map(verdict_from_wire).collect();
        camut_stats::junit::render(&camut_stats::junit::JunitRun {
            campaign: &self.id,
            duration_s: self.summary.as_ref().map_or(0.0, |s| s.duration_s),
            started_ms: 0,
            verdicts: &verdicts,
            lost: &self.lost,
            degraded: self.degraded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut s = Summary {
            campaign: "shop".into(),
            duration_s: 12.5,
            vus: 20,
            requests: 100,
            errors: 3,
            requests_per_s: 8.0,
            connections_opened: 4,
            connections_peak: 3,
            done_twice: 1,
            thresholds_ok: false,
            ..Default::default()
        };
        s.iterations.completed = 97;
        s.iterations.per_s = 7.76;
        s.metrics.insert(
            "http.response_time".into(),
            LatencyStats {
                count: 100,
                p99: 41.5,
                ..Default::default()
            },
        );
        s.operations.push(OperationSummary {
            operation: "GET /".into(),
            requests: 100,
            errors: 3,
            response_time: LatencyStats {
                count: 100,
                ..Default::default()
            },
        });
        s.error_messages.push(ErrorSummary {
            message: "HTTP 500".into(),
            count: 3,
            stack: None,
        });
        s.thresholds.push(Verdict {
            metric: "http.errors".into(),
            expr: "rate < 0.01".into(),
            ok: false,
            value: Some(0.03),
        });
        s.health = Some(Health::judge(vec![WorkerHealth {
            cpu_s: 1.0,
            cpu_utilization: 0.95,
            lag_p99_ms: 1.0,
            lag_max_ms: 2.0,
        }]));
        s.tsdb = Some(TsdbCounts {
            produced: 9,
            sent: 9,
            ..Default::default()
        });
        assert_eq!(from_wire(&to_wire(&s)), s);
        let empty = Summary::default();
        assert_eq!(from_wire(&to_wire(&empty)), empty);
    }
}
