//! The drone hub: the `Connect` command streams, heartbeats, loss detection, and the
//! once-a-second live statistics and abort-on-fail thresholds.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camut::v1::{self, drone_message::Msg, server_command::Cmd, DroneMessage, ServerCommand};
use camut_stats::series::SeriesPoint;
use camut_stats::summary::StatsView;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::core::{Core, DroneTx, Live, Session, HISTORY_POINTS};
use crate::env::{mask, CampaignEnv};
use crate::error::ServerError;
use crate::state::{CampaignState, DroneState};
use crate::store::{now_ms, DroneRow};

/// The protocol version this server speaks.
pub const PROTOCOL: i32 = v1::ProtocolVersion::ProtocolVersion1 as i32;
/// How long a drone has to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A drone not heard from for this long is pinged at the next tick, so that an idle
/// drone answers every other second at least.
pub const PING_WHEN_SILENT: Duration = Duration::from_millis(1500);

/// The outbound stream type of Connect.
pub type CommandStream = Pin<Box<dyn Stream<Item = Result<ServerCommand, Status>> + Send>>;

/// Accepts a drone's stream: checks its Hello and token, then serves it.
pub async fn connect(
    core: Arc<Core>,
    req: Request<Streaming<DroneMessage>>,
) -> Result<Response<CommandStream>, Status> {
    let mut inbound = req.into_inner();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.next()).await {
        Ok(Some(Ok(DroneMessage {
            msg: Some(Msg::Hello(h)),
        }))) => h,
        Ok(Some(Err(e))) => return Err(e),
        Err(_) => return Err(Status::deadline_exceeded("no Hello within 10 s")),
        _ => return Err(Status::invalid_argument("the first message must be Hello")),
    };
    if hello.protocol != PROTOCOL {
        return Err(Status::failed_precondition(format!(
            "protocol version {} is not supported; this server speaks {PROTOCOL}: upgrade the drone",
            hello.protocol
        )));
    }
    if hello.drone_id.is_empty() {
        return Err(Status::invalid_argument("Hello.drone_id must be set"));
    }
    let campaign = core
        .store
        .campaign_by_token(&hello.token)
        .map_err(Status::from)?
        .ok_or_else(|| {
            Status::unauthenticated("unknown join token: the drone is not part of any campaign")
        })?;
    let drone = hello.drone_id.clone();
    let index = core
        .seat(&campaign.id, campaign.state, &drone)
        .map_err(Status::from)?;
    let info = core.info(&campaign).map_err(Status::from)?;
    let (tx, rx) = mpsc::channel::<Result<ServerCommand, Status>>(256);
    let generation = core.next_generation.fetch_add(1, Ordering::Relaxed);
    // A drone that says it runs this campaign's run goes on only if the run does and
    // the drone was not declared lost meanwhile: never silently.
    let said_running = hello.running_campaign == campaign.id;
    // A drone of the running run that comes back without it (a new process: restarted,
    // its host rebooted) cannot deliver what the old process measured after its last
    // stored delta, nor finish the run: it is lost, so that the run ends without it and
    // the results say so, instead of waiting for a Finished that never comes.
    let restarted = !said_running
        && campaign.state == CampaignState::Running
        && core.with_live(&campaign.id, |l| {
            !l.finished.contains(&drone)
                && !l.lost.contains_key(&drone)
                && (l.disconnected.contains_key(&drone)
                    || l.sessions
                        .get(&drone)
                        .is_some_and(|s| s.state == DroneState::Running))
        });
    if restarted {
        core.lose(
            &campaign.id,
            &drone,
            "it came back as a new process without its run (restarted): what it measured \
             after its last stored statistics is lost"
                .into(),
        )
        .await;
    }
    let (lost, delivered) = core.with_live(&campaign.id, |l| {
        (l.lost.get(&drone).cloned(), l.finished.contains(&drone))
    });
    let resuming = said_running && campaign.state == CampaignState::Running && lost.is_none();
    let stop_reason = match (&lost, said_running && !resuming) {
        (_, false) => String::new(),
        (Some(why), true) => format!(
            "this drone was declared lost ({why}); its run must not go on: what it \
             measured until now is still counted"
        ),
        (None, true) => format!(
            "campaign {} is {}: its run is over",
            campaign.id, campaign.state
        ),
    };
    let st = if resuming {
        DroneState::Running
    } else {
        DroneState::Connected
    };
    core.with_live(&campaign.id, |l| {
        l.sessions.insert(
            drone.clone(),
            Session {
                generation,
                index,
                tx: tx.clone(),
                state: st,
                last_seen: Instant::now(),
                last_seen_ms: now_ms(),
                iterations_done: 0,
                errors: 0,
                error: String::new(),
            },
        );
        l.disconnected.remove(&drone);
        l.secrets = CampaignEnv::from_json(&campaign.env).secrets();
    });
    core.save_drone_state(&campaign.id, &drone, st, "").await;
    let acked = core
        .store
        .max_seq(&campaign.id, &drone)
        .map_err(Status::from)?;
    core.logs.push(
        "info",
        &drone,
        &campaign.id,
        format!(
            "drone {drone} joined campaign {} as #{index}{}",
            campaign.id,
            if resuming { " (resuming its run)" } else { "" }
        ),
    );
    let welcome = ServerCommand {
        cmd: Some(Cmd::Welcome(v1::Welcome {
            protocol: PROTOCOL,
            acked_seq: acked,
            stop_run: !stop_reason.is_empty(),
            stop_reason: stop_reason.clone(),
        })),
    };
    if !stop_reason.is_empty() {
        core.logs.push(
            "warn",
            &drone,
            &campaign.id,
            format!("drone {drone} is told to stop its run: {stop_reason}"),
        );
    }
    let _ = tx.send(Ok(welcome)).await;
    let configurable = matches!(
        campaign.state,
        CampaignState::Spawned
            | CampaignState::Deployed
            | CampaignState::Finished
            | CampaignState::Stopped
    );
    // A drone still ending a run of this campaign first delivers what it holds: a new
    // configuration now would make it drop that.
    let ending_its_run = said_running && !delivered && campaign.state != CampaignState::Running;
    if !resuming && configurable && !ending_its_run {
        let configure = v1::Configure {
            campaign: campaign.id.clone(),
            file: campaign.file.clone(),
            source: campaign.source.clone(),
            drone_index: index,
            drone_count: info.drones,
            default_tsdb: core.default_tsdb.as_ref().map(Into::into),
            env: CampaignEnv::from_json(&campaign.env).for_drone(),
        };
        let _ = tx
            .send(Ok(ServerCommand {
                cmd: Some(Cmd::Configure(configure)),
            }))
            .await;
    }
    core.drone_event(&campaign.id, &drone);
    core.changed.notify_waiters();
    let campaign_id = campaign.id.clone();
    tokio::spawn(async move {
        while let Some(msg) = inbound.next().await {
            let Ok(DroneMessage { msg: Some(msg) }) = msg else {
                break;
            };
            if let Err(e) = core
                .on_message(&campaign_id, &drone, generation, msg, &tx)
                .await
            {
                // The drone keeps what was not acknowledged and sends it again when it
                // reconnects.
                let _ = tx.send(Err(Status::unavailable(e.to_string()))).await;
                break;
            }
        }
        core.on_disconnect(&campaign_id, &drone, generation).await;
    });
    Ok(Response::new(
        Box::pin(ReceiverStream::new(rx)) as CommandStream
    ))
}

