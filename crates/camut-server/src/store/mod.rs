//! The durable store: campaigns, jobs, instances, drones, statistics deltas and results
//! in one SQLite file (WAL mode, synchronous commits), so that a server killed and
//! restarted loses nothing it acknowledged.
//!
//! Writes go to one [`writer`] thread that commits whatever is queued in one
//! transaction and answers each caller after the commit; reads use a connection of their
//! own, so they never wait behind a disk sync.

mod writer;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

pub use camut_stats::clock::now_ms;

use crate::error::ServerError;
use crate::state::{CampaignState, Command, DroneState, JobState};
use writer::Writer;
pub use writer::{StoreHealth, RECOVERY_WINDOW};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    source TEXT NOT NULL,
    info TEXT NOT NULL,
    state TEXT NOT NULL,
    join_token TEXT NOT NULL UNIQUE,
    error TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    log TEXT NOT NULL DEFAULT '[]',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX jobs_campaign ON jobs (campaign);
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    campaign TEXT NOT NULL,
    deployer TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL
);
CREATE TABLE drones (
    id TEXT PRIMARY KEY,
    campaign TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT ''
);
CREATE TABLE stats (
    campaign TEXT NOT NULL,
    drone TEXT NOT NULL,
    seq INTEGER NOT NULL,
    delta BLOB NOT NULL,
    PRIMARY KEY (campaign, drone, seq)
);
CREATE TABLE results (
    campaign TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    thresholds_ok INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT NOT NULL
);
"#,
    // Results as the encoded `CampaignResults` message; `summary` keeps the JSON of
    // results saved by earlier versions.
    r#"
ALTER TABLE results ADD COLUMN encoded BLOB;
"#,
    // A drone's own summary as the encoded `RunSummary` it sent; `drones.summary`
    // keeps the JSON earlier versions stored.
    r#"
ALTER TABLE drones ADD COLUMN summary_encoded BLOB;
"#,
    // Drones are keyed by campaign and id: two campaigns' drones may share an id
    // (two `camut drone` on one host) without one overwriting the other's row.
    r#"
CREATE TABLE drones_by_campaign (
    id TEXT NOT NULL,
    campaign TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    summary_encoded BLOB,
    PRIMARY KEY (campaign, id)
);
INSERT INTO drones_by_campaign (id, campaign, idx, state, error, summary, summary_encoded)
    SELECT id, campaign, idx, state, error, summary, summary_encoded FROM drones;
DROP TABLE drones;
ALTER TABLE drones_by_campaign RENAME TO drones
"#,
    // A run's per-second series: one encoded `SeriesPoint` per campaign and interval.
    r#"
CREATE TABLE series (
    campaign TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    point BLOB NOT NULL,
    PRIMARY KEY (campaign, time_ms)
);
"#,
    // Per campaign, the highest delta sequence number of each drone that the stored
    // series covers (JSON {drone: seq}), written with each point: after a restart, the
    // deltas past it go into the next point, so the series stays exact.
    r#"
CREATE TABLE series_cursor (
    campaign TEXT PRIMARY KEY,
    covered TEXT NOT NULL
);
"#,
    // Deltas are kept unique by (campaign, seq, drone): the deltas of one tick, one per
    // drone with the same number, land next to each other in the index, so a commit of
    // thousands of them touches a few index pages instead of one per drone. Each drone's
    // highest number has a small table of its own, for reconnections.
    r#"
CREATE TABLE stats_seq (
    campaign TEXT NOT NULL,
    drone TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (campaign, drone)
) WITHOUT ROWID;
INSERT INTO stats_seq (campaign, drone, seq)
    SELECT campaign, drone, MAX(seq) FROM stats GROUP BY campaign, drone;
CREATE TABLE stats_by_tick (
    campaign TEXT NOT NULL,
    drone TEXT NOT NULL,
    seq INTEGER NOT NULL,
    delta BLOB NOT NULL,
    UNIQUE (campaign, seq, drone)
);
INSERT INTO stats_by_tick (campaign, drone, seq, delta)
    SELECT campaign, drone, seq, delta FROM stats;
DROP TABLE stats;
ALTER TABLE stats_by_tick RENAME TO stats
"#,
    // Numbered runs: each deployment begins a run (`campaigns.run`), and a finished
    // run's results and series are kept under its number, so that no later command can
    // erase them. Results saved earlier become run 1. Campaigns also keep the
    // environment their drones get (`camut.env`), as JSON.
    r#"
ALTER TABLE campaigns ADD COLUMN run INTEGER NOT NULL DEFAULT 1;
ALTER TABLE campaigns ADD COLUMN env TEXT NOT NULL DEFAULT '[]';
CREATE TABLE runs (
    campaign TEXT NOT NULL,
    run INTEGER NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    thresholds_ok INTEGER NOT NULL,
    encoded BLOB,
    finished_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, run)
);
INSERT INTO runs (campaign, run, summary, thresholds_ok, encoded)
    SELECT campaign, 1, summary, thresholds_ok, encoded FROM results;
