//! Camut's statistics, shared by the engine (which records), the drone (which ships) and
//! the server (which merges): HDR histogram sets that merge exactly, the summary computed
//! from them, and thresholds evaluated on it.
//!
//! Nothing here knows of QuickJS, gRPC or threads: a [`StatsSet`] is plain data that one
//! owner records into and that is merged with [`StatsSet::merge`] — never by averaging
//! percentiles.

#![warn(missing_docs)]

pub mod cap;
pub mod clock;
pub mod codec;
pub mod junit;
pub mod lazy;
#[cfg(test)]
mod proptests;
pub mod series;
pub mod set;
pub mod summary;
pub mod threshold;

pub use cap::{OperationCap, OVERFLOW_OPERATION};
pub use lazy::LazyHistogram;
pub use set::{CallKey, CallStats, Counters, IterationStats, StatsSet, TsdbCounts};
pub use summary::{Health, LatencyStats, Summary, WorkerHealth};
pub use threshold::{Threshold, Verdict};

/// A new histogram: 3 significant figures, growing as needed.
pub fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new(3).expect("3 significant figures is valid")
}