impl Core {
    /// The index of `drone` in the campaign's current deployment: the one it had, or
    /// the next free one while seats remain.
    fn seat(&self, campaign: &str, state: CampaignState, drone: &str) -> Result<u32, ServerError> {
        if self.with_live(campaign, |l| l.indexes.is_none() || l.seats.is_none()) {
            // Loaded once per deployment, outside the campaign's lock.
            let indexes: HashMap<String, u32> = self
                .store
                .drones(campaign)?
                .into_iter()
                .map(|d| (d.id, d.index))
                .collect();
            let seats = self.store.instances(campaign)?.len().max(1) as u32;
            self.with_live(campaign, |l| {
                l.indexes.get_or_insert(indexes);
                l.seats.get_or_insert(seats);
            });
        }
        self.with_live(campaign, |l| {
            let seats = l.seats.unwrap_or(1);
            let indexes = l.indexes.get_or_insert_with(HashMap::new);
            if let Some(i) = indexes.get(drone) {
                return Ok(*i);
            }
            let taken = indexes.len() as u32;
            if taken >= seats {
                return Err(ServerError::WrongState {
                    campaign: campaign.into(),
                    state,
                    what: format!("it already has its {taken} drones"),
                });
            }
            indexes.insert(drone.to_string(), taken);
            Ok(taken)
        })
    }

