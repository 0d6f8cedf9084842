//! The drone hub: the `Connect` command streams, heartbeats, loss detection, and the
//! once-a-second live statistics and abort-on-fail thresholds.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camut::v1::{self, drone_message::Msg, server_command::Cmd, DroneMessage, ServerCommand};
use camut_stats::summary::StatsView;
use camut_stats::LatencyStats;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::campaign::state;
use crate::core::{Core, LivePoint, Session, HISTORY_POINTS};
use crate::store::now_ms;

/// The protocol version this server speaks.
pub const PROTOCOL: i32 = v1::ProtocolVersion::ProtocolVersion1 as i32;
/// How long a drone has to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The outbound stream type of Connect.
pub type CommandStream = Pin<Box<dyn Stream<Item = Result<ServerCommand, Status>> + Send>>;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
    // Keep a known drone's index; give a new one the next free index.
    let known = core.store.drones(&campaign.id).map_err(Status::from)?;
    let index = match known.iter().find(|d| d.id == hello.drone_id) {
        Some(d) => d.index,
        None => {
            let instances = core
                .store
                .instances(&campaign.id)
                .map_err(Status::from)?
                .len();
            if known.len() >= instances.max(1) {
                return Err(Status::failed_precondition(format!(
                    "campaign {} already has its {} drones",
                    campaign.id,
                    known.len()
                )));
            }
            known.len() as u32
        }
    };
    let info = core.info(&campaign).map_err(Status::from)?;
    let (tx, rx) = mpsc::channel::<Result<ServerCommand, Status>>(256);
    let generation = core.next_generation.fetch_add(1, Ordering::Relaxed);
    let resuming = hello.running_campaign == campaign.id && campaign.state == state::RUNNING;
    let st = if resuming { "running" } else { "connected" };
    lock(&core.sessions).insert(
        hello.drone_id.clone(),
        Session {
            generation,
            campaign: campaign.id.clone(),
            index,
            tx: tx.clone(),
            state: st.into(),
            last_seen: Instant::now(),
            iterations_done: 0,
            errors: 0,
            last_seen_ms: now_ms(),
            error: String::new(),
        },
    );
    lock(&core.disconnected).remove(&hello.drone_id);
    core.save_drone_state(&campaign.id, &hello.drone_id, st, "");
    let acked = core
        .store
        .max_seq(&campaign.id, &hello.drone_id)
        .map_err(Status::from)?;
    core.logs.push(
        "info",
        &hello.drone_id,
        &campaign.id,
        format!(
            "drone {} joined campaign {} as #{index}{}",
            hello.drone_id,
            campaign.id,
            if resuming { " (resuming its run)" } else { "" }
        ),
    );
    let welcome = ServerCommand {
        cmd: Some(Cmd::Welcome(v1::Welcome {
            protocol: PROTOCOL,
            acked_seq: acked,
        })),
    };
    let _ = tx.send(Ok(welcome)).await;
    if !resuming
        && [
            state::SPAWNED,
            state::DEPLOYED,
            state::FINISHED,
            state::STOPPED,
        ]
        .contains(&campaign.state.as_str())
    {
        let configure = v1::Configure {
            campaign: campaign.id.clone(),
            file: campaign.file.clone(),
            source: campaign.source.clone(),
            drone_index: index,
            drone_count: info.drones,
            default_tsdb: core.default_tsdb.clone().unwrap_or_default(),
        };
        let _ = tx
            .send(Ok(ServerCommand {
                cmd: Some(Cmd::Configure(configure)),
            }))
            .await;
    }
    core.drone_event(&campaign.id, &hello.drone_id);
    core.changed.notify_waiters();
    let drone = hello.drone_id.clone();
    let campaign_id = campaign.id.clone();
    tokio::spawn(async move {
        while let Some(msg) = inbound.next().await {
            let Ok(DroneMessage { msg: Some(msg) }) = msg else {
                break;
            };
            core.on_message(&campaign_id, &drone, generation, msg, &tx)
                .await;
        }
        core.on_disconnect(&campaign_id, &drone, generation);
    });
    Ok(Response::new(
        Box::pin(ReceiverStream::new(rx)) as CommandStream
    ))
}