DROP TABLE results;
CREATE TABLE series_by_run (
    campaign TEXT NOT NULL,
    run INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    point BLOB NOT NULL,
    PRIMARY KEY (campaign, run, time_ms)
);
INSERT INTO series_by_run (campaign, run, time_ms, point)
    SELECT campaign, 1, time_ms, point FROM series;
DROP TABLE series;
ALTER TABLE series_by_run RENAME TO series
"#,
    // One row that `/healthz` rewrites: the store answers only when it can be written.
    r#"
CREATE TABLE probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_ms INTEGER NOT NULL
)
"#,
];

/// A campaign's saved results.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedResults {
    /// The encoded `CampaignResults` message.
    Encoded(Vec<u8>),
    /// The JSON summary an earlier version saved.
    Json(String),
}

/// A stored campaign row.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    /// Id.
    pub id: String,
    /// File name.
    pub file: String,
    /// Source.
    pub source: String,
    /// The inspected options, as JSON ([`crate::campaign::CampaignInfo`]).
    pub info: String,
    /// Lifecycle state.
    pub state: CampaignState,
    /// Drones' join token.
    pub join_token: String,
    /// Last error.
    pub error: String,
    /// Created, Unix ms.
    pub created_ms: i64,
    /// Updated, Unix ms.
    pub updated_ms: i64,
    /// The current run's number (the last deployment's); its results are kept under
    /// it once it finishes.
    pub run: u32,
    /// The environment its drones get as `camut.env`: JSON of [`crate::campaign::CampaignEnv`].
    pub env: String,
}

/// A stored job row.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: u64,
    /// Campaign.
    pub campaign: String,
    /// Kind.
    pub kind: Command,
    /// State.
    pub state: JobState,
    /// Steps done.
    pub progress_done: u32,
    /// Steps in all.
    pub progress_total: u32,
    /// Error.
    pub error: String,
    /// Log lines.
    pub log: Vec<String>,
    /// Created, Unix ms.
    pub created_ms: i64,
    /// Updated, Unix ms.
    pub updated_ms: i64,
}

/// A stored drone row.
#[derive(Debug, Clone)]
pub struct DroneRow {
    /// Drone id.
    pub id: String,
    /// Campaign.
    pub campaign: String,
    /// Index within the campaign.
    pub index: u32,
    /// State.
    pub state: DroneState,
    /// Error.
    pub error: String,
}

/// One entry of the operator's command log: a mutating call and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    /// Id (0 before it is stored).
    pub id: u64,
    /// When, Unix ms.
    pub time_ms: i64,
    /// The principal: the caller's `x-camut-user` name, `ui`, or `anonymous`.
    pub who: String,
    /// Where it came from: `grpc` or `ui`, and the peer address when known.
    pub origin: String,
    /// The call (`create`, `spawn`, `cancel-job`, …).
    pub action: String,
    /// What it acted on: a campaign id or `job N`.
    pub target: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it returned (a job id) or the error.
    pub result: String,
}

/// The SQLite store.
pub struct Store {
    reader: Mutex<Connection>,
    writer: Writer,
}

impl Store {
    /// Opens (or creates) `camut.db` in `dir` and applies pending migrations.
    pub fn open(dir: &Path) -> Result<Store, ServerError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            ServerError::Store(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("camut.db");
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            conn.execute_batch(&format!(
                "BEGIN; {m}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))?;
        }
        let reader = Connection::open(&path)?;
        reader.execute_batch("PRAGMA query_only = ON;")?;
        Ok(Store {
            reader: Mutex::new(reader),
            writer: Writer::start(conn)?,
        })
    }

    /// Runs a read on the reading connection.
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ServerError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Runs a write in the writer's next transaction; returns after the commit.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ServerError> {
        self.writer.write(f).await
    }

    /// Whether the store could be written, as the writer's last transactions found.
    pub fn health(&self) -> &StoreHealth {
        self.writer.health()
    }

    /// Writes and commits one row: fails when the store cannot be written now (disk
    /// full, I/O error, read-only file).
    pub async fn probe(&self) -> Result<(), ServerError> {
        let now = now_ms();
        self.write(move |db| {
            db.prepare_cached("INSERT OR REPLACE INTO probe (id, written_ms) VALUES (1, ?1)")?
                .execute([now])?;
            Ok(())
        })
        .await
    }