    async fn on_message(
        &self,
        campaign: &str,
        drone: &str,
        generation: u64,
        msg: Msg,
        tx: &DroneTx,
    ) -> Result<(), ServerError> {
        let current = self.with_live(campaign, |l| match l.sessions.get_mut(drone) {
            Some(s) if s.generation == generation => {
                s.last_seen = Instant::now();
                s.last_seen_ms = now_ms();
                true
            }
            _ => false, // a stale stream of a drone that reconnected
        });
        if !current {
            return Ok(());
        }
        // What followers of the campaign see: a drone's state (jobs wait on it) and its
        // counts (the console's drone rows, from its stats). Pongs and logs change neither.
        let state_changes = matches!(msg, Msg::Ready(_) | Msg::CompileError(_) | Msg::Finished(_));
        let status_changes = state_changes || matches!(msg, Msg::Progress(_) | Msg::Stats(_));
        match msg {
            Msg::Ready(_) => {
                self.set_session_state(campaign, drone, DroneState::Ready, "");
                self.save_drone_state(campaign, drone, DroneState::Ready, "")
                    .await;
                self.logs
                    .push("info", drone, campaign, format!("drone {drone} is ready"));
            }
            Msg::CompileError(e) => {
                self.set_session_state(campaign, drone, DroneState::Error, &e.message);
                self.save_drone_state(campaign, drone, DroneState::Error, &e.message)
                    .await;
                self.logs.push(
                    "error",
                    drone,
                    campaign,
                    format!("drone {drone} cannot compile: {}", e.message),
                );
            }
            Msg::Progress(p) => self.with_live(campaign, |l| {
                if let Some(s) = l.sessions.get_mut(drone) {
                    s.iterations_done = p.iterations_done;
                    s.errors = p.errors;
                }
            }),
            Msg::Stats(s) => {
                let acked = self.ingest(campaign, drone, s).await?;
                let _ = tx
                    .send(Ok(ServerCommand {
                        cmd: Some(Cmd::Ack(v1::Ack { seq: acked })),
                    }))
                    .await;
            }
            Msg::Log(l) => {
                // A line may print a secret of the campaign's environment.
                let line = self.with_live(campaign, |live| {
                    if live.secrets.is_empty() {
                        l.line
                    } else {
                        mask(&l.line, &live.secrets)
                    }
                });
                self.logs.push(&l.level, drone, campaign, line)
            }
            Msg::Finished(f) if self.with_live(campaign, |l| l.lost.contains_key(drone)) => {
                self.returned(campaign, drone, &f).await;
            }
            Msg::Finished(f) => {
                if let Some(summary) = &f.summary {
                    let _ = self
                        .store
                        .set_drone_summary(campaign, drone, summary.encode_to_vec())
                        .await;
                }
                self.set_session_state(campaign, drone, DroneState::Finished, "");
                self.save_drone_state(campaign, drone, DroneState::Finished, "")
                    .await;
                self.with_live(campaign, |l| l.finished.insert(drone.to_string()));
                self.logs.push(
                    "info",
                    drone,
                    campaign,
                    format!("drone {drone} finished (last stats #{})", f.last_seq),
                );
            }
            Msg::Pong(_) | Msg::Hello(_) => {}
        }
        if status_changes {
            self.drone_event(campaign, drone);
        }
        if state_changes {
            self.changed.notify_waiters();
        }
        Ok(())
    }

