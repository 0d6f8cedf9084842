//! Campaign files: loading, compiling to QuickJS bytecode once, and validating the options.

pub mod http_options;
pub mod options;

use std::path::Path;
use std::sync::Arc;

use rquickjs::{Context, Runtime};
use thiserror::Error;

pub use http_options::HttpDefaults;
pub use options::{
    BrowserOptions, CampaignOptions, DeployOptions, DroneLossPolicy, RunLength, TsdbOptions,
};

use crate::js::{self, ScriptError};

/// The scope top-level code sees while the options are read: the VU globals exist,
/// `camut.env` is empty and nothing can be sent.
const LOAD_SCOPE: &str = r#"
(function (g) {
  var nop = function () {};
  g.camut = {
    env: {}, vu: { id: 0, index: 0, iteration: 0 }, drone: { id: 'local', index: 0, count: 1 }, campaign: {},
    http: function () { throw new Error('camut.http cannot be called while the campaign options are read; call it from the test function'); },
    tsdb: nop, cookies: { get: function () { return {}; }, set: nop, clear: nop, all: function () { return []; } },
  };
  g.console = { log: nop, info: nop, warn: nop, error: nop, debug: nop };
  g.setTimeout = g.setInterval = function () { return 0; };
  g.clearTimeout = g.clearInterval = nop;
  g.window = {};
  g.context = null;
})(globalThis);
"#;

/// Why a campaign file could not be loaded.
#[derive(Debug, Error)]
pub enum CampaignError {
    /// The file could not be read.
    #[error("cannot read campaign file {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The source does not parse.
    #[error("{file}:{line}:{column}: syntax error: {message}")]
    Syntax {
        /// File name.
        file: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What the parser said.
        message: String,
    },
    /// The top-level code threw.
    #[error("{file}: the campaign's top-level code threw: {error}")]
    TopLevel {
        /// File name.
        file: String,
        /// The exception.
        error: ScriptError,
    },
    /// No `test` function exported.
    #[error("{file}: no test function: export one with `exports.test = function (done) {{ … done(); }}` or `export function test(done) {{ … }}`")]
    MissingTest {
        /// File name.
        file: String,
    },
    /// No `campaign` object exported.
    #[error("{file}: no campaign options: export them with `exports.campaign = {{ id: '…', users: 10, iterations: 100 }}`")]
    MissingCampaign {
        /// File name.
        file: String,
    },
    /// An option is wrong.
    #[error("campaign option `{option}` {message}")]
    InvalidOption {
        /// The option (dotted path).
        option: String,
        /// What is expected.
        message: String,
    },
    /// The JavaScript engine itself failed.
    #[error("javascript engine error: {0}")]
    Engine(String),
}

/// A loaded, validated campaign: its source, options and compiled bytecode.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// File name used in messages and stack traces.
    pub file: String,
    /// The source text as given.
    pub source: String,
    /// The validated options.
    pub options: CampaignOptions,
    /// QuickJS bytecode (a script or a module), compiled once and loaded into every VU context.
    pub(crate) bytecode: Arc<js::module::Bytecode>,
}

impl Campaign {
    /// Reads and loads a campaign file.
    pub fn load_file(path: impl AsRef<Path>) -> Result<Campaign, CampaignError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|source| CampaignError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Campaign::from_source(&path.display().to_string(), &source)
    }

    /// Loads a campaign from source text; `file` names it in errors.
    pub fn from_source(file: &str, source: &str) -> Result<Campaign, CampaignError> {
        let engine = |e: rquickjs::Error| CampaignError::Engine(e.to_string());
        let rt = Runtime::new().map_err(engine)?;
        rt.set_memory_limit(256 << 20);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        rt.set_interrupt_handler(Some(Box::new(move || std::time::Instant::now() > deadline)));
        let ctx = Context::full(&rt).map_err(engine)?;
        let bytecode = js::module::compile(&ctx, file, source)?;
        // Instantiate once, with an inert VU scope, to validate exports and read the options.
        let vctx = Context::full(&rt).map_err(engine)?;
        let options_json = vctx.with(|ctx| -> Result<serde_json::Value, CampaignError> {
            ctx.eval::<(), _>(LOAD_SCOPE).map_err(engine)?;
            let exports = js::module::instantiate(&ctx, file, &bytecode)?;
            let campaign = exports
                .campaign
                .ok_or_else(|| CampaignError::MissingCampaign { file: file.into() })?;
            if exports.test.is_none() {
                return Err(CampaignError::MissingTest { file: file.into() });
            }
            let text = ctx
                .json_stringify(campaign)
                .map_err(|_| CampaignError::InvalidOption {
                    option: "campaign".into(),
                    message: "must be plain data (numbers, strings, objects, arrays)".into(),
                })?
                .map(|s| s.to_string())
                .transpose()
                .map_err(engine)?
                .unwrap_or_default();
            serde_json::from_str(&text).map_err(|e| CampaignError::Engine(e.to_string()))
        })?;
        let options = CampaignOptions::from_json(&options_json)?;
        drop(vctx);
        drop(ctx);
        Ok(Campaign {
            file: file.to_string(),
            source: source.to_string(),
            options,
            bytecode: Arc::new(bytecode),
        })
    }
}
