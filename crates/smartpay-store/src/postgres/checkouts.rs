//! Plain checkouts inserted together: PostgreSQL's counterpart of SQLite's group commit, for the
//! one write every Create Checkout makes (docs/decisions/0010).
//!
//! A checkout without idempotency claims or account is one row. Inserted by a statement and a
//! commit each, PostgreSQL spends most of its time per checkout on what every statement costs
//! (executing a bound message, starting the executor, the commit's WAL flush and the wakeups
//! around it), little on the row itself. So the checkouts that arrive while earlier ones are
//! being written are inserted together, by one autocommitted `INSERT … SELECT … FROM unnest(…)`:
//! all its rows are written or none.
//!
//! Batches form by themselves, with no timer: a batch starts as soon as one of a few slots is
//! free, with whatever has arrived by then (up to [`MAX_BATCH`]). Under light load that is one
//! checkout, inserted at once by the single-row statement; under load the checkouts that waited
//! for a slot go together. Each caller is answered only after the statement holding its row
//! committed, so an acknowledged checkout is as durable as before.
//!
//! A batch refused as a unique violation (a taken id, token digest or partner reference) is
//! tried again row by row, so only the conflicting checkout gets the conflict and the others are
//! written. Any other failure (the database away, a broken connection) is every caller's, as it
//! would have been for each alone.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::payments::insert_plain_checkout;
use super::{client, map_err};
use crate::*;

/// The most checkouts one statement inserts.
pub(crate) const MAX_BATCH: usize = 64;
/// Checkouts waiting for a batch, at most; a caller beyond waits for room (back pressure).
const QUEUE: usize = 1024;

/// One checkout to insert, and where its outcome goes.
type Pending = (NewCheckout, oneshot::Sender<Result<(), StoreError>>);

/// The queue of plain checkouts and the task that inserts them in batches. The task ends when
/// this (the store) is dropped: its queue closes.
pub(crate) struct CheckoutWriter {
    queue: mpsc::Sender<Pending>,
}

impl CheckoutWriter {
    /// Starts the task, which writes at most `slots` batches at once, each on a pooled
    /// connection of `pool`. Needs a Tokio runtime.
    pub(crate) fn start(pool: Pool, slots: usize) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(collect(pool, pending, Arc::new(Semaphore::new(slots.max(1)))));
        CheckoutWriter { queue }
    }

    /// Inserts `checkout` (no claims, no account) with whichever others arrive alongside it;
    /// returns once the statement that holds it has committed.
    pub(crate) async fn insert(&self, checkout: NewCheckout) -> Result<(), StoreError> {
        debug_assert!(checkout.claims.is_empty() && checkout.customer_account_id.is_none());
        let (reply, outcome) = oneshot::channel();
        self.queue.send((checkout, reply)).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Internal("the checkout writer has stopped".into())
}

/// Waits for a free slot, then takes every checkout that has arrived (at least one) and writes
/// them on a task of their own, which frees the slot when it is done.
async fn collect(pool: Pool, mut pending: mpsc::Receiver<Pending>, slots: Arc<Semaphore>) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = pending.recv().await else { return };
        let mut batch = Vec::with_capacity(pending.len().min(MAX_BATCH - 1) + 1);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            write(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Writes one batch and answers each of its callers.
async fn write(pool: &Pool, batch: Vec<Pending>) {
    metrics::histogram!(crate::CHECKOUT_BATCH_SIZE).record(batch.len() as f64);
    let (checkouts, replies): (Vec<NewCheckout>, Vec<_>) = batch.into_iter().unzip();
    match insert_all(pool, &checkouts).await {
        Err(StoreError::Conflict(_)) if checkouts.len() > 1 => {
            let c = client(pool).await;
            for (checkout, reply) in checkouts.iter().zip(replies) {
                let alone = match &c {
                    Ok(c) => insert_plain_checkout(c, checkout).await,
                    Err(e) => Err(e.clone()),
                };
                let _ = reply.send(alone);
            }
        }
        outcome => {
            for reply in replies {
                let _ = reply.send(outcome.clone());
            }
        }
    }
}

/// Every checkout of a batch as one row each, in one statement (rows of a batch of one are
/// inserted by the single-row statement, whose plan is simpler).
const INSERT_CHECKOUTS: &str = "INSERT INTO payments (id, merchant_id, status, amount_minor, currency, description,
        partner_reference, external_order_reference, custom_references, culture, request_json, token_digest,
        identity_subject, created_at_ms, last_status_at_ms, expires_at_ms, history_statuses, history_ats,
        history_reasons)
    SELECT n.id, n.merchant_id, 'CREATED', n.amount_minor, n.currency, n.description, n.partner_reference,
        n.external_order_reference, n.custom_references, n.culture, n.request_json, n.token_digest,
        n.identity_subject, n.created_at_ms, n.created_at_ms, n.expires_at_ms, ARRAY['CREATED'],
        ARRAY[n.created_at_ms], ARRAY[NULL::TEXT]
    FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
            $9::TEXT[], $10::TEXT[], $11::BYTEA[], $12::TEXT[], $13::BIGINT[], $14::BIGINT[])
        AS n(id, merchant_id, amount_minor, currency, description, partner_reference, external_order_reference,
            custom_references, culture, request_json, token_digest, identity_subject, created_at_ms, expires_at_ms)";

/// Inserts all of `checkouts` in one statement; a unique violation is a conflict.
async fn insert_all(pool: &Pool, checkouts: &[NewCheckout]) -> Result<(), StoreError> {
    let c = client(pool).await?;
    if let [one] = checkouts {
        return insert_plain_checkout(&c, one).await;
    }
    fn column<'a, T>(checkouts: &'a [NewCheckout], f: impl Fn(&'a NewCheckout) -> T) -> Vec<T> {
        checkouts.iter().map(f).collect()
    }
    let ids = column(checkouts, |n| n.id.as_str());
    let merchants = column(checkouts, |n| n.merchant_id.as_str());
    let amounts = column(checkouts, |n| n.amount_minor);
    let currencies = column(checkouts, |n| n.currency.as_str());
    let descriptions = column(checkouts, |n| n.description.as_str());
    let partner_references = column(checkouts, |n| n.partner_reference.as_deref());
    let order_references = column(checkouts, |n| n.external_order_reference.as_deref());
    let custom_references = column(checkouts, |n| n.custom_references.as_deref());
    let cultures = column(checkouts, |n| n.culture.as_deref());
    let requests = column(checkouts, |n| n.request_json.as_str());
    let digests = column(checkouts, |n| n.token_digest.as_slice());
    let subjects = column(checkouts, |n| n.identity_subject.as_deref());
    let created = column(checkouts, |n| n.created_at.0);
    let expires = column(checkouts, |n| n.expires_at.0);
    let stmt = c.prepare_cached(INSERT_CHECKOUTS).await.map_err(map_err)?;
    c.execute(
        &stmt,
        &[
            &ids,
            &merchants,
            &amounts,
            &currencies,
            &descriptions,
            &partner_references,
            &order_references,
            &custom_references,
            &cultures,
            &requests,
            &digests,
            &subjects,
            &created,
            &expires,
        ],
    )
    .await
    .map_err(map_err)?;
    Ok(())
}