impl Core {
    async fn on_message(
        &self,
        campaign: &str,
        drone: &str,
        generation: u64,
        msg: Msg,
        tx: &mpsc::Sender<Result<ServerCommand, Status>>,
    ) {
        {
            let mut sessions = lock(&self.sessions);
            match sessions.get_mut(drone) {
                Some(s) if s.generation == generation => {
                    s.last_seen = Instant::now();
                    s.last_seen_ms = now_ms();
                }
                _ => return, // a stale stream of a drone that reconnected
            }
        }
        match msg {
            Msg::Ready(_) => {
                self.set_session_state(drone, "ready", "");
                self.save_drone_state(campaign, drone, "ready", "");
                self.logs
                    .push("info", drone, campaign, format!("drone {drone} is ready"));
            }
            Msg::CompileError(e) => {
                self.set_session_state(drone, "error", &e.message);
                self.save_drone_state(campaign, drone, "error", &e.message);
                self.logs.push(
                    "error",
                    drone,
                    campaign,
                    format!("drone {drone} cannot compile: {}", e.message),
                );
            }
            Msg::Progress(p) => {
                if let Some(s) = lock(&self.sessions).get_mut(drone) {
                    s.iterations_done = p.iterations_done;
                    s.errors = p.errors;
                }
            }
            Msg::Stats(s) => {
                let acked = self.ingest(campaign, drone, s);
                let _ = tx
                    .send(Ok(ServerCommand {
                        cmd: Some(Cmd::Ack(v1::Ack { seq: acked })),
                    }))
                    .await;
            }
            Msg::Log(l) => self.logs.push(&l.level, drone, campaign, l.line),
            Msg::Finished(f) => {
                let _ = self.store.set_drone_summary(drone, &f.summary_json);
                self.set_session_state(drone, "finished", "");
                self.save_drone_state(campaign, drone, "finished", "");
                lock(&self.live)
                    .entry(campaign.to_string())
                    .or_default()
                    .finished
                    .insert(drone.to_string());
                self.logs.push(
                    "info",
                    drone,
                    campaign,
                    format!("drone {drone} finished (last stats #{})", f.last_seq),
                );
            }
            Msg::Pong(_) | Msg::Hello(_) => {}
        }
        self.drone_event(campaign, drone);
        self.changed.notify_waiters();
    }

    /// Stores and merges a delta once; returns the highest sequence number held.
    fn ingest(&self, campaign: &str, drone: &str, s: v1::Stats) -> u64 {
        let acked = lock(&self.live)
            .get(campaign)
            .and_then(|l| l.acked.get(drone).copied())
            .unwrap_or(0);
        if s.seq <= acked {
            return acked; // a resend after a reconnection: already counted
        }
        let Some(delta) = s.delta else { return acked };
        let bytes = delta.encode_to_vec();
        match self.store.insert_stats(campaign, drone, s.seq, &bytes) {
            Ok(true) => {}
            Ok(false) => return s.seq,
            Err(e) => {
                self.logs.push(
                    "error",
                    "server",
                    campaign,
                    format!("cannot store stats of {drone}: {e}"),
                );
                return acked;
            }
        }
        let Ok(set) = camut::stats::from_wire(&delta) else {
            self.logs.push(
                "warn",
                "server",
                campaign,
                format!("drone {drone} sent undecodable stats #{}", s.seq),
            );
            return s.seq;
        };
        let mut live = lock(&self.live);
        let l = live.entry(campaign.to_string()).or_default();
        l.totals.merge(&set);
        l.interval.merge(&set);
        l.acked.insert(drone.to_string(), s.seq);
        s.seq
    }

    fn set_session_state(&self, drone: &str, st: &str, error: &str) {
        if let Some(s) = lock(&self.sessions).get_mut(drone) {
            s.state = st.into();
            s.error = error.into();
        }
    }

    fn on_disconnect(&self, campaign: &str, drone: &str, generation: u64) {
        let removed = {
            let mut sessions = lock(&self.sessions);
            match sessions.get(drone) {
                Some(s) if s.generation == generation => sessions.remove(drone),
                _ => None,
            }
        };
        let Some(s) = removed else { return };
        self.logs.push(
            if s.state == "running" { "warn" } else { "info" },
            drone,
            campaign,
            format!("drone {drone} disconnected"),
        );
        if s.state == "running" {
            lock(&self.disconnected)
                .insert(drone.to_string(), (campaign.to_string(), Instant::now()));
        } else if s.state != "finished" {
            self.save_drone_state(campaign, drone, "disconnected", "");
        }
        self.changed.notify_waiters();
    }

