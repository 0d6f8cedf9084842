//! [`RemoteDeployer`]: a deployer serving at another address, behind the same trait as
//! the built-in ones.

use std::time::Duration;

use camut::tls::TlsOptions;
use camut::v1::deployer_client::DeployerClient;
use camut::v1::deployer_server::Deployer;
use camut::v1::{
    ConfigureInstancesRequest, ConfigureInstancesResponse, CreateInstancesRequest,
    CreateInstancesResponse, DestroyInstancesRequest, DestroyInstancesResponse,
    ListInstancesRequest, ListInstancesResponse,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::Error;

/// How long dialing the remote deployer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A deployer that forwards every call to an external deployer's gRPC service.
///
/// Only the request messages are forwarded, not the callers' metadata. The remote
/// deployer's answers and statuses come back as they are; when it cannot be reached a call
/// fails with `UNAVAILABLE`.
#[derive(Debug, Clone)]
pub struct RemoteDeployer {
    client: DeployerClient<Channel>,
}

impl RemoteDeployer {
    /// A deployer forwarding to the service at `url` (such as `http://127.0.0.1:7001`).
    ///
    /// Nothing is dialed until the first call; the connection is remade as needed.
    pub fn connect_lazy(url: impl Into<String>) -> Result<Self, Error> {
        Self::connect_lazy_with(url, &TlsOptions::system_roots())
    }

    /// [`RemoteDeployer::connect_lazy`], checking an `https://` deployer's certificate
    /// as `tls` says.
    pub fn connect_lazy_with(url: impl Into<String>, tls: &TlsOptions) -> Result<Self, Error> {
        let url = url.into();
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|source| Error::InvalidAddress {
                url: url.clone(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = tls.connect_lazy(endpoint).map_err(|e| Error::Tls {
            url,
            message: e.to_string(),
        })?;
        Ok(Self::from_channel(channel))
    }

    /// A deployer forwarding over an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            client: DeployerClient::new(channel),
        }
    }
}

#[tonic::async_trait]
impl Deployer for RemoteDeployer {
    async fn create_instances(
        &self,
        request: Request<CreateInstancesRequest>,
    ) -> Result<Response<CreateInstancesResponse>, Status> {
        let mut client = self.client.clone();
        client
            .create_instances(Request::new(request.into_inner()))
            .await
    }

    async fn configure_instances(
        &self,
        request: Request<ConfigureInstancesRequest>,
    ) -> Result<Response<ConfigureInstancesResponse>, Status> {
        let mut client = self.client.clone();
        client
            .configure_instances(Request::new(request.into_inner()))
            .await
    }

    async fn destroy_instances(
        &self,
        request: Request<DestroyInstancesRequest>,
    ) -> Result<Response<DestroyInstancesResponse>, Status> {
        let mut client = self.client.clone();
        client
            .destroy_instances(Request::new(request.into_inner()))
            .await
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let mut client = self.client.clone();
        client
            .list_instances(Request::new(request.into_inner()))
            .await
    }

    async fn extend_instances(
        &self,
        request: Request<camut::v1::ExtendInstancesRequest>,
    ) -> Result<Response<camut::v1::ExtendInstancesResponse>, Status> {
        let mut client = self.client.clone();
        client
            .extend_instances(Request::new(request.into_inner()))
            .await
    }
}
