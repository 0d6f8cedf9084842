//! [`WithCa`]: any deployer, configuring drones that trust a given CA certificate.

use std::sync::Arc;

use camut::v1::deployer_server::Deployer;
use camut::v1::{
    ConfigureInstancesRequest, ConfigureInstancesResponse, CreateInstancesRequest,
    CreateInstancesResponse, DestroyInstancesRequest, DestroyInstancesResponse,
    ListInstancesRequest, ListInstancesResponse,
};
use tonic::{Request, Response, Status};

/// A deployer whose configure requests carry `ca_pem` (when they carry none), so that
/// the drones it configures check a TLS server against that CA. Every other call
/// passes through unchanged.
#[derive(Clone)]
pub struct WithCa {
    inner: Arc<dyn Deployer>,
    ca_pem: String,
}

impl std::fmt::Debug for WithCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithCa").finish_non_exhaustive()
    }
}

impl WithCa {
    /// `inner`, handing `ca_pem` (a PEM certificate) to its drones.
    pub fn new(inner: Arc<dyn Deployer>, ca_pem: String) -> WithCa {
        WithCa { inner, ca_pem }
    }
}

#[tonic::async_trait]
impl Deployer for WithCa {
    async fn create_instances(
        &self,
        request: Request<CreateInstancesRequest>,
    ) -> Result<Response<CreateInstancesResponse>, Status> {
        self.inner.create_instances(request).await
    }

    async fn configure_instances(
        &self,
        mut request: Request<ConfigureInstancesRequest>,
    ) -> Result<Response<ConfigureInstancesResponse>, Status> {
        if request.get_ref().ca_pem.is_empty() {
            request.get_mut().ca_pem = self.ca_pem.clone();
        }
        self.inner.configure_instances(request).await
    }

    async fn destroy_instances(
        &self,
        request: Request<DestroyInstancesRequest>,
    ) -> Result<Response<DestroyInstancesResponse>, Status> {
        self.inner.destroy_instances(request).await
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        self.inner.list_instances(request).await
    }

    async fn extend_instances(
        &self,
        request: Request<camut::v1::ExtendInstancesRequest>,
    ) -> Result<Response<camut::v1::ExtendInstancesResponse>, Status> {
        self.inner.extend_instances(request).await
    }
}
