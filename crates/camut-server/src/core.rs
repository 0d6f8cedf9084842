//! The server's core: campaigns, the job queue, the drone hub and the merged statistics.
//! The gRPC services in [`crate::api`] are thin layers over it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camut::v1::deployer_server::Deployer;
use camut::v1::{self, server_command::Cmd, ServerCommand};
use camut_stats::{StatsSet, Summary};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status};

use crate::campaign::{check_update, state, CampaignInfo, Command, Inspector};
use crate::error::ServerError;
use crate::logs::LogBuffer;
use crate::store::{now_ms, CampaignRow, DroneRow, JobRow, Store};

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

/// A connected drone.
pub(crate) struct Session {
    pub generation: u64,
    pub campaign: String,
    pub index: u32,
    pub tx: mpsc::Sender<Result<ServerCommand, Status>>,
    pub state: String,
    pub last_seen: Instant,
    pub iterations_done: u64,
    pub errors: u64,
    pub last_seen_ms: i64,
    pub error: String,
}

/// What the server follows of a campaign while it runs.
#[derive(Default)]
pub(crate) struct Live {
    pub totals: StatsSet,
    pub interval: StatsSet,
    pub acked: HashMap<String, u64>,
    pub finished: HashSet<String>,
    pub lost: BTreeMap<String, String>,
    pub started: Option<Instant>,
    pub stopped: Option<String>,
    pub events: Option<broadcast::Sender<v1::CampaignEvent>>,
    /// The live figures of this run, one point a second, the newest last.
    pub history: VecDeque<LivePoint>,
}

/// Live points kept per campaign (an hour at one a second).
pub(crate) const HISTORY_POINTS: usize = 3600;

/// One point of a run's live series, as the console's charts draw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePoint {
    /// When, Unix ms.
    pub time_ms: i64,
    /// The figures published at that time.
    pub stats: v1::LiveStats,
    /// Iterations in flight over all drones: the VUs busy at that time.
    pub active_vus: u64,
}

/// The server's state and behaviour, shared by every service.
pub struct Core {
    pub(crate) store: Store,
    pub(crate) deployers: BTreeMap<String, Arc<dyn Deployer>>,
    default_deployer: String,
    pub(crate) server_id: String,
    pub(crate) default_tsdb: Option<String>,
    public_url: String,
    inspector: Arc<dyn Inspector>,
    pub(crate) drone_timeout: Duration,
    pub(crate) sessions: Mutex<HashMap<String, Session>>,
    /// Drones of running campaigns whose stream ended: when.
    pub(crate) disconnected: Mutex<HashMap<String, (String, Instant)>>,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    projected: Mutex<HashMap<String, String>>,
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    cancels: Mutex<HashMap<u64, CancellationToken>>,
    pub(crate) jobs_feed: broadcast::Sender<JobRow>,
    pub(crate) changed: Notify,
    pub(crate) logs: LogBuffer,
    pub(crate) next_generation: std::sync::atomic::AtomicU64,
}

