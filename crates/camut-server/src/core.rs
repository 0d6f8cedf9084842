//! The server's state and who owns it.
//!
//! [`Core`] holds what every room of the server shares: the store, the configuration,
//! the job registry and, per campaign, one [`Live`] struct behind one lock. The rooms
//! act on it through methods, never through each other's locks:
//!
//! - [`crate::campaigns`]: create, update, delete and the API's views of a campaign;
//! - [`crate::jobs`]: the job queue (submit, cancel, delete, resume after a restart);
//! - [`crate::flows`]: spawn, deploy, start, stop and kill against a deployer;
//! - [`crate::results`]: merged totals, the final summary and the results view;
//! - [`crate::hub`]: drone sessions, heartbeats, loss, statistics ingestion.
//!
//! Why one lock per campaign rather than one task per campaign: every reader (API
//! views, `/metrics`, the console, the once-a-second tick) needs a consistent snapshot of
//! a campaign's sessions and totals, which a short `std` mutex gives without a round
//! trip through a channel; no lock is ever held across an `.await`, and campaigns never
//! wait on each other. The registry of campaigns has a lock of its own that is held only
//! to find or add a campaign. One part of a campaign's state lives outside its lock: the
//! histogram counts of the current second, added by the runtime's threads side by side
//! ([`crate::pending`]), which was most of the time that lock was held at 10,000 drones.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use camut::v1::{self, deployer_server::Deployer, ServerCommand};
use camut_stats::codec::CodecError;
use camut_stats::series::SeriesPoint;
use camut_stats::{OperationCap, StatsSet};
use tokio::sync::{broadcast, mpsc, Notify};
use tonic::Status;

use crate::campaign::{CampaignInfo, Inspector};
use crate::error::ServerError;
use crate::jobs::JobRegistry;
use crate::logs::LogBuffer;
use crate::pending::{Pending, PendingAdd};
use crate::state::{CampaignState, DroneState};
use crate::store::{now_ms, CampaignRow, Store};

/// Live points kept per campaign (an hour at one a second).
pub(crate) const HISTORY_POINTS: usize = 3600;

/// The command channel to one drone.
pub(crate) type DroneTx = mpsc::Sender<Result<ServerCommand, Status>>;

/// A connected drone.
pub(crate) struct Session {
    /// Which stream of the drone this is (a reconnection makes a new one).
    pub generation: u64,
    pub index: u32,
    pub tx: DroneTx,
    pub state: DroneState,
    pub last_seen: Instant,
    pub last_seen_ms: i64,
    pub iterations_done: u64,
    pub errors: u64,
    pub error: String,
}

impl Session {
    /// The API's view of this session.
    pub fn status(&self, id: &str) -> v1::DroneStatus {
        v1::DroneStatus {
            id: id.into(),
            index: self.index,
            state: self.state.wire(),
            iterations_done: self.iterations_done,
            errors: self.errors,
            last_seen_ms: self.last_seen_ms,
            error: self.error.clone(),
        }
    }
}

/// Counts shown per drone in the results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DroneCounts {
    pub requests: u64,
    pub errors: u64,
    pub iterations: u64,
}

impl DroneCounts {
    /// Adds one wire delta's counts.
    pub fn add(&mut self, d: &v1::StatsDelta) {
        for c in &d.calls {
            self.requests += c.requests;
            self.errors += c.errors;
        }
        if let Some(it) = &d.iterations {
            self.iterations += it.completed + it.failed;
        }
    }
}

