//! Serving a deployer as a gRPC service of its own (`camut deployer … --listen ADDR`).

use std::future::Future;

use camut::v1::deployer_server::{Deployer, DeployerServer};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tracing::info;

use crate::Error;

/// Full name of the Deployer service, as gRPC reflection advertises it.
const DEPLOYER_SERVICE: &str = "camut.v1.Deployer";

/// Serves `deployer` as the `camut.v1.Deployer` gRPC service on `listener`, with gRPC
/// server reflection (v1 and v1alpha), until the server fails.
pub async fn serve(deployer: impl Deployer, listener: TcpListener) -> Result<(), Error> {
    serve_with_shutdown(deployer, listener, std::future::pending()).await
}

/// Like [`serve`], and stops gracefully when `shutdown` completes: the listener closes,
/// calls in flight finish, then the deployer is dropped (a
/// [`LocalDeployer`](crate::LocalDeployer) then kills its drones).
pub async fn serve_with_shutdown(
    deployer: impl Deployer,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(camut::v1::FILE_DESCRIPTOR_SET)
        .with_service_name(DEPLOYER_SERVICE)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(camut::v1::FILE_DESCRIPTOR_SET)
        .with_service_name(DEPLOYER_SERVICE)
        .build_v1alpha()?;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "deployer service listening");
    }
    Server::builder()
        .add_service(DeployerServer::new(deployer))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(Error::Serve)
}
