//! What a status change writes besides the status, in its own transaction: its history row,
//! the merchant's notification (the outbox, CONTRACT §12), and the end of the pending
//! resolution it makes moot. Every status change of a payment or a refund passes here.

use rusqlite::{Connection, params};
use smartpay_domain::modification::{ModificationStatus, ModificationType};
use smartpay_domain::{Millis, PaymentStatus};

use super::map_err;
use crate::{EventOrigin, StoreError};

/// Payment statuses merchants are notified of (never `CREATED`, nor the pending ones).
pub(crate) fn notifies(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::AuthorizationCompleted
            | PaymentStatus::AuthorizationFailed
            | PaymentStatus::Captured
            | PaymentStatus::Settled
            | PaymentStatus::Cancelled
            | PaymentStatus::Refunded
            | PaymentStatus::Expired
    )
}

fn event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The history row of a payment's move `from` → `to`, and what the move causes.
pub(crate) fn payment_changed(
    conn: &Connection,
    payment_id: &str,
    from: PaymentStatus,
    to: PaymentStatus,
    at: Millis,
    reason: Option<&str>,
    origin: EventOrigin,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO payment_status_history (payment_id, seq, status, at_ms, reason)
         SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM payment_status_history WHERE payment_id = ?1",
    )
    .and_then(|mut s| s.execute(params![payment_id, to.as_str(), at.0, reason]))
    .map_err(map_err)?;
    if notifies(to) {
        // Only for merchants with an endpoint: otherwise the statement inserts nothing.
        conn.prepare_cached(
            "INSERT INTO notifications (id, merchant_id, payment_id, object_type, object_id, origin, status,
                 reconciliation_reference_id, created_at_ms, state, next_attempt_at_ms, retry_from_ms)
             SELECT ?1, p.merchant_id, p.id, 'payment', p.id, ?2, ?3, p.reconciliation_reference_id, ?4,
                 'PENDING', ?4, ?4
             FROM payments p JOIN notification_settings s ON s.merchant_id = p.merchant_id WHERE p.id = ?5",
        )
        .and_then(|mut s| s.execute(params![event_id(), origin.as_str(), to.as_str(), at.0, payment_id]))
        .map_err(map_err)?;
    }
    if from == PaymentStatus::AuthorizationPending && to != PaymentStatus::AuthorizationPending {
        conn.prepare_cached("DELETE FROM jobs WHERE kind = 'RESOLVE_AUTHORIZATION' AND payment_id = ?1")
            .and_then(|mut s| s.execute([payment_id]))
            .map_err(map_err)?;
    }
    Ok(())
}

/// The history row of a modification's new status, and what it causes: a refund's change is
/// notified (`objectType: refund`); a final status ends the modification's pending resolution.
pub(crate) fn modification_changed(
    conn: &Connection,
    pk: &str,
    kind: ModificationType,
    status: ModificationStatus,
    at: Millis,
    origin: EventOrigin,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO modification_status_history (modification_pk, seq, status, at_ms)
         SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3 FROM modification_status_history WHERE modification_pk = ?1",
    )
    .and_then(|mut s| s.execute(params![pk, status.as_str(), at.0]))
    .map_err(map_err)?;
    if kind == ModificationType::Refund {
        conn.prepare_cached(
            "INSERT INTO notifications (id, merchant_id, payment_id, object_type, object_id, modification_id, origin,
                 status, reconciliation_reference_id, created_at_ms, state, next_attempt_at_ms, retry_from_ms)
             SELECT ?1, m.merchant_id, m.payment_id, 'refund', m.modification_id, m.modification_id, ?2, ?3,
                 m.reconciliation_reference_id, ?4, 'PENDING', ?4, ?4
             FROM modifications m JOIN notification_settings s ON s.merchant_id = m.merchant_id
             WHERE m.id = ?5",
        )
        .and_then(|mut s| s.execute(params![event_id(), origin.as_str(), status.as_str(), at.0, pk]))
        .map_err(map_err)?;
    }
    if !status.is_pending() {
        conn.prepare_cached("DELETE FROM jobs WHERE kind = 'RESOLVE_MODIFICATION' AND target = ?1")
            .and_then(|mut s| s.execute([pk]))
            .map_err(map_err)?;
    }
    Ok(())
}
