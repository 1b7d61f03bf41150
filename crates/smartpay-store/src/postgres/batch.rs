//! Calls of one kind that arrive together, run together: PostgreSQL's counterpart of SQLite's
//! group commit, for the two statements every checkout's life is made of (decision 0010).
//!
//! Run one statement each, PostgreSQL spends most of its time per call on what every statement
//! costs (a round trip, a bound message, executor start-up; for a write the commit's WAL flush
//! and the wakeups around it), little on the row itself. A [`Batcher`] queues the calls and a
//! task of its own takes them in batches: it waits until one of a few slots is free, then takes
//! whatever has arrived by then (at least one call, at most `max`) and runs the batch's
//! function on a task of its own, which frees the slot when done. There is no timer: under
//! light load a batch is one call, run at once; under load the calls that arrived while the
//! slots were busy go together.
//!
//! The batch's function answers every call in order. Each caller gets its answer only after the
//! statement that holds its call has ended (for a write: committed), so nothing is acknowledged
//! earlier than it would have been alone. Calls whose caller has gone are dropped before a batch
//! runs; a batch that has not finished after [`BATCH_TIMEOUT`] answers its callers that the
//! database is unavailable, so one stuck statement does not hold up every later call. The task
//! ends when the [`Batcher`] (its store) is dropped: its queue closes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::StoreError;

/// Calls waiting for a batch, at most; a caller beyond waits for room (back pressure).
const QUEUE: usize = 1024;
/// The longest a batch may take; its callers are then told the database is unavailable (503
/// with `Retry-After`), and the slot is free for the next batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a batch's function returns: one answer per call, in the calls' order.
pub(crate) type Answers<R> = Pin<Box<dyn Future<Output = Vec<Result<R, StoreError>>> + Send>>;

/// One queued call and where its answer goes.
type Pending<T, R> = (T, oneshot::Sender<Result<R, StoreError>>);

/// A queue of calls of one kind, run in batches (see the module's documentation).
pub(crate) struct Batcher<T, R> {
    queue: mpsc::Sender<Pending<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the task, which runs at most `slots` batches of at most `max` calls at once,
    /// each by `run` on the pool. `statement` names the batches in the
    /// [`crate::PG_BATCH_SIZE`] histogram. Needs a Tokio runtime.
    pub(crate) fn start(
        pool: Pool,
        statement: &'static str,
        slots: usize,
        max: usize,
        run: fn(Pool, Vec<T>) -> Answers<R>,
    ) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(slots.max(1)));
        tokio::spawn(collect(pool, pending, slots, max.max(1), statement, run));
        Batcher { queue }
    }

    /// Queues the call and waits for its answer.
    pub(crate) async fn call(&self, call: T) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((call, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Internal("the store's batch task has stopped".into())
}

/// Waits for a free slot, then takes every call that has arrived (at least one) and runs them
/// on a task of their own, which frees the slot when it is done.
async fn collect<T: Send + 'static, R: Send + 'static>(
    pool: Pool,
    mut pending: mpsc::Receiver<Pending<T, R>>,
    slots: Arc<Semaphore>,
    max: usize,
    statement: &'static str,
    run: fn(Pool, Vec<T>) -> Answers<R>,
) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = pending.recv().await else { return };
        let mut batch = Vec::with_capacity(pending.len().min(max - 1) + 1);
        batch.push(first);
        while batch.len() < max {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Callers that gave up (their request timed out or was dropped) are not run for.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!(crate::PG_BATCH_SIZE, "statement" => statement).record(batch.len() as f64);
        let (calls, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        let answers = run(pool.clone(), calls);
        tokio::spawn(async move {
            // A batch holds one of few slots: one that hangs (a lock held elsewhere, a
            // connection gone half-open) must not hold up every later call of its kind.
            let answers = tokio::time::timeout(BATCH_TIMEOUT, answers).await.unwrap_or_else(|_| {
                crate::postgres::unavailable();
                let late = StoreError::Unavailable(format!("database: {statement} did not finish in time"));
                replies.iter().map(|_| Err(late.clone())).collect()
            });
            let mut answers = answers.into_iter();
            for reply in replies {
                let answer = answers.next().unwrap_or_else(|| {
                    Err(StoreError::Internal(format!("{statement}: a call of the batch got no answer")))
                });
                let _ = reply.send(answer);
            }
            drop(slot);
        });
    }
}
