//! Modifications and scheduled jobs in SQLite. Every decision is taken above the SQL, once for
//! both stores (`crate::decide`, on the domain's `modification::{plan, on_outcome}` and
//! `status::transition`); this file only reads what they need and writes what they decide,
//! inside the writer's transaction.

use rusqlite::{Connection, OptionalExtension, params};
use smartpay_domain::modification::{ModificationStatus, ModificationType, Refusal, on_outcome};
use smartpay_domain::{Millis, PaymentStatus};

use super::imp::{read_payment, record_status};
use super::outbox::modification_changed;
use crate::decide;
use crate::sqlite::map_err;
use crate::{
    BeginOutcome, EventOrigin, JobKind, Modification, ModificationAnswer, ModificationChange, NewModification, Payment,
    StoreError,
};

/// The modifications of a payment with their histories, oldest first.
pub(crate) fn read_modifications(conn: &Connection, payment_id: &str) -> Result<Vec<Modification>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, payment_id, merchant_id, modification_id, kind, status, amount_minor, currency, description,
                    custom_references, reconciliation_reference_id, failure_code, created_at_ms, last_status_at_ms
             FROM modifications WHERE payment_id = ?1 ORDER BY created_at_ms, rowid",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([payment_id], |r| {
            Ok((
                Modification {
                    pk: r.get(0)?,
                    payment_id: r.get(1)?,
                    merchant_id: r.get(2)?,
                    modification_id: r.get(3)?,
                    kind: ModificationType::Capture,
                    status: ModificationStatus::CapturePending,
                    amount_minor: r.get(6)?,
                    currency: r.get(7)?,
                    description: r.get(8)?,
                    custom_references: r.get(9)?,
                    reconciliation_reference_id: r.get(10)?,
                    failure_code: r.get(11)?,
                    created_at: Millis(r.get(12)?),
                    last_status_at: Millis(r.get(13)?),
                    history: Vec::new(),
                },
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut m, kind, status) = row.map_err(map_err)?;
        m.kind = decide::modification_type(&kind)?;
        m.status = decide::modification_status(&status)?;
        out.push(m);
    }
    let mut hist = conn
        .prepare_cached("SELECT status, at_ms FROM modification_status_history WHERE modification_pk = ?1 ORDER BY seq")
        .map_err(map_err)?;
    for m in &mut out {
        let rows = hist.query_map([&m.pk], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(map_err)?;
        for row in rows {
            let (s, at) = row.map_err(map_err)?;
            let status = decide::modification_status(&s)?;
            m.history.push(ModificationChange { status, at: Millis(at) });
        }
    }
    Ok(out)
}

/// Moves the payment by `event` (as `transition` decides), with a history row, and mirrors the
/// change on `p` (no second read inside the writer's transaction).
fn apply(
    conn: &Connection,
    p: &mut Payment,
    event: smartpay_domain::Event,
    at: Millis,
    origin: EventOrigin,
) -> Result<(), StoreError> {
    let to = decide::step(p.status, event)?;
    if to != p.status {
        if !record_status(conn, &p.id, p.status, to, at, None, origin)? {
            return Err(StoreError::Conflict("the payment moved during the transaction".into()));
        }
        decide::mirror(p, to, at);
    }
    Ok(())
}

