//! The control flows a job carries out against a deployer and the drones: spawn,
//! deploy, start (and following the run to its end), stop and kill.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camut::v1::{self, deployer_server::Deployer, server_command::Cmd, ServerCommand};
use tonic::{Request, Status};

use crate::campaign::CampaignInfo;
use crate::core::{Core, DroneTx};
use crate::error::ServerError;
use crate::jobs::{JobCtx, JobEnd};
use crate::state::{CampaignState, Command, DroneState};
use crate::store::{now_ms, DroneRow};

/// How long a deploy waits for its drones to be ready.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
/// Drones start this long after the Start command, so that all start together.
const START_DELAY: Duration = Duration::from_millis(300);
/// How many times a spawn asks a deployer that is unavailable.
const CREATE_TRIES: u32 = 3;
/// Tag (in CreateInstancesRequest.tags) naming the server that asked for an instance.
pub(crate) const TAG_SERVER: &str = "camut:server";
/// Grace period given to drones on Stop.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often a waiting flow looks again when nothing woke it.
const POLL: Duration = Duration::from_millis(500);

fn deployer_error(name: &str, s: Status) -> JobEnd {
    JobEnd::Failed(format!("deployer '{name}': {}", s.message()))
}

impl Core {
    /// Carries out `cmd` for the job in `ctx`.
    pub(crate) async fn run_command(&self, cmd: Command, ctx: &JobCtx) -> Result<(), JobEnd> {
        match cmd {
            Command::Spawn => self.run_spawn(ctx).await,
            Command::Deploy => self.run_deploy(ctx).await,
            Command::Start => self.run_start(ctx).await,
            Command::Stop => self.run_stop(ctx).await,
            Command::Kill => self.run_kill(ctx).await,
        }
    }