/// Everything the server follows of one campaign in memory: its drones' sessions and
/// its current run. The durable part lives in the store; this is rebuilt from it after a
/// restart.
#[derive(Default)]
pub(crate) struct Live {
    /// Connected drones, by drone id.
    pub sessions: HashMap<String, Session>,
    /// Drones of the running campaign whose stream ended: since when.
    pub disconnected: HashMap<String, Instant>,
    /// Drone id → index of the drones of the current deployment (the store's drones
    /// table, loaded once), so that a drone joining costs no scan of the others.
    pub indexes: Option<HashMap<String, u32>>,
    /// How many drones the current deployment has room for (its instances).
    pub seats: Option<u32>,
    /// The state the campaign is headed for while jobs are pending.
    pub projected: Option<CampaignState>,
    /// Spawn, deploy and start of this campaign run one after the other.
    pub queue: Arc<tokio::sync::Mutex<()>>,
    /// Merged statistics of the run up to the last tick: every stored delta once, except
    /// those still in `interval`. [`Live::totals`] gives both.
    folded: StatsSet,
    /// What arrived since the last tick; folded into the totals by [`Live::take_interval`].
    /// Its histograms wait in `pending` until then.
    interval: StatsSet,
    /// The histogram counts of this tick's deltas, added by index: each distinct value
    /// is recorded once a tick instead of once per delta (at 10,000 drones, most of the
    /// merging cost). Added outside this lock (see [`crate::pending`]).
    pending: Arc<Pending>,
    /// Per-drone counts of the run so far.
    pub per_drone: BTreeMap<String, DroneCounts>,
    /// Highest sequence number stored per drone.
    pub acked: HashMap<String, u64>,
    pub finished: HashSet<String>,
    pub lost: BTreeMap<String, String>,
    /// Lost drones that came back and delivered every delta of their run: what they
    /// measured is whole in the results.
    pub returned: HashSet<String>,
    /// Drones whose statistics the store refused, with the first refused sequence
    /// number and the error; cleared for a drone once a later delta of it is stored
    /// (it resends in order, so the refused ones were stored first).
    pub refused: BTreeMap<String, (u64, String)>,
    /// Drones that sent deltas whose histograms do not check: how many, the first one's
    /// number and why. Such deltas are neither stored nor counted.
    pub invalid: BTreeMap<String, (u64, u64, String)>,
    pub started: Option<Instant>,
    /// Why the run was stopped, when it was.
    pub stopped: Option<String>,
    pub events: Option<broadcast::Sender<v1::CampaignEvent>>,
    /// The live figures of this run, one point a second, the newest last.
    pub history: VecDeque<SeriesPoint>,
    /// The bound on distinct operations of this run's statistics.
    pub operations: OperationCap,
    /// Secret values of the campaign's environment, masked in its drones' log lines.
    pub secrets: Vec<String>,
}

impl Live {
    /// Forgets the previous run (a new deployment starts a new one); sessions, the
    /// queue and subscribers stay.
    pub fn new_run(&mut self, max_operations: u32) {
        self.operations = OperationCap::new(max_operations);
        self.indexes = Some(HashMap::new());
        self.seats = None;
        self.folded = StatsSet::default();
        self.interval = StatsSet::default();
        self.pending = Default::default();
        self.per_drone.clear();
        self.acked.clear();
        self.finished.clear();
        self.lost.clear();
        self.returned.clear();
        self.refused.clear();
        self.invalid.clear();
        self.started = None;
        self.stopped = None;
        self.history.clear();
        self.disconnected.clear();
    }

    /// Merges a stored delta of `drone` into this tick's interval (nothing when it does
    /// not decode). Each delta is merged once, straight from its wire form; the interval
    /// joins the totals once a tick.
    pub fn merge(
        &mut self,
        drone: &str,
        delta: &camut::stats::CheckedDelta<'_>,
    ) -> Result<(), CodecError> {
        self.merge_counters(drone, delta)?.add(delta);
        Ok(())
    }

    /// The first half of [`Live::merge`], under the campaign's lock: counters, series
    /// and per-drone counts. The histogram counts are added by the returned
    /// [`PendingAdd`], once the lock is released. (A tick between the halves counts the
    /// delta's calls in one second and their histograms in the next; totals are exact
    /// either way.)
    pub fn merge_counters(
        &mut self,
        drone: &str,
        delta: &camut::stats::CheckedDelta<'_>,
    ) -> Result<PendingAdd, CodecError> {
        let keys = delta.merge_counters(&mut self.interval, &mut self.operations)?;
        let counts = match self.per_drone.get_mut(drone) {
            Some(counts) => counts,
            None => self.per_drone.entry(drone.to_string()).or_default(),
        };
        counts.add(delta.delta());
        // A drone's row shows what it stored: no separate progress message is needed.
        if let Some(s) = self.sessions.get_mut(drone) {
            s.iterations_done = s.iterations_done.max(counts.iterations);
            s.errors = s.errors.max(counts.errors);
        }
        Ok(PendingAdd {
            keys,
            into: self.pending.clone(),
        })
    }

    /// The statistics of this tick so far, folded into the totals as they are taken.
    pub fn take_interval(&mut self) -> StatsSet {
        if let Err(e) = self.pending.drain_into(&mut self.interval) {
            // Checked deltas of the standard layout always record: this is a bug.
            tracing::error!("cannot record this tick's histograms: {e}");
        }
        let interval = std::mem::take(&mut self.interval);
        self.folded.merge(&interval);
        interval
    }

