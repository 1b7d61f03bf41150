//! Modifications on PostgreSQL, the mirror of `sqlite/modifications.rs`. Every decision is taken
//! above the SQL, once for both stores (`crate::decide`, on the domain's
//! `modification::{plan, on_outcome}` and `status::transition`); this file only reads what they
//! need and writes what they decide, in one transaction.
//!
//! SQLite's single writer makes each of these transactions run alone; here several nodes run
//! them at once, so each one (opening a modification, or recording the provider's answer) first
//! locks the payment's row (`FOR NO KEY UPDATE`, the lock a status `UPDATE` takes): changes to
//! one payment then run one after the other, and the money rules and `on_outcome` see every
//! modification committed before them (two partial refunds answered at once still add up to a
//! full refund) (READ COMMITTED: each later
//! statement reads what was committed when it starts). A `modificationId` is claimed by the
//! unique constraint (`INSERT … ON CONFLICT DO NOTHING`): the loser of a race rolls back and
//! answers as a replay of the winner.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use smartpay_domain::modification::{Refusal, on_outcome};
use smartpay_domain::{Event, Millis, PaymentStatus};

use super::jobs::{execute, query_opt};
use super::outbox::modification_changed;
use super::payments::{apply_events_tx, col as get, read_payment, record_status, schedule, schedule_target};
use super::{client, map_err};
use crate::decide;
use crate::{BeginOutcome, EventOrigin, JobKind, ModificationAnswer, NewModification, Payment, StoreError};

fn internal(what: &str) -> StoreError {
    StoreError::Internal(what.to_owned())
}

/// Locks a merchant's payment until the transaction ends (nothing when there is no such
/// payment: the caller finds that out by reading it).
async fn lock_payment(tx: &Transaction<'_>, merchant_id: &str, payment_id: &str) -> Result<(), StoreError> {
    query_opt(
        tx,
        "SELECT 1 FROM payments WHERE id = $1 AND merchant_id = $2 FOR NO KEY UPDATE",
        &[&payment_id, &merchant_id],
    )
    .await?;
    Ok(())
}

/// Moves the payment by `event` (as `transition` decides), with a history row, and mirrors the
/// change on `p` (no second read).
async fn apply(
    tx: &Transaction<'_>,
    p: &mut Payment,
    event: Event,
    at: Millis,
    origin: EventOrigin,
) -> Result<(), StoreError> {
    let to = decide::step(p.status, event)?;
    if to != p.status {
        if !record_status(tx, &p.id, p.status, to, at, None, origin).await? {
            return Err(StoreError::Conflict("the payment moved during the transaction".into()));
        }
        decide::mirror(p, to, at);
    }
    Ok(())
}

/// What an earlier use of `m.modificationId` calls for: a conflict, a replay of its answer, or
/// the unanswered modification with its payment; `None` when the id is new.
async fn existing(c: &impl GenericClient, m: &NewModification) -> Result<Option<BeginOutcome>, StoreError> {
    let row = query_opt(
        c,
        "SELECT id, payment_id, fingerprint, response FROM modifications WHERE merchant_id = $1 AND modification_id = $2",
        &[&m.merchant_id, &m.modification_id],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let found = decide::StoredModification {
        pk: get(&row, 0)?,
        payment_id: get(&row, 1)?,
        fingerprint: get(&row, 2)?,
        response: get(&row, 3)?,
    };
    Ok(Some(match decide::earlier(found, m) {
        decide::Earlier::Conflict => BeginOutcome::Conflict,
        decide::Earlier::Replay(response) => BeginOutcome::Replay { response },
        decide::Earlier::Unanswered { pk, payment_id } => {
            let payment = read_payment(c, &m.merchant_id, &payment_id).await?.ok_or(StoreError::NotFound)?;
            BeginOutcome::Unanswered { payment, pk }
        }
    }))
}

/// Opens the modification in `tx`: its answer (commit), or `None` when a concurrent request
/// took the `modificationId` meanwhile (roll back and answer as a replay of that request).
async fn begin_tx(tx: &Transaction<'_>, m: &NewModification) -> Result<Option<BeginOutcome>, StoreError> {
    lock_payment(tx, &m.merchant_id, &m.payment_id).await?;
    if let Some(outcome) = existing(tx, m).await? {
        return Ok(Some(outcome));
    }
    if let Some(update) = &m.authorize_first {
        let done =
            apply_events_tx(tx, &m.payment_id, PaymentStatus::AuthorizationPending, &[Event::Authorized], m.at, update)
                .await?;
        if done.is_none() {
            let now = read_payment(tx, &m.merchant_id, &m.payment_id).await?.ok_or(StoreError::NotFound)?;
            let refusal = Refusal::InvalidState(now.status);
            return Ok(Some(BeginOutcome::Refused { refusal, currency: now.currency }));
        }
    }
    let Some(mut payment) = read_payment(tx, &m.merchant_id, &m.payment_id).await? else {
        return Ok(Some(BeginOutcome::NotFound));
    };
    let o = match decide::open(&payment, m) {
        Ok(opening) => opening,
        Err(not) => return Ok(Some(not.into())),
    };
    let inserted = query_opt(
        tx,
        "INSERT INTO modifications (id, payment_id, merchant_id, modification_id, kind, status, amount_minor, currency,
             description, custom_references, fingerprint, created_at_ms, last_status_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
         ON CONFLICT (merchant_id, modification_id) DO NOTHING
         RETURNING id",
        &[
            &m.pk,
            &payment.id,
            &m.merchant_id,
            &m.modification_id,
            &o.kind.as_str(),
            &o.status.as_str(),
            &o.amount_minor,
            &payment.currency,
            &m.description,
            &m.custom_references,
            &m.fingerprint,
            &m.at.0,
        ],
    )
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    modification_changed(tx, &m.pk, o.kind, o.status, m.at, m.origin).await?;
    if let Some(resolve_at) = m.resolve_at
        && o.status.is_pending()
    {
        schedule_target(tx, &payment.id, JobKind::ResolveModification, &m.pk, resolve_at, m.at).await?;
    }
    payment.modifications.push(decide::opened(m, &payment, &o));
    if let Some(event) = o.event {
        apply(tx, &mut payment, event, m.at, m.origin).await?;
    }
    Ok(Some(BeginOutcome::Started { payment, pk: m.pk.clone() }))
}

pub(crate) async fn begin_modification(pool: &Pool, m: NewModification) -> Result<BeginOutcome, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    match begin_tx(&tx, &m).await? {
        Some(outcome) => {
            tx.commit().await.map_err(map_err)?;
            Ok(outcome)
        }
        None => {
            // The winner has committed (the insert waited for it): answer as its replay, from
            // what is committed, not from this transaction's writes.
            tx.rollback().await.map_err(map_err)?;
            existing(&c, &m).await?.ok_or_else(|| internal("a modificationId was claimed and is gone"))
        }
    }
}

