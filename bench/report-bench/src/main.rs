//! `camut-report-bench`: the size and write time of the HTML report of a long run.
//!
//! It simulates a campaign of `--seconds` seconds (default: one hour) and `--operations`
//! operations (default: 10): every second, each operation gets its calls' response times
//! recorded into HDR histograms, as a drone's interval holds them, some of them failed.
//! The series points are made from those intervals and the summary from their merge, by
//! the same code as a real run ([`SeriesPoint::from_interval`], [`Summary::build`]); then
//! the report is rendered and written `--runs` times, and the median is printed as a
//! markdown table (docs/PERFORMANCE.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use camut_server::ui::report::{DroneRow, Report};
use camut_stats::series::SeriesPoint;
use camut_stats::{CallKey, StatsSet, Summary, Threshold};
use clap::Parser;

/// Benchmark of the HTML report.
#[derive(Debug, Parser)]
#[command(name = "camut-report-bench")]
struct Args {
    /// Seconds of the simulated run (one series point each).
    #[arg(long, default_value_t = 3600)]
    seconds: u32,
    /// Operations of the simulated run.
    #[arg(long, default_value_t = 10)]
    operations: u32,
    /// Calls per operation and second.
    #[arg(long, default_value_t = 50)]
    calls: u32,
    /// Drones (rows of the drone table).
    #[arg(long, default_value_t = 10)]
    drones: u32,
    /// Renders and writes measured; the median is reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Where the report is written.
    #[arg(long, default_value = "/tmp/camut-report-bench.html")]
    out: PathBuf,
}

/// A small xorshift generator: the same simulated run every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = 1_796_000_000_000_i64;
    let mut totals = StatsSet::default();
    let mut series: Vec<SeriesPoint> = Vec::with_capacity(args.seconds as usize);
    let simulate = Instant::now();
    for s in 0..args.seconds {
        let mut interval = StatsSet::default();
        for op in 0..args.operations {
            let base_us = 2_000 + 1_500 * u64::from(op);
            for _ in 0..args.calls {
                let failed = rng.next().is_multiple_of(100);
                let key = CallKey {
                    operation: format!("operation-{op}"),
                    status_class: if failed { 500 } else { 200 },
                };
                let c = interval.call(&key);
                c.requests += 1;
                c.errors += u64::from(failed);
                let us = base_us + rng.next() % (base_us * 3);
                c.response_time.record(us).context("record")?;
            }
            interval.iterations.started += u64::from(args.calls);
            interval.iterations.completed += u64::from(args.calls);
        }
        let vus = 100 + u64::from(s % 600) / 6;
        series.push(SeriesPoint::from_interval(
            t0 + 1_000 * i64::from(s + 1),
            &interval,
            vus,
        ));
        totals.merge(&interval);
    }
    for i in 0..20 {
        totals.add_error(
            &format!("HTTP 500 on operation-{}", i % 10),
            3,
            Some("at test (campaign.js:12:7)"),
        );
    }
    let thresholds = Threshold::parse_all(&thresholds())?;
    let summary = Summary::build(
        "bench",
        100 * u64::from(args.drones),
        &totals,
        f64::from(args.seconds),
        &thresholds,
        None,
    );
    let simulated_s = simulate.elapsed().as_secs_f64();
    let report = Report {
        state: "finished".into(),
        drones: (0..args.drones)
            .map(|i| DroneRow {
                id: format!("drone-{i:04}"),
                index: i,
                state: "finished".into(),
                requests: summary.requests / u64::from(args.drones),
                errors: summary.errors / u64::from(args.drones),
                iterations: summary.iterations.completed / u64::from(args.drones),
                lost: String::new(),
                health: None,
            })
            .collect(),
        summary,
        series,
        ..Report::default()
    };
    let (mut render_ms, mut write_ms) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..args.runs {
        let t = Instant::now();
        let html = report.render(t0);
        render_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        std::fs::write(&args.out, &html)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        write_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        size = html.len();
    }
    let csv = camut_stats::series::to_csv(&report.series).len();
    let json = camut_stats::series::to_json("bench", &report.series).len();
    let (render, write) = (median(render_ms), median(write_ms));
    println!(
        "| {} s × {} operations ({} calls) | {} points | {:.2} MB | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} MB | {:.2} MB |",
        args.seconds,
        args.operations,
        report.summary.requests,
        report.series.len(),
        size as f64 / 1e6,
        render,
        write,
        render + write,
        csv as f64 / 1e6,
        json as f64 / 1e6,
    );
    eprintln!(
        "simulated in {simulated_s:.1} s; report at {} (median of {} runs)",
        args.out.display(),
        args.runs
    );
    anyhow::ensure!(size < 2_000_000, "the report is {size} bytes: over 2 MB");
    Ok(())
}

/// Thresholds of the simulated campaign: two hold, one breaks.
fn thresholds() -> serde_json::Value {
    serde_json::json!({
        "http.response_time": ["p99 < 60000", "p50 < 1"],
        "http.errors": ["rate < 0.05"],
    })
}
