//! Modifications and scheduled jobs in SQLite. Every decision is the domain's
//! (`smartpay_domain::modification::{plan, on_outcome}`, `status::transition`); this file only
//! reads what they need and writes what they decide, inside the writer's transaction.

use rusqlite::{Connection, OptionalExtension, params};
use smartpay_domain::modification::{ModificationStatus, ModificationType, Refusal, on_outcome, plan};
use smartpay_domain::status::transition;
use smartpay_domain::{Millis, PaymentStatus};

use super::imp::{read_payment, record_status};
use super::outbox::modification_changed;
use crate::sqlite::map_err;
use crate::{
    BeginOutcome, EventOrigin, JobKind, Modification, ModificationAnswer, ModificationChange, ModificationRequest,
    NewModification, Payment, StoreError,
};

fn internal(what: &str) -> StoreError {
    StoreError::Internal(what.to_owned())
}

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
        m.kind = ModificationType::parse(&kind).ok_or_else(|| internal("unknown modification type"))?;
        m.status = ModificationStatus::parse(&status).ok_or_else(|| internal("unknown modification status"))?;
        out.push(m);
    }
    let mut hist = conn
        .prepare_cached("SELECT status, at_ms FROM modification_status_history WHERE modification_pk = ?1 ORDER BY seq")
        .map_err(map_err)?;
    for m in &mut out {
        let rows = hist.query_map([&m.pk], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(map_err)?;
        for row in rows {
            let (s, at) = row.map_err(map_err)?;
            let status = ModificationStatus::parse(&s).ok_or_else(|| internal("unknown modification status"))?;
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
    let to = transition(p.status, event).map_err(|e| StoreError::Conflict(e.to_string()))?;
    if to != p.status {
        if !record_status(conn, &p.id, p.status, to, at, None, origin)? {
            return Err(StoreError::Conflict("the payment moved during the transaction".into()));
        }
        p.status = to;
        p.last_status_at = at;
        p.history.push(crate::StatusChange { status: to, at, reason: None });
    }
    Ok(())
}

/// A modification already stored under a `modificationId`: its id, payment, fingerprint and answer.
type Existing = (String, String, Vec<u8>, Option<Vec<u8>>);

pub(crate) fn begin_tx(conn: &Connection, m: &NewModification) -> Result<BeginOutcome, StoreError> {
    let existing: Option<Existing> = conn
        .prepare_cached(
            "SELECT id, payment_id, fingerprint, response FROM modifications WHERE merchant_id = ?1 AND modification_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![m.merchant_id, m.modification_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(map_err)?;
    if let Some((pk, payment_id, fingerprint, response)) = existing {
        if fingerprint != m.fingerprint {
            return Ok(BeginOutcome::Conflict);
        }
        if let Some(response) = response {
            return Ok(BeginOutcome::Replay { response });
        }
        let payment = read_payment(conn, &m.merchant_id, &payment_id)?.ok_or(StoreError::NotFound)?;
        return Ok(BeginOutcome::Unanswered { payment, pk });
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
    if let Some(c) = &m.currency
        && !c.eq_ignore_ascii_case(&payment.currency)
    {
        return Ok(BeginOutcome::CurrencyMismatch { expected: payment.currency.clone() });
    }
    let ledger = payment.ledger();
    let (kind, status, amount, event) = match m.request {
        ModificationRequest::Merchant(request) => match plan(payment.status, &ledger, request) {
            Ok(p) => (p.kind, p.kind.initial_status(), p.amount_minor, p.event),
            Err(refusal) => return Ok(BeginOutcome::Refused { refusal, currency: payment.currency }),
        },
        ModificationRequest::Settlement if payment.status == PaymentStatus::Captured => (
            ModificationType::Settlement,
            ModificationStatus::Settled,
            ledger.captured.saturating_sub(ledger.refunded),
            Some(smartpay_domain::Event::Settled),
        ),
        ModificationRequest::Chargeback(amount)
            if matches!(payment.status, PaymentStatus::Captured | PaymentStatus::Settled | PaymentStatus::Refunded)
                && amount > 0
                && amount <= ledger.captured =>
        {
            (ModificationType::Chargeback, ModificationStatus::Chargeback, amount, None)
        }
        ModificationRequest::Settlement | ModificationRequest::Chargeback(_) => {
            return Ok(BeginOutcome::Refused {
                refusal: Refusal::InvalidState(payment.status),
                currency: payment.currency,
            });
        }
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
            kind.as_str(),
            status.as_str(),
            amount,
            payment.currency,
            m.description,
            m.custom_references,
            m.fingerprint,
            m.at.0
        ])
    })
    .map_err(map_err)?;
    modification_changed(conn, &m.pk, kind, status, m.at, m.origin)?;
    if let Some(resolve_at) = m.resolve_at
        && status.is_pending()
    {
        super::jobs::schedule_target(conn, &payment.id, JobKind::ResolveModification, &m.pk, resolve_at, m.at)?;
    }
    payment.modifications.push(Modification {
        pk: m.pk.clone(),
        payment_id: payment.id.clone(),
        merchant_id: m.merchant_id.clone(),
        modification_id: m.modification_id.clone(),
        kind,
        status,
        amount_minor: amount,
        currency: payment.currency.clone(),
        description: m.description.clone(),
        custom_references: m.custom_references.clone(),
        reconciliation_reference_id: None,
        failure_code: None,
        created_at: m.at,
        last_status_at: m.at,
        history: vec![ModificationChange { status, at: m.at }],
    });
    if let Some(event) = event {
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
    let kind = ModificationType::parse(&kind).ok_or_else(|| internal("unknown modification type"))?;
    let status = ModificationStatus::parse(&status).ok_or_else(|| internal("unknown modification status"))?;
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
    if outcome != kind.final_status(true) && outcome != kind.final_status(false) {
        return Err(StoreError::Conflict(format!("{} cannot end as {}", kind.as_str(), outcome.as_str())));
    }
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