async fn finish_tx(tx: &Transaction<'_>, pk: &str, answer: &ModificationAnswer) -> Result<Option<Payment>, StoreError> {
    // The payment first (the lock every change of it takes), then the modification as it is
    // now: a concurrent answer to the same modification has committed or has not begun.
    let locked = query_opt(
        tx,
        "SELECT m.payment_id, m.merchant_id FROM modifications m JOIN payments p ON p.id = m.payment_id
         WHERE m.id = $1 FOR NO KEY UPDATE OF p",
        &[&pk],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    let (payment_id, merchant_id): (String, String) = (get(&locked, 0)?, get(&locked, 1)?);
    let row = query_opt(tx, "SELECT kind, status FROM modifications WHERE id = $1", &[&pk])
        .await?
        .ok_or(StoreError::NotFound)?;
    let kind = decide::modification_type(get(&row, 0)?)?;
    let status = decide::modification_status(get(&row, 1)?)?;
    if !status.is_pending() {
        return Ok(None);
    }
    let ModificationAnswer {
        status: outcome,
        reconciliation_reference_id: reference,
        failure_code,
        at,
        schedule: jobs,
        origin,
    } = answer;
    let (outcome, at, origin) = (*outcome, *at, *origin);
    decide::check_final(kind, outcome)?;
    let changed = execute(
        tx,
        "UPDATE modifications SET status = $1, last_status_at_ms = $2,
             reconciliation_reference_id = COALESCE($3, reconciliation_reference_id),
             failure_code = COALESCE($4, failure_code)
         WHERE id = $5 AND status = $6",
        &[&outcome.as_str(), &at.0, reference, failure_code, &pk, &status.as_str()],
    )
    .await?;
    if changed == 0 {
        return Ok(None);
    }
    modification_changed(tx, pk, kind, outcome, at, origin).await?;
    let mut payment = read_payment(tx, &merchant_id, &payment_id).await?.ok_or(StoreError::NotFound)?;
    if let Some(event) = on_outcome(payment.status, &payment.ledger(), outcome) {
        apply(tx, &mut payment, event, at, origin).await?;
    }
    schedule(tx, &payment_id, jobs, at).await?;
    Ok(Some(payment))
}

pub(crate) async fn finish_modification(
    pool: &Pool,
    pk: &str,
    answer: ModificationAnswer,
) -> Result<Option<Payment>, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let payment = finish_tx(&tx, pk, &answer).await?;
    // Nothing was written when there is no payment to return: dropping rolls back.
    if payment.is_some() {
        tx.commit().await.map_err(map_err)?;
    }
    Ok(payment)
}

pub(crate) async fn note_modification_reference(pool: &Pool, pk: &str, reference: &str) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let n = execute(&c, "UPDATE modifications SET reconciliation_reference_id = $1 WHERE id = $2", &[&reference, &pk])
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(crate) async fn save_modification_response(pool: &Pool, pk: &str, response: Vec<u8>) -> Result<(), StoreError> {
    // The first answer stays: a later one (a concurrent retry) changes nothing.
    let c = client(pool).await?;
    execute(&c, "UPDATE modifications SET response = $1 WHERE id = $2 AND response IS NULL", &[&response, &pk]).await?;
    Ok(())
}
