//! The store's writer: one thread owns the connection that writes. Whatever is queued
//! while a transaction commits goes into the next one, so a thousand drones' deltas cost
//! one disk sync, not a thousand; each caller hears back only after its transaction is
//! committed, so nothing is acknowledged before it is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use rusqlite::{Connection, ErrorCode};

use crate::error::ServerError;

/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 4096;

/// Told the outcome of its transaction once it is committed (or not).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: runs inside the writer's transaction (or, given none because the
/// transaction could not begin, does not run) and returns its completion, with the
/// storage error it met, if any.
type Op = Box<dyn FnOnce(Option<&Connection>) -> (Completion, Option<String>) + Send>;

/// How long writes must go without a storage error before the store counts as
/// writable again: twice the longest pause of a drone between reconnections, so that a
/// quiet spell of a store that still fails is not taken for a recovery.
pub const RECOVERY_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the store can be written, as its last transactions found: read by
/// `/healthz`, `/metrics` and the jobs that follow a run.
#[derive(Debug, Default)]
pub struct StoreHealth {
    failed_writes: AtomicU64,
    /// The last storage error and when it happened (Unix ms), kept after recovery.
    last_error: Mutex<Option<(String, i64)>>,
}

impl StoreHealth {
    /// Writes that failed for a storage reason (disk full, I/O error, read-only file)
    /// since the server started.
    pub fn failed_writes(&self) -> u64 {
        self.failed_writes.load(Ordering::Relaxed)
    }

    /// The last storage error if one happened within [`RECOVERY_WINDOW`]: on a disk
    /// that is nearly full some small transactions still commit, so "writable again"
    /// is judged over a window, not by one commit.
    pub fn failing(&self) -> Option<String> {
        let last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(_, at)| super::now_ms() - at <= RECOVERY_WINDOW.as_millis() as i64)
            .map(|(e, _)| e.clone())
    }

    /// Records the outcome of one transaction of `writes` writes.
    fn record(&self, writes: usize, error: Option<String>) {
        if let Some(e) = error {
            self.failed_writes
                .fetch_add(writes.max(1) as u64, Ordering::Relaxed);
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((e, super::now_ms()));
        }
    }
}

/// Whether `e` says the store itself cannot be written (disk full, I/O, permissions,
/// corruption), as opposed to a write that a constraint refused.
fn is_storage_error(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::OutOfMemory
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed
        )
    )
}

/// A handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Op>,
    health: Arc<StoreHealth>,
}

impl Writer {
    /// Starts the writer thread over `conn`.
    pub fn start(conn: Connection) -> Result<Writer, ServerError> {
        let (tx, rx) = mpsc::channel::<Op>();
        let health = Arc::new(StoreHealth::default());
        let recorder = health.clone();
        thread::Builder::new()
            .name("camut-store-writer".into())
            .spawn(move || run(conn, rx, &recorder))
            .map_err(|e| ServerError::Store(format!("cannot start the store writer: {e}")))?;
        Ok(Writer { tx, health })
    }

    /// What the writer's transactions found.
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// Queues `f`; `reply` gets its result once its transaction is committed.
    pub fn send<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        reply: impl FnOnce(Result<R, ServerError>) + Send + 'static,
    ) -> Result<(), ServerError> {
        let op: Op = Box::new(move |db: Option<&Connection>| {
            let out = db.map(|db| in_savepoint(db, f));
            let storage_error = match &out {
                Some(Err(e)) if is_storage_error(e) => Some(e.to_string()),
                _ => None,
            };
            let done: Completion = Box::new(move |committed: Result<(), String>| {
                reply(match (out, committed) {
                    (Some(Ok(r)), Ok(())) => Ok(r),
                    (Some(Err(e)), _) => Err(e.into()),
                    (None, Err(e)) | (Some(Ok(_)), Err(e)) => Err(ServerError::Store(format!(
                        "the write was not committed: {e}"
                    ))),
                    (None, Ok(())) => Err(ServerError::Store("the write was not run".into())),
                })
            });
            (done, storage_error)
        });
        self.tx
            .send(op)
            .map_err(|_| ServerError::Store("the store writer has stopped".into()))
    }

    /// Runs `f` in the writer's next transaction and waits for its commit.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, ServerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .map_err(|_| ServerError::Store("the store writer has stopped".into()))?
    }
}

/// Runs one write so that its failure undoes only itself, not the batch.
fn in_savepoint<R>(
    db: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    // Prepared once per connection: at thousands of writes a second, parsing these two
    // statements each time would cost more than most writes themselves.
    db.prepare_cached("SAVEPOINT op")?.execute([])?;
    match f(db) {
        Ok(r) => {
            db.prepare_cached("RELEASE op")?.execute([])?;
            Ok(r)
        }
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Op>, health: &StoreHealth) {
    let mut batch: Vec<Op> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        let db = began.is_ok().then_some(&conn);
        let mut storage_error = None;
        let completions: Vec<Completion> = batch
            .drain(..)
            .map(|op| {
                let (done, error) = op(db);
                storage_error = storage_error.take().or(error);
                done
            })
            .collect();
        let committed = match began {
            Ok(()) => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot begin a transaction: {e}")),
        };
        if let Err(e) = &committed {
            tracing::error!(writes = completions.len(), "store transaction failed: {e}");
            let _ = conn.execute_batch("ROLLBACK");
            storage_error = Some(e.clone());
        } else if let Some(e) = &storage_error {
            tracing::error!(writes = completions.len(), "store writes failed: {e}");
        }
        health.record(completions.len(), storage_error);
        for done in completions {
            done(committed.clone());
        }
    }
}