    fn drone_event(&self, campaign: &str, drone: &str) {
        let status = {
            let sessions = lock(&self.sessions);
            sessions.get(drone).map(|s| v1::DroneStatus {
                id: drone.into(),
                index: s.index,
                state: s.state.clone(),
                iterations_done: s.iterations_done,
                errors: s.errors,
                last_seen_ms: s.last_seen_ms,
                error: s.error.clone(),
            })
        };
        if let Some(st) = status {
            self.event(campaign, v1::campaign_event::Event::Drone(st));
        }
    }

    /// Marks a drone of a running campaign lost and applies the campaign's policy.
    fn lose(&self, campaign: &str, drone: &str, why: String) {
        {
            let mut live = lock(&self.live);
            let l = live.entry(campaign.to_string()).or_default();
            if l.finished.contains(drone) || l.lost.contains_key(drone) {
                return;
            }
            l.lost.insert(drone.to_string(), why.clone());
        }
        lock(&self.sessions).remove(drone);
        lock(&self.disconnected).remove(drone);
        self.save_drone_state(campaign, drone, "lost", &why);
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

    /// Once a second: heartbeats, loss detection, live statistics, abort-on-fail thresholds.
    pub async fn tick_forever(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut nonce = 0u64;
        loop {
            every.tick().await;
            nonce += 1;
            let now = Instant::now();
            let mut silent = Vec::new();
            {
                let sessions = lock(&self.sessions);
                for (id, s) in sessions.iter() {
                    let _ = s.tx.try_send(Ok(ServerCommand {
                        cmd: Some(Cmd::Ping(v1::Ping { nonce })),
                    }));
                    if s.state == "running" && now.duration_since(s.last_seen) > self.drone_timeout
                    {
                        silent.push((s.campaign.clone(), id.clone()));
                    }
                }
            }
            for (campaign, id) in silent {
                self.lose(
                    &campaign,
                    &id,
                    format!("no message for {:?}", self.drone_timeout),
                );
            }
            let gone: Vec<(String, String)> = lock(&self.disconnected)
                .iter()
                .filter(|(_, (_, since))| now.duration_since(*since) > self.drone_timeout)
                .map(|(d, (c, _))| (c.clone(), d.clone()))
                .collect();
            for (campaign, id) in gone {
                self.lose(
                    &campaign,
                    &id,
                    format!("disconnected and not back within {:?}", self.drone_timeout),
                );
            }
            self.publish_live();
        }
    }

    fn publish_live(&self) {
        let mut events = Vec::new();
        let mut aborts = Vec::new();
        {
            let mut live = lock(&self.live);
            for (campaign, l) in live.iter_mut() {
                if l.interval.is_empty() {
                    continue;
                }
                let interval = std::mem::take(&mut l.interval);
                let (requests, errors) = l.totals.request_totals();
                let (ireq, ierr) = interval.request_totals();
                let mut rt = camut_stats::histogram();
                for c in interval.calls.values() {
                    let _ = rt.add(&c.response_time);
                }
                let lat = LatencyStats::from_histogram(&rt, 1000.0);
                let it = &l.totals.iterations;
                let stats = v1::LiveStats {
                    iterations_done: it.completed + it.failed,
                    requests,
                    errors,
                    requests_per_s: ireq as f64,
                    p50_ms: lat.p50,
                    p90_ms: lat.p90,
                    p99_ms: lat.p99,
                    errors_per_s: ierr as f64,
                };
                if l.history.len() >= HISTORY_POINTS {
                    l.history.pop_front();
                }
                l.history.push_back(LivePoint {
                    time_ms: now_ms(),
                    stats,
                    active_vus: it.started.saturating_sub(it.completed + it.failed),
                });
                events.push((campaign.clone(), stats));
                if l.stopped.is_none() {
                    aborts.push((
                        campaign.clone(),
                        l.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
                        l.totals.clone(),
                    ));
                }
            }
        }
        for (campaign, stats) in events {
            self.event(&campaign, v1::campaign_event::Event::Stats(stats));
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
}
