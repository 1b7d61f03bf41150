//! What a status change writes besides the status, in the change's own transaction: the
//! merchant's notification (the outbox, CONTRACT §12), the end of the pending resolution it
//! makes moot, and a modification's history row — the PostgreSQL mirror of `sqlite/outbox.rs`.
//! Every status change of a payment or a refund passes here. A payment's own history is kept in
//! its row (migration 0007) and appended by the status update that causes it.
//!
//! Modification history rows are numbered `MAX(seq) + 1`: safe because the caller's change (a
//! modification's insert or update) locked the row the history belongs to, so no other
//! transaction numbers the same history at the same time.

use deadpool_postgres::Transaction;
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

/// A new notification's id (time-ordered).
fn event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a payment's move `from` → `to` causes (its history entry is appended by the status
/// update itself, in the payment's row): a notification when `to` is one merchants hear of
/// (only for merchants with an endpoint), and the end of the authorization's pending resolution
/// once the payment leaves `AUTHORIZATION_PENDING`.
pub(crate) async fn payment_changed(
    tx: &Transaction<'_>,
    payment_id: &str,
    from: PaymentStatus,
    to: PaymentStatus,
    at: Millis,
    origin: EventOrigin,
) -> Result<(), StoreError> {
    if notifies(to) {
        // Only for merchants with an endpoint: otherwise the statement inserts nothing.
        let notify = tx
            .prepare_cached(
                "INSERT INTO notifications (id, merchant_id, payment_id, object_type, object_id, origin, status,
                     reconciliation_reference_id, created_at_ms, state, next_attempt_at_ms, retry_from_ms)
                 SELECT $1::TEXT, p.merchant_id, p.id, 'payment', p.id, $2::TEXT, $3::TEXT,
                     p.reconciliation_reference_id, $4::BIGINT, 'PENDING', $4::BIGINT, $4::BIGINT
                 FROM payments p JOIN notification_settings s ON s.merchant_id = p.merchant_id
                 WHERE p.id = $5::TEXT",
            )
            .await
            .map_err(map_err)?;
        tx.execute(&notify, &[&event_id(), &origin.as_str(), &to.as_str(), &at.0, &payment_id])
            .await
            .map_err(map_err)?;
    }
    if from == PaymentStatus::AuthorizationPending && to != PaymentStatus::AuthorizationPending {
        let end = tx
            .prepare_cached("DELETE FROM jobs WHERE kind = 'RESOLVE_AUTHORIZATION' AND payment_id = $1")
            .await
            .map_err(map_err)?;
        tx.execute(&end, &[&payment_id]).await.map_err(map_err)?;
    }
    Ok(())
}

/// The history row of a modification's new status, and what it causes: a refund's change is
/// notified (`objectType: refund`); a final status ends the modification's pending resolution.
pub(crate) async fn modification_changed(
    tx: &Transaction<'_>,
    pk: &str,
    kind: ModificationType,
    status: ModificationStatus,
    at: Millis,
    origin: EventOrigin,
) -> Result<(), StoreError> {
    let history = tx
        .prepare_cached(
            "INSERT INTO modification_status_history (modification_pk, seq, status, at_ms)
             SELECT $1::TEXT, COALESCE(MAX(seq), 0) + 1, $2::TEXT, $3::BIGINT
             FROM modification_status_history WHERE modification_pk = $1::TEXT",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&history, &[&pk, &status.as_str(), &at.0]).await.map_err(map_err)?;
    if kind == ModificationType::Refund {
        let notify = tx
            .prepare_cached(
                "INSERT INTO notifications (id, merchant_id, payment_id, object_type, object_id, modification_id,
                     origin, status, reconciliation_reference_id, created_at_ms, state, next_attempt_at_ms,
                     retry_from_ms)
                 SELECT $1::TEXT, m.merchant_id, m.payment_id, 'refund', m.modification_id, m.modification_id,
                     $2::TEXT, $3::TEXT, m.reconciliation_reference_id, $4::BIGINT, 'PENDING', $4::BIGINT, $4::BIGINT
                 FROM modifications m JOIN notification_settings s ON s.merchant_id = m.merchant_id
                 WHERE m.id = $5::TEXT",
            )
            .await
            .map_err(map_err)?;
        tx.execute(&notify, &[&event_id(), &origin.as_str(), &status.as_str(), &at.0, &pk]).await.map_err(map_err)?;
    }
    if !status.is_pending() {
        let end = tx
            .prepare_cached("DELETE FROM jobs WHERE kind = 'RESOLVE_MODIFICATION' AND target = $1")
            .await
            .map_err(map_err)?;
        tx.execute(&end, &[&pk]).await.map_err(map_err)?;
    }
    Ok(())
}
