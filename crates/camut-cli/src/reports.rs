//! The files a run's results are kept in: `--junit PATH` (JUnit XML for CI systems) and
//! `--html PATH` (the self-contained report), shared by `camut run` and `camut results`,
//! and the formats of the per-second series (`--series`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use camut_server::ui::report::Report;
use camut_stats::series::SeriesPoint;

/// `--junit` and `--html`, on `camut run` and `camut results`.
#[derive(clap::Args, Default)]
pub struct ReportArgs {
    /// Write the threshold verdicts as JUnit XML to PATH: one test case per threshold,
    /// and one, "no drone lost, no data lost", that fails when the run is degraded.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the HTML report to PATH: one self-contained file (summary, thresholds,
    /// charts over time, operations, drones, generator health, errors) that opens
    /// offline.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

/// How the per-second series is written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesFormat {
    /// One row per second and operation (operation `*`: all of them), with a header.
    Csv,
    /// `{"campaign": ID, "points": [...]}`, one point per second with its operations.
    Json,
}

impl SeriesFormat {
    /// The format a path's extension names: `.json` is JSON, anything else CSV.
    pub fn of_path(path: &Path) -> SeriesFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => SeriesFormat::Json,
            _ => SeriesFormat::Csv,
        }
    }

    /// The series in this format.
    pub fn render(self, campaign: &str, points: &[SeriesPoint]) -> String {
        match self {
            SeriesFormat::Csv => camut_stats::series::to_csv(points),
            SeriesFormat::Json => camut_stats::series::to_json(campaign, points) + "\n",
        }
    }
}

/// Writes `text` to `path`, naming the file in the error.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

impl ReportArgs {
    /// Writes the JUnit file, when asked for.
    pub fn write_junit(&self, xml: impl FnOnce() -> String) -> anyhow::Result<()> {
        match &self.junit {
            Some(path) => write_file(path, &xml()),
            None => Ok(()),
        }
    }

    /// Whether the report needs the series.
    pub fn wants_series(&self) -> bool {
        self.html.is_some()
    }

    /// Writes the HTML report, when asked for.
    pub fn write_html(&self, report: impl FnOnce() -> Report) -> anyhow::Result<()> {
        match &self.html {
            Some(path) => write_file(path, &report().render(camut_stats::clock::now_ms())),
            None => Ok(()),
        }
    }
}
