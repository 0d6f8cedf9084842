//! `camut-engine-run [--users N] [--iterations N] [--threads N] [--env K=V]…
//! [--summary-json PATH] [--quiet] FILE`: runs a campaign file with the engine exactly
//! as `camut run` does (same `camut_engine::run`, console lines to stdout), and writes
//! the summary JSON. For benchmarks (bench/browser.py): building it in release does not
//! need the server nor the cloud SDK that the `camut` binary links. Prints its peak RSS
//! (`VmHWM:` of /proc/self/status) to stderr at the end.

use std::sync::Arc;

use anyhow::{bail, Context};
use camut_engine::campaign::RunLength;
use camut_engine::{Campaign, ConsoleLevel, Observer, Point, RunConfig, StopHandle};

/// Prints console lines as `camut run` does; ignores points.
struct Console;

impl Observer for Console {
    fn point(&self, _: Point) {}
    fn console(&self, vu: u64, _: ConsoleLevel, message: &str) {
        println!("[vu {vu}] {message}");
    }
}

fn main() -> anyhow::Result<()> {
    let mut config = RunConfig::default();
    let mut summary_path = None;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--users" => config.users = Some(value()?.parse()?),
            "--iterations" => config.length = Some(RunLength::Iterations(value()?.parse()?)),
            "--threads" => config.threads = value()?.parse()?,
            "--env" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').context("--env takes KEY=VALUE")?;
                config.env.insert(k.to_string(), v.to_string());
            }
            "--summary-json" => summary_path = Some(value()?),
            "--quiet" => {}
            f if !f.starts_with("--") => file = Some(f.to_string()),
            other => bail!("unknown flag {other}"),
        }
    }
    let file = file.context("usage: camut-engine-run [flags] FILE")?;
    let campaign = Campaign::load_file(&file)?;
    let result = camut_engine::run(&campaign, config, Arc::new(Console), StopHandle::new())?;
    // The peak RSS of this program's own memory (VmHWM is reset by exec, unlike the
    // rusage maxrss a parent reads, which keeps the RSS the parent had when it forked).
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("{line}");
        }
    }
    let json = serde_json::to_string_pretty(&result.summary)?;
    match summary_path {
        Some(p) => std::fs::write(&p, json).with_context(|| format!("cannot write {p}"))?,
        None => println!("{json}"),
    }
    Ok(())
}
