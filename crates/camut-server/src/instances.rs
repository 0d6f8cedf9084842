//! Reconciliation: the instances every deployer holds, the zombies among them, and
//! their reaping (the `Instances` service, start-up and `camut instances --reap`).
//!
//! An instance is a zombie when it is not shutting down, no campaign of this server
//! holds it, and
//! - its expiry (`camut:expires`) has passed, whichever server made it,
//! - its campaign is unknown to this server (and it was made by this server, or by no
//!   server in particular), or
//! - its campaign is known but does not hold it (a spawn interrupted by a restart, a
//!   kill that did not finish), while no spawn of that campaign is pending.
//!
//! An instance its campaign holds is never a zombie, whatever its expiry says: while a
//! campaign holds instances, their expiry is pushed back ([`Core::keep_lifetimes`]), so
//! that instances expire only once no running server holds them. Every decision is
//! logged with its reason.
//!
//! Reaping destroys the zombie's campaign through its deployer (deployers free
//! instances by campaign), except where that campaign also holds live instances.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use camut::v1::{self, instances_server::Instances};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::api::Api;
use crate::core::Core;
use crate::error::ServerError;
use crate::state::{Command, JobState};
use crate::store::now_ms;

/// How often the server looks whether held instances' expiry is due to move.
const LIFETIME_TICK: Duration = Duration::from_secs(2);

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
            // Read after the listing, then the held instances after this: an instance
            // listed was made by a spawn that is either still pending here or done, and
            // a spawn stores what it holds before it is done. Read before the listing, a
            // spawn that began while the deployer answered made zombies of its own
            // instances.
            let spawning = self.spawning()?;
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

    /// Campaigns with a spawn in flight: they may hold instances the store does not list
    /// yet.
    fn spawning(&self) -> Result<HashSet<String>, ServerError> {
        let mut spawning = HashSet::new();
        for state in [JobState::Queued, JobState::Active] {
            for job in self.store.jobs("", Some(state), 10_000)? {
                if job.kind == Command::Spawn {
                    spawning.insert(job.campaign);
                }
            }
        }
        Ok(spawning)
    }

    /// Why an instance is a zombie (empty when it is not), and the decision logged.
    fn zombie_reason(
        &self,
        deployer: &str,
        i: &v1::DeployedInstance,
        now: i64,
        spawning: &HashSet<String>,
    ) -> Result<String, ServerError> {
        let (zombie, why) = self.judge(deployer, i, now, spawning)?;
        if zombie {
            info!(instance = %i.id, campaign = %i.campaign, deployer, "zombie: {why}");
            Ok(why)
        } else {
            info!(instance = %i.id, campaign = %i.campaign, deployer, "kept: {why}");
            Ok(String::new())
        }
    }

    /// (whether the instance is a zombie, why).
    fn judge(
        &self,
        deployer: &str,
        i: &v1::DeployedInstance,
        now: i64,
        spawning: &HashSet<String>,
    ) -> Result<(bool, String), ServerError> {
        if GOING.contains(&i.state.as_str()) {
            return Ok((false, format!("already {}", i.state)));
        }
        let campaign = self.store.campaign(&i.campaign)?;
        if let Some(c) = &campaign {
            let held = self.store.instances(&i.campaign)?;
            if held.iter().any(|(id, _, _)| *id == i.id) {
                return Ok((
                    false,
                    format!(
                        "held by campaign '{}' ({}), whatever its expiry",
                        c.id, c.state
                    ),
                ));
            }
        }
        if i.expires_unix_ms > 0 && i.expires_unix_ms < now {
            return Ok((
                true,
                format!(
                    "expired {} s ago and no campaign of this server holds it",
                    (now - i.expires_unix_ms) / 1000
                ),
            ));
        }
        if !i.server.is_empty() && i.server != self.server_id {
            return Ok((false, format!("made by server '{}', not expired", i.server)));
        }
        if campaign.is_none() {
            return Ok((
                true,
                format!("campaign '{}' unknown to this server", i.campaign),
            ));
        }
        if spawning.contains(&i.campaign) {
            return Ok((
                false,
                format!("a spawn of campaign '{}' is pending", i.campaign),
            ));
        }
        Ok((
            true,
            format!(
                "campaign '{}' does not hold it (deployer '{deployer}')",
                i.campaign
            ),
        ))
    }

    /// Pushes back the expiry of the instances of every campaign that holds some, each
    /// again halfway to its new expiry, for as long as the process runs. `next` keeps,
    /// per campaign, when it is due.
    pub async fn keep_lifetimes(&self, next: &mut HashMap<String, Instant>) {
        let holders = match self.store.holders() {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "cannot read which campaigns hold instances");
                return;
            }
        };
        next.retain(|c, _| holders.iter().any(|(h, _)| h == c));
        for (campaign, deployer) in holders {
            if next.get(&campaign).is_some_and(|due| *due > Instant::now()) {
                continue;
            }
            let Some(d) = self.deployers.get(&deployer) else {
                continue;
            };
            let request = v1::ExtendInstancesRequest {
                campaign: campaign.clone(),
            };
            let due = match d.extend_instances(Request::new(request)).await {
                Ok(r) => {
                    let r = r.into_inner();
                    if r.expires_unix_ms == 0 {
                        // Its instances do not expire: look again in an hour.
                        Instant::now() + Duration::from_secs(3600)
                    } else {
                        let left = (r.expires_unix_ms - now_ms()).max(0) as u64;
                        info!(
                            campaign,
                            deployer,
                            instances = r.extended.len(),
                            expires_unix_ms = r.expires_unix_ms,
                            "expiry of held instances pushed back"
                        );
                        Instant::now() + Duration::from_millis(left / 2).max(LIFETIME_TICK)
                    }
                }
                Err(s) => {
                    warn!(campaign, deployer, error = %s.message(), "cannot push back the expiry of held instances; trying again");
                    Instant::now() + LIFETIME_TICK
                }
            };
            next.insert(campaign, due);
        }
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

    /// Reaps zombies in the background and logs what it found (at start-up), then keeps
    /// the held instances' expiry pushed back.
    pub fn reconcile_in_background(self: &Arc<Self>) {
        let core = self.clone();
        tokio::spawn(async move {
            let mut next = HashMap::new();
            // Held instances first: an expiry that passed while the server was down
            // moves before anything else looks at it.
            core.keep_lifetimes(&mut next).await;
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
            loop {
                tokio::time::sleep(LIFETIME_TICK).await;
                core.keep_lifetimes(&mut next).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{core_at, wait_job};
    use camut::v1::deployer_server::Deployer;
    use camut_deployer::dummy::DummyDeployer;
    use tokio::sync::Notify;

    /// The dummy deployer, with its listing and its creation held until the test lets
    /// them go (a creation makes its instances first, then waits).
    #[derive(Default)]
    struct Held {
        inner: DummyDeployer,
        listing: Notify,
        list_go: Notify,
        created: Notify,
        create_go: Notify,
    }

    #[tonic::async_trait]
    impl Deployer for Held {
        async fn create_instances(
            &self,
            r: Request<v1::CreateInstancesRequest>,
        ) -> Result<Response<v1::CreateInstancesResponse>, Status> {
            let made = self.inner.create_instances(r).await;
            self.created.notify_one();
            self.create_go.notified().await;
            made
        }
        async fn configure_instances(
            &self,
            r: Request<v1::ConfigureInstancesRequest>,
        ) -> Result<Response<v1::ConfigureInstancesResponse>, Status> {
            self.inner.configure_instances(r).await
        }
        async fn destroy_instances(
            &self,
            r: Request<v1::DestroyInstancesRequest>,
        ) -> Result<Response<v1::DestroyInstancesResponse>, Status> {
            self.inner.destroy_instances(r).await
        }
        async fn list_instances(
            &self,
            r: Request<v1::ListInstancesRequest>,
        ) -> Result<Response<v1::ListInstancesResponse>, Status> {
            self.listing.notify_one();
            self.list_go.notified().await;
            self.inner.list_instances(r).await
        }
        async fn extend_instances(
            &self,
            r: Request<v1::ExtendInstancesRequest>,
        ) -> Result<Response<v1::ExtendInstancesResponse>, Status> {
            self.inner.extend_instances(r).await
        }
    }

    /// A spawn that begins while the deployer is still answering a listing, and whose
    /// instances that listing then shows, does not make zombies of them.
    #[tokio::test]
    async fn instances_of_a_spawn_begun_during_the_listing_are_not_zombies() {
        let dir = tempfile::tempdir().unwrap();
        let held = Arc::new(Held::default());
        let core = core_at(dir.path(), held.clone());
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        let listing = tokio::spawn({
            let core = core.clone();
            async move { core.managed_instances().await }
        });
        held.listing.notified().await;
        let spawn = core.submit("c", Command::Spawn).await.unwrap();
        held.created.notified().await;
        held.list_go.notify_one();
        let (found, errors) = listing.await.unwrap().unwrap();
        held.create_go.notify_one();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].zombie, "", "{found:?}");
        assert_eq!(wait_job(&core, spawn.id).await.state, JobState::Complete);
    }
}