    /// Stores a delta, then merges it once; returns the highest sequence number held.
    /// A delta that cannot be stored is an error: it is not acknowledged.
    async fn ingest(&self, campaign: &str, drone: &str, s: v1::Stats) -> Result<u64, ServerError> {
        let acked = self.with_live(campaign, |l| l.acked.get(drone).copied().unwrap_or(0));
        if s.seq <= acked {
            return Ok(acked); // a resend after a reconnection: already counted
        }
        let Some(delta) = s.delta else {
            return Ok(acked);
        };
        // Checked on arrival, before anything is stored or allocated for it: a delta that
        // does not check is refused — never stored, never counted, reported — and
        // acknowledged, since sending it again cannot make it valid.
        let checked = match camut::stats::check_wire(&delta) {
            Ok(c) => c,
            Err(e) => {
                self.logs.push(
                    "error",
                    "server",
                    campaign,
                    format!(
                        "drone {drone} sent invalid statistics #{}: {e}; refused (invalid \
                         argument): not stored, not counted",
                        s.seq
                    ),
                );
                self.with_live(campaign, |l| {
                    let entry = l
                        .invalid
                        .entry(drone.to_string())
                        .or_insert_with(|| (0, s.seq, e.to_string()));
                    entry.0 += 1;
                    let held = l.acked.entry(drone.to_string()).or_default();
                    *held = (*held).max(s.seq);
                });
                return Ok(s.seq);
            }
        };
        let stored = self
            .store
            .insert_stats(campaign, drone, s.seq, delta.encode_to_vec())
            .await
            .inspect_err(|e| {
                self.with_live(campaign, |l| {
                    l.refused
                        .entry(drone.to_string())
                        .or_insert_with(|| (s.seq, e.to_string()));
                });
                self.logs.push(
                    "error",
                    "server",
                    campaign,
                    format!(
                        "cannot store stats #{} of {drone}: {e}; not acknowledged, the \
                         drone keeps them and sends them again",
                        s.seq
                    ),
                );
            })?;
        // Merged once, after the commit, straight from the wire form: a second's burst
        // of deltas waits for the commit as a few KB each, not as histogram sets.
        let merged = self.with_live(campaign, |l| {
            let merged = stored
                .then(|| l.merge_counters(drone, &checked))
                .transpose();
            match l.acked.get_mut(drone) {
                Some(held) => *held = (*held).max(s.seq),
                None => {
                    l.acked.insert(drone.to_string(), s.seq);
                }
            }
            l.refused.remove(drone);
            merged
        });
        // The histogram counts are added outside the campaign's lock.
        if let Ok(Some(rest)) = merged {
            rest.add(&checked);
        } else if let Err(e) = merged {
            self.logs.push(
                "warn",
                "server",
                campaign,
                format!("drone {drone} sent undecodable stats #{}: {e}", s.seq),
            );
        }
        Ok(s.seq)
    }

    /// A drone declared lost came back and finished: what it measured after the loss
    /// is counted, and results already written are written again with it.
    async fn returned(&self, campaign: &str, drone: &str, f: &v1::Finished) {
        let (held, why) = self.with_live(campaign, |l| {
            (
                l.acked.get(drone).copied().unwrap_or(0),
                l.lost.get(drone).cloned().unwrap_or_default(),
            )
        });
        let complete = held >= f.last_seq;
        let note = if complete {
            "it came back and delivered all its statistics, counted in the results".to_string()
        } else {
            format!(
                "it came back, but the server holds its statistics up to #{held} of #{}",
                f.last_seq
            )
        };
        self.with_live(campaign, |l| {
            if complete {
                l.returned.insert(drone.to_string());
            }
        });
        if let Some(summary) = &f.summary {
            let _ = self
                .store
                .set_drone_summary(campaign, drone, summary.encode_to_vec())
                .await;
        }
        self.set_session_state(campaign, drone, DroneState::Finished, "");
        self.logs.push(
            if complete { "warn" } else { "error" },
            drone,
            campaign,
            format!("drone {drone}, lost earlier ({why}): {note}"),
        );
        let over = self
            .campaign_row(campaign)
            .is_ok_and(|row| row.state != CampaignState::Running);
        if over {
            if let Err(e) = self.finalize(campaign).await {
                self.logs.push(
                    "error",
                    "server",
                    campaign,
                    format!(
                        "cannot write the results again with drone {drone}'s late statistics: {e}"
                    ),
                );
            }
        }
    }

