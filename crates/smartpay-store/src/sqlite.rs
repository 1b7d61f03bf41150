//! The SQLite store: WAL mode, `synchronous=FULL`, one writer thread that gathers concurrent
//! writes into group commits, and a small pool of read-only connections.
//!
//! Every write is a job run inside its own savepoint of the batch's transaction, so one job's
//! failure (a uniqueness conflict, say) never undoes another's; a job's caller hears back only
//! after the batch's `COMMIT` has reached the disk.

mod imp;
mod jobs;
mod migrate;
mod modifications;
mod notifications;
mod outbox;
mod vault;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// How the database is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Read-only connections (at least 1).
    pub readers: usize,
    /// Most writes committed together.
    pub max_batch: usize,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions { path: path.into(), readers: 4, max_batch: 512 }
    }
}

/// A write job: runs inside the batch transaction, then hears whether the batch committed.
trait Job: Send {
    fn run(&mut self, conn: &Connection);
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

struct TypedJob<R, F> {
    work: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) {
        let Some(work) = self.work.take() else { return };
        // Cached statements: the writer runs these for every job, so they are parsed once.
        let exec = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map_err(map_err);
        let result = match exec("SAVEPOINT job") {
            Err(e) => Err(e),
            Ok(_) => {
                let r = work(conn);
                let end = if r.is_ok() {
                    exec("RELEASE job")
                } else {
                    exec("ROLLBACK TO job").and_then(|_| exec("RELEASE job"))
                };
                end.and(r)
            }
        };
        self.result = Some(result);
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let out = match (committed, self.result) {
            (Ok(()), Some(r)) => r,
            (Err(e), _) => Err(StoreError::Unavailable(e)),
            (Ok(()), None) => Err(StoreError::Internal("job did not run".into())),
        };
        let _ = self.reply.send(out);
    }
}

/// SQLite behind the [`crate::Store`] trait.
pub struct SqliteStore {
    writer: mpsc::UnboundedSender<Box<dyn Job>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: PathBuf,
    /// Tells the checkpoint thread to stop (set when the store is dropped; the writer thread
    /// stops by itself when its channel closes).
    closing: Arc<AtomicBool>,
    commits: Arc<GroupCommits>,
}

/// This store's group commits so far: how many transactions, and how many writes they carried.
/// The same figures go to the `metrics` facade for `/metrics`; these are this one store's, for
/// its own tests and diagnostics (the facade's are the process's).
#[derive(Debug, Default)]
pub struct GroupCommits {
    pub batches: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation => StoreError::Conflict(e.to_string()),
            C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure | C::CannotOpen | C::ReadOnly => {
                metrics::counter!(crate::UNAVAILABLE, "backend" => "sqlite").increment(1);
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Internal(e.to_string()),
        },
        _ => StoreError::Internal(e.to_string()),
    }
}

fn open_conn(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(map_err)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;").map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database, applies pending migrations and starts the
    /// writer thread.
    pub fn open(options: SqliteOptions) -> Result<Self, StoreError> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", dir.display())))?;
        }
        let mut writer_conn = open_conn(&options.path, false)?;
        let mode: String = writer_conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!("journal_mode is {mode}, WAL is required")));
        }
        // Checkpoints run on their own thread (below), so the writer only appends to the WAL.
        writer_conn.execute_batch("PRAGMA secure_delete = ON; PRAGMA wal_autocheckpoint = 0;").map_err(map_err)?;
        migrate::run(&mut writer_conn)?;
        let synchronous: i64 = writer_conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).map_err(map_err)?;
        if synchronous != 2 {
            return Err(StoreError::Internal(format!("synchronous is {synchronous}, FULL (2) is required")));
        }

        let readers = (0..options.readers.max(1))
            .map(|_| open_conn(&options.path, true).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let checkpointer = open_conn(&options.path, false)?;
        let wal_lagging = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(GroupCommits::default());
        let lag = wal_lagging.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        std::thread::Builder::new()
            .name("smartpay-store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, &lag, &stop))
            .map_err(|e| StoreError::Internal(format!("spawn checkpointer: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel::<Box<dyn Job>>();
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("smartpay-store-writer".into())
            .spawn({
                let commits = commits.clone();
                move || writer_loop(writer_conn, rx, max_batch, &wal_lagging, &commits)
            })
            .map_err(|e| StoreError::Internal(format!("spawn writer: {e}")))?;
        Ok(SqliteStore { writer: tx, readers, next_reader: AtomicUsize::new(0), path: options.path, closing, commits })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This store's group commits so far.
    pub fn group_commits(&self) -> &GroupCommits {
        &self.commits
    }

    /// Runs `work` in the next group commit and answers once it is durable.
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob { work: Some(work), result: None, reply });
        self.writer.send(job).map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Runs `work` on a read-only connection. Queries are short, so a connection is taken
    /// in place instead of moving to a blocking thread.
    ///
    /// The work runs in one read transaction: all its statements see one snapshot (a payment
    /// and its history read together agree), and the WAL read lock is taken once instead of
    /// once per statement (a Get Payment Status is three statements).
    pub(crate) fn read<R>(&self, work: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = self.readers[(start + i) % n].try_lock() {
                return in_snapshot(&conn, work);
            }
        }
        let conn = self.readers[start % n].lock().map_err(|_| StoreError::Internal("reader poisoned".into()))?;
        in_snapshot(&conn, work)
    }
}

/// Runs `work` between `BEGIN` and `COMMIT` on a read-only connection (ended either way).
fn in_snapshot<R>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
    let exec = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map_err(map_err);
    exec("BEGIN")?;
    let out = work(conn);
    let end = exec("COMMIT");
    if end.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let out = out?;
    end.map(|_| out)
}

/// WAL frames (4 KiB pages) beyond which the writer finishes a checkpoint itself.
const WAL_FRAMES_LIMIT: i64 = 4096;

/// Copies WAL frames into the database file in the background (PASSIVE: never blocks the
/// writer or readers), so checkpoints stay off the commit path. Under constant writes a
/// background checkpoint never catches up with the last frames, and the WAL only restarts
/// once every frame is copied: when it grows past `WAL_FRAMES_LIMIT` the writer is asked to
/// finish the (by then small) remainder between two batches, which bounds the WAL.
/// Stops (closing its connection) once the store is dropped.
fn checkpoint_loop(conn: Connection, lagging: &AtomicBool, closing: &AtomicBool) {
    while !closing.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if closing.load(Ordering::Relaxed) {
            break;
        }
        let r: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
        match r {
            Ok((_, log, _)) => lagging.store(log > WAL_FRAMES_LIMIT, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Box<dyn Job>>,
    max_batch: usize,
    wal_lagging: &AtomicBool,
    commits: &GroupCommits,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let committed = match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e) => Err(e.to_string()),
            Ok(()) => {
                for job in batch.iter_mut() {
                    job.run(&conn);
                }
                match conn.execute_batch("COMMIT") {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        Err(e.to_string())
                    }
                }
            }
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = batch.len(), "store batch failed");
        }
        // Through the `metrics` facade (crate::describe_metrics): the server's recorder renders
        // them at /metrics; without a recorder they cost nothing.
        metrics::histogram!(crate::BATCH_SIZE).record(batch.len() as f64);
        commits.batches.fetch_add(1, Ordering::Relaxed);
        commits.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::histogram!(crate::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        for job in batch.drain(..) {
            job.finish(committed.clone());
        }
        if wal_lagging.swap(false, Ordering::Relaxed) {
            // No other writer exists, so this checkpoint copies every remaining frame and the
            // next transaction starts the WAL from its beginning.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "writer-side WAL checkpoint failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