    /// Inserts a campaign; false when the id exists.
    pub async fn insert_campaign(&self, c: &CampaignRow) -> Result<bool, ServerError> {
        let c = c.clone();
        self.write(move |db| {
            let n = db.execute(
                "INSERT OR IGNORE INTO campaigns (id, file, source, info, state, join_token, error, created_ms, updated_ms, run, env)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![c.id, c.file, c.source, c.info, c.state, c.join_token, c.error, c.created_ms, c.updated_ms, c.run, c.env],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Replaces a campaign's source and options, and its environment when `env` (JSON)
    /// is given.
    pub async fn update_campaign_source(
        &self,
        id: &str,
        file: &str,
        source: &str,
        info: &str,
        env: Option<String>,
    ) -> Result<(), ServerError> {
        let (id, file, source, info) = (
            id.to_owned(),
            file.to_owned(),
            source.to_owned(),
            info.to_owned(),
        );
        self.write(move |db| {
            db.execute(
                "UPDATE campaigns SET file = ?2, source = ?3, info = ?4, updated_ms = ?5, \
                 env = COALESCE(?6, env) WHERE id = ?1",
                params![id, file, source, info, now_ms(), env],
            )
            .map(|_| ())
        })
        .await
    }

    /// Sets a campaign's state (and error).
    pub async fn set_campaign_state(
        &self,
        id: &str,
        state: CampaignState,
        error: &str,
    ) -> Result<(), ServerError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.write(move |db| {
            db.execute(
                "UPDATE campaigns SET state = ?2, error = ?3, updated_ms = ?4 WHERE id = ?1",
                params![id, state, error, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// Sets a campaign's error, keeping its state.
    pub async fn set_campaign_error(&self, id: &str, error: &str) -> Result<(), ServerError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.write(move |db| {
            db.execute(
                "UPDATE campaigns SET error = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, error, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// One campaign.
    pub fn campaign(&self, id: &str) -> Result<Option<CampaignRow>, ServerError> {
        self.with(|db| {
            db.query_row("SELECT * FROM campaigns WHERE id = ?1", [id], campaign_row)
                .optional()
        })
    }

    /// The campaign a join token belongs to. Every stored token is compared with the
    /// given one in constant time (`auth::same`), never looked up through the index,
    /// whose timing would tell how much of a guessed token is right.
    pub fn campaign_by_token(&self, token: &str) -> Result<Option<CampaignRow>, ServerError> {
        let id = self.with(|db| {
            let mut st = db.prepare("SELECT id, join_token FROM campaigns")?;
            let mut rows = st.query([])?;
            let mut found = None;
            while let Some(row) = rows.next()? {
                let stored: String = row.get(1)?;
                if crate::auth::same(&stored, token) {
                    found = Some(row.get::<_, String>(0)?);
                }
            }
            Ok(found)
        })?;
        match id {
            Some(id) => self.campaign(&id),
            None => Ok(None),
        }
    }

    /// All campaigns, newest first.
    pub fn campaigns(&self, limit: u32) -> Result<Vec<CampaignRow>, ServerError> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        self.with(|db| {
            let mut st =
                db.prepare("SELECT * FROM campaigns ORDER BY created_ms DESC, id LIMIT ?1")?;
            let rows = st.query_map([limit], campaign_row)?;
            rows.collect()
        })
    }

    /// One page of campaigns, newest first: `limit` after skipping `offset`.
    pub fn campaigns_page(&self, limit: u32, offset: u32) -> Result<Vec<CampaignRow>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT * FROM campaigns ORDER BY created_ms DESC, id LIMIT ?1 OFFSET ?2",
            )?;
            let rows = st.query_map([limit, offset], campaign_row)?;
            rows.collect()
        })
    }

    /// Deletes a campaign and everything that belongs to it.
    pub async fn delete_campaign(&self, id: &str) -> Result<(), ServerError> {
        let id = id.to_owned();
        self.write(move |db| {
            for table in ["stats", "stats_seq", "series", "series_cursor", "runs"] {
                db.execute(&format!("DELETE FROM {table} WHERE campaign = ?1"), [&id])?;
            }
            for table in ["jobs", "instances", "drones"] {
                db.execute(&format!("DELETE FROM {table} WHERE campaign = ?1"), [&id])?;
            }
            db.execute("DELETE FROM campaigns WHERE id = ?1", [id])
                .map(|_| ())
        })
        .await
    }

    /// Adds a job; returns it.
    pub async fn insert_job(&self, campaign: &str, kind: Command) -> Result<JobRow, ServerError> {
        let now = now_ms();
        let campaign = campaign.to_owned();
        self.write(move |db| {
            db.execute(
                "INSERT INTO jobs (campaign, kind, state, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![campaign, kind, JobState::Queued, now],
            )?;
            Ok(JobRow {
                id: db.last_insert_rowid() as u64,
                campaign,
                kind,
                state: JobState::Queued,
                progress_done: 0,
                progress_total: 0,
                error: String::new(),
                log: Vec::new(),
                created_ms: now,
                updated_ms: now,
            })
        })
        .await
    }

    /// Saves a job's mutable fields.
    pub async fn save_job(&self, j: &JobRow) -> Result<(), ServerError> {
        let log = serde_json::to_string(&j.log).unwrap_or_else(|_| "[]".into());
        let j = j.clone();
        self.write(move |db| {
            db.execute(
                "UPDATE jobs SET state = ?2, progress_done = ?3, progress_total = ?4, error = ?5, log = ?6, updated_ms = ?7 WHERE id = ?1",
                params![j.id, j.state, j.progress_done, j.progress_total, j.error, log, j.updated_ms],
            )
            .map(|_| ())
        })
        .await
    }

    /// One job.
    pub fn job(&self, id: u64) -> Result<Option<JobRow>, ServerError> {
        // Ids past SQLite's integers name no job.
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        self.with(|db| {
            db.query_row("SELECT * FROM jobs WHERE id = ?1", [id], job_row)
                .optional()
        })
    }

    /// Jobs, newest first.
    pub fn jobs(
        &self,
        campaign: &str,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<JobRow>, ServerError> {
        let limit = if limit == 0 { 100 } else { limit as i64 };
        let state = state.map_or("", JobState::as_str);
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT * FROM jobs WHERE (?1 = '' OR campaign = ?1) AND (?2 = '' OR state = ?2) ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![campaign, state, limit], job_row)?;
            rows.collect()
        })
    }

    /// One page of jobs, newest first, filtered like [`Store::jobs`].
    pub fn jobs_page(
        &self,
        campaign: &str,
        state: Option<JobState>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<JobRow>, ServerError> {
        let state = state.map_or("", JobState::as_str);
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT * FROM jobs WHERE (?1 = '' OR campaign = ?1) AND (?2 = '' OR state = ?2) ORDER BY id DESC LIMIT ?3 OFFSET ?4",
            )?;
            let rows = st.query_map(params![campaign, state, limit, offset], job_row)?;
            rows.collect()
        })
    }

    /// Deletes a job.
    pub async fn delete_job(&self, id: u64) -> Result<(), ServerError> {
        self.write(move |db| {
            db.execute("DELETE FROM jobs WHERE id = ?1", [id])
                .map(|_| ())
        })
        .await
    }

    /// Replaces the instances of a campaign.
    pub async fn set_instances(
        &self,
        campaign: &str,
        deployer: &str,
        list: &[(String, String, String)],
    ) -> Result<(), ServerError> {
        let (campaign, deployer, list) = (campaign.to_owned(), deployer.to_owned(), list.to_vec());
        self.write(move |db| {
            db.execute("DELETE FROM instances WHERE campaign = ?1", [&campaign])?;
            for (id, address, state) in list {
                db.execute(
                    "INSERT OR REPLACE INTO instances (id, campaign, deployer, address, state) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, campaign, deployer, address, state],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Every campaign that holds instances, with the deployer that made them.
    pub fn holders(&self) -> Result<Vec<(String, String)>, ServerError> {
        self.with(|db| {
            let mut st =
                db.prepare("SELECT DISTINCT campaign, deployer FROM instances ORDER BY campaign")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Instances of a campaign: (id, address, state).
    pub fn instances(&self, campaign: &str) -> Result<Vec<(String, String, String)>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT id, address, state FROM instances WHERE campaign = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Records drones (one transaction for all of them).
    pub async fn upsert_drones(&self, rows: Vec<DroneRow>) -> Result<(), ServerError> {
        self.write(move |db| {
            let mut st = db.prepare_cached(
                "INSERT INTO drones (id, campaign, idx, state, error) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (campaign, id) DO UPDATE SET idx = ?3, state = ?4, error = ?5",
            )?;
            for d in rows {
                st.execute(params![d.id, d.campaign, d.index, d.state, d.error])?;
            }
            Ok(())
        })
        .await
    }

    /// Sets a drone's own final summary (an encoded `RunSummary`).
    pub async fn set_drone_summary(
        &self,
        campaign: &str,
        id: &str,
        summary: Vec<u8>,
    ) -> Result<(), ServerError> {
        let (campaign, id) = (campaign.to_owned(), id.to_owned());
        self.write(move |db| {
            db.execute(
                "UPDATE drones SET summary_encoded = ?3 WHERE campaign = ?1 AND id = ?2",
                params![campaign, id, summary],
            )
            .map(|_| ())
        })
        .await
    }

    /// Drones of a campaign, by index.
    pub fn drones(&self, campaign: &str) -> Result<Vec<DroneRow>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare("SELECT id, campaign, idx, state, error FROM drones WHERE campaign = ?1 ORDER BY idx")?;
            let rows = st.query_map([campaign], |r| {
                Ok(DroneRow { id: r.get(0)?, campaign: r.get(1)?, index: r.get(2)?, state: r.get(3)?, error: r.get(4)? })
            })?;
            rows.collect()
        })
    }

    /// The summaries the drones of a campaign sent when they finished (encoded
    /// `RunSummary`), by drone id.
    pub fn drone_summaries(&self, campaign: &str) -> Result<Vec<(String, Vec<u8>)>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT id, summary_encoded FROM drones WHERE campaign = ?1 AND summary_encoded IS NOT NULL",
            )?;
            let rows = st.query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Begins a campaign's next run (a new deployment) and returns its number: the
    /// current run's number again when that run never finished (a redeploy), the next
    /// one when it did. The live data of the run that begins (drones, deltas, series) is
    /// cleared; the finished runs' results and series stay as they are.
    pub async fn begin_run(&self, campaign: &str) -> Result<u32, ServerError> {
        let campaign = campaign.to_owned();
        self.write(move |db| {
            let current: i64 = db.query_row(
                "SELECT run FROM campaigns WHERE id = ?1",
                [&campaign],
                |r| r.get(0),
            )?;
            let finished: bool = db.query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE campaign = ?1 AND run = ?2)",
                params![campaign, current],
                |r| r.get(0),
            )?;
            let run = if finished { current + 1 } else { current };
            db.execute(
                "UPDATE campaigns SET run = ?2 WHERE id = ?1",
                params![campaign, run],
            )?;
            for table in ["drones", "stats", "stats_seq", "series_cursor"] {
                db.execute(
                    &format!("DELETE FROM {table} WHERE campaign = ?1"),
                    [&campaign],
                )?;
            }
            db.execute(
                "DELETE FROM series WHERE campaign = ?1 AND run = ?2",
                params![campaign, run],
            )?;
            Ok(run as u32)
        })
        .await
    }

    /// Whether any delta of the campaign's current run is stored.
    pub fn has_stats(&self, campaign: &str) -> Result<bool, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT EXISTS (SELECT 1 FROM stats_seq WHERE campaign = ?1)",
                [campaign],
                |r| r.get(0),
            )
        })
    }