    fn set_session_state(&self, campaign: &str, drone: &str, st: DroneState, error: &str) {
        self.with_live(campaign, |l| {
            if let Some(s) = l.sessions.get_mut(drone) {
                s.state = st;
                s.error = error.into();
            }
        });
    }

    /// Saves a drone's state (keeping its index).
    pub(crate) async fn save_drone_state(
        &self,
        campaign: &str,
        id: &str,
        st: DroneState,
        error: &str,
    ) {
        let index = self.with_live(campaign, |l| {
            l.sessions
                .get(id)
                .map(|s| s.index)
                .or_else(|| l.indexes.as_ref().and_then(|i| i.get(id).copied()))
                .unwrap_or(0)
        });
        let row = DroneRow {
            id: id.into(),
            campaign: campaign.into(),
            index,
            state: st,
            error: error.into(),
        };
        if let Err(e) = self.store.upsert_drones(vec![row]).await {
            self.logs.push(
                "error",
                "server",
                campaign,
                format!("cannot save drone {id}: {e}"),
            );
        }
    }

    async fn on_disconnect(&self, campaign: &str, drone: &str, generation: u64) {
        let removed = self.with_live(campaign, |l| {
            let current = l
                .sessions
                .get(drone)
                .is_some_and(|s| s.generation == generation);
            let removed = if current {
                l.sessions.remove(drone)
            } else {
                None
            };
            if removed
                .as_ref()
                .is_some_and(|s| s.state == DroneState::Running)
            {
                l.disconnected.insert(drone.to_string(), Instant::now());
            }
            removed
        });
        let Some(s) = removed else { return };
        let running = s.state == DroneState::Running;
        self.logs.push(
            if running { "warn" } else { "info" },
            drone,
            campaign,
            format!("drone {drone} disconnected"),
        );
        if !running && s.state != DroneState::Finished {
            self.save_drone_state(campaign, drone, DroneState::Disconnected, "")
                .await;
        }
        self.changed.notify_waiters();
    }

    fn drone_event(&self, campaign: &str, drone: &str) {
        let status = self.with_live(campaign, |l| l.sessions.get(drone).map(|s| s.status(drone)));
        if let Some(st) = status {
            self.event(campaign, v1::campaign_event::Event::Drone(st));
        }
    }

    /// Marks a drone of a running campaign lost and applies the campaign's policy.
    async fn lose(&self, campaign: &str, drone: &str, why: String) {
        let newly = self.with_live(campaign, |l| {
            if l.finished.contains(drone) || l.lost.contains_key(drone) {
                return false;
            }
            l.lost.insert(drone.to_string(), why.clone());
            if let Some(session) = l.sessions.remove(drone) {
                // Its stream ends, so that a drone that was only frozen or cut off
                // reconnects and hears that its run must stop.
                let _ = session.tx.try_send(Err(Status::unavailable(format!(
                    "this drone was declared lost ({why}): reconnect"
                ))));
            }
            l.disconnected.remove(drone);
            true
        });
        if !newly {
            return;
        }
        self.save_drone_state(campaign, drone, DroneState::Lost, &why)
            .await;
        self.logs.push(
            "error",
            "server",
            campaign,
            format!("drone {drone} lost: {why}"),
        );
        let abort = self
            .store
            .campaign(campaign)
            .ok()
            .flatten()
            .and_then(|row| self.info(&row).ok())
            .is_some_and(|i| i.abort_on_drone_loss);
        if abort {
            self.stop_drones(
                campaign,
                &format!("drone {drone} was lost and onDroneLoss is 'abort'"),
            );
        }
        self.changed.notify_waiters();
    }