/// How a Core is put together.
pub struct CoreParts {
    /// The store.
    pub store: Store,
    /// Deployers by name.
    pub deployers: BTreeMap<String, Arc<dyn Deployer>>,
    /// Used when a campaign names none.
    pub default_deployer: String,
    /// The URL drones dial.
    pub public_url: String,
    /// Reads campaign files.
    pub inspector: Arc<dyn Inspector>,
    /// A silent drone is lost after this long.
    pub drone_timeout: Duration,
    /// This server's id, put on the instances it asks for (tag `camut:server`).
    pub server_id: String,
    /// The `tsdb` section (JSON) of campaigns whose file has none.
    pub default_tsdb: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn join_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    bytes[..8]
        .iter_mut()
        .zip(nanos.to_le_bytes())
        .for_each(|(b, n)| *b ^= n);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Core {
    /// A core over `parts`; resumes what a previous process left.
    pub fn new(parts: CoreParts) -> Arc<Core> {
        Arc::new(Core {
            store: parts.store,
            deployers: parts.deployers,
            default_deployer: parts.default_deployer,
            server_id: parts.server_id,
            default_tsdb: parts.default_tsdb,
            public_url: parts.public_url,
            inspector: parts.inspector,
            drone_timeout: parts.drone_timeout,
            sessions: Mutex::new(HashMap::new()),
            disconnected: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            projected: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            cancels: Mutex::new(HashMap::new()),
            jobs_feed: broadcast::channel(1024).0,
            changed: Notify::new(),
            logs: LogBuffer::default(),
            next_generation: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// Picks up after a restart: running campaigns are followed again (their drones
    /// reconnect), other unfinished jobs are marked failed.
    pub fn resume(self: &Arc<Self>) -> Result<(), ServerError> {
        for job in self.store.jobs("", "", 10_000)? {
            if job.state != "queued" && job.state != "active" {
                continue;
            }
            let campaign = self.store.campaign(&job.campaign)?;
            let running = campaign.as_ref().is_some_and(|c| c.state == state::RUNNING);
            if job.kind == "start" && running {
                // Rebuild the live totals from the stored deltas, then wait for the drones.
                // The run started when its start job was asked for.
                let since = Duration::from_millis((now_ms() - job.created_ms).max(0) as u64);
                let mut live = Live {
                    started: Instant::now().checked_sub(since),
                    ..Live::default()
                };
                for (_, bytes) in self.store.stats(&job.campaign)? {
                    if let Some(set) = decode(&bytes) {
                        live.totals.merge(&set);
                    }
                }
                for d in self.store.drones(&job.campaign)? {
                    let seq = self.store.max_seq(&job.campaign, &d.id)?;
                    live.acked.insert(d.id.clone(), seq);
                    match d.state.as_str() {
                        "finished" => {
                            live.finished.insert(d.id.clone());
                        }
                        "lost" => {
                            live.lost.insert(d.id.clone(), d.error.clone());
                        }
                        // A drone that does not come back in time is lost.
                        _ => {
                            lock(&self.disconnected)
                                .insert(d.id.clone(), (job.campaign.clone(), Instant::now()));
                        }
                    }
                }
                lock(&self.live).insert(job.campaign.clone(), live);
                self.logs.push(
                    "info",
                    "server",
                    &job.campaign,
                    format!("resuming job {} after a restart", job.id),
                );
                let core = self.clone();
                let token = CancellationToken::new();
                lock(&self.cancels).insert(job.id, token.clone());
                tokio::spawn(async move {
                    let ctx = JobCtx {
                        core: core.clone(),
                        job: Mutex::new(job),
                        cancel: token,
                    };
                    let r = core.follow_run(&ctx).await;
                    ctx.end(r);
                });
            } else {
                let mut j = job;
                j.state = "failed".into();
                j.error =
                    "the server restarted while this job was pending; run the command again".into();
                j.updated_ms = now_ms();
                self.store.save_job(&j)?;
            }
        }
        Ok(())
    }

    /// The campaign's info.
    pub(crate) fn info(&self, row: &CampaignRow) -> Result<CampaignInfo, ServerError> {
        serde_json::from_str(&row.info)
            .map_err(|e| ServerError::Store(format!("campaign {} info: {e}", row.id)))
    }

    pub(crate) fn campaign_row(&self, id: &str) -> Result<CampaignRow, ServerError> {
        self.store
            .campaign(id)?
            .ok_or_else(|| ServerError::CampaignNotFound(id.into()))
    }

    /// Stores a new campaign (after inspecting it).
    pub fn create(&self, file: &str, source: &str) -> Result<CampaignRow, ServerError> {
        let info = self.inspect(file, source)?;
        let now = now_ms();
        let row = CampaignRow {
            id: info.id.clone(),
            file: file.into(),
            source: source.into(),
            info: serde_json::to_string(&info).expect("info serializes"),
            state: state::CREATED.into(),
            join_token: join_token(),
            error: String::new(),
            created_ms: now,
            updated_ms: now,
        };
        if !self.store.insert_campaign(&row)? {
            return Err(ServerError::CampaignExists(info.id));
        }
        self.logs.push(
            "info",
            "server",
            &row.id,
            format!("campaign {} created from {file}", row.id),
        );
        Ok(row)
    }

    /// Checks a file without storing it: its id, or what is wrong.
    pub fn inspect_only(&self, file: &str, source: &str) -> Result<String, String> {
        self.inspector.inspect(file, source).map(|i| i.id)
    }

    fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, ServerError> {
        self.inspector
            .inspect(file, source)
            .map_err(|message| ServerError::InvalidArgument {
                field: "source".into(),
                message,
            })
    }

    /// Replaces a campaign's source (the id in the file names it).
    pub fn update(&self, file: &str, source: &str) -> Result<CampaignRow, ServerError> {
        let info = self.inspect(file, source)?;
        let row = self.campaign_row(&info.id)?;
        check_update(&self.info(&row)?, &info, &row.state)?;
        self.store.update_campaign_source(
            &info.id,
            file,
            source,
            &serde_json::to_string(&info).expect("info serializes"),
        )?;
        if row.state == state::DEPLOYED {
            // The drones compiled the old source: the new one needs a new deploy.
            lock(&self.projected).remove(&info.id);
            self.set_state(
                &info.id,
                state::SPAWNED,
                "updated after deploy: deploy again",
            );
        }
        self.logs.push(
            "info",
            "server",
            &info.id,
            format!("campaign {} updated from {file}", info.id),
        );
        self.campaign_row(&info.id)
    }

    /// Deletes a campaign that holds no instances.
    pub fn delete(&self, id: &str) -> Result<(), ServerError> {
        let row = self.campaign_row(id)?;
        if row.state != state::CREATED && row.state != state::KILLED {
            return Err(ServerError::WrongState {
                campaign: id.into(),
                state: row.state,
                what: "it may hold instances: kill it first, then delete".into(),
            });
        }
        self.store.delete_campaign(id)?;
        lock(&self.live).remove(id);
        lock(&self.projected).remove(id);
        self.logs
            .push("info", "server", id, format!("campaign {id} deleted"));
        Ok(())
    }

    fn set_state(&self, id: &str, st: &str, error: &str) {
        if let Err(e) = self.store.set_campaign_state(id, st, error) {
            self.logs.push(
                "error",
                "server",
                id,
                format!("cannot save state {st}: {e}"),
            );
        }
        self.event(id, v1::campaign_event::Event::State(st.to_string()));
        self.changed.notify_waiters();
    }

    pub(crate) fn event(&self, campaign: &str, event: v1::campaign_event::Event) {
        let tx = lock(&self.live)
            .get(campaign)
            .and_then(|l| l.events.clone());
        if let Some(tx) = tx {
            let _ = tx.send(v1::CampaignEvent {
                time_ms: now_ms(),
                event: Some(event),
            });
        }
    }

    /// The live series of a campaign's current (or last) run, oldest first.
    pub fn live_history(&self, campaign: &str) -> Vec<LivePoint> {
        lock(&self.live)
            .get(campaign)
            .map(|l| l.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Events of a campaign from now on.
    pub fn subscribe(&self, campaign: &str) -> broadcast::Receiver<v1::CampaignEvent> {
        let mut live = lock(&self.live);
        let l = live.entry(campaign.to_string()).or_default();
        l.events
            .get_or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    /// Accepts a control command as a job and starts it; never waits for it.
    pub fn submit(self: &Arc<Self>, id: &str, cmd: Command) -> Result<JobRow, ServerError> {
        let row = self.campaign_row(id)?;
        {
            let mut projected = lock(&self.projected);
            let current = projected
                .get(id)
                .cloned()
                .unwrap_or_else(|| row.state.clone());
            cmd.check(id, &current)?;
            let next = match cmd {
                Command::Start => state::RUNNING,
                other => other.target(),
            };
            projected.insert(id.to_string(), next.to_string());
        }
        let job = self.store.insert_job(id, cmd.name())?;
        let token = CancellationToken::new();
        lock(&self.cancels).insert(job.id, token.clone());
        let _ = self.jobs_feed.send(job.clone());
        if cmd == Command::Kill {
            self.cancel_campaign_jobs(id, job.id);
        }
        let core = self.clone();
        let queued = job.clone();
        tokio::spawn(async move {
            let ctx = JobCtx {
                core: core.clone(),
                job: Mutex::new(queued),
                cancel: token,
            };
            // Spawn, deploy and start run one after the other; stop and kill act at once.
            let queue = matches!(cmd, Command::Spawn | Command::Deploy | Command::Start)
                .then(|| core.queue(&ctx.campaign()));
            // A queued job can be cancelled while it waits for its turn.
            let _guard = match &queue {
                Some(q) => tokio::select! {
                    g = q.lock() => Some(g),
                    _ = ctx.cancel.cancelled() => None,
                },
                None => None,
            };
            if ctx.cancel.is_cancelled() {
                ctx.end(Err(JobEnd::Cancelled));
                return;
            }
            ctx.update(|j| j.state = "active".into());
            let result = match cmd {
                Command::Spawn => core.run_spawn(&ctx).await,
                Command::Deploy => core.run_deploy(&ctx).await,
                Command::Start => core.run_start(&ctx).await,
                Command::Stop => core.run_stop(&ctx).await,
                Command::Kill => core.run_kill(&ctx).await,
            };
            if result.is_err() && cmd != Command::Kill {
                // The projection was wrong: fall back to the stored state.
                lock(&core.projected).remove(&ctx.campaign());
            }
            ctx.end(result);
        });
        Ok(job)
    }

    fn queue(&self, campaign: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.queues)
            .entry(campaign.to_string())
            .or_default()
            .clone()
    }

    fn cancel_campaign_jobs(&self, campaign: &str, except: u64) {
        if let Ok(jobs) = self.store.jobs(campaign, "", 10_000) {
            for j in jobs
                .into_iter()
                .filter(|j| j.id != except && (j.state == "queued" || j.state == "active"))
            {
                if let Some(t) = lock(&self.cancels).get(&j.id) {
                    t.cancel();
                }
            }
        }
    }

    /// Cancels a queued or active job.
    pub fn cancel_job(&self, id: u64) -> Result<JobRow, ServerError> {
        let job = self.store.job(id)?.ok_or(ServerError::JobNotFound(id))?;
        match lock(&self.cancels).get(&id) {
            Some(t) => t.cancel(),
            None if job.state == "queued" || job.state == "active" => {
                // A job of a previous process: nothing runs it any more.
                let mut j = job.clone();
                j.state = "cancelled".into();
                j.updated_ms = now_ms();
                self.store.save_job(&j)?;
            }
            None => {}
        }
        self.store.job(id)?.ok_or(ServerError::JobNotFound(id))
    }

    /// Deletes a job that is not running.
    pub fn delete_job(&self, id: u64) -> Result<(), ServerError> {
        let job = self.store.job(id)?.ok_or(ServerError::JobNotFound(id))?;
        if job.state == "active" && lock(&self.cancels).contains_key(&id) {
            return Err(ServerError::WrongState {
                campaign: job.campaign,
                state: "active".into(),
                what: format!("job {id} is active: cancel it first"),
            });
        }
        self.store.delete_job(id)
    }

    fn deployer(&self, info: &CampaignInfo) -> Result<(String, Arc<dyn Deployer>), ServerError> {
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
        ctx.update(|j| j.progress_total = info.drones);
        ctx.log(format!(
            "asking deployer '{name}' for {}–{} instances",
            info.min_drones, info.drones
        ));
        let job_id = lock(&ctx.job).id;
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
            client_token: format!("camut-{}-{job_id}", info.id),
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
                    ));
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
            ));
        }
        let list: Vec<_> = made
            .instances
            .iter()
            .map(|i| (i.id.clone(), i.address.clone(), i.state.clone()))
            .collect();
        self.store.set_instances(&info.id, &name, &list)?;
        ctx.update(|j| j.progress_done = n);
        ctx.log(format!(
            "{n} instances: {}",
            list.iter()
                .map(|i| i.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.set_state(&info.id, state::SPAWNED, "");
        Ok(())
    }

    async fn run_deploy(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let row = self.campaign_row(&campaign)?;
        let info = self.info(&row)?;
        let (name, deployer) = self.deployer(&info)?;
        let instances = self.store.instances(&campaign)?;
        // A new deployment starts a new run: forget the previous drones and statistics.
        self.store.clear_run(&campaign)?;
        {
            let mut live = lock(&self.live);
            let events = live.get(&campaign).and_then(|l| l.events.clone());
            live.insert(
                campaign.clone(),
                Live {
                    events,
                    ..Live::default()
                },
            );
        }
        let wanted = instances.len() as u32;
        ctx.update(|j| j.progress_total = wanted);
        ctx.log(format!(
            "configuring {wanted} drones through deployer '{name}', dialing {}",
            self.public_url
        ));
        let req = v1::ConfigureInstancesRequest {
            campaign: campaign.clone(),
            instance_ids: instances.iter().map(|i| i.0.clone()).collect(),
            server_address: self.public_url.clone(),
            join_token: row.join_token.clone(),
        };
        let out = tokio::select! {
            r = deployer.configure_instances(Request::new(req)) => r.map_err(|s| deployer_error(&name, s))?.into_inner(),
            _ = ctx.cancel.cancelled() => return Err(JobEnd::Cancelled),
        };
        for (id, why) in &out.failed {
            ctx.log(format!("instance {id} could not be configured: {why}"));
        }
        let configured = out.configured.len() as u32;
        if configured < info.min_drones {
            return Err(JobEnd::Failed(format!(
                "only {configured} drones configured, fewer than minDrones {}",
                info.min_drones
            )));
        }
        let deadline = Instant::now() + DEPLOY_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            let (ready, errors) = self.drone_counts(&campaign);
            ctx.update(|j| j.progress_done = ready);
            if let Some(e) = errors.first() {
                return Err(JobEnd::Failed(format!(
                    "a drone could not compile the campaign: {e}"
                )));
            }
            if ready >= configured {
                break;
            }
            if Instant::now() >= deadline {
                if ready >= info.min_drones {
                    ctx.log(format!("{ready} of {configured} drones ready after {DEPLOY_TIMEOUT:?}: going on with {ready}"));
                    break;
                }
                return Err(JobEnd::Failed(format!(
                    "only {ready} of {configured} drones were ready after {DEPLOY_TIMEOUT:?}"
                )));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = ctx.cancel.cancelled() => return Err(JobEnd::Cancelled),
            }
        }
        ctx.log("every drone is ready".to_string());
        self.set_state(&campaign, state::DEPLOYED, "");
        Ok(())
    }

    /// (ready drones, compile errors) of a campaign.
    fn drone_counts(&self, campaign: &str) -> (u32, Vec<String>) {
        let sessions = lock(&self.sessions);
        let mine = sessions.values().filter(|s| s.campaign == campaign);
        let mut ready = 0;
        let mut errors = Vec::new();
        for s in mine {
            match s.state.as_str() {
                "ready" => ready += 1,
                "error" => errors.push(s.error.clone()),
                _ => {}
            }
        }
        (ready, errors)
    }

    async fn run_start(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let at_ms = now_ms() + START_DELAY.as_millis() as i64;
        let targets: Vec<(String, mpsc::Sender<Result<ServerCommand, Status>>)> = {
            let mut sessions = lock(&self.sessions);
            sessions
                .iter_mut()
                .filter(|(_, s)| s.campaign == campaign && s.state == "ready")
                .map(|(id, s)| {
                    s.state = "running".into();
                    (id.clone(), s.tx.clone())
                })
                .collect()
        };
        if targets.is_empty() {
            return Err(JobEnd::Failed("no drone is ready: deploy again".into()));
        }
        {
            let mut live = lock(&self.live);
            let l = live.entry(campaign.clone()).or_default();
            l.started = Some(Instant::now());
        }
        for (_, tx) in &targets {
            let _ = tx
                .send(Ok(ServerCommand {
                    cmd: Some(Cmd::Start(v1::Start { at_ms })),
                }))
                .await;
        }
        // Stored after the commands went out, so that disk syncs never delay a start.
        for (id, _) in &targets {
            self.save_drone_state(&campaign, id, "running", "");
        }
        ctx.log(format!(
            "{} drones start together at {at_ms} (Unix ms)",
            targets.len()
        ));
        self.set_state(&campaign, state::RUNNING, "");
        self.follow_run(ctx).await
    }

    /// Waits until every drone of the running campaign has finished or is lost, then
    /// writes the results.
    async fn follow_run(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        let total = self.store.drones(&campaign)?.len() as u32;
        ctx.update(|j| j.progress_total = total);
        let mut cancelled = false;
        loop {
            let notified = self.changed.notified();
            let (done, lost) = {
                let live = lock(&self.live);
                live.get(&campaign)
                    .map_or((0, 0), |l| (l.finished.len() as u32, l.lost.len() as u32))
            };
            ctx.update(|j| j.progress_done = done + lost);
            if done + lost >= total {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = ctx.cancel.cancelled(), if !cancelled => {
                    // Killed mid-run: the results so far are kept.
                    cancelled = true;
                    break;
                }
            }
        }
        let summary = self.finalize(&campaign)?;
        let stopped = lock(&self.live)
            .get(&campaign)
            .and_then(|l| l.stopped.clone());
        if cancelled {
            return Err(JobEnd::Cancelled);
        }
        match stopped {
            Some(why) => {
                ctx.log(format!("stopped: {why}"));
                self.set_state(&campaign, state::STOPPED, &why);
            }
            None => self.set_state(&campaign, state::FINISHED, ""),
        }
        lock(&self.projected).remove(&campaign);
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
        ));
        Ok(())
    }

    /// Merges every stored delta of the campaign into its summary and saves it.
    pub(crate) fn finalize(&self, campaign: &str) -> Result<Summary, ServerError> {
        let (summary, json) = self.summary(campaign)?;
        self.store
            .set_results(campaign, &json, summary.thresholds_ok)?;
        Ok(summary)
    }

    /// The summary from the stored deltas, and its JSON with per-drone rows.
    pub(crate) fn summary(&self, campaign: &str) -> Result<(Summary, String), ServerError> {
        let row = self.campaign_row(campaign)?;
        let info = self.info(&row)?;
        let mut totals = StatsSet::default();
        // Per drone only the counts are shown: (requests, errors, iterations).
        let mut per_drone: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for (drone, bytes) in self.store.stats(campaign)? {
            if let Some(set) = decode(&bytes) {
                let (r, e) = set.request_totals();
                let row = per_drone.entry(drone).or_default();
                row.0 += r;
                row.1 += e;
                row.2 += set.iterations.completed + set.iterations.failed;
                totals.merge(&set);
            }
        }
        let drones = self.store.drones(campaign)?;
        let (duration_s, lost) = {
            let live = lock(&self.live);
            let l = live.get(campaign);
            (
                l.and_then(|l| l.started)
                    .map_or(0.0, |s| s.elapsed().as_secs_f64()),
                l.map(|l| l.lost.clone()).unwrap_or_default(),
            )
        };
        let summary = Summary::build(
            campaign,
            info.users as u64 * drones.len().max(1) as u64,
            &totals,
            duration_s,
            &info.thresholds,
            None,
        );
        let mut json = serde_json::to_value(&summary).expect("summary serializes");
        let rows: Vec<serde_json::Value> = drones
            .iter()
            .map(|d| {
                let (requests, errors, iterations) =
                    per_drone.get(&d.id).copied().unwrap_or_default();
                serde_json::json!({
                    "id": d.id,
                    "index": d.index,
                    "state": d.state,
                    "requests": requests,
                    "errors": errors,
                    "iterations": iterations,
                    "lost": lost.get(&d.id),
                })
            })
            .collect();
        json["drones"] = serde_json::Value::Array(rows);
        json["degraded"] = serde_json::Value::Bool(!lost.is_empty());
        json["lost"] = serde_json::to_value(
            lost.iter()
                .map(|(d, why)| format!("{d}: {why}"))
                .collect::<Vec<_>>(),
        )
        .expect("strings serialize");
        Ok((summary, json.to_string()))
    }

    async fn run_stop(&self, ctx: &JobCtx) -> Result<(), JobEnd> {
        let campaign = ctx.campaign();
        self.stop_drones(&campaign, "stopped by the operator");
        ctx.log("stop sent to every drone".to_string());
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            let st = self.campaign_row(&campaign)?.state;
            if st != state::RUNNING {
                ctx.log(format!("campaign is {st}"));
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(JobEnd::Failed(
                    "drones did not finish after the stop grace period".into(),
                ));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = ctx.cancel.cancelled() => return Err(JobEnd::Cancelled),
            }
        }
    }

