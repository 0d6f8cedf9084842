//! Reconciliation: the instances every deployer holds, the zombies among them, and
//! their reaping (the `Instances` service, start-up and `camut instances --reap`).
//!
//! An instance is a zombie when it is not shutting down and
//! - its campaign is unknown to this server (and it was made by this server, or by no
//!   server in particular),
//! - its expiry (`camut:expires`) has passed, whichever server made it, or
//! - its campaign is known but does not hold it (a spawn interrupted by a restart, a
//!   kill that did not finish), while no spawn of that campaign is pending.
//!
//! Reaping destroys the zombie's campaign through its deployer (deployers free
//! instances by campaign), except where that campaign also holds live instances.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use camut::v1::{self, instances_server::Instances};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::api::Api;
use crate::core::Core;
use crate::error::ServerError;
use crate::state::{Command, JobState};
use crate::store::now_ms;

/// Instance states of instances on their way out.
const GOING: [&str; 2] = ["shutting-down", "terminated"];

impl Core {
    /// Every instance the deployers report, with why each is a zombie (empty when not),
    /// and the deployers that could not be asked.
    pub async fn managed_instances(
        &self,
    ) -> Result<(Vec<v1::ManagedInstance>, BTreeMap<String, String>), ServerError> {
        let mut found = Vec::new();
        let mut errors = BTreeMap::new();
        let now = now_ms();
        // Campaigns with a spawn in flight may hold instances the store does not list yet.
        let mut spawning = HashSet::new();
        for state in [JobState::Queued, JobState::Active] {
            for job in self.store.jobs("", Some(state), 10_000)? {
                if job.kind == Command::Spawn {
                    spawning.insert(job.campaign);
                }
            }
        }
        for (name, deployer) in &self.deployers {
            let listed = match deployer
                .list_instances(Request::new(v1::ListInstancesRequest::default()))
                .await
            {
                Ok(r) => r.into_inner().instances,
                Err(s) => {
                    errors.insert(name.clone(), s.message().to_owned());
                    continue;
                }
            };
            for instance in listed {
                let zombie = self.zombie_reason(name, &instance, now, &spawning)?;
                found.push(v1::ManagedInstance {
                    deployer: name.clone(),
                    instance: Some(instance),
                    zombie,
                });
            }
        }
        Ok((found, errors))
    }

    fn zombie_reason(
        &self,
        deployer: &str,
        i: &v1::DeployedInstance,
        now: i64,
        spawning: &HashSet<String>,
    ) -> Result<String, ServerError> {
        if GOING.contains(&i.state.as_str()) {
            return Ok(String::new());
        }
        if i.expires_unix_ms > 0 && i.expires_unix_ms < now {
            return Ok(format!(
                "expired {} s ago",
                (now - i.expires_unix_ms) / 1000
            ));
        }
        if !i.server.is_empty() && i.server != self.server_id {
            return Ok(String::new());
        }
        let Some(_) = self.store.campaign(&i.campaign)? else {
            return Ok(format!("campaign '{}' unknown to this server", i.campaign));
        };
        if spawning.contains(&i.campaign) {
            return Ok(String::new());
        }
        let held = self.store.instances(&i.campaign)?;
        if !held.iter().any(|(id, _, _)| *id == i.id) {
            return Ok(format!(
                "campaign '{}' does not hold it (deployer '{deployer}')",
                i.campaign
            ));
        }
        Ok(String::new())
    }

    /// Frees the zombies: destroys each zombie campaign through its deployer, unless
    /// the campaign also holds live instances there that are not zombies.
    pub async fn reap_zombies(&self) -> Result<v1::ReapZombiesResponse, ServerError> {
        let (all, list_errors) = self.managed_instances().await?;
        let mut errors: std::collections::HashMap<String, String> =
            list_errors.into_iter().collect();
        let zombies: Vec<v1::ManagedInstance> = all
            .iter()
            .filter(|m| !m.zombie.is_empty())
            .cloned()
            .collect();
        let healthy: BTreeSet<(String, String)> = all
            .iter()
            .filter(|m| m.zombie.is_empty())
            .filter_map(|m| {
                m.instance
                    .as_ref()
                    .map(|i| (m.deployer.clone(), i.campaign.clone()))
            })
            .collect();
        let targets: BTreeSet<(String, String)> = zombies
            .iter()
            .filter_map(|m| {
                m.instance
                    .as_ref()
                    .map(|i| (m.deployer.clone(), i.campaign.clone()))
            })
            .collect();
        let mut reaped = Vec::new();
        for (deployer, campaign) in targets {
            let key = format!("{deployer}/{campaign}");
            if healthy.contains(&(deployer.clone(), campaign.clone())) {
                errors.insert(
                    key,
                    "the campaign also holds live instances: kill it to free them all".into(),
                );
                continue;
            }
            let Some(d) = self.deployers.get(&deployer) else {
                continue;
            };
            match d
                .destroy_instances(Request::new(v1::DestroyInstancesRequest {
                    campaign: campaign.clone(),
                }))
                .await
            {
                Ok(r) => {
                    let ids = r.into_inner().destroyed;
                    self.logs.push(
                        "warn",
                        "server",
                        &campaign,
                        format!("reaped {} zombie instances of campaign '{campaign}' (deployer '{deployer}')", ids.len()),
                    );
                    reaped.extend(ids);
                }
                Err(s) => {
                    errors.insert(key, s.message().to_owned());
                }
            }
        }
        Ok(v1::ReapZombiesResponse {
            zombies,
            reaped,
            errors,
        })
    }

    /// Reaps zombies in the background and logs what it found (at start-up).
    pub fn reconcile_in_background(self: &Arc<Self>) {
        let core = self.clone();
        tokio::spawn(async move {
            match core.reap_zombies().await {
                Ok(r) => {
                    for (what, why) in &r.errors {
                        warn!(%what, %why, "reconciliation could not finish");
                    }
                    info!(
                        zombies = r.zombies.len(),
                        reaped = r.reaped.len(),
                        "instances reconciled"
                    );
                }
                Err(e) => warn!(error = %e, "reconciliation failed"),
            }
        });
    }
}

#[tonic::async_trait]
impl Instances for Api {
    async fn list_instances(
        &self,
        request: Request<v1::ListManagedInstancesRequest>,
    ) -> Result<Response<v1::ListManagedInstancesResponse>, Status> {
        let zombies_only = request.into_inner().zombies_only;
        let (mut instances, errors) = self.0.managed_instances().await?;
        if zombies_only {
            instances.retain(|m| !m.zombie.is_empty());
        }
        Ok(Response::new(v1::ListManagedInstancesResponse {
            instances,
            errors: errors.into_iter().collect(),
        }))
    }

    async fn reap_zombies(
        &self,
        _request: Request<v1::ReapZombiesRequest>,
    ) -> Result<Response<v1::ReapZombiesResponse>, Status> {
        Ok(Response::new(self.0.reap_zombies().await?))
    }
}