    /// The run's merged statistics so far, exact: the folded totals and this tick's part.
    pub fn totals(&self) -> Cow<'_, StatsSet> {
        if self.interval.is_empty() && self.pending.is_empty() {
            Cow::Borrowed(&self.folded)
        } else {
            let mut all = self.folded.clone();
            all.merge(&self.interval);
            if let Err(e) = self.pending.record_into(&mut all) {
                tracing::error!("cannot record this tick's histograms: {e}");
            }
            Cow::Owned(all)
        }
    }

    /// Calls and failed calls so far, without merging histograms.
    pub fn request_totals(&self) -> (u64, u64) {
        let (a, b) = (self.folded.request_totals(), self.interval.request_totals());
        (a.0 + b.0, a.1 + b.1)
    }

    /// Iterations done so far (completed or failed), without merging histograms.
    pub fn iterations_done(&self) -> u64 {
        let (a, b) = (&self.folded.iterations, &self.interval.iterations);
        a.completed + a.failed + b.completed + b.failed
    }

    /// Whether no statistics arrived in this run.
    pub fn no_stats(&self) -> bool {
        self.folded.is_empty() && self.interval.is_empty() && self.pending.is_empty()
    }

    /// Seconds since the run started (0 before).
    pub fn elapsed_s(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }
}

/// One campaign's live state behind its one lock.
pub(crate) type LiveCell = Arc<Mutex<Live>>;

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
    /// The `tsdb` section of campaigns whose file has none.
    pub default_tsdb: Option<camut_tsdb::TsdbConfig>,
}

