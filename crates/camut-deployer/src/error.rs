//! The crate's error type.

/// What can go wrong setting up a deployer connection or service.
///
/// Failures of the deployer calls themselves are gRPC [`tonic::Status`]es.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address of a remote deployer is not a valid URL.
    #[error("invalid deployer address {url:?}: {source}")]
    InvalidAddress {
        /// The address given.
        url: String,
        /// Why it was refused.
        #[source]
        source: tonic::transport::Error,
    },
    /// TLS to a remote deployer could not be set up.
    #[error("deployer {url}: {message}")]
    Tls {
        /// The address given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The gRPC reflection service could not be built from the API's descriptors.
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("deployer service failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}
