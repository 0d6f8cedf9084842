//! Camut's protobuf API (package `camut.v1`) and the wire form of statistics.

#![warn(missing_docs)]

pub mod client;
pub use client::Client;
pub mod stats;

/// Generated protobuf messages and gRPC stubs of package `camut.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("camut.v1");

    /// Encoded file descriptor set of the API, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("camut_descriptor");
}