/// The server's state and behaviour, shared by every service.
pub struct Core {
    pub(crate) store: Store,
    pub(crate) deployers: BTreeMap<String, Arc<dyn Deployer>>,
    pub(crate) default_deployer: String,
    pub(crate) server_id: String,
    pub(crate) default_tsdb: Option<camut_tsdb::TsdbConfig>,
    pub(crate) public_url: String,
    pub(crate) inspector: Arc<dyn Inspector>,
    pub(crate) drone_timeout: Duration,
    campaigns: Mutex<HashMap<String, LiveCell>>,
    pub(crate) jobs: JobRegistry,
    /// Woken at every change a waiting flow may care about.
    pub(crate) changed: Notify,
    pub(crate) logs: Arc<LogBuffer>,
    pub(crate) next_generation: AtomicU64,
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data behind, so its
/// poison is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Core {
    /// A core over `parts`; call [`Core::resume`] to pick up what a previous process left.
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
            campaigns: Mutex::new(HashMap::new()),
            jobs: JobRegistry::default(),
            changed: Notify::new(),
            logs: Arc::default(),
            next_generation: AtomicU64::new(1),
        })
    }

    /// The live cell of a campaign, made when first needed.
    pub(crate) fn cell(&self, campaign: &str) -> LiveCell {
        lock(&self.campaigns)
            .entry(campaign.to_string())
            .or_default()
            .clone()
    }

    /// Runs `f` on a campaign's live state under its lock.
    pub(crate) fn with_live<R>(&self, campaign: &str, f: impl FnOnce(&mut Live) -> R) -> R {
        let cell = self.cell(campaign);
        let mut live = lock(&cell);
        f(&mut live)
    }

    /// Runs `f` on every campaign's live state, one campaign at a time.
    pub(crate) fn each_live(&self, mut f: impl FnMut(&str, &mut Live)) {
        let cells: Vec<(String, LiveCell)> = lock(&self.campaigns)
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        for (id, cell) in cells {
            f(&id, &mut lock(&cell));
        }
    }

    /// Forgets a deleted campaign's live state.
    pub(crate) fn forget(&self, campaign: &str) {
        lock(&self.campaigns).remove(campaign);
    }

    /// The campaign's info.
    pub(crate) fn info(&self, row: &CampaignRow) -> Result<CampaignInfo, ServerError> {
        serde_json::from_str(&row.info)
            .map_err(|e| ServerError::Store(format!("campaign {} info: {e}", row.id)))
    }

    /// A stored campaign, or NotFound.
    pub(crate) fn campaign_row(&self, id: &str) -> Result<CampaignRow, ServerError> {
        self.store
            .campaign(id)?
            .ok_or_else(|| ServerError::CampaignNotFound(id.into()))
    }

    /// Saves a campaign's state, tells its watchers and wakes waiting flows.
    pub(crate) async fn set_state(&self, id: &str, st: CampaignState, error: &str) {
        if let Err(e) = self.store.set_campaign_state(id, st, error).await {
            self.logs.push(
                "error",
                "server",
                id,
                format!("cannot save state {st}: {e}"),
            );
        }
        self.event(id, v1::campaign_event::Event::State(st.wire()));
        self.changed.notify_waiters();
    }

    /// Sends an event to a campaign's watchers.
    pub(crate) fn event(&self, campaign: &str, event: v1::campaign_event::Event) {
        let tx = self.with_live(campaign, |l| l.events.clone());
        if let Some(tx) = tx {
            let _ = tx.send(v1::CampaignEvent {
                time_ms: now_ms(),
                event: Some(event),
            });
        }
    }

    /// The live series of a campaign's current (or last) run, oldest first.
    /// After a restart, before a new point, they come from the store (the last hour).
    pub fn live_history(&self, campaign: &str) -> Vec<SeriesPoint> {
        let live: Vec<SeriesPoint> =
            self.with_live(campaign, |l| l.history.iter().cloned().collect());
        if !live.is_empty() {
            return live;
        }
        self.stored_history(campaign)
    }

    /// Calls and failed calls of a campaign's current (or last) run so far.
    pub fn live_request_totals(&self, campaign: &str) -> (u64, u64) {
        self.with_live(campaign, |l| l.request_totals())
    }

    /// Events of a campaign from now on.
    pub fn subscribe(&self, campaign: &str) -> broadcast::Receiver<v1::CampaignEvent> {
        self.with_live(campaign, |l| {
            l.events
                .get_or_insert_with(|| broadcast::channel(256).0)
                .subscribe()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(requests: u64, value: u64) -> v1::StatsDelta {
        let mut s = StatsSet::default();
        let c = s.call(&camut_stats::CallKey {
            operation: "GET /".into(),
            status_class: 200,
        });
        for _ in 0..requests {
            c.requests += 1;
            c.response_time.record(value).unwrap();
        }
        s.iterations.completed = requests;
        camut::stats::to_wire(&s)
    }

    #[test]
    fn totals_are_exact_between_ticks_and_intervals_fold_once() {
        let mut l = Live::default();
        l.merge("a", &camut::stats::check_wire(&delta(3, 100)).unwrap())
            .unwrap();
        l.merge("b", &camut::stats::check_wire(&delta(4, 900)).unwrap())
            .unwrap();
        // Before any tick the totals already hold both deltas.
        assert_eq!(l.totals().request_totals(), (7, 0));
        assert_eq!(l.iterations_done(), 7);
        let first = l.take_interval();
        assert_eq!(first.request_totals(), (7, 0));
        assert_eq!(l.totals().request_totals(), (7, 0), "folded, not lost");
        l.merge("a", &camut::stats::check_wire(&delta(2, 50)).unwrap())
            .unwrap();
        assert_eq!(l.totals().request_totals(), (9, 0));
        let second = l.take_interval();
        assert_eq!(
            second.request_totals(),
            (2, 0),
            "an interval is this tick's only"
        );
        let totals = l.totals();
        let rt = &totals.calls.values().next().unwrap().response_time;
        assert_eq!((rt.len(), rt.min(), rt.max()), (9, 50, 900));
        assert!(l.take_interval().is_empty());
        assert_eq!(l.totals().request_totals(), (9, 0));
        assert_eq!(l.per_drone["a"].requests, 5);
        assert_eq!(l.per_drone["b"].iterations, 4);
    }

    #[test]
    fn a_run_keeps_at_most_max_operations_and_counts_the_rest_in_one_series() {
        let mut l = Live::default();
        l.new_run(2);
        for (i, drone) in ["a", "b", "c", "d"].iter().enumerate() {
            let mut s = StatsSet::default();
            // Each drone sends its own operation: a hostile drone inventing names gets
            // the overflow series, not new memory.
            let c = s.call(&camut_stats::CallKey {
                operation: format!("GET /item/{i}"),
                status_class: 200,
            });
            c.requests = 10;
            c.response_time.record(100).unwrap();
            let wire = camut::stats::to_wire(&s);
            l.merge(drone, &camut::stats::check_wire(&wire).unwrap())
                .unwrap();
        }
        l.take_interval();
        let totals = l.totals();
        let mut ops: Vec<&str> = totals.calls.keys().map(|k| k.operation.as_str()).collect();
        ops.sort();
        assert_eq!(
            ops,
            [
                camut_stats::OVERFLOW_OPERATION,
                "GET /item/0",
                "GET /item/1"
            ]
        );
        assert_eq!(totals.request_totals(), (40, 0), "nothing is lost");
        let overflow = totals
            .calls
            .iter()
            .find(|(k, _)| k.operation == camut_stats::OVERFLOW_OPERATION)
            .unwrap()
            .1;
        assert_eq!((overflow.requests, overflow.response_time.len()), (20, 2));
    }

    #[test]
    fn an_undecodable_delta_does_not_check() {
        let mut bad = delta(1, 10);
        bad.calls[0].response_time = vec![0; 41].into();
        assert!(camut::stats::check_wire(&bad).is_err());
    }
}
