//! Per-interval aggregates of one drone: what aggregate mode sends.

use camut_stats::StatsSet;
use hdrhistogram::Histogram;

use crate::point::Point;

/// Collects one interval's statistics and turns them into aggregate points of the
/// automatic HTTP metrics, tagged with campaign, client (the drone), operation, status
/// class and `error`. `camut.tsdb` points are not aggregated: they go as written.
#[derive(Default)]
pub struct Aggregator {
    campaign: String,
    client: String,
    stats: StatsSet,
}

impl Aggregator {
    /// An empty aggregator for one drone of a campaign.
    pub fn new(campaign: &str, client: &str) -> Self {
        Aggregator {
            campaign: campaign.to_string(),
            client: client.to_string(),
            ..Aggregator::default()
        }
    }

    /// Adds a statistics delta.
    pub fn add_stats(&mut self, s: &StatsSet) {
        self.stats.merge(s);
    }

    /// The interval's aggregate points, stamped `timestamp_ms`, over `seconds`; resets.
    ///
    /// For each operation and status class (`error` is `true` for failed calls: no
    /// response, or a status of 400 or more): `http.requests.count`, `.rate`,
    /// `http.errors.count`, `.rate`, and `.p50 .p90 .p99 .max` of
    /// `http.response_time`, `http.response_begin_time` (ms), `http.received` and
    /// `http.transmitted` (bytes). For the drone: `http.connections` (connections open
    /// at the interval's end) and `http.connections.max` (most open at once in the
    /// interval); `iterations.count`, `.rate`, `iterations.failed.count`.
    /// Series with nothing in the interval are not sent.
    pub fn drain(&mut self, timestamp_ms: u64, seconds: f64) -> Vec<Point> {
        let stats = std::mem::take(&mut self.stats);
        let seconds = seconds.max(1e-3);
        let base = vec![
            ("campaign".to_string(), self.campaign.clone()),
            ("client".to_string(), self.client.clone()),
        ];
        let mut out = Vec::new();
        let mut put = |metric: String, value: f64, tags: &Vec<(String, String)>| {
            out.push(Point {
                metric,
                timestamp_ms,
                value,
                tags: tags.clone(),
            })
        };
        let mut keys: Vec<_> = stats.calls.keys().collect();
        keys.sort_by(|a, b| (&a.operation, a.status_class).cmp(&(&b.operation, b.status_class)));
        for key in keys {
            let c = &stats.calls[key];
            if c.requests == 0 {
                continue;
            }
            let failed = key.status_class == 0 || key.status_class >= 400;
            let mut tags = base.clone();
            tags.push(("operation".into(), key.operation.clone()));
            tags.push(("status".into(), key.status_label()));
            tags.push(("error".into(), failed.to_string()));
            put("http.requests.count".into(), c.requests as f64, &tags);
            put(
                "http.requests.rate".into(),
                c.requests as f64 / seconds,
                &tags,
            );
            if c.errors > 0 {
                put("http.errors.count".into(), c.errors as f64, &tags);
                put("http.errors.rate".into(), c.errors as f64 / seconds, &tags);
            }
            let ms = 1.0 / 1000.0;
            for (name, h, scale) in [
                ("http.response_time", &c.response_time, ms),
                ("http.response_begin_time", &c.response_begin_time, ms),
                ("http.received", &c.received, 1.0),
                ("http.transmitted", &c.transmitted, 1.0),
            ] {
                for (q, v) in quantiles(h) {
                    put(format!("{name}.{q}"), v as f64 * scale, &tags);
                }
            }
        }
        if stats.connections_peak > 0 || stats.connections_open > 0 {
            put(
                "http.connections".into(),
                stats.connections_open as f64,
                &base,
            );
            put(
                "http.connections.max".into(),
                stats.connections_peak.max(stats.connections_open) as f64,
                &base,
            );
        }
        let it = &stats.iterations;
        let ended = it.completed + it.failed;
        if ended > 0 {
            put("iterations.count".into(), ended as f64, &base);
            put("iterations.rate".into(), ended as f64 / seconds, &base);
            if it.failed > 0 {
                put("iterations.failed.count".into(), it.failed as f64, &base);
            }
        }
        out
    }
}

fn quantiles(h: &Histogram<u64>) -> [(&'static str, u64); 4] {
    [
        ("p50", h.value_at_quantile(0.5)),
        ("p90", h.value_at_quantile(0.9)),
        ("p99", h.value_at_quantile(0.99)),
        ("max", h.max()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use camut_stats::CallKey;

    #[test]
    fn aggregates_of_calls_iterations_and_connections() {
        let mut a = Aggregator::new("shop", "d-1");
        let mut s = StatsSet::default();
        let key = CallKey {
            operation: "GET /".into(),
            status_class: 200,
        };
        let c = s.call(&key);
        for us in [1000, 2000, 3000, 4000] {
            c.requests += 1;
            c.response_time.record(us).unwrap();
            c.response_begin_time.record(us).unwrap();
            c.received.record(100).unwrap();
            c.transmitted.record(50).unwrap();
        }
        s.iterations.completed = 4;
        s.connections_open = 2;
        s.connections_peak = 3;
        a.add_stats(&s);
        let points = a.drain(5_000, 2.0);
        let get = |m: &str| points.iter().find(|p| p.metric == m).unwrap();
        assert_eq!(get("http.requests.count").value, 4.0);
        assert_eq!(get("http.requests.rate").value, 2.0);
        assert!((get("http.response_time.max").value - 4.0).abs() < 0.01);
        assert_eq!(get("iterations.count").value, 4.0);
        assert_eq!(get("http.connections").value, 2.0);
        assert_eq!(get("http.connections.max").value, 3.0);
        assert_eq!(
            get("http.requests.count").tags,
            vec![
                ("campaign".into(), "shop".into()),
                ("client".into(), "d-1".into()),
                ("operation".into(), "GET /".into()),
                ("status".into(), "2xx".into()),
                ("error".into(), "false".into()),
            ]
        );
        assert!(points.iter().all(|p| p.timestamp_ms == 5_000));
        assert!(!points.iter().any(|p| p.metric == "http.errors.count"));
        assert!(a.drain(6_000, 1.0).is_empty());
    }
}
