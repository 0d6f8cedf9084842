//! The files a run's results are kept in: `--junit PATH` (JUnit XML for CI systems) and
//! `--html PATH` (the self-contained report), shared by `camut run` and `camut results`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `--junit` and `--html`, on `camut run` and `camut results`.
#[derive(clap::Args, Default)]
pub struct ReportArgs {
    /// Write the threshold verdicts as JUnit XML to PATH: one test case per threshold,
    /// and one, "no drone lost, no data lost", that fails when the run is degraded.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
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
}
