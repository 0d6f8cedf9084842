//! The HTML report of a run: one self-contained file to attach to a ticket or a CI job.
//!
//! It holds the summary, the threshold verdicts, the charts over time (the console's
//! own [`super::chart`], inline SVG), the per-operation latency table, one row per
//! drone, the generator's health and the errors by message. It has no script, fetches
//! nothing (its content security policy forbids it) and opens offline. `camut run
//! --html`, `camut results --html` and the console's download all render it here.

use std::fmt::Write as _;

use camut::v1;
use camut_stats::series::SeriesPoint;
use camut_stats::summary::{Health, LatencyStats};
use camut_stats::{Summary, Verdict};

use super::chart;
use super::html::esc;

/// One drone's row in the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DroneRow {
    /// Drone id.
    pub id: String,
    /// 0-based index in the campaign.
    pub index: u32,
    /// Last known state.
    pub state: String,
    /// Calls it made.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Iterations done.
    pub iterations: u64,
    /// Why it was lost (empty when it was not).
    pub lost: String,
    /// How its load generator held up, when it said.
    pub health: Option<Health>,
}

/// What a report is made of.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The run's summary, with its threshold verdicts.
    pub summary: Summary,
    /// The campaign's state (`finished`, `stopped`, `running`, …).
    pub state: String,
    /// One row per drone.
    pub drones: Vec<DroneRow>,
    /// Drones lost, with why.
    pub lost: Vec<String>,
    /// Whether the results are partial because drones were lost.
    pub degraded: bool,
    /// The per-second series.
    pub series: Vec<SeriesPoint>,
}

impl Report {
    /// The report of a campaign's results and series, as the server keeps them.
    pub fn from_results(r: &v1::CampaignResults, series: Vec<SeriesPoint>) -> Report {
        let mut summary = r.run_summary();
        summary.campaign.clone_from(&r.id);
        summary.thresholds = r
            .thresholds
            .iter()
            .map(camut::summary::verdict_from_wire)
            .collect();
        summary.thresholds_ok = r.thresholds_ok;
        Report {
            summary,
            state: r.state().label().to_string(),
            drones: r
                .drones
                .iter()
                .map(|d| DroneRow {
                    id: d.id.clone(),
                    index: d.index,
                    state: d.state().label().to_string(),
                    requests: d.requests,
                    errors: d.errors,
                    iterations: d.iterations,
                    lost: d.lost.clone(),
                    health: d.health.as_ref().map(camut::summary::health_from_wire),
                })
                .collect(),
            lost: r.lost.clone(),
            degraded: r.degraded || !r.lost.is_empty(),
            series,
        }
    }