    /// Stores a statistics delta; false when that sequence number was already stored.
    pub async fn insert_stats(
        &self,
        campaign: &str,
        drone: &str,
        seq: u64,
        delta: Vec<u8>,
    ) -> Result<bool, ServerError> {
        let (campaign, drone) = (campaign.to_owned(), drone.to_owned());
        self.write(move |db| {
            let mut st = db.prepare_cached(
                "INSERT OR IGNORE INTO stats (campaign, drone, seq, delta) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let n = st.execute(params![campaign, drone, seq as i64, delta])?;
            if n == 1 {
                db.prepare_cached(
                    "INSERT INTO stats_seq (campaign, drone, seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT (campaign, drone) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                )?
                .execute(params![campaign, drone, seq as i64])?;
            }
            Ok(n == 1)
        })
        .await
    }

    /// Highest stored sequence number of a drone's deltas.
    pub fn max_seq(&self, campaign: &str, drone: &str) -> Result<u64, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM stats_seq WHERE campaign = ?1 AND drone = ?2",
                params![campaign, drone],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
        })
    }

    /// Every stored delta of a campaign: (drone, sequence number, encoded delta), tick by
    /// tick (by sequence number, then drone).
    pub fn stats(&self, campaign: &str) -> Result<Vec<(String, u64, Vec<u8>)>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT drone, seq, delta FROM stats WHERE campaign = ?1 ORDER BY seq, drone",
            )?;
            let rows = st.query_map([campaign], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
            })?;
            rows.collect()
        })
    }

    /// Queues one point of a campaign's series (an encoded `SeriesPoint`) for the
    /// writer's next transaction, without waiting for it: the once-a-second tick must not
    /// wait on the disk. A failed write is logged.
    /// `covered` (JSON `{drone: seq}`) is the highest sequence number of each drone's
    /// deltas that the series holds once this point is in; it is written in the same
    /// write.
    pub fn append_series(&self, campaign: &str, time_ms: i64, point: Vec<u8>, covered: String) {
        let campaign = campaign.to_owned();
        let queued = self.writer.send(
            move |db| {
                // A point belongs to the campaign's current run.
                let mut st = db.prepare_cached(
                    "INSERT OR REPLACE INTO series (campaign, run, time_ms, point) \
                     VALUES (?1, (SELECT run FROM campaigns WHERE id = ?1), ?2, ?3)",
                )?;
                st.execute(params![campaign, time_ms, point])?;
                let mut st = db.prepare_cached(
                    "INSERT OR REPLACE INTO series_cursor (campaign, covered) VALUES (?1, ?2)",
                )?;
                st.execute(params![campaign, covered]).map(|_| ())
            },
            |r| {
                if let Err(e) = r {
                    tracing::warn!("cannot store a series point: {e}");
                }
            },
        );
        if let Err(e) = queued {
            tracing::warn!("cannot store a series point: {e}");
        }
    }

    /// What the stored series of a campaign covers: `{drone: seq}` as JSON, when it
    /// has a point.
    pub fn series_cursor(&self, campaign: &str) -> Result<Option<String>, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT covered FROM series_cursor WHERE campaign = ?1",
                [campaign],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// A run's series, oldest first: encoded `SeriesPoint`s, the newest `last` of them
    /// (all with `u32::MAX`).
    pub fn series(&self, campaign: &str, run: u32, last: u32) -> Result<Vec<Vec<u8>>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT point FROM (SELECT time_ms, point FROM series WHERE campaign = ?1 \
                 AND run = ?2 ORDER BY time_ms DESC LIMIT ?3) ORDER BY time_ms",
            )?;
            let rows = st.query_map(params![campaign, run, last], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Saves the final results of a run.
    pub async fn set_results(
        &self,
        campaign: &str,
        run: u32,
        encoded: Vec<u8>,
        thresholds_ok: bool,
    ) -> Result<(), ServerError> {
        let campaign = campaign.to_owned();
        self.write(move |db| {
            db.execute(
                "INSERT OR REPLACE INTO runs (campaign, run, summary, thresholds_ok, encoded, finished_ms) \
                 VALUES (?1, ?2, '', ?3, ?4, ?5)",
                params![campaign, run, thresholds_ok, encoded, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// The final results of a run, when it finished.
    pub fn results(&self, campaign: &str, run: u32) -> Result<Option<SavedResults>, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT encoded, summary FROM runs WHERE campaign = ?1 AND run = ?2",
                params![campaign, run],
                |r| {
                    Ok(match r.get::<_, Option<Vec<u8>>>(0)? {
                        Some(bytes) => SavedResults::Encoded(bytes),
                        None => SavedResults::Json(r.get(1)?),
                    })
                },
            )
            .optional()
        })
    }

    /// The finished runs of a campaign, oldest first: (number, finished at Unix ms, 0
    /// when unknown).
    pub fn runs(&self, campaign: &str) -> Result<Vec<(u32, i64)>, ServerError> {
        self.with(|db| {
            let mut st =
                db.prepare("SELECT run, finished_ms FROM runs WHERE campaign = ?1 ORDER BY run")?;
            let rows = st.query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Appends to the command log.
    pub async fn record_command(&self, c: CommandRow) -> Result<(), ServerError> {
        self.write(move |db| {
            db.execute(
                "INSERT INTO commands (time_ms, who, origin, action, target, ok, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![c.time_ms, c.who, c.origin, c.action, c.target, c.ok, c.result],
            )
            .map(|_| ())
        })
        .await
    }

    /// The command log, newest first: `limit` entries after skipping `offset`.
    pub fn commands(&self, limit: u32, offset: u32) -> Result<Vec<CommandRow>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(
                "SELECT id, time_ms, who, origin, action, target, ok, result FROM commands ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )?;
            let rows = st.query_map(params![limit, offset], |r| {
                Ok(CommandRow {
                    id: r.get::<_, i64>(0)? as u64,
                    time_ms: r.get(1)?,
                    who: r.get(2)?,
                    origin: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    ok: r.get(6)?,
                    result: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// How many entries the command log holds.
    pub fn count_commands(&self) -> Result<u64, ServerError> {
        self.with(|db| {
            db.query_row("SELECT COUNT(*) FROM commands", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    /// Jobs counted by state.
    pub fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, ServerError> {
        self.count_by_state("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
    }

    /// Campaigns counted by state.
    pub fn campaigns_by_state(&self) -> Result<Vec<(CampaignState, u64)>, ServerError> {
        self.count_by_state("SELECT state, COUNT(*) FROM campaigns GROUP BY state ORDER BY state")
    }

    fn count_by_state<S: rusqlite::types::FromSql>(
        &self,
        sql: &str,
    ) -> Result<Vec<(S, u64)>, ServerError> {
        self.with(|db| {
            let mut st = db.prepare(sql)?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    /// Size of the database file, bytes.
    pub fn size_bytes(&self) -> Result<u64, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
        })
    }
}

fn campaign_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignRow> {
    Ok(CampaignRow {
        id: r.get("id")?,
        file: r.get("file")?,
        source: r.get("source")?,
        info: r.get("info")?,
        state: r.get("state")?,
        join_token: r.get("join_token")?,
        error: r.get("error")?,
        created_ms: r.get("created_ms")?,
        updated_ms: r.get("updated_ms")?,
        run: r.get("run")?,
        env: r.get("env")?,
    })
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let log: String = r.get("log")?;
    Ok(JobRow {
        id: r.get::<_, i64>("id")? as u64,
        campaign: r.get("campaign")?,
        kind: r.get("kind")?,
        state: r.get("state")?,
        progress_done: r.get("progress_done")?,
        progress_total: r.get("progress_total")?,
        error: r.get("error")?,
        log: serde_json::from_str(&log).unwrap_or_default(),
        created_ms: r.get("created_ms")?,
        updated_ms: r.get("updated_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> CampaignRow {
        CampaignRow {
            id: id.into(),
            file: "f.js".into(),
            source: "s".into(),
            info: "{}".into(),
            state: CampaignState::Created,
            join_token: format!("tok-{id}"),
            error: String::new(),
            created_ms: now_ms(),
            updated_ms: now_ms(),
            run: 1,
            env: "[]".into(),
        }
    }

    #[tokio::test]
    async fn series_points_and_their_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for id in ["c", "other"] {
            assert!(s.insert_campaign(&row(id)).await.unwrap());
        }
        for t in [3_000, 1_000, 2_000] {
            s.append_series("c", t, vec![t as u8], format!("{{\"d\":{t}}}"));
        }
        s.append_series("other", 1_000, vec![9], "{}".into());
        // The writer is first in, first out: a write awaited after them follows them.
        s.set_campaign_error("none", "").await.unwrap();
        let byte = |t: i64| vec![t as u8];
        assert_eq!(
            s.series("c", 1, u32::MAX).unwrap(),
            [byte(1_000), byte(2_000), byte(3_000)]
        );
        assert_eq!(
            s.series("c", 1, 2).unwrap(),
            [byte(2_000), byte(3_000)],
            "the newest, in order"
        );
        assert_eq!(
            s.series_cursor("c").unwrap().as_deref(),
            Some("{\"d\":2000}"),
            "the last written"
        );
        // Run 1 never finished: a new deployment takes its number again, afresh.
        assert_eq!(s.begin_run("c").await.unwrap(), 1);
        assert!(s.series("c", 1, u32::MAX).unwrap().is_empty());
        assert_eq!(s.series_cursor("c").unwrap(), None);
        assert_eq!(s.series("other", 1, u32::MAX).unwrap(), [vec![9]]);
    }

    #[tokio::test]
    async fn a_store_that_cannot_be_written_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.probe().await.unwrap();
        // A refused constraint is no storage error.
        assert!(s
            .write(|db| db.execute_batch("INSERT INTO probe (id, written_ms) VALUES (2, 0)"))
            .await
            .is_err());
        assert_eq!(s.health().failing(), None);
        assert_eq!(s.health().failed_writes(), 0);
        // A read-only connection fails every write the way a full disk does: with a
        // storage error. (The full disk itself: integration/tests/disk_full.rs.)
        s.write(|db| db.execute_batch("PRAGMA query_only = ON"))
            .await
            .unwrap();
        let e = s.probe().await.unwrap_err().to_string();
        assert!(e.contains("readonly"), "{e}");
        assert!(s.insert_campaign(&row("c")).await.is_err());
        assert!(s.health().failing().unwrap().contains("readonly"));
        assert_eq!(s.health().failed_writes(), 2);
    }

    #[tokio::test]
    async fn a_finished_run_is_kept_when_the_next_one_begins() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.insert_campaign(&row("c")).await.unwrap();
        assert_eq!(s.begin_run("c").await.unwrap(), 1);
        assert!(s.insert_stats("c", "d", 1, vec![1]).await.unwrap());
        s.append_series("c", 1_000, vec![1], "{}".into());
        s.set_results("c", 1, vec![7], true).await.unwrap();
        assert!(s.has_stats("c").unwrap());
        // The next deployment begins run 2; run 1's results and series stay.
        assert_eq!(s.begin_run("c").await.unwrap(), 2);
        assert!(!s.has_stats("c").unwrap(), "the live deltas are cleared");
        assert_eq!(
            s.results("c", 1).unwrap(),
            Some(SavedResults::Encoded(vec![7]))
        );
        assert_eq!(s.results("c", 2).unwrap(), None);
        assert_eq!(s.series("c", 1, u32::MAX).unwrap(), [vec![1]]);
        s.append_series("c", 1_000, vec![2], "{}".into());
        s.set_results("c", 2, vec![8], false).await.unwrap();
        assert_eq!(s.series("c", 2, u32::MAX).unwrap(), [vec![2]]);
        assert_eq!(s.series("c", 1, u32::MAX).unwrap(), [vec![1]]);
        let runs: Vec<u32> = s.runs("c").unwrap().iter().map(|r| r.0).collect();
        assert_eq!(runs, [1, 2]);
        assert_eq!(s.campaign("c").unwrap().unwrap().run, 2);
        // A failed redeploy of run 3 keeps its number; run 2 is untouched.
        assert_eq!(s.begin_run("c").await.unwrap(), 3);
        assert_eq!(s.begin_run("c").await.unwrap(), 3);
        assert_eq!(
            s.results("c", 2).unwrap(),
            Some(SavedResults::Encoded(vec![8]))
        );
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = std::env::temp_dir().join(format!("camut-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).unwrap();
            assert!(s.insert_campaign(&row("a")).await.unwrap());
            assert!(
                !s.insert_campaign(&row("a")).await.unwrap(),
                "ids are unique"
            );
            let mut j = s.insert_job("a", Command::Spawn).await.unwrap();
            j.state = JobState::Complete;
            j.log.push("done".into());
            s.save_job(&j).await.unwrap();
            assert!(s.insert_stats("a", "d1", 1, b"x".to_vec()).await.unwrap());
            assert!(
                !s.insert_stats("a", "d1", 1, b"x".to_vec()).await.unwrap(),
                "a resent delta is stored once"
            );
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.campaign("a").unwrap().unwrap().join_token, "tok-a");
        assert_eq!(s.campaign_by_token("tok-a").unwrap().unwrap().id, "a");
        let jobs = s.jobs("a", None, 0).unwrap();
        assert_eq!(
            (jobs[0].state, jobs[0].log.clone()),
            (JobState::Complete, vec!["done".to_string()])
        );
        assert_eq!(s.max_seq("a", "d1").unwrap(), 1);
        assert!(
            s.job(u64::MAX).unwrap().is_none(),
            "a job id past i64 is no job"
        );
        let entry = CommandRow {
            id: 0,
            time_ms: 1,
            who: "ann".into(),
            origin: "grpc 127.0.0.1:1".into(),
            action: "spawn".into(),
            target: "a".into(),
            ok: true,
            result: "job 1".into(),
        };
        s.record_command(entry.clone()).await.unwrap();
        assert_eq!(s.count_commands().unwrap(), 1);
        assert_eq!(s.commands(10, 0).unwrap()[0], CommandRow { id: 1, ..entry });
        assert_eq!(
            s.campaigns_by_state().unwrap(),
            vec![(CampaignState::Created, 1)]
        );
        s.delete_campaign("a").await.unwrap();
        assert!(s.campaign("a").unwrap().is_none());
        assert!(s.stats("a").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn two_campaigns_may_have_a_drone_of_the_same_id() {
        let dir = std::env::temp_dir().join(format!("camut-drones-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir).unwrap();
        let row = |campaign: &str, state| DroneRow {
            id: "drone-host".into(),
            campaign: campaign.into(),
            index: 0,
            state,
            error: String::new(),
        };
        s.upsert_drones(vec![row("a", DroneState::Ready)])
            .await
            .unwrap();
        s.upsert_drones(vec![row("b", DroneState::Connected)])
            .await
            .unwrap();
        s.upsert_drones(vec![row("a", DroneState::Running)])
            .await
            .unwrap();
        s.set_drone_summary("b", "drone-host", vec![1, 2])
            .await
            .unwrap();
        let a = s.drones("a").unwrap();
        let b = s.drones("b").unwrap();
        assert_eq!((a.len(), a[0].state), (1, DroneState::Running));
        assert_eq!(
            (b.len(), b[0].state),
            (1, DroneState::Connected),
            "b's row is its own"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn concurrent_writes_commit_together_and_a_failed_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        assert!(s.insert_campaign(&row("a")).await.unwrap());
        let writes = (1..=500u64).map(|seq| {
            let s = s.clone();
            tokio::spawn(async move { s.insert_stats("a", "d1", seq, vec![1, 2]).await })
        });
        for w in writes.collect::<Vec<_>>() {
            assert!(w.await.unwrap().unwrap());
        }
        assert_eq!(s.max_seq("a", "d1").unwrap(), 500);
        // A write that breaks a constraint fails alone; its batch-mates are kept.
        let (bad, good) = tokio::join!(
            s.write(|db| {
                db.execute("DELETE FROM stats WHERE seq = 1", [])?;
                db.execute("INSERT INTO no_such_table VALUES (1)", [])
            }),
            s.insert_stats("a", "d2", 1, vec![3])
        );
        let e = bad.unwrap_err().to_string();
        assert!(e.contains("no_such_table"), "{e}");
        assert!(good.unwrap());
        assert_eq!(
            s.max_seq("a", "d1").unwrap(),
            500,
            "the failed write undid itself"
        );
        assert_eq!(s.stats("a").unwrap().len(), 501);
    }
}