    /// Once a second: heartbeats (to drones silent for [`PING_WHEN_SILENT`]), loss detection, live statistics, abort-on-fail thresholds.
    pub async fn tick_forever(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut nonce = 0u64;
        loop {
            every.tick().await;
            nonce += 1;
            let now = Instant::now();
            let mut silent = Vec::new();
            let mut gone = Vec::new();
            self.each_live(|campaign, l| {
                for (id, s) in &l.sessions {
                    // A drone heard from lately (its stats arrive every second while it
                    // runs) needs no ping: at 10,000 drones that is 20,000 messages a
                    // second saved.
                    if now.duration_since(s.last_seen) >= PING_WHEN_SILENT {
                        let _ = s.tx.try_send(Ok(ServerCommand {
                            cmd: Some(Cmd::Ping(v1::Ping { nonce })),
                        }));
                    }
                    if s.state == DroneState::Running
                        && now.duration_since(s.last_seen) > self.drone_timeout
                    {
                        silent.push((campaign.to_string(), id.clone()));
                    }
                }
                for (id, since) in &l.disconnected {
                    if now.duration_since(*since) > self.drone_timeout {
                        gone.push((campaign.to_string(), id.clone()));
                    }
                }
            });
            for (campaign, id) in silent {
                self.lose(
                    &campaign,
                    &id,
                    format!("no message for {:?}", self.drone_timeout),
                )
                .await;
            }
            for (campaign, id) in gone {
                self.lose(
                    &campaign,
                    &id,
                    format!("disconnected and not back within {:?}", self.drone_timeout),
                )
                .await;
            }
            self.publish_live();
        }
    }

    fn publish_live(&self) {
        let mut points = Vec::new();
        let mut aborts = Vec::new();
        self.each_live(|campaign, l| {
            if let Some(point) = take_point(l) {
                let abort_check = l
                    .stopped
                    .is_none()
                    .then(|| (campaign.to_string(), l.elapsed_s(), l.totals().into_owned()));
                points.push((campaign.to_string(), point));
                aborts.extend(abort_check);
            }
        });
        for (campaign, taken) in points {
            self.keep_point(&campaign, taken);
        }
        for (campaign, duration_s, totals) in aborts {
            let Some(info) = self
                .store
                .campaign(&campaign)
                .ok()
                .flatten()
                .and_then(|r| self.info(&r).ok())
            else {
                continue;
            };
            let view = StatsView {
                stats: &totals,
                duration_s,
            };
            for t in info.thresholds.iter().filter(|t| t.abort_on_fail) {
                let v = t.evaluate(&view);
                if v.value.is_some() && !v.ok {
                    self.stop_drones(
                        &campaign,
                        &format!(
                            "threshold {} {} broke (value {:.3}) and has abortOnFail",
                            v.metric,
                            v.expr,
                            v.value.unwrap_or(0.0)
                        ),
                    );
                    break;
                }
            }
        }
    }

    /// Closes the run's last interval into a series point, so that the series holds
    /// every delta before the results are written (called when the run ends).
    pub(crate) fn flush_series(&self, campaign: &str) {
        if let Some(taken) = self.with_live(campaign, take_point) {
            self.keep_point(campaign, taken);
        }
    }

    /// Stores a series point (through the store's writer, without waiting) and
    /// publishes its live figures to the campaign's watchers.
    fn keep_point(&self, campaign: &str, taken: TakenPoint) {
        let encoded = camut::series::to_wire(&taken.point).encode_to_vec();
        let covered = serde_json::to_string(&taken.covered).unwrap_or_default();
        self.store
            .append_series(campaign, taken.point.time_ms, encoded, covered);
        self.event(campaign, v1::campaign_event::Event::Stats(taken.stats));
    }
}

