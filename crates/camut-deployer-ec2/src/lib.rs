//! Camut's `ec2` deployer: EC2 instances for drones, configured over ssh.
//!
//! [`Ec2Deployer`] implements the Deployer gRPC service
//! ([`camut::v1::deployer_server::Deployer`]), so the server holds it in-process like
//! any other deployer, and `camut deployer ec2 --listen ADDR --config FILE` serves it on
//! its own. It lives in a crate of its own so that the AWS SDK, slow to build, is
//! rebuilt only when this crate changes; it knows nothing of the server or the engine.
//!
//! - **CreateInstances**: checks the image exists (DescribeImages), then RunInstances
//!   with MinCount/MaxCount from the request and the request's idempotency key as the
//!   client token (a create repeated with the same key returns the instances of the
//!   first). Every instance is tagged `camut:campaign`, `camut:managed=true`,
//!   `camut:expires` (launch time + the maximum lifetime, RFC 3339) and the request's
//!   tags (the server adds `camut:server`). It waits, bounded, until the instances leave
//!   `pending`; fewer running than asked but at least the minimum goes on (the others are
//!   terminated), fewer than the minimum terminates them all and fails with
//!   `RESOURCE_EXHAUSTED`.
//! - **ConfigureInstances**: over ssh ([`openssh`], the system's `ssh`), with bounded
//!   parallelism and a timeout per instance: reads `camut --version` on the host, uploads
//!   this machine's `camut` binary when it differs, writes the drone's environment file
//!   (server address, join token, drone id = instance id) and runs the start command
//!   (the image's systemd unit by default). Each instance's failure is reported in
//!   `failed`; the others carry on.
//! - **DestroyInstances**: terminates the campaign's instances (found by tag) and waits,
//!   bounded, until they are terminated.
//! - **ListInstances**: the live instances tagged `camut:managed`, with their campaign,
//!   server and expiry, so that the server can find zombies.
//! - **ExtendInstances**: rewrites `camut:expires` of a campaign's instances to the
//!   maximum lifetime from now; the server calls it while the campaign holds them, so
//!   that only instances no campaign holds any longer expire.
//!
//! EC2 API failures are sorted by kind ([`api_error`]): capacity, limits, credentials,
//! bad parameters and missing resources are final (one line with EC2's code and what to
//! do); throttling, server errors and timeouts (`api_timeout_s`) are tried again with
//! backoff. SDK debug output never reaches a message.
//!
//! Settings are [`Ec2Config`]; credentials come from the AWS default chain.

#![warn(missing_docs)]

pub mod api_error;
mod cloud;
pub mod config;
mod error;
mod ssh;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_ec2::types::InstanceStateName;
use camut::v1::deployer_server::Deployer;
use camut::v1::{
    ConfigureInstancesRequest, ConfigureInstancesResponse, CreateInstancesRequest,
    CreateInstancesResponse, DeployedInstance, DestroyInstancesRequest, DestroyInstancesResponse,
    ListInstancesRequest, ListInstancesResponse,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

pub use cloud::{TAG_CAMPAIGN, TAG_EXPIRES, TAG_MANAGED, TAG_SERVER, TAG_TOKEN};
pub use config::{Ec2Config, HostKeyPolicy, SshConfig};
pub use error::Error;

use cloud::{Cloud, Launch};
use ssh::{Configurer, DroneSettings};

/// The ec2 deployer. See the [crate documentation](crate).
pub struct Ec2Deployer {
    cloud: Cloud,
    configurer: Arc<Configurer>,
    config: Ec2Config,
}

impl std::fmt::Debug for Ec2Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Deployer")
            .field("region", &self.cloud.region())
            .field("config", &self.config)
            .finish()
    }
}

