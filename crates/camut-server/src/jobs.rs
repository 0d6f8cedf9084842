//! The job queue: every control command becomes a job (queued → active → complete,
//! failed or cancelled), saved and announced at each change. Spawn, deploy and start of a
//! campaign run one after the other; stop and kill act at once; kill cancels the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camut_stats::OperationCap;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::core::{lock, Core, Live};
use crate::error::ServerError;
use crate::results::decode;
use crate::state::{CampaignState, Command, DroneState, JobState};
use crate::store::{now_ms, JobRow};

/// The jobs running in this process: how to cancel each, and the feed of job changes.
pub(crate) struct JobRegistry {
    cancels: Mutex<HashMap<u64, CancellationToken>>,
    /// Every saved change of any job.
    pub feed: broadcast::Sender<JobRow>,
}

impl Default for JobRegistry {
    fn default() -> Self {
        JobRegistry {
            cancels: Mutex::new(HashMap::new()),
            feed: broadcast::channel(1024).0,
        }
    }
}

impl JobRegistry {
    fn register(&self, id: u64) -> CancellationToken {
        let token = CancellationToken::new();
        lock(&self.cancels).insert(id, token.clone());
        token
    }

    fn cancel(&self, id: u64) -> bool {
        match lock(&self.cancels).get(&id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    fn running(&self, id: u64) -> bool {
        lock(&self.cancels).contains_key(&id)
    }

    fn done(&self, id: u64) {
        lock(&self.cancels).remove(&id);
    }
}

/// How a job ended other than by success.
#[derive(Debug, PartialEq)]
pub(crate) enum JobEnd {
    Failed(String),
    Cancelled,
}

impl From<ServerError> for JobEnd {
    fn from(e: ServerError) -> Self {
        JobEnd::Failed(e.to_string())
    }
}

/// A running job: its row, saved and announced at every change.
pub(crate) struct JobCtx {
    pub core: Arc<Core>,
    job: Mutex<JobRow>,
    pub cancel: CancellationToken,
}

impl JobCtx {
    pub fn id(&self) -> u64 {
        lock(&self.job).id
    }

    pub fn campaign(&self) -> String {
        lock(&self.job).campaign.clone()
    }

    /// Changes the job; saves and announces it when something shown changed.
    pub async fn update(&self, f: impl FnOnce(&mut JobRow)) {
        let snapshot = {
            let mut j = lock(&self.job);
            let before = (j.state, j.progress_done, j.progress_total, j.log.len());
            f(&mut j);
            if before == (j.state, j.progress_done, j.progress_total, j.log.len()) {
                return;
            }
            j.updated_ms = now_ms();
            j.clone()
        };
        if let Err(e) = self.core.store.save_job(&snapshot).await {
            tracing::error!(job = snapshot.id, "cannot save job: {e}");
        }
        let _ = self.core.jobs.feed.send(snapshot);
    }

    /// Adds a line to the job's log (and the server's).
    pub async fn log(&self, line: String) {
        let (campaign, kind) = {
            let j = lock(&self.job);
            (j.campaign.clone(), j.kind)
        };
        self.core
            .logs
            .push("info", "server", &campaign, format!("{kind}: {line}"));
        self.update(|j| j.log.push(line)).await;
    }

    /// Ends the job with `result`.
    pub async fn end(&self, result: Result<(), JobEnd>) {
        let id = self.id();
        match result {
            Ok(()) => self.update(|j| j.state = JobState::Complete).await,
            Err(JobEnd::Cancelled) => self.update(|j| j.state = JobState::Cancelled).await,
            Err(JobEnd::Failed(e)) => {
                let campaign = self.campaign();
                self.core.logs.push(
                    "error",
                    "server",
                    &campaign,
                    format!("job {id} failed: {e}"),
                );
                let _ = self.core.store.set_campaign_error(&campaign, &e).await;
                self.update(|j| {
                    j.state = JobState::Failed;
                    j.error = e;
                })
                .await;
            }
        }
        self.core.jobs.done(id);
        self.core.changed.notify_waiters();
    }
}

impl Core {
    /// Accepts a control command as a job and starts it; never waits for it.
    pub async fn submit(self: &Arc<Self>, id: &str, cmd: Command) -> Result<JobRow, ServerError> {
        let row = self.campaign_row(id)?;
        // Checked against where the campaign is headed, so that `spawn; deploy; start`
        // can be queued at once.
        self.with_live(id, |l| {
            let current = l.projected.unwrap_or(row.state);
            cmd.check(id, current)?;
            l.projected = Some(cmd.projected());
            Ok::<_, ServerError>(())
        })?;
        let job = match self.store.insert_job(id, cmd).await {
            Ok(job) => job,
            Err(e) => {
                self.with_live(id, |l| l.projected = None);
                return Err(e);
            }
        };
        let token = self.jobs.register(job.id);
        let _ = self.jobs.feed.send(job.clone());
        if cmd == Command::Kill {
            self.cancel_campaign_jobs(id, job.id);
        }
        let core = self.clone();
        let ctx = JobCtx {
            core: core.clone(),
            job: Mutex::new(job.clone()),
            cancel: token,
        };
        tokio::spawn(async move {
            let queue = matches!(cmd, Command::Spawn | Command::Deploy | Command::Start)
                .then(|| core.with_live(&ctx.campaign(), |l| l.queue.clone()));
            // A queued job can be cancelled while it waits for its turn.
            let _turn = match &queue {
                Some(q) => tokio::select! {
                    g = q.lock() => Some(g),
                    _ = ctx.cancel.cancelled() => None,
                },
                None => None,
            };
            if ctx.cancel.is_cancelled() {
                ctx.end(Err(JobEnd::Cancelled)).await;
                return;
            }
            ctx.update(|j| j.state = JobState::Active).await;
            let result = core.run_command(cmd, &ctx).await;
            if result.is_err() && cmd != Command::Kill {
                // The projection was wrong: fall back to the stored state.
                core.with_live(&ctx.campaign(), |l| l.projected = None);
            }
            ctx.end(result).await;
        });
        Ok(job)
    }

    fn cancel_campaign_jobs(&self, campaign: &str, except: u64) {
        if let Ok(jobs) = self.store.jobs(campaign, None, 10_000) {
            for j in jobs
                .into_iter()
                .filter(|j| j.id != except && j.state.is_open())
            {
                self.jobs.cancel(j.id);
            }
        }
    }

    /// Cancels a queued or active job.
    pub async fn cancel_job(&self, id: u64) -> Result<JobRow, ServerError> {
        let job = self.store.job(id)?.ok_or(ServerError::JobNotFound(id))?;
        if !self.jobs.cancel(id) && job.state.is_open() {
            // A job of a previous process: nothing runs it any more.
            let mut j = job;
            j.state = JobState::Cancelled;
            j.updated_ms = now_ms();
            self.store.save_job(&j).await?;
        }
        self.store.job(id)?.ok_or(ServerError::JobNotFound(id))
    }

    /// Deletes a job that is not running.
    pub async fn delete_job(&self, id: u64) -> Result<(), ServerError> {
        let job = self.store.job(id)?.ok_or(ServerError::JobNotFound(id))?;
        if job.state == JobState::Active && self.jobs.running(id) {
            return Err(ServerError::JobActive(id));
        }
        self.store.delete_job(id).await
    }

    /// Picks up after a restart: running campaigns are followed again (their drones
    /// reconnect), other unfinished jobs are marked failed.
    pub async fn resume(self: &Arc<Self>) -> Result<(), ServerError> {
        for job in self.store.jobs("", None, 10_000)? {
            if !job.state.is_open() {
                continue;
            }
            let campaign = self.store.campaign(&job.campaign)?;
            let running = campaign
                .as_ref()
                .is_some_and(|c| c.state == CampaignState::Running);
            if job.kind == Command::Start && running {
                self.rebuild_run(&job)?;
                self.logs.push(
                    "info",
                    "server",
                    &job.campaign,
                    format!("resuming job {} after a restart", job.id),
                );
                let core = self.clone();
                let ctx = JobCtx {
                    core: core.clone(),
                    cancel: self.jobs.register(job.id),
                    job: Mutex::new(job),
                };
                tokio::spawn(async move {
                    let r = core.follow_run(&ctx).await;
                    ctx.end(r).await;
                });
            } else {
                let mut j = job;
                j.state = JobState::Failed;
                j.error =
                    "the server restarted while this job was pending; run the command again".into();
                j.updated_ms = now_ms();
                self.store.save_job(&j).await?;
            }
        }
        Ok(())
    }

    /// Rebuilds a running campaign's live state from the store: its merged deltas, what
    /// each drone had stored, which drones had finished or were lost.
    fn rebuild_run(&self, job: &JobRow) -> Result<(), ServerError> {
        // The run started when its start job was asked for.
        let since = Duration::from_millis((now_ms() - job.created_ms).max(0) as u64);
        let mut live = Live::default();
        live.started = Instant::now().checked_sub(since);
        if let Ok(info) = self
            .campaign_row(&job.campaign)
            .and_then(|row| self.info(&row))
        {
            live.operations = OperationCap::new(info.max_operations);
        }
        // Deltas the stored series covers join the totals; the later ones (stored, but
        // not yet in a stored point when the server stopped) wait in the interval for
        // the next point, so the series stays exact.
        let covered: HashMap<String, u64> = self
            .store
            .series_cursor(&job.campaign)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        let (older, newer): (Vec<_>, Vec<_>) = self
            .store
            .stats(&job.campaign)?
            .into_iter()
            .partition(|(drone, seq, _)| covered.get(drone).is_some_and(|c| seq <= c));
        for (i, batch) in [older, newer].into_iter().enumerate() {
            for (drone, _, bytes) in batch {
                if let Some(d) = decode(&bytes) {
                    if let Ok(checked) = camut::stats::check_wire(&d) {
                        let _ = live.merge(&drone, &checked);
                    }
                }
            }
            if i == 0 {
                live.take_interval();
            }
        }
        // The charts go on from the stored series (the last hour of it).
        live.history = self.stored_history(&job.campaign).into();
        let mut indexes = HashMap::new();
        for d in self.store.drones(&job.campaign)? {
            indexes.insert(d.id.clone(), d.index);
            let seq = self.store.max_seq(&job.campaign, &d.id)?;
            live.acked.insert(d.id.clone(), seq);
            match d.state {
                DroneState::Finished => {
                    live.finished.insert(d.id.clone());
                }
                DroneState::Lost => {
                    live.lost.insert(d.id.clone(), d.error.clone());
                }
                // A drone that does not come back in time is lost.
                _ => {
                    live.disconnected.insert(d.id.clone(), Instant::now());
                }
            }
        }
        live.indexes = Some(indexes);
        self.with_live(&job.campaign, |l| {
            live.events = l.events.take();
            *l = live;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{core_with, wait_job};

    #[tokio::test]
    async fn a_queued_job_can_be_cancelled_and_a_pending_command_is_refused() {
        let (core, _dir) = core_with(1);
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        let spawn = core.submit("c", Command::Spawn).await.unwrap();
        // Deploy is accepted at once: the campaign is headed for spawned.
        let deploy = core.submit("c", Command::Deploy).await.unwrap();
        // A second spawn is refused against the projected state.
        let e = core.submit("c", Command::Spawn).await.unwrap_err();
        assert!(e.to_string().contains("is deployed"), "{e}");
        assert_eq!(
            wait_job(&core, spawn.id).await.state,
            JobState::Complete,
            "spawn on the dummy deployer completes"
        );
        let cancelled = core.cancel_job(deploy.id).await.unwrap();
        assert_eq!(
            wait_job(&core, cancelled.id).await.state,
            JobState::Cancelled
        );
        core.delete_job(deploy.id).await.unwrap();
        assert!(core.store.job(deploy.id).unwrap().is_none());
        let e = core.delete_job(deploy.id).await.unwrap_err();
        assert!(matches!(e, ServerError::JobNotFound(_)), "{e}");
    }

    #[tokio::test]
    async fn resume_fails_pending_jobs_of_a_previous_process() {
        let (core, dir) = core_with(1);
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        let job = core.store.insert_job("c", Command::Spawn).await.unwrap();
        drop(core);
        let core = crate::testing::reopen(dir.path(), 1);
        core.resume().await.unwrap();
        let j = core.store.job(job.id).unwrap().unwrap();
        assert_eq!(j.state, JobState::Failed);
        assert!(j.error.contains("restarted"), "{}", j.error);
    }
}