pub(crate) fn begin_tx(conn: &Connection, m: &NewModification) -> Result<BeginOutcome, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT id, payment_id, fingerprint, response FROM modifications WHERE merchant_id = ?1 AND modification_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![m.merchant_id, m.modification_id], |r| {
                Ok(decide::StoredModification {
                    pk: r.get(0)?,
                    payment_id: r.get(1)?,
                    fingerprint: r.get(2)?,
                    response: r.get(3)?,
                })
            })
            .optional()
        })
        .map_err(map_err)?;
    if let Some(found) = found {
        return match decide::earlier(found, m) {
            decide::Earlier::Conflict => Ok(BeginOutcome::Conflict),
            decide::Earlier::Replay(response) => Ok(BeginOutcome::Replay { response }),
            decide::Earlier::Unanswered { pk, payment_id } => {
                let payment = read_payment(conn, &m.merchant_id, &payment_id)?.ok_or(StoreError::NotFound)?;
                Ok(BeginOutcome::Unanswered { payment, pk })
            }
        };
    }
    if let Some(update) = &m.authorize_first {
        let done = super::imp::apply_events_tx(
            conn,
            &m.payment_id,
            PaymentStatus::AuthorizationPending,
            &[smartpay_domain::Event::Authorized],
            m.at,
            update,
        )?;
        if done.is_none() {
            let now = read_payment(conn, &m.merchant_id, &m.payment_id)?.ok_or(StoreError::NotFound)?;
            return Ok(BeginOutcome::Refused { refusal: Refusal::InvalidState(now.status), currency: now.currency });
        }
    }
    let Some(mut payment) = read_payment(conn, &m.merchant_id, &m.payment_id)? else {
        return Ok(BeginOutcome::NotFound);
    };
    let o = match decide::open(&payment, m) {
        Ok(opening) => opening,
        Err(not) => return Ok(not.into()),
    };
    conn.prepare_cached(
        "INSERT INTO modifications (id, payment_id, merchant_id, modification_id, kind, status, amount_minor, currency,
             description, custom_references, fingerprint, created_at_ms, last_status_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            m.pk,
            payment.id,
            m.merchant_id,
            m.modification_id,
            o.kind.as_str(),
            o.status.as_str(),
            o.amount_minor,
            payment.currency,
            m.description,
            m.custom_references,
            m.fingerprint,
            m.at.0
        ])
    })
    .map_err(map_err)?;
    modification_changed(conn, &m.pk, o.kind, o.status, m.at, m.origin)?;
    if let Some(resolve_at) = m.resolve_at
        && o.status.is_pending()
    {
        super::jobs::schedule_target(conn, &payment.id, JobKind::ResolveModification, &m.pk, resolve_at, m.at)?;
    }
    payment.modifications.push(decide::opened(m, &payment, &o));
    if let Some(event) = o.event {
        apply(conn, &mut payment, event, m.at, m.origin)?;
    }
    Ok(BeginOutcome::Started { payment, pk: m.pk.clone() })
}

pub(crate) fn finish_tx(
    conn: &Connection,
    pk: &str,
    answer: &ModificationAnswer,
) -> Result<Option<Payment>, StoreError> {
    let row: Option<(String, String, String, String)> = conn
        .prepare_cached("SELECT payment_id, merchant_id, kind, status FROM modifications WHERE id = ?1")
        .and_then(|mut s| s.query_row([pk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
        .map_err(map_err)?;
    let (payment_id, merchant_id, kind, status) = row.ok_or(StoreError::NotFound)?;
    let kind = decide::modification_type(&kind)?;
    let status = decide::modification_status(&status)?;
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
    conn.prepare_cached(
        "UPDATE modifications SET status = ?1, last_status_at_ms = ?2,
             reconciliation_reference_id = COALESCE(?3, reconciliation_reference_id),
             failure_code = COALESCE(?4, failure_code)
         WHERE id = ?5 AND status = ?6",
    )
    .and_then(|mut s| s.execute(params![outcome.as_str(), at.0, reference, failure_code, pk, status.as_str()]))
    .map_err(map_err)?;
    modification_changed(conn, pk, kind, outcome, at, origin)?;
    let mut payment = read_payment(conn, &merchant_id, &payment_id)?.ok_or(StoreError::NotFound)?;
    if let Some(event) = on_outcome(payment.status, &payment.ledger(), outcome) {
        apply(conn, &mut payment, event, at, origin)?;
    }
    super::jobs::schedule(conn, &payment_id, jobs, at)?;
    Ok(Some(payment))
}