    /// The report as one HTML document, stamped `generated_ms` (Unix ms).
    pub fn render(&self, generated_ms: i64) -> String {
        let s = &self.summary;
        let mut o = String::with_capacity(64 * 1024 + 40 * self.series.len() * 6);
        let title = format!("Camut report: {}", s.campaign);
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head><body>",
            esc(&title)
        );
        let _ = write!(
            o,
            "<header><h1>{}</h1><p class=\"muted\">state <b id=\"state\">{}</b> · generated {} UTC · {} per-second points</p>{}</header>",
            esc(&title),
            esc(&self.state),
            esc(&camut::clock(generated_ms)[..19]),
            self.series.len(),
            verdict_badge(s.thresholds_ok),
        );
        if self.degraded {
            let _ = write!(
                o,
                "<p class=\"error\" id=\"degraded\">DEGRADED: drones were lost; these results are partial. {}</p>",
                esc(&self.lost.join("; "))
            );
        }
        if let Some(w) = s.health.as_ref().and_then(|h| h.warning.as_ref()) {
            let _ = write!(o, "<p class=\"error\">{}</p>", esc(w));
        }
        self.summary_table(&mut o);
        o.push_str("<h2>Thresholds</h2>");
        o.push_str(&thresholds_table(&s.thresholds));
        self.charts(&mut o);
        operations_table(&mut o, s);
        metrics_table(&mut o, s);
        self.drones_table(&mut o);
        self.health(&mut o);
        errors_table(&mut o, s);
        o.push_str("</body></html>\n");
        o
    }

    fn summary_table(&self, o: &mut String) {
        let s = &self.summary;
        let it = &s.iterations;
        let _ = write!(
            o,
            "<h2>Summary</h2><table class=\"kv\" id=\"summary\">\
             <tr><th>duration</th><td>{:.1} s</td></tr>\
             <tr><th>VUs</th><td>{}</td></tr>\
             <tr><th>iterations</th><td>{} started, {} completed, {} failed ({} timed out), {} dropped · {:.1}/s</td></tr>\
             <tr><th>requests</th><td><span id=\"requests-total\">{}</span> · {:.1}/s</td></tr>\
             <tr><th>errors</th><td><span id=\"errors-total\">{}</span></td></tr>\
             <tr><th>connections</th><td>{} opened, {} open at most</td></tr>",
            s.duration_s,
            s.vus,
            it.started,
            it.completed,
            it.failed,
            it.timed_out,
            it.dropped,
            it.per_s,
            s.requests,
            s.requests_per_s,
            s.errors,
            s.connections_opened,
            s.connections_peak,
        );
        if let Some(t) = &s.tsdb {
            let _ = write!(
                o,
                "<tr><th>TSDB points</th><td>{} produced, {} sent, {} dropped, {} rejected, {} unsent</td></tr>",
                t.produced, t.sent, t.dropped, t.rejected, t.unsent
            );
        }
        o.push_str("</table>");
    }

    fn charts(&self, o: &mut String) {
        o.push_str("<h2>Over time</h2><div class=\"charts\" id=\"charts\">");
        for (key, title, svg) in chart::run_charts(&self.series) {
            let _ = write!(
                o,
                "<figure class=\"chart\" id=\"chart-{key}\" data-points=\"{}\"><figcaption>{}</figcaption>{svg}</figure>",
                self.series.len(),
                esc(title)
            );
        }
        o.push_str("</div>");
    }

    fn drones_table(&self, o: &mut String) {
        o.push_str("<h2>Drones</h2><table id=\"drones\"><thead><tr><th>#</th><th>Drone</th><th>State</th><th>Requests</th><th>Errors</th><th>Iterations</th><th>Busiest worker CPU</th><th>Lag p99 ms</th><th>Lost</th></tr></thead><tbody>");
        for d in &self.drones {
            let (cpu, lag) = match &d.health {
                Some(h) => {
                    let cpu = h
                        .workers
                        .iter()
                        .map(|w| w.cpu_utilization)
                        .fold(0.0, f64::max);
                    let lag = h.workers.iter().map(|w| w.lag_p99_ms).fold(0.0, f64::max);
                    let class = if h.saturated {
                        " class=\"n error\""
                    } else {
                        " class=\"n\""
                    };
                    (
                        format!("<td{class}>{:.0}%</td>", cpu * 100.0),
                        format!("<td{class}>{lag:.2}</td>"),
                    )
                }
                None => (
                    "<td class=\"muted\">—</td>".to_string(),
                    "<td class=\"muted\">—</td>".to_string(),
                ),
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{cpu}{lag}<td>{}</td></tr>",
                d.index,
                esc(&d.id),
                esc(&d.state),
                d.requests,
                d.errors,
                d.iterations,
                esc(&d.lost)
            );
        }
        if self.drones.is_empty() {
            o.push_str("<tr><td colspan=\"9\" class=\"muted\">no drones</td></tr>");
        }
        o.push_str("</tbody></table>");
    }

    /// The generator's health: the run's own (a local run), else each drone's.
    fn health(&self, o: &mut String) {
        o.push_str("<h2>Generator health</h2>");
        if let Some(h) = &self.summary.health {
            workers_table(o, h);
            return;
        }
        let reported: Vec<(&DroneRow, &Health)> = self
            .drones
            .iter()
            .filter_map(|d| d.health.as_ref().map(|h| (d, h)))
            .collect();
        let saturated: Vec<_> = reported.iter().filter(|(_, h)| h.saturated).collect();
        let _ = write!(
            o,
            "<p id=\"health\">{} of {} drones reported their health; {} saturated</p>",
            reported.len(),
            self.drones.len(),
            saturated.len()
        );
        for (d, h) in saturated {
            let _ = write!(
                o,
                "<p class=\"error\">{}: {}</p>",
                esc(&d.id),
                esc(h.warning.as_deref().unwrap_or("saturated"))
            );
        }
    }
}

/// The CSS of the report, inline.
const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1000px;padding:0 1em;color:#222}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.4em 0;width:100%}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.kv th{width:12em;color:#555;font-weight:normal}\
.muted{color:#777}.error{color:#a40000;font-weight:600}\
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:.85em;color:#fff}.ok{background:#2c8a2c}.broken{background:#c0392b}\
.charts{display:flex;flex-wrap:wrap;gap:10px}.chart{margin:0}figcaption{display:none}\
pre{white-space:pre-wrap;font-size:.85em;margin:0}code{font-size:.95em}";

fn verdict_badge(ok: bool) -> &'static str {
    if ok {
        "<span class=\"badge ok\" id=\"verdict\">thresholds held</span>"
    } else {
        "<span class=\"badge broken\" id=\"verdict\">thresholds broken</span>"
    }
}

/// The thresholds with their verdicts, as a table (`#thresholds`): the console's and
/// the report's.
pub(crate) fn thresholds_table(verdicts: &[Verdict]) -> String {
    let mut o = String::from("<table id=\"thresholds\"><thead><tr><th>Metric</th><th>Threshold</th><th>Value</th><th>Verdict</th></tr></thead><tbody>");
    for t in verdicts {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&t.metric),
            esc(&t.expr),
            t.value.map_or("—".to_string(), |v| format!("{v:.3}")),
            if t.ok {
                "<span class=\"badge ok s-finished\">held</span>"
            } else {
                "<span class=\"badge broken s-failed\">broken</span>"
            }
        );
    }
    if verdicts.is_empty() {
        o.push_str("<tr><td colspan=\"4\" class=\"muted\">no thresholds</td></tr>");
    }
    o.push_str("</tbody></table>");
    o
}

