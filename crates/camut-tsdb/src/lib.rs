//! Camut's OpenTSDB connector.
//!
//! Drones (and `camut run --tsdb`) hand it points; it queues them in a bounded
//! in-memory queue and a background thread writes them in batches over the telnet
//! `put` protocol or HTTP `/api/put`, reconnecting with backoff. Pushing never blocks
//! a virtual user: when the queue is full the oldest points are dropped and counted.
//!
//! Two modes ([`Mode`]) for the automatic HTTP metrics: per-call points (every HTTP
//! call becomes a few points tagged with its call id, as the seed did) and
//! per-interval aggregates per drone (count, rate and percentiles of each metric and
//! operation), the default, because call ids as tags multiply a TSDB's series without
//! bound. `camut.tsdb` points go as the test wrote them in both modes.
//!
//! [`Connector::start_printing`] writes the same lines to a sink instead of a server:
//! what `camut run` prints is what the TSDB would receive.

#![warn(missing_docs)]

mod aggregate;
mod config;
mod connector;
mod encode;
mod point;
#[cfg(test)]
mod proptests;
mod queue;
mod transport;
#[cfg(feature = "wire")]
mod wire;

pub use aggregate::Aggregator;
pub use camut_stats::TsdbCounts;
pub use config::{ConfigError, Mode, Precision, Protocol, TsdbConfig};
pub use connector::Connector;
pub use encode::{put_line, sanitize};
pub use point::{validate_metric, CallPoint, Entry, MetricError, Point};
pub use transport::LineSink;