impl Ec2Deployer {
    /// A deployer with `config`. The `camut` binary uploaded to instances is
    /// `ssh.local_binary`, by default this process's own executable.
    pub async fn new(config: Ec2Config) -> Result<Self, Error> {
        let local_binary: PathBuf = match &config.ssh.local_binary {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| Error::LocalBinary {
                path: "(this executable)".into(),
                message: e.to_string(),
            })?,
        };
        let configurer = Arc::new(Configurer::new(config.ssh.clone(), local_binary));
        let cloud = Cloud::new(config.clone()).await;
        info!(region = %cloud.region(), endpoint = ?config.endpoint_url, "ec2 deployer ready");
        Ok(Self {
            cloud,
            configurer,
            config,
        })
    }

    /// The region the deployer works in.
    pub fn region(&self) -> &str {
        self.cloud.region()
    }

    async fn create(&self, r: CreateInstancesRequest) -> Result<Vec<DeployedInstance>, Error> {
        if r.campaign.is_empty() {
            return Err(Error::InvalidArgument("campaign is required".into()));
        }
        if r.max == 0 || r.min > r.max {
            return Err(Error::InvalidArgument(format!(
                "min ({}) and max ({}) must satisfy 1 <= max and min <= max",
                r.min, r.max
            )));
        }
        let min = r.min.max(1);
        if !r.zone.is_empty() && config::zone_region(&r.zone) != self.cloud.region() {
            return Err(Error::InvalidArgument(format!(
                "zone '{}' is not in region {} of this ec2 deployer: name a zone of {} in the campaign, or configure one deployer per region",
                r.zone,
                self.cloud.region(),
                self.cloud.region()
            )));
        }
        let image = self
            .config
            .image_for(&r.image, &r.zone)
            .ok_or_else(|| Error::NoImage {
                zone: r.zone.clone(),
            })?;
        self.cloud.check_image(&image).await?;
        let instance_type = if r.instance_type.is_empty() {
            self.config
                .instance_type
                .clone()
                .unwrap_or_else(|| config::DEFAULT_INSTANCE_TYPE.into())
        } else {
            r.instance_type.clone()
        };
        let ids = self
            .cloud
            .launch(&Launch {
                campaign: &r.campaign,
                min,
                max: r.max,
                image: &image,
                instance_type: &instance_type,
                zone: &r.zone,
                client_token: &r.client_token,
                tags: &r.tags,
            })
            .await?;
        info!(campaign = %r.campaign, launched = ids.len(), %image, %instance_type, "instances launched");
        let (list, timed_out) = self
            .cloud
            .wait_settled(
                &r.campaign,
                &ids,
                self.config.running_timeout(),
                "running",
                |s| *s != InstanceStateName::Pending,
            )
            .await?;
        let (running, other): (Vec<_>, Vec<_>) = list
            .iter()
            .partition(|i| i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Running));
        if running.len() < min as usize {
            self.cloud.terminate(&ids).await?;
            if timed_out {
                return Err(Error::Timeout {
                    campaign: r.campaign,
                    what: format!(
                        "{} of at least {min} instances running (all terminated)",
                        running.len()
                    ),
                    seconds: self.config.running_timeout().as_secs(),
                });
            }
            return Err(Error::TooFew {
                campaign: r.campaign,
                running: running.len(),
                min,
            });
        }
        let dropped: Vec<String> = other
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if !dropped.is_empty() {
            warn!(campaign = %r.campaign, ?dropped, "instances not running: terminated, going on without them");
            self.cloud.terminate(&dropped).await?;
        }
        if running.len() < r.max as usize {
            info!(campaign = %r.campaign, running = running.len(), asked = r.max, "fewer instances than asked, at least the minimum: going on");
        }
        Ok(running.iter().map(|i| self.cloud.to_deployed(i)).collect())
    }

    async fn configure(
        &self,
        r: ConfigureInstancesRequest,
    ) -> Result<ConfigureInstancesResponse, Error> {
        for (name, value) in [
            ("campaign", &r.campaign),
            ("server_address", &r.server_address),
            ("join_token", &r.join_token),
        ] {
            if value.is_empty() {
                return Err(Error::InvalidArgument(format!("{name} is required")));
            }
        }
        let live: HashMap<String, DeployedInstance> = self
            .cloud
            .describe(Some(&r.campaign), None)
            .await?
            .iter()
            .map(|i| self.cloud.to_deployed(i))
            .map(|d| (d.id.clone(), d))
            .collect();
        let wanted: Vec<String> = if r.instance_ids.is_empty() {
            let mut ids: Vec<String> = live.keys().cloned().collect();
            ids.sort();
            ids
        } else {
            r.instance_ids.clone()
        };
        let mut failed = HashMap::new();
        let limit = Arc::new(Semaphore::new(self.configurer.settings().parallelism()));
        let timeout = self.configurer.settings().configure_timeout();
        let mut tasks = JoinSet::new();
        for id in wanted {
            let Some(instance) = live.get(&id) else {
                failed.insert(
                    id.clone(),
                    format!("no live instance {id} in campaign {}", r.campaign),
                );
                continue;
            };
            let destination = match self.configurer.destination(&instance.address) {
                Ok(d) => d,
                Err(e) => {
                    failed.insert(id, e.to_string());
                    continue;
                }
            };
            let configurer = self.configurer.clone();
            let limit = limit.clone();
            let (server, token) = (r.server_address.clone(), r.join_token.clone());
            let ca_pem = r.ca_pem.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let drone = DroneSettings {
                    server_address: &server,
                    join_token: &token,
                    ca_pem: &ca_pem,
                    drone_id: &id,
                };
                let started = std::time::Instant::now();
                let outcome =
                    tokio::time::timeout(timeout, configurer.configure(&destination, &drone)).await;
                let outcome = match outcome {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "ssh {destination}: configuration took longer than {} s",
                        timeout.as_secs()
                    )),
                };
                match &outcome {
                    Ok(c) => info!(instance = %id, %destination, uploaded = c.uploaded,
                        ms = started.elapsed().as_millis() as u64, "drone configured and started"),
                    Err(e) => {
                        warn!(instance = %id, %destination, error = %e, "drone not configured")
                    }
                }
                (id, outcome)
            });
        }
        let mut configured = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((id, Ok(_))) => configured.push(id),
                Ok((id, Err(e))) => {
                    failed.insert(id, e);
                }
                Err(e) => warn!(error = %e, "configure task failed"),
            }
        }
        configured.sort();
        Ok(ConfigureInstancesResponse { configured, failed })
    }

    async fn destroy(&self, campaign: &str) -> Result<Vec<String>, Error> {
        if campaign.is_empty() {
            return Err(Error::InvalidArgument("campaign is required".into()));
        }
        let ids: Vec<String> = self
            .cloud
            .describe(Some(campaign), None)
            .await?
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        self.cloud.terminate(&ids).await?;
        let (list, timed_out) = self
            .cloud
            .wait_settled(
                campaign,
                &ids,
                self.config.terminated_timeout(),
                "terminated",
                |s| *s == InstanceStateName::Terminated,
            )
            .await?;
        if timed_out {
            let left = list
                .iter()
                .filter(|i| {
                    i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated)
                })
                .count();
            return Err(Error::Timeout {
                campaign: campaign.to_owned(),
                what: format!("{left} of {} instances not terminated yet", ids.len()),
                seconds: self.config.terminated_timeout().as_secs(),
            });
        }
        info!(campaign, destroyed = ids.len(), "instances terminated");
        Ok(ids)
    }
}

