//! `/metrics`: live per-campaign aggregates and the server's own health, in the
//! OpenMetrics text format for Prometheus.
//!
//! Counters are cumulative over the campaign's current run (a new run starts them at
//! zero again): use `rate()` for per-second figures. Latency quantiles are over the
//! whole run so far, merged exactly from the drones' histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use camut_stats::LatencyStats;

use crate::core::Core;
use crate::state::DroneState;

/// The content type Prometheus asks for and this answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value escaped for the exposition format.
fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, unit: Option<&str>, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        if let Some(u) = unit {
            let _ = writeln!(self.out, "# UNIT {name} {u}");
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", esc(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Per-campaign figures taken under the locks, written out after.
struct CampaignFigures {
    requests: u64,
    errors: u64,
    iterations: u64,
    failed: u64,
    connections: u64,
    latency: LatencyStats,
    latency_sum_s: f64,
    tsdb_dropped: u64,
}

/// Renders the whole exposition.
pub fn render(core: &Core) -> String {
    let campaigns = core.store.campaigns(10_000).unwrap_or_default();
    let mut figures: BTreeMap<String, CampaignFigures> = BTreeMap::new();
    let mut drones: BTreeMap<(String, DroneState), u64> = BTreeMap::new();
    let mut connected = 0;
    core.each_live(|id, l| {
        connected += l.sessions.len();
        for s in l.sessions.values() {
            *drones.entry((id.to_string(), s.state)).or_default() += 1;
        }
        if l.started.is_none() && l.no_stats() {
            return;
        }
        let t = l.totals();
        let (requests, errors) = t.request_totals();
        let mut rt = camut_stats::histogram();
        for c in t.calls.values() {
            let _ = rt.add(&c.response_time);
        }
        figures.insert(
            id.to_string(),
            CampaignFigures {
                requests,
                errors,
                iterations: t.iterations.completed + t.iterations.failed,
                failed: t.iterations.failed,
                connections: t.connections,
                latency_sum_s: rt.mean() * rt.len() as f64 / 1e6,
                latency: LatencyStats::from_histogram(&rt, 1_000_000.0),
                tsdb_dropped: t.tsdb.dropped,
            },
        );
    });
    let mut out = String::new();
    let mut f = Family { out: &mut out };

    f.head(
        "camut_campaign_info",
        "gauge",
        None,
        "Every campaign the server holds, with its state (value 1).",
    );
    for c in &campaigns {
        f.sample(
            "camut_campaign_info",
            &[("campaign", &c.id), ("state", c.state.as_str())],
            1.0,
        );
    }
    type Counter = (&'static str, &'static str, fn(&CampaignFigures) -> u64);
    let counters: [Counter; 6] = [
        (
            "camut_campaign_requests",
            "HTTP calls of the current run.",
            |c| c.requests,
        ),
        (
            "camut_campaign_errors",
            "Failed HTTP calls of the current run.",
            |c| c.errors,
        ),
        (
            "camut_campaign_iterations",
            "Iterations ended (completed or failed).",
            |c| c.iterations,
        ),
        (
            "camut_campaign_iterations_failed",
            "Iterations that threw, were rejected or timed out.",
            |c| c.failed,
        ),
        (
            "camut_campaign_connections",
            "TCP connections opened by the drones.",
            |c| c.connections,
        ),
        (
            "camut_campaign_tsdb_points_dropped",
            "TSDB points dropped by full drone queues.",
            |c| c.tsdb_dropped,
        ),
    ];
    for (name, help, get) in counters {
        f.head(name, "counter", None, help);
        for (id, c) in &figures {
            f.sample(&format!("{name}_total"), &[("campaign", id)], get(c) as f64);
        }
    }
    let name = "camut_campaign_response_time_seconds";
    f.head(
        name,
        "summary",
        Some("seconds"),
        "Full response time of the run's HTTP calls (exact quantiles over the run so far).",
    );
    for (id, c) in &figures {
        for (q, v) in [
            ("0.5", c.latency.p50),
            ("0.9", c.latency.p90),
            ("0.99", c.latency.p99),
        ] {
            f.sample(name, &[("campaign", id), ("quantile", q)], v);
        }
        f.sample(&format!("{name}_sum"), &[("campaign", id)], c.latency_sum_s);
        f.sample(
            &format!("{name}_count"),
            &[("campaign", id)],
            c.latency.count as f64,
        );
    }
    f.head(
        "camut_campaign_drones",
        "gauge",
        None,
        "Drones connected now, by campaign and state.",
    );
    for ((campaign, state), n) in &drones {
        f.sample(
            "camut_campaign_drones",
            &[("campaign", campaign), ("state", state.as_str())],
            *n as f64,
        );
    }
    f.head(
        "camut_drones_connected",
        "gauge",
        None,
        "Drones holding a command stream to this server.",
    );
    f.sample("camut_drones_connected", &[], connected as f64);
    f.head("camut_jobs", "gauge", None, "Jobs in the store, by state.");
    for (state, n) in core.store.jobs_by_state().unwrap_or_default() {
        f.sample("camut_jobs", &[("state", state.as_str())], n as f64);
    }
    f.head(
        "camut_campaigns",
        "gauge",
        None,
        "Campaigns in the store, by state.",
    );
    for (state, n) in core.store.campaigns_by_state().unwrap_or_default() {
        f.sample("camut_campaigns", &[("state", state.as_str())], n as f64);
    }
    f.head(
        "camut_store_size_bytes",
        "gauge",
        Some("bytes"),
        "Size of the server's SQLite store.",
    );
    f.sample(
        "camut_store_size_bytes",
        &[],
        core.store.size_bytes().unwrap_or(0) as f64,
    );
    let health = core.store.health();
    f.head(
        "camut_store_write_errors",
        "counter",
        None,
        "Store writes that failed for a storage reason (disk full, I/O error).",
    );
    f.sample(
        "camut_store_write_errors_total",
        &[],
        health.failed_writes() as f64,
    );
    f.head(
        "camut_store_writable",
        "gauge",
        None,
        "0 while store writes fail (one failed in the last 10 s), else 1.",
    );
    f.sample(
        "camut_store_writable",
        &[],
        if health.failing().is_some() { 0.0 } else { 1.0 },
    );
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