    /// Sends Stop to every drone of a campaign (operator, abortOnFail, drone loss).
    pub(crate) fn stop_drones(&self, campaign: &str, why: &str) {
        {
            let mut live = lock(&self.live);
            let l = live.entry(campaign.to_string()).or_default();
            if l.stopped.is_none() {
                l.stopped = Some(why.to_string());
            }
        }
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

    fn send_all(&self, campaign: &str, cmd: Cmd) {
        let sessions = lock(&self.sessions);
        for s in sessions.values().filter(|s| s.campaign == campaign) {
            let _ = s.tx.try_send(Ok(ServerCommand {
                cmd: Some(cmd.clone()),
            }));
        }
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
        ));
        self.store.set_instances(&campaign, &name, &[])?;
        lock(&self.sessions).retain(|_, s| s.campaign != campaign);
        lock(&self.disconnected).retain(|_, (c, _)| *c != campaign);
        lock(&self.projected).remove(&campaign);
        self.set_state(&campaign, state::KILLED, "");
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
            ));
            let out = deployer
                .destroy_instances(Request::new(v1::DestroyInstancesRequest {
                    campaign: campaign.clone(),
                }))
                .await
                .map_err(|s| deployer_error(&name, s))?;
            ctx.log(format!(
                "reaped {} instances",
                out.into_inner().destroyed.len()
            ));
        }
        Ok(())
    }

    pub(crate) fn save_drone_state(&self, campaign: &str, id: &str, st: &str, error: &str) {
        let index = lock(&self.sessions).get(id).map(|s| s.index);
        let index = match index {
            Some(i) => i,
            None => match self.store.drones(campaign) {
                Ok(rows) => rows.iter().find(|d| d.id == id).map_or(0, |d| d.index),
                Err(_) => 0,
            },
        };
        let row = DroneRow {
            id: id.into(),
            campaign: campaign.into(),
            index,
            state: st.into(),
            error: error.into(),
        };
        if let Err(e) = self.store.upsert_drone(&row) {
            self.logs.push(
                "error",
                "server",
                campaign,
                format!("cannot save drone {id}: {e}"),
            );
        }
    }

    /// Campaign as the API shows it.
    pub fn campaign_view(&self, row: &CampaignRow) -> Result<v1::Campaign, ServerError> {
        let info = self.info(row)?;
        let sessions = lock(&self.sessions);
        let drone_status = self
            .store
            .drones(&row.id)?
            .into_iter()
            .map(|d| {
                let s = sessions.get(&d.id).filter(|s| s.campaign == row.id);
                v1::DroneStatus {
                    id: d.id.clone(),
                    index: d.index,
                    state: s.map_or(d.state.clone(), |s| s.state.clone()),
                    iterations_done: s.map_or(0, |s| s.iterations_done),
                    errors: s.map_or(0, |s| s.errors),
                    last_seen_ms: s.map_or(0, |s| s.last_seen_ms),
                    error: if d.error.is_empty() {
                        s.map(|s| s.error.clone()).unwrap_or_default()
                    } else {
                        d.error
                    },
                }
            })
            .collect::<Vec<_>>();
        drop(sessions);
        let iterations_done = {
            let live = lock(&self.live);
            live.get(&row.id).map_or(0, |l| {
                l.totals.iterations.completed + l.totals.iterations.failed
            })
        };
        Ok(v1::Campaign {
            id: row.id.clone(),
            state: row.state.clone(),
            file: row.file.clone(),
            source: row.source.clone(),
            drones: info.drones,
            min_drones: info.min_drones,
            users: info.users,
            deployer: info
                .deployer
                .clone()
                .unwrap_or_else(|| self.default_deployer.clone()),
            zone: info.zone.clone().unwrap_or_default(),
            instances: self
                .store
                .instances(&row.id)?
                .into_iter()
                .map(|(id, address, state)| v1::Instance { id, address, state })
                .collect(),
            iterations_planned: info.iterations_per_drone
                * if drone_status.is_empty() {
                    info.drones as u64
                } else {
                    drone_status.len() as u64
                },
            drone_status,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
            error: row.error.clone(),
            iterations_done,
        })
    }

    /// The results of a campaign: final when the run is over, otherwise so far.
    pub fn results(&self, id: &str) -> Result<v1::Results, ServerError> {
        let row = self.campaign_row(id)?;
        let (json, ok) = match self.store.results(id)? {
            Some(r) => r,
            None => {
                let (s, json) = self.summary(id)?;
                (json, s.thresholds_ok)
            }
        };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let thresholds = v["thresholds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| v1::ThresholdVerdict {
                        metric: t["metric"].as_str().unwrap_or_default().into(),
                        expr: t["expr"].as_str().unwrap_or_default().into(),
                        ok: t["ok"].as_bool().unwrap_or(false),
                        value: t["value"].as_f64(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(v1::Results {
            id: id.into(),
            state: row.state,
            thresholds_ok: ok,
            thresholds,
            degraded: v["degraded"].as_bool().unwrap_or(false),
            lost: v["lost"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            summary_json: json,
        })
    }
}

/// Decodes a stored delta.
pub(crate) fn decode(bytes: &[u8]) -> Option<StatsSet> {
    let d = <v1::StatsDelta as prost::Message>::decode(bytes).ok()?;
    camut::stats::from_wire(&d).ok()
}

fn deployer_error(name: &str, s: Status) -> JobEnd {
    JobEnd::Failed(format!("deployer '{name}': {}", s.message()))
}

/// How a job ended other than by success.
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
    pub job: Mutex<JobRow>,
    pub cancel: CancellationToken,
}

impl JobCtx {
    pub fn campaign(&self) -> String {
        lock(&self.job).campaign.clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut JobRow)) {
        let snapshot = {
            let mut j = lock(&self.job);
            let before = (
                j.state.clone(),
                j.progress_done,
                j.progress_total,
                j.log.len(),
            );
            f(&mut j);
            if before
                == (
                    j.state.clone(),
                    j.progress_done,
                    j.progress_total,
                    j.log.len(),
                )
            {
                return;
            }
            j.updated_ms = now_ms();
            j.clone()
        };
        if let Err(e) = self.core.store.save_job(&snapshot) {
            tracing::error!(job = snapshot.id, "cannot save job: {e}");
        }
        let _ = self.core.jobs_feed.send(snapshot);
    }

    pub fn log(&self, line: String) {
        let (campaign, kind) = {
            let j = lock(&self.job);
            (j.campaign.clone(), j.kind.clone())
        };
        self.core
            .logs
            .push("info", "server", &campaign, format!("{kind}: {line}"));
        self.update(|j| j.log.push(line));
    }

    pub fn end(&self, result: Result<(), JobEnd>) {
        let id = lock(&self.job).id;
        match result {
            Ok(()) => self.update(|j| j.state = "complete".into()),
            Err(JobEnd::Cancelled) => self.update(|j| j.state = "cancelled".into()),
            Err(JobEnd::Failed(e)) => {
                let campaign = self.campaign();
                self.core.logs.push(
                    "error",
                    "server",
                    &campaign,
                    format!("job {id} failed: {e}"),
                );
                let _ = self.core.store.set_campaign_state(
                    &campaign,
                    &self
                        .core
                        .store
                        .campaign(&campaign)
                        .ok()
                        .flatten()
                        .map_or_else(String::new, |c| c.state),
                    &e,
                );
                self.update(|j| {
                    j.state = "failed".into();
                    j.error = e;
                });
            }
        }
        lock(&self.core.cancels).remove(&id);
        self.core.changed.notify_waiters();
    }
}