/// A point taken from a run's interval, with what it needs to be kept and published.
struct TakenPoint {
    point: SeriesPoint,
    /// The live figures published with it.
    stats: v1::LiveStats,
    /// The highest sequence number of each drone's deltas merged so far: what the
    /// series covers once this point is stored.
    covered: HashMap<String, u64>,
}

/// Takes the interval of a campaign's run into a series point (kept in its live
/// history) and the live figures published with it; nothing when the interval is empty.
fn take_point(l: &mut Live) -> Option<TakenPoint> {
    let interval = l.take_interval();
    if interval.is_empty() {
        return None;
    }
    // The interval was just folded in: the totals are the folded set itself.
    let totals = l.totals();
    let (requests, errors) = totals.request_totals();
    let it = &totals.iterations;
    let active_vus = it.started.saturating_sub(it.completed + it.failed);
    let iterations_done = it.completed + it.failed;
    let point = SeriesPoint::from_interval(now_ms(), &interval, active_vus);
    let stats = v1::LiveStats {
        iterations_done,
        requests,
        errors,
        requests_per_s: point.total.requests as f64,
        p50_ms: point.total.p50_ms,
        p90_ms: point.total.p90_ms,
        p99_ms: point.total.p99_ms,
        errors_per_s: point.total.errors as f64,
    };
    if l.history.len() >= HISTORY_POINTS {
        l.history.pop_front();
    }
    l.history.push_back(point.clone());
    Some(TakenPoint {
        point,
        stats,
        covered: l.acked.clone(),
    })
}

#[cfg(test)]
mod tests {
    use camut::v1;
    use camut_stats::{CallKey, StatsSet};

    use crate::testing::core_with;

    fn stats(seq: u64, requests: u64) -> v1::Stats {
        let mut set = StatsSet::default();
        let call = set.call(&CallKey {
            operation: "GET /".into(),
            status_class: 200,
        });
        call.requests = requests;
        call.response_time.record(1_000).unwrap();
        v1::Stats {
            seq,
            delta: Some(camut::stats::to_wire(&set)),
        }
    }

    #[tokio::test]
    async fn a_crafted_histogram_is_refused_before_it_is_stored_and_the_results_say_so() {
        let (core, _dir) = core_with(1);
        core.create("c.js", "c 1", &Default::default())
            .await
            .unwrap();
        assert_eq!(core.ingest("c", "d1", stats(1, 3)).await.unwrap(), 1);
        // A V2 header announcing 2·10⁹ payload bytes it does not carry: what a hostile
        // drone sends to make the server allocate.
        let mut bad = stats(2, 5);
        let mut crafted = vec![0u8; 40];
        crafted[..4].copy_from_slice(&0x1c84_9313u32.to_be_bytes());
        crafted[4..8].copy_from_slice(&2_000_000_000u32.to_be_bytes());
        bad.delta.as_mut().unwrap().calls[0].response_time = crafted.into();
        // Refused, yet acknowledged: sending it again cannot make it valid.
        assert_eq!(core.ingest("c", "d1", bad).await.unwrap(), 2);
        assert_eq!(core.ingest("c", "d1", stats(3, 4)).await.unwrap(), 3);
        let stored: Vec<u64> = core
            .store
            .stats("c")
            .unwrap()
            .iter()
            .map(|(_, seq, _)| *seq)
            .collect();
        assert_eq!(stored, [1, 3], "the invalid delta is not stored");
        let (summary, results) = core.build_results("c").unwrap();
        assert_eq!(summary.requests, 7, "only the valid deltas are counted");
        assert!(results.degraded);
        assert_eq!(results.lost.len(), 1, "{:?}", results.lost);
        assert!(
            results.lost[0].starts_with("d1: 1 statistics deltas were invalid")
                && results.lost[0].contains("#2")
                && results.lost[0].contains("announces 2000000000 payload bytes"),
            "{:?}",
            results.lost
        );
    }
}
