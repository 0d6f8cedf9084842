//! `camut run FILE`: test-drive a campaign locally (all iterations of one drone).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use camut_engine::campaign::options::parse_duration;
use camut_engine::campaign::RunLength;
use camut_engine::{Campaign, RunConfig, StopHandle};
use camut_tsdb::{Connector, TsdbConfig};

use camut_server::ui::report::{DroneRow, Report};

use crate::output::{Lines, StdoutObserver};
use crate::reports::{write_file, SeriesFormat};

/// Arguments of `camut run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The campaign file (JavaScript).
    file: PathBuf,
    /// Virtual users (overrides the file's `users`).
    #[arg(long)]
    users: Option<u32>,
    /// Iterations per VU (overrides the file's `iterations` / `duration`).
    #[arg(long, conflicts_with = "duration")]
    iterations: Option<u64>,
    /// Run for this long, e.g. 30s, 5m (overrides the file's `iterations` / `duration`).
    #[arg(long, value_parser = parse_duration_arg)]
    duration: Option<std::time::Duration>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    env: crate::env::EnvArgs,
    /// Write the summary as JSON to PATH (`-`: stdout, which then carries only the JSON;
    /// points and console lines go to stderr).
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Send the points to this OpenTSDB server (HOST:PORT) instead of printing them;
    /// the file's `tsdb` section (which may then leave out host and port) sets
    /// protocol, precision, mode and queue.
    #[arg(long, value_name = "HOST:PORT")]
    tsdb: Option<String>,
    #[command(flatten)]
    reports: crate::reports::ReportArgs,
    /// Write the per-second series to PATH: per operation, requests, errors and response
    /// time p50/p90/p99/max, and the active VUs (JSON for a `.json` path, else CSV).
    #[arg(long, value_name = "PATH")]
    series: Option<PathBuf>,
}

impl RunArgs {
    /// `camut run FILE --env TARGET=URL`, as the demo runs it.
    pub fn for_demo(file: PathBuf, target: String) -> Self {
        RunArgs {
            file,
            users: None,
            iterations: None,
            duration: None,
            threads: 0,
            env: crate::env::EnvArgs::with("TARGET", &target),
            summary_json: None,
            quiet: false,
            tsdb: None,
            reports: Default::default(),
            series: None,
        }
    }
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s)
        .ok_or_else(|| format!("'{s}' is not a duration; use e.g. 30s, 5m, 1h30m, 250ms"))
}

/// `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("--tsdb '{s}' is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("--tsdb '{s}': '{port}' is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "--tsdb '{s}' has no host");
    Ok((host.to_string(), port))
}

pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let campaign = match Campaign::load_file(&args.file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("camut: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let json_to_stdout = args
        .summary_json
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    let lines = Lines::new(json_to_stdout);
    // The file's way of sending (default: aggregates), to --tsdb or printed.
    let mut tsdb_config = campaign
        .options
        .tsdb
        .clone()
        .unwrap_or_else(|| TsdbConfig::new("", 4242));
    let sending = args.tsdb.is_some();
    let connector = match &args.tsdb {
        Some(addr) => {
            let (host, port) = split_host_port(addr)?;
            tsdb_config.set_address(host, port);
            Connector::start(tsdb_config, &campaign.options.id, "local")
        }
        None => Connector::start_printing(tsdb_config, &campaign.options.id, "local", lines.sink()),
    };
    let tsdb = Arc::new(connector.context("cannot start the TSDB connector")?);
    let config = RunConfig {
        call_points: tsdb.wants_calls(),
        threads: args.threads,
        users: args.users,
        length: match (args.iterations, args.duration) {
            (Some(n), _) => Some(RunLength::Iterations(n)),
            (None, Some(d)) => Some(RunLength::Duration(d)),
            _ => None,
        },
        env: args
            .env
            .vars()?
            .into_iter()
            .map(|v| (v.key, v.value))
            .collect::<BTreeMap<_, _>>(),
        ..RunConfig::default()
    };
    let keep_series = args.series.is_some() || args.reports.wants_series();
    let observer = Arc::new(StdoutObserver::new(
        !args.quiet,
        lines,
        tsdb.clone(),
        keep_series,
    ));
    let stop = StopHandle::new();
    let stop_asked = stop.clone();
    let signal_stop = stop.clone();
    // First Ctrl-C stops gracefully (open iterations get their grace period); a second one exits.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        signals.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ncamut: stopping (Ctrl-C again to abort)");
                signal_stop.stop();
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        })
    });
    let started_ms = camut_stats::clock::now_ms();
    let result = camut_engine::run(&campaign, config, observer.clone(), stop);
    // The last points (and aggregates) go out or are printed before the summary.
    let counts = tsdb.finish();
    let stopped = stop_asked.is_stopped();
    observer.flush();
    let result = match result {
        Ok(mut r) => {
            if sending {
                r.summary.tsdb = Some(counts);
            }
            r
        }
        Err(e) => {
            eprintln!("camut: the campaign could not run: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let text = result.summary.render_text();
    if json_to_stdout {
        eprint!("{text}");
    } else {
        print!("\n{text}");
    }
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&result.summary)?;
        if json_to_stdout {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let summary = &result.summary;
    args.reports.write_junit(|| {
        camut_stats::junit::render(&camut_stats::junit::JunitRun {
            campaign: &summary.campaign,
            duration_s: summary.duration_s,
            started_ms,
            verdicts: &summary.thresholds,
            lost: &[],
            degraded: false,
        })
    })?;
    let series = observer.take_series();
    if let Some(path) = &args.series {
        let format = SeriesFormat::of_path(path);
        write_file(path, &format.render(&summary.campaign, &series))?;
    }
    args.reports.write_html(|| Report {
        summary: summary.clone(),
        state: if stopped { "stopped" } else { "finished" }.to_string(),
        drones: vec![DroneRow {
            id: "local".to_string(),
            index: 0,
            state: if stopped { "stopped" } else { "finished" }.to_string(),
            requests: summary.requests,
            errors: summary.errors,
            iterations: summary.iterations.completed + summary.iterations.failed,
            lost: String::new(),
            health: None,
        }],
        lost: Vec::new(),
        degraded: false,
        series,
    })?;
    Ok(if result.summary.thresholds_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