#[tonic::async_trait]
impl Deployer for Ec2Deployer {
    async fn create_instances(
        &self,
        request: Request<CreateInstancesRequest>,
    ) -> Result<Response<CreateInstancesResponse>, Status> {
        let instances = self.create(request.into_inner()).await?;
        Ok(Response::new(CreateInstancesResponse { instances }))
    }

    async fn configure_instances(
        &self,
        request: Request<ConfigureInstancesRequest>,
    ) -> Result<Response<ConfigureInstancesResponse>, Status> {
        Ok(Response::new(self.configure(request.into_inner()).await?))
    }

    async fn destroy_instances(
        &self,
        request: Request<DestroyInstancesRequest>,
    ) -> Result<Response<DestroyInstancesResponse>, Status> {
        let destroyed = self.destroy(&request.into_inner().campaign).await?;
        Ok(Response::new(DestroyInstancesResponse { destroyed }))
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let campaign = request.into_inner().campaign;
        let filter = (!campaign.is_empty()).then_some(campaign.as_str());
        let instances = self
            .cloud
            .describe(filter, None)
            .await
            .map_err(Status::from)?
            .iter()
            .map(|i| self.cloud.to_deployed(i))
            .collect();
        Ok(Response::new(ListInstancesResponse { instances }))
    }

    async fn extend_instances(
        &self,
        request: Request<camut::v1::ExtendInstancesRequest>,
    ) -> Result<Response<camut::v1::ExtendInstancesResponse>, Status> {
        let campaign = request.into_inner().campaign;
        if campaign.is_empty() {
            return Err(Error::InvalidArgument("campaign is required".into()).into());
        }
        let extended: Vec<String> = self
            .cloud
            .describe(Some(&campaign), None)
            .await?
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        let expires_unix_ms = self.cloud.extend(&extended).await?;
        info!(
            campaign,
            instances = extended.len(),
            expires_unix_ms,
            "expiry pushed back"
        );
        Ok(Response::new(camut::v1::ExtendInstancesResponse {
            extended,
            expires_unix_ms,
        }))
    }
}
