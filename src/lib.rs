//! Camut's protobuf API (package `camut.v1`) and the wire form of statistics.

#![warn(missing_docs)]

pub mod client;
pub mod logs;
pub use client::Client;
pub mod states;
pub mod stats;
pub mod summary;
pub mod tls;

pub mod series;

/// A Unix-ms time as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn clock(ms: i64) -> String {
    camut_stats::clock::utc(ms)
}

/// Generated protobuf messages and gRPC stubs of package `camut.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("camut.v1");

    /// Encoded file descriptor set of the API, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("camut_descriptor");
}
