//! A CI gate: runs a campaign on a Camut server and fails the build when a threshold
//! is broken.
//!
//! ```text
//! cargo run --example ci_gate -- CAMPAIGN.js [SERVER]
//! ```
//!
//! The server comes from the second argument, else `CAMUT_SERVER`, else
//! `127.0.0.1:7200`; the API token from `CAMUT_TOKEN`. The campaign is created (or
//! updated), spawned, deployed and run to its end; the verdicts are printed and the
//! instances freed. With `CAMUT_JUNIT=PATH`, the verdicts are also written there as
//! JUnit XML for the CI system's test report. Exit code: 0 when every threshold held, 1
//! otherwise or when the campaign could not run, 2 for bad arguments.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use camut::Client;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.len() > 2 || args[0].starts_with('-') {
        eprintln!("usage: ci_gate CAMPAIGN.js [SERVER]   (env: CAMUT_SERVER, CAMUT_TOKEN)");
        return ExitCode::from(2);
    }
    let server = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("CAMUT_SERVER").ok())
        .unwrap_or_else(|| "127.0.0.1:7200".to_string());
    let token = std::env::var("CAMUT_TOKEN").ok();
    match gate(Path::new(&args[0]), &server, token.as_deref()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("ci_gate: thresholds broken");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("ci_gate: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the campaign; whether every threshold held.
async fn gate(path: &Path, server: &str, token: Option<&str>) -> anyhow::Result<bool> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let client = Client::connect(server, token).await?;

    // The campaign's id, so that its instances can be freed whatever happens next.
    let checked = client.validate(&file, &source).await?;
    if !checked.error.is_empty() {
        bail!("{}", checked.error);
    }
    let id = checked.id;

    eprintln!("ci_gate: running {id} on {}", client.url());
    let run = client.run_campaign(&file, &source).await;

    // Free the instances, also after a failed step.
    let killed = match client.kill(&id).await {
        Ok(job) => client.wait_job(job.id).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let results = run?;
    killed.context("freeing the instances")?;

    println!(
        "{}: {}{}",
        results.id,
        results.state,
        if results.degraded { " (degraded)" } else { "" }
    );
    for lost in &results.lost {
        println!("  lost {lost}");
    }
    for v in &results.thresholds {
        let value = v
            .value
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "no data".into());
        println!(
            "  {} {} {}   (value {value})",
            if v.ok { "ok  " } else { "FAIL" },
            v.metric,
            v.expr
        );
    }
    if results.thresholds.is_empty() {
        println!("  no thresholds");
    }
    if let Some(path) = std::env::var_os("CAMUT_JUNIT") {
        std::fs::write(&path, results.junit_xml())
            .with_context(|| format!("writing {}", Path::new(&path).display()))?;
    }
    Ok(results.thresholds_ok)
}
