//! Camut's virtual-user engine.
//!
//! Loads a campaign file (JavaScript: `exports.campaign` options and an `exports.test`
//! function), runs its virtual users — each in its own QuickJS context, many contexts per
//! worker thread — and measures every call into HDR histograms that merge exactly.
//!
//! This crate knows nothing of gRPC, the server or the command line: the drone and the
//! `camut run` test-drive drive it through [`run::run`] and an [`run::Observer`].

#![warn(missing_docs)]

pub mod campaign;
pub mod js;

pub use campaign::{Campaign, CampaignError, CampaignOptions};
pub use camut_stats as stats;
pub mod http;
pub mod run;

pub use run::{
    run, CallPoint, ConsoleLevel, DroneInfo, Observer, Point, Progress, RunConfig, RunResult,
    StopHandle,
};
