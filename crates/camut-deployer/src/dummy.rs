//! [`DummyDeployer`]: a deployer that pretends, for tests of the server's flows.

use std::sync::{Mutex, MutexGuard, PoisonError};

use camut::v1::deployer_server::Deployer;
use camut::v1::{
    ConfigureInstancesRequest, ConfigureInstancesResponse, CreateInstancesRequest,
    CreateInstancesResponse, DestroyInstancesRequest, DestroyInstancesResponse,
    ListInstancesRequest, ListInstancesResponse,
};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::registry::{self, Registry, CONFIGURED, RUNNING};

/// A deployer that only keeps a table: creating an instance adds an entry in state
/// `running` with id `dummy-<campaign>-<n>`, configuring marks it `configured` (no drone
/// starts), destroying removes it.
///
/// An optional capacity caps how many instances it holds at once, to exercise the create
/// rules: a create gets `min(available, max)` instances, and fails with
/// `RESOURCE_EXHAUSTED`, creating nothing, when fewer than `min` are available.
#[derive(Debug)]
pub struct DummyDeployer {
    capacity: Option<u32>,
    instances: Mutex<Registry<()>>,
}

impl DummyDeployer {
    /// A dummy deployer without capacity limit.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A dummy deployer holding at most `capacity` instances at once.
    pub fn with_capacity(capacity: u32) -> Self {
        Self::build(Some(capacity))
    }

    fn build(capacity: Option<u32>) -> Self {
        Self {
            capacity,
            instances: Mutex::new(Registry::new("dummy")),
        }
    }

    /// How many instances it holds at most at once, if limited.
    pub fn capacity(&self) -> Option<u32> {
        self.capacity
    }

    fn instances(&self) -> MutexGuard<'_, Registry<()>> {
        // The table stays consistent whatever panicked while holding it.
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for DummyDeployer {
    fn default() -> Self {
        Self::new()
    }
}

#[tonic::async_trait]
impl Deployer for DummyDeployer {
    async fn create_instances(
        &self,
        request: Request<CreateInstancesRequest>,
    ) -> Result<Response<CreateInstancesResponse>, Status> {
        let request = request.into_inner();
        let instances = self
            .instances()
            .create(&request, self.capacity, RUNNING, || ())?;
        info!(
            campaign = %request.campaign,
            min = request.min,
            max = request.max,
            created = instances.len(),
            "dummy instances created"
        );
        Ok(Response::new(CreateInstancesResponse { instances }))
    }

    async fn configure_instances(
        &self,
        request: Request<ConfigureInstancesRequest>,
    ) -> Result<Response<ConfigureInstancesResponse>, Status> {
        let request = request.into_inner();
        registry::require_campaign(&request.campaign)?;
        let mut instances = self.instances();
        let (configured, failed) = instances.select(&request.campaign, &request.instance_ids);
        for id in &configured {
            if let Some(entry) = instances.get_mut(id) {
                entry.state = CONFIGURED;
            }
        }
        info!(
            campaign = %request.campaign,
            configured = configured.len(),
            failed = failed.len(),
            "dummy instances configured"
        );
        Ok(Response::new(ConfigureInstancesResponse {
            configured,
            failed,
        }))
    }

    async fn destroy_instances(
        &self,
        request: Request<DestroyInstancesRequest>,
    ) -> Result<Response<DestroyInstancesResponse>, Status> {
        let request = request.into_inner();
        registry::require_campaign(&request.campaign)?;
        let destroyed: Vec<String> = self
            .instances()
            .remove_campaign(&request.campaign)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        info!(campaign = %request.campaign, destroyed = destroyed.len(), "dummy instances destroyed");
        Ok(Response::new(DestroyInstancesResponse { destroyed }))
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let campaign = request.into_inner().campaign;
        let instances = self
            .instances()
            .list_mut(&campaign)
            .into_iter()
            .map(|(id, entry)| entry.to_instance(id))
            .collect();
        Ok(Response::new(ListInstancesResponse { instances }))
    }

    /// Its instances do not expire: nothing to extend.
    async fn extend_instances(
        &self,
        _: Request<camut::v1::ExtendInstancesRequest>,
    ) -> Result<Response<camut::v1::ExtendInstancesResponse>, Status> {
        Ok(Response::new(camut::v1::ExtendInstancesResponse::default()))
    }
}