fn latency_cells(o: &mut String, l: &LatencyStats) {
    for v in [l.min, l.avg, l.p50, l.p90, l.p95, l.p99, l.p99_9, l.max] {
        let _ = write!(o, "<td class=\"n\">{v:.2}</td>");
    }
}

const LATENCY_HEAD: &str = "<th>min</th><th>avg</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th>";

fn operations_table(o: &mut String, s: &Summary) {
    let _ = write!(
        o,
        "<h2>Operations (response time, ms)</h2><table id=\"operations\"><thead><tr><th>Operation</th><th>Requests</th><th>Errors</th>{LATENCY_HEAD}</tr></thead><tbody>"
    );
    for op in &s.operations {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            esc(&op.operation),
            op.requests,
            op.errors
        );
        latency_cells(o, &op.response_time);
        o.push_str("</tr>");
    }
    if s.operations.is_empty() {
        o.push_str("<tr><td colspan=\"11\" class=\"muted\">no calls</td></tr>");
    }
    o.push_str("</tbody></table>");
}

fn metrics_table(o: &mut String, s: &Summary) {
    let _ = write!(
        o,
        "<h2>Metrics (ms; bytes for received and transmitted)</h2><table id=\"metrics\"><thead><tr><th>Metric</th><th>Count</th>{LATENCY_HEAD}</tr></thead><tbody>"
    );
    for (name, l) in &s.metrics {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td>",
            esc(name),
            l.count
        );
        latency_cells(o, l);
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
}

/// One row per worker thread of a generator.
fn workers_table(o: &mut String, h: &Health) {
    let _ = write!(
        o,
        "<p id=\"health\">{}</p><table id=\"workers\"><thead><tr><th>Worker</th><th>CPU s</th><th>CPU use</th><th>lag p99 ms</th><th>lag max ms</th></tr></thead><tbody>",
        if h.saturated {
            "<span class=\"error\">saturated: the figures may be invalid</span>"
        } else {
            "not saturated"
        }
    );
    for (i, w) in h.workers.iter().enumerate() {
        let _ = write!(
            o,
            "<tr><td>{i}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.0}%</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td></tr>",
            w.cpu_s,
            w.cpu_utilization * 100.0,
            w.lag_p99_ms,
            w.lag_max_ms
        );
    }
    o.push_str("</tbody></table>");
}

fn errors_table(o: &mut String, s: &Summary) {
    o.push_str("<h2>Errors by message</h2><table id=\"errors\"><thead><tr><th>Count</th><th>Message</th></tr></thead><tbody>");
    for e in &s.error_messages {
        let _ = write!(
            o,
            "<tr><td class=\"n\">{}</td><td>{}",
            e.count,
            esc(&e.message)
        );
        if let Some(stack) = &e.stack {
            let _ = write!(
                o,
                "<details><summary>stack</summary><pre>{}</pre></details>",
                esc(stack)
            );
        }
        o.push_str("</td></tr>");
    }
    if s.error_messages.is_empty() {
        o.push_str("<tr><td colspan=\"2\" class=\"muted\">no errors</td></tr>");
    }
    o.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use camut_stats::series::OperationPoint;
    use camut_stats::summary::{ErrorSummary, OperationSummary};

    #[test]
    fn the_report_is_one_document_with_every_part() {
        let summary = Summary {
            campaign: "shop<1>".into(),
            requests: 42,
            thresholds: vec![Verdict {
                metric: "http.response_time".into(),
                expr: "p99 < 1".into(),
                ok: false,
                value: Some(3.0),
            }],
            operations: vec![OperationSummary {
                operation: "home".into(),
                requests: 42,
                ..Default::default()
            }],
            error_messages: vec![ErrorSummary {
                message: "boom <b>".into(),
                count: 2,
                stack: Some("at test".into()),
            }],
            ..Default::default()
        };
        let series = (0..3)
            .map(|i| SeriesPoint {
                time_ms: 1_000 * i,
                active_vus: 2,
                total: OperationPoint {
                    requests: 14,
                    ..Default::default()
                },
                operations: Vec::new(),
            })
            .collect();
        let html = Report {
            summary,
            state: "finished".into(),
            drones: vec![DroneRow {
                id: "d-1".into(),
                requests: 42,
                ..Default::default()
            }],
            series,
            ..Default::default()
        }
        .render(0);
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(html.contains("<title>Camut report: shop&lt;1&gt;</title>"));
        assert!(html.contains("<span id=\"requests-total\">42</span>"));
        assert!(html.contains("thresholds broken") && html.contains("p99 &lt; 1"));
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("boom &lt;b&gt;") && html.contains("at test"));
        assert!(html.contains("<td>d-1</td>"));
        // Nothing to fetch: no script, no source, no link, no CSS url().
        for fetch in ["<script", " src=", "href=", "url(", "@import"] {
            assert!(!html.contains(fetch), "{fetch}");
        }
    }
}
