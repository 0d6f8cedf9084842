//! Per-interval aggregates of one drone: what aggregate mode sends.

use std::collections::BTreeMap;

use camut_stats::StatsSet;
use hdrhistogram::Histogram;

use crate::point::Point;

/// Tags of the VU's last call that `camut.tsdb` adds by default; aggregates leave
/// them out, since they would make one series per VU or per call.
const PER_CALL_TAGS: [&str; 4] = ["vu", "url", "error", "callId"];

/// A custom metric and the test's own tags: one aggregated series.
type SeriesKey = (String, Vec<(String, String)>);

/// Collects one interval's statistics and `camut.tsdb` points, and turns them into
/// aggregate points tagged with campaign, client (the drone), operation and status.
#[derive(Default)]
pub struct Aggregator {
    campaign: String,
    client: String,
    stats: StatsSet,
    custom: BTreeMap<SeriesKey, Vec<f64>>,
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

    /// Adds a `camut.tsdb` point.
    pub fn add_point(&mut self, p: Point) {
        let mut tags: Vec<(String, String)> = p
            .tags
            .into_iter()
            .filter(|(k, _)| !PER_CALL_TAGS.contains(&k.as_str()))
            .collect();
        tags.sort();
        self.custom
            .entry((p.metric, tags))
            .or_default()
            .push(p.value);
    }

    /// The interval's aggregate points, stamped `timestamp_ms`, over `seconds`; resets.
    ///
    /// For each operation and status class: `http.requests.count`, `.rate`,
    /// `http.errors.count`, `.rate`, and `.p50 .p90 .p99 .max` of
    /// `http.response_time`, `http.response_begin_time` (ms), `http.received` and
    /// `http.transmitted` (bytes); `iterations.count`, `.rate`, `iterations.failed.count`;
    /// for each `camut.tsdb` metric and tag set: `.count .rate .p50 .p90 .p99 .max`.
    /// Series with nothing in the interval are not sent.
    pub fn drain(&mut self, timestamp_ms: u64, seconds: f64) -> Vec<Point> {
        let stats = std::mem::take(&mut self.stats);
        let custom = std::mem::take(&mut self.custom);
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
            let mut tags = base.clone();
            tags.push(("operation".into(), key.operation.clone()));
            tags.push(("status".into(), key.status_label()));
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
        let it = &stats.iterations;
        let ended = it.completed + it.failed;
        if ended > 0 {
            put("iterations.count".into(), ended as f64, &base);
            put("iterations.rate".into(), ended as f64 / seconds, &base);
            if it.failed > 0 {
                put("iterations.failed.count".into(), it.failed as f64, &base);
            }
        }
        for ((metric, tags), mut values) in custom {
            let mut all = base.clone();
            for (k, v) in tags {
                match all.iter_mut().find(|(key, _)| *key == k) {
                    Some(slot) => slot.1 = v,
                    None => all.push((k, v)),
                }
            }
            values.sort_by(f64::total_cmp);
            let n = values.len();
            let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
            put(format!("{metric}.count"), n as f64, &all);
            put(format!("{metric}.rate"), n as f64 / seconds, &all);
            put(format!("{metric}.p50"), at(0.5), &all);
            put(format!("{metric}.p90"), at(0.9), &all);
            put(format!("{metric}.p99"), at(0.99), &all);
            put(format!("{metric}.max"), values[n - 1], &all);
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
    fn aggregates_of_calls_iterations_and_custom_points() {
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
        a.add_stats(&s);
        for v in 1..=10 {
            a.add_point(Point {
                metric: "cart".into(),
                timestamp_ms: 1,
                value: v as f64,
                tags: vec![
                    ("campaign".into(), "shop".into()),
                    ("vu".into(), v.to_string()),
                    ("page".into(), "a".into()),
                ],
            });
        }
        let points = a.drain(5_000, 2.0);
        let get = |m: &str| points.iter().find(|p| p.metric == m).unwrap();
        assert_eq!(get("http.requests.count").value, 4.0);
        assert_eq!(get("http.requests.rate").value, 2.0);
        assert!((get("http.response_time.max").value - 4.0).abs() < 0.01);
        assert_eq!(get("iterations.count").value, 4.0);
        assert_eq!(get("cart.count").value, 10.0);
        assert_eq!(get("cart.p50").value, 5.0);
        assert_eq!(get("cart.p90").value, 9.0);
        assert_eq!(get("cart.max").value, 10.0);
        let tags = &get("cart.count").tags;
        assert!(tags.contains(&("page".into(), "a".into())));
        assert!(!tags.iter().any(|(k, _)| k == "vu"));
        assert_eq!(
            get("http.requests.count").tags,
            vec![
                ("campaign".into(), "shop".into()),
                ("client".into(), "d-1".into()),
                ("operation".into(), "GET /".into()),
                ("status".into(), "2xx".into()),
            ]
        );
        assert!(points.iter().all(|p| p.timestamp_ms == 5_000));
        assert!(!points.iter().any(|p| p.metric == "http.errors.count"));
        assert!(a.drain(6_000, 1.0).is_empty());
    }
}
