//! The store's writer: one thread owns the connection that writes. Whatever is queued
//! while a transaction commits goes into the next one, so a thousand drones' deltas cost
//! one disk sync, not a thousand; each caller hears back only after its transaction is
//! committed, so nothing is acknowledged before it is durable.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;

use crate::error::ServerError;

/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 4096;

/// Told the outcome of its transaction once it is committed (or not).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: runs inside the writer's transaction (or, given none because the
/// transaction could not begin, does not run) and returns its completion.
type Op = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

/// A handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Starts the writer thread over `conn`.
    pub fn start(conn: Connection) -> Result<Writer, ServerError> {
        let (tx, rx) = mpsc::channel::<Op>();
        thread::Builder::new()
            .name("camut-store-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| ServerError::Store(format!("cannot start the store writer: {e}")))?;
        Ok(Writer { tx })
    }

    /// Queues `f`; `reply` gets its result once its transaction is committed.
    pub fn send<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        reply: impl FnOnce(Result<R, ServerError>) + Send + 'static,
    ) -> Result<(), ServerError> {
        let op: Op = Box::new(move |db: Option<&Connection>| {
            let out = db.map(|db| in_savepoint(db, f));
            Box::new(move |committed: Result<(), String>| {
                reply(match (out, committed) {
                    (Some(Ok(r)), Ok(())) => Ok(r),
                    (Some(Err(e)), _) => Err(e.into()),
                    (None, Err(e)) | (Some(Ok(_)), Err(e)) => Err(ServerError::Store(format!(
                        "the write was not committed: {e}"
                    ))),
                    (None, Ok(())) => Err(ServerError::Store("the write was not run".into())),
                })
            })
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

fn run(conn: Connection, rx: mpsc::Receiver<Op>) {
    let mut batch: Vec<Op> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        let db = began.then_some(&conn);
        let completions: Vec<Completion> = batch.drain(..).map(|op| op(db)).collect();
        let committed = if began {
            conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        } else {
            Err("cannot begin a transaction".to_string())
        };
        if let Err(e) = &committed {
            tracing::error!(writes = completions.len(), "store transaction failed: {e}");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(committed.clone());
        }
    }
}