    /// The deployer a campaign uses.
    pub(crate) fn deployer(
        &self,
        info: &CampaignInfo,
    ) -> Result<(String, Arc<dyn Deployer>), ServerError> {
        let name = info
            .deployer
            .clone()
            .unwrap_or_else(|| self.default_deployer.clone());
        let d = self
            .deployers
            .get(&name)
            .cloned()
            .ok_or_else(|| ServerError::InvalidArgument {
                field: "deploy.deployer".into(),
                message: format!(
                    "no deployer named '{name}' in this server's config (known: {})",
                    self.deployers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Ok((name, d))
    }

    async fn run_spawn(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let row = self.campaign_row(&ctx.campaign())?;
        let info = self.info(&row)?;
        let (name, deployer) = self.deployer(&info)?;
        ctx.update(|j| j.progress_total = info.drones).await;
        ctx.log(format!(
            "asking deployer '{name}' for {}–{} instances",
            info.min_drones, info.drones
        ))
        .await;
        let req = v1::CreateInstancesRequest {
            campaign: info.id.clone(),
            min: info.min_drones,
            max: info.drones,
            zone: info.zone.clone().unwrap_or_default(),
            instance_type: info.instance_type.clone().unwrap_or_default(),
            image: info.image.clone().unwrap_or_default(),
            tags: [(TAG_SERVER.to_string(), self.server_id.clone())].into(),
            // One key per spawn attempt: a create repeated within it (below, after a
            // transport failure) never starts a second set of instances.
            client_token: format!("camut-{}-{}", info.id, ctx.id()),
        };
        let mut tries = 0;
        let made = loop {
            tries += 1;
            let r = tokio::select! {
                r = deployer.create_instances(Request::new(req.clone())) => r,
                _ = ctx.cancel.cancelled() => return Err(JobEnd::Cancelled),
            };
            match r {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == tonic::Code::Unavailable && tries < CREATE_TRIES => {
                    ctx.log(format!(
                        "deployer '{name}' unavailable ({}): trying again",
                        s.message()
                    ))
                    .await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(s) => return Err(deployer_error(&name, s)),
            }
        };
        let n = made.instances.len() as u32;
        if n < info.min_drones {
            let _ = deployer
                .destroy_instances(Request::new(v1::DestroyInstancesRequest {
                    campaign: info.id.clone(),
                }))
                .await;
            return Err(JobEnd::Failed(format!(
                "deployer '{name}' made {n} instances, fewer than minDrones {}",
                info.min_drones
            )));
        }
        if n < info.drones {
            ctx.log(format!(
                "deployer '{name}' made {n} of {} instances (minDrones {}): going on with {n}",
                info.drones, info.min_drones
            ))
            .await;
        }
        let list: Vec<_> = made
            .instances
            .iter()
            .map(|i| (i.id.clone(), i.address.clone(), i.state.clone()))
            .collect();
        self.store.set_instances(&info.id, &name, &list).await?;
        self.with_live(&info.id, |l| l.seats = None);
        ctx.update(|j| j.progress_done = n).await;
        ctx.log(format!(
            "{n} instances: {}",
            list.iter()
                .map(|i| i.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await;
        self.set_state(&info.id, CampaignState::Spawned, "").await;
        Ok(())
    }

    async fn run_deploy(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let row = self.campaign_row(&campaign)?;
        let info = self.info(&row)?;
        let (name, deployer) = self.deployer(&info)?;
        let instances = self.store.instances(&campaign)?;
        // A new deployment begins a new run; finished runs' results stay as they are.
        let run = self.store.begin_run(&campaign).await?;
        self.with_live(&campaign, |l| l.new_run(info.max_operations));
        let wanted = instances.len() as u32;
        ctx.update(|j| j.progress_total = wanted).await;
        ctx.log(format!(
            "run {run}: configuring {wanted} drones through deployer '{name}', dialing {}",
            self.public_url
        ))
        .await;
        let req = v1::ConfigureInstancesRequest {
            campaign: campaign.clone(),
            instance_ids: instances.iter().map(|i| i.0.clone()).collect(),
            server_address: self.public_url.clone(),
            join_token: row.join_token.clone(),
            ..Default::default()
        };
        // Drones that dial in from now on belong to this deployment; those still
        // connected from an earlier one do not count.
        let since = self.next_generation.load(Ordering::Relaxed);
        let mut call = tokio::spawn({
            let deployer = deployer.clone();
            async move { deployer.configure_instances(Request::new(req)).await }
        });
        // The deployment is done once every instance's drone has dialled in and is ready,
        // whatever the deployer still waits for (an ssh session, a start command's
        // early-exit watch); its answer is then only logged.
        let out = loop {
            let notified = self.changed.notified();
            if self.fresh_ready(&campaign, since) >= wanted {
                let (campaign, name, logs) = (campaign.clone(), name.clone(), self.logs.clone());
                tokio::spawn(async move {
                    let failed = match call.await {
                        Ok(Ok(r)) => r.into_inner().failed,
                        Ok(Err(s)) => [("*".to_string(), s.message().to_string())].into(),
                        Err(e) => [("*".to_string(), e.to_string())].into(),
                    };
                    for (id, why) in failed {
                        logs.push(
                            "warn",
                            "server",
                            &campaign,
                            format!("deployer '{name}' reported instance {id} after its drone was ready: {why}"),
                        );
                    }
                });
                break None;
            }
            tokio::select! {
                r = &mut call => {
                    let r = r.map_err(|e| JobEnd::Failed(format!("deployer '{name}' call failed: {e}")))?;
                    break Some(r.map_err(|s| deployer_error(&name, s))?.into_inner());
                }
                _ = notified => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = ctx.cancel.cancelled() => {
                    call.abort();
                    return Err(JobEnd::Cancelled);
                }
            }
        };
        let configured = match &out {
            Some(out) => {
                for (id, why) in &out.failed {
                    ctx.log(format!("instance {id} could not be configured: {why}"))
                        .await;
                }
                out.configured.len() as u32
            }
            None => wanted,
        };
        if configured < info.min_drones {
            return Err(JobEnd::Failed(format!(
                "only {configured} drones configured, fewer than minDrones {}",
                info.min_drones
            )));
        }
        let deadline = Instant::now() + DEPLOY_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            let (ready, first_error) = self.drone_counts(&campaign);
            ctx.update(|j| j.progress_done = ready).await;
            if let Some(e) = first_error {
                return Err(JobEnd::Failed(format!(
                    "a drone could not compile the campaign: {e}"
                )));
            }
            if ready >= configured {
                break;
            }
            if Instant::now() >= deadline {
                if ready >= info.min_drones {
                    ctx.log(format!("{ready} of {configured} drones ready after {DEPLOY_TIMEOUT:?}: going on with {ready}")).await;
                    break;
                }
                return Err(JobEnd::Failed(format!(
                    "only {ready} of {configured} drones were ready after {DEPLOY_TIMEOUT:?}"
                )));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = ctx.cancel.cancelled() => return Err(JobEnd::Cancelled),
            }
        }
        ctx.log("every drone is ready".to_string()).await;
        self.set_state(&campaign, CampaignState::Deployed, "").await;
        Ok(())
    }

    /// Ready drones of a campaign that dialled in as generation `since` or later.
    fn fresh_ready(&self, campaign: &str, since: u64) -> u32 {
        self.with_live(campaign, |l| {
            l.sessions
                .values()
                .filter(|s| s.state == DroneState::Ready && s.generation >= since)
                .count() as u32
        })
    }

    /// (ready drones, the first compile error) of a campaign.
    fn drone_counts(&self, campaign: &str) -> (u32, Option<String>) {
        self.with_live(campaign, |l| {
            let mut ready = 0;
            let mut error = None;
            for s in l.sessions.values() {
                match s.state {
                    DroneState::Ready => ready += 1,
                    DroneState::Error if error.is_none() => error = Some(s.error.clone()),
                    _ => {}
                }
            }
            (ready, error)
        })
    }

    async fn run_start(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let at_ms = now_ms() + START_DELAY.as_millis() as i64;
        let targets: Vec<(String, u32, DroneTx)> = self.with_live(&campaign, |l| {
            l.started = Some(Instant::now());
            l.sessions
                .iter_mut()
                .filter(|(_, s)| s.state == DroneState::Ready)
                .map(|(id, s)| {
                    s.state = DroneState::Running;
                    (id.clone(), s.index, s.tx.clone())
                })
                .collect()
        });
        if targets.is_empty() {
            return Err(JobEnd::Failed("no drone is ready: deploy again".into()));
        }
        for (_, _, tx) in &targets {
            let _ = tx
                .send(Ok(ServerCommand {
                    cmd: Some(Cmd::Start(v1::Start { at_ms })),
                }))
                .await;
        }
        // Stored after the commands went out, so that disk syncs never delay a start.
        let rows = targets
            .iter()
            .map(|(id, index, _)| DroneRow {
                id: id.clone(),
                campaign: campaign.clone(),
                index: *index,
                state: DroneState::Running,
                error: String::new(),
            })
            .collect();
        if let Err(e) = self.store.upsert_drones(rows).await {
            self.logs.push(
                "error",
                "server",
                &campaign,
                format!("cannot save the drones' state: {e}"),
            );
        }
        ctx.log(format!(
            "{} drones start together at {at_ms} (Unix ms)",
            targets.len()
        ))
        .await;
        self.set_state(&campaign, CampaignState::Running, "").await;
        self.follow_run(ctx).await
    }

    /// Waits until every drone of the running campaign has finished or is lost, then
    /// writes the results.
    pub(crate) async fn follow_run(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let total = self.store.drones(&campaign)?.len() as u32;
        ctx.update(|j| j.progress_total = total).await;
        let mut cancelled = false;
        let mut store_failing = false;
        loop {
            let notified = self.changed.notified();
            let (done, lost) = self.with_live(&campaign, |l| {
                (l.finished.len() as u32, l.lost.len() as u32)
            });
            ctx.update(|j| j.progress_done = done + lost).await;
            store_failing = self.report_store(ctx, store_failing).await;
            if done + lost >= total {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = ctx.cancel.cancelled(), if !cancelled => {
                    // Killed mid-run: the results so far are kept.
                    cancelled = true;
                    break;
                }
            }
        }
        let summary = self.finalize(&campaign).await?;
        if store_failing {
            ctx.log(format!(
                "the store can be written again: the results are stored ({} writes had \
                 failed)",
                self.store.health().failed_writes()
            ))
            .await;
        }
        let stopped = self.with_live(&campaign, |l| l.stopped.clone());
        if cancelled {
            return Err(JobEnd::Cancelled);
        }
        match stopped {
            Some(why) => {
                ctx.log(format!("stopped: {why}")).await;
                self.set_state(&campaign, CampaignState::Stopped, &why)
                    .await;
            }
            None => self.set_state(&campaign, CampaignState::Finished, "").await,
        }
        self.with_live(&campaign, |l| l.projected = None);
        ctx.log(format!(
            "{} requests, {} errors, {} iterations; thresholds {}",
            summary.requests,
            summary.errors,
            summary.iterations.completed + summary.iterations.failed,
            if summary.thresholds_ok {
                "held"
            } else {
                "broken"
            }
        ))
        .await;
        Ok(())
    }

    /// Says in the job's log when the store starts and stops failing (`was_failing`:
    /// what was said last); returns whether it fails now.
    async fn report_store(&self, ctx: &JobCtx, was_failing: bool) -> bool {
        let health = self.store.health();
        match (health.failing(), was_failing) {
            (Some(e), false) => {
                ctx.log(format!(
                    "the store cannot be written ({e}): statistics are not acknowledged \
                     meanwhile; the drones keep them and send them again"
                ))
                .await;
                true
            }
            (None, true) => {
                ctx.log(format!(
                    "the store can be written again: no write failed for {} s ({} writes \
                     had failed)",
                    crate::store::RECOVERY_WINDOW.as_secs(),
                    health.failed_writes()
                ))
                .await;
                false
            }
            (now, _) => now.is_some(),
        }
    }

    async fn run_stop(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        self.stop_drones(&campaign, "stopped by the operator");
        ctx.log("stop sent to every drone".to_string()).await;
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            let st = self.campaign_row(&campaign)?.state;
            if st != CampaignState::Running {
                ctx.log(format!("campaign is {st}")).await;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(JobEnd::Failed(
                    "drones did not finish after the stop grace period".into(),
                ));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = ctx.cancel.cancelled() => return Err(JobEnd::Cancelled),
            }
        }
    }

    /// Sends Stop to every drone of a campaign (operator, abortOnFail, drone loss).
    pub(crate) fn stop_drones(&self, campaign: &str, why: &str) {
        self.with_live(campaign, |l| {
            if l.stopped.is_none() {
                l.stopped = Some(why.to_string());
            }
        });
        self.logs.push(
            "warn",
            "server",
            campaign,
            format!("stopping campaign {campaign}: {why}"),
        );
        self.send_all(
            campaign,
            Cmd::Stop(v1::Stop {
                grace_ms: STOP_GRACE.as_millis() as u32,
            }),
        );
    }

    /// Sends a command to every connected drone of a campaign, without waiting.
    fn send_all(&self, campaign: &str, cmd: Cmd) {
        self.with_live(campaign, |l| {
            for s in l.sessions.values() {
                let _ = s.tx.try_send(Ok(ServerCommand {
                    cmd: Some(cmd.clone()),
                }));
            }
        });
    }

    async fn run_kill(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let row = self.campaign_row(&campaign)?;
        let info = self.info(&row)?;
        self.send_all(&campaign, Cmd::Shutdown(v1::Shutdown {}));
        let (name, deployer) = self.deployer(&info)?;
        let out = deployer
            .destroy_instances(Request::new(v1::DestroyInstancesRequest {
                campaign: campaign.clone(),
            }))
            .await
            .map_err(|s| deployer_error(&name, s))?
            .into_inner();
        ctx.log(format!(
            "deployer '{name}' freed {} instances",
            out.destroyed.len()
        ))
        .await;
        self.store.set_instances(&campaign, &name, &[]).await?;
        self.with_live(&campaign, |l| {
            l.sessions.clear();
            l.disconnected.clear();
            l.projected = None;
            l.seats = None;
        });
        self.set_state(&campaign, CampaignState::Killed, "").await;
        // Whatever the deployer still lists for the campaign is now a zombie: reap it.
        let leftover = deployer
            .list_instances(Request::new(v1::ListInstancesRequest {
                campaign: campaign.clone(),
            }))
            .await
            .map(|r| r.into_inner().instances)
            .unwrap_or_default();
        let leftover: Vec<_> = leftover
            .into_iter()
            .filter(|i| i.state != "terminated" && i.state != "shutting-down")
            .collect();
        if !leftover.is_empty() {
            ctx.log(format!(
                "{} instances still listed after the kill: reaping them",
                leftover.len()
            ))
            .await;
            let out = deployer
                .destroy_instances(Request::new(v1::DestroyInstancesRequest {
                    campaign: campaign.clone(),
                }))
                .await
                .map_err(|s| deployer_error(&name, s))?;
            ctx.log(format!(
                "reaped {} instances",
                out.into_inner().destroyed.len()
            ))
            .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::state::{CampaignState, Command, JobState};
    use crate::testing::{core_with, wait_job};

    #[tokio::test]
    async fn spawn_below_min_fails_and_kill_frees_what_was_made() {
        let (core, _dir) = core_with(2);
        core.create("c.js", "c 3", &Default::default())
            .await
            .unwrap();
        let spawn = core.submit("c", Command::Spawn).await.unwrap();
        let job = wait_job(&core, spawn.id).await;
        assert_eq!(job.state, JobState::Failed);
        assert!(
            job.error.contains("needs at least 3 instances"),
            "{}",
            job.error
        );
        assert_eq!(
            core.campaign_row("c").unwrap().state,
            CampaignState::Created
        );

        core.create("d.js", "d 2", &Default::default())
            .await
            .unwrap();
        let spawn = core.submit("d", Command::Spawn).await.unwrap();
        assert_eq!(wait_job(&core, spawn.id).await.state, JobState::Complete);
        assert_eq!(core.store.instances("d").unwrap().len(), 2);
        assert_eq!(
            core.campaign_row("d").unwrap().state,
            CampaignState::Spawned
        );
        let kill = core.submit("d", Command::Kill).await.unwrap();
        let job = wait_job(&core, kill.id).await;
        assert_eq!(job.state, JobState::Complete, "{job:?}");
        assert!(
            job.log.iter().any(|l| l.contains("freed 2 instances")),
            "{job:?}"
        );
        assert!(core.store.instances("d").unwrap().is_empty());
        assert_eq!(core.campaign_row("d").unwrap().state, CampaignState::Killed);
    }

    #[tokio::test]
    async fn start_without_ready_drones_fails_and_falls_back_to_the_stored_state() {
        let (core, _dir) = core_with(1);
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        // Pretend a deploy happened: the stored state says deployed, no drone is ready.
        core.store
            .set_campaign_state("c", CampaignState::Deployed, "")
            .await
            .unwrap();
        let start = core.submit("c", Command::Start).await.unwrap();
        let job = wait_job(&core, start.id).await;
        assert_eq!(job.state, JobState::Failed);
        assert!(job.error.contains("no drone is ready"), "{}", job.error);
        // The projection (running) was dropped: start is allowed again.
        assert!(core.submit("c", Command::Start).await.is_ok());
    }
}
