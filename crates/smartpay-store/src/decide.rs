//! The decisions both stores share, above the SQL (docs/decisions/0008).
//!
//! Each backend reads what a decision needs, calls it here, and writes what it decided in its
//! own transaction: SQLite inside its single writer, PostgreSQL under row locks and unique
//! constraints. What an earlier idempotency claim makes of a new checkout, the path a payment
//! takes through the domain's `transition`, what a modification request opens, and which
//! answers may end a modification are therefore decided once, and the contract suite
//! (`tests/contract.rs`) checks that both backends write the same outcome.

use smartpay_domain::modification::{ModificationStatus, ModificationType, Refusal, plan};
use smartpay_domain::status::transition;
use smartpay_domain::{Event, Millis, PaymentStatus};

use crate::{
    BeginOutcome, CreateOutcome, IdempotencyClaim, Modification, ModificationChange, ModificationRequest,
    NewModification, Payment, StatusChange, StoreError,
};

/// An `idempotency_keys` record as both stores read it.
pub(crate) struct StoredClaim {
    pub fingerprint: Vec<u8>,
    pub response_enc: Vec<u8>,
    pub payment_id: String,
    pub expires_at_ms: Option<i64>,
}

/// What an earlier record under one of a checkout's keys makes of it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimCheck {
    /// No record: the key is free.
    Free,
    /// A record whose lifetime ended by the checkout's creation: it no longer counts, and is
    /// deleted so the key can be claimed afresh.
    Expired,
    /// A live record: the same request replays its first answer, another one conflicts.
    Decided(CreateOutcome),
}

/// Judges one claim of a checkout created `at` against the record found under its key.
pub(crate) fn check_claim(claim: &IdempotencyClaim, found: Option<StoredClaim>, at: Millis) -> ClaimCheck {
    let Some(found) = found else { return ClaimCheck::Free };
    if found.expires_at_ms.is_some_and(|e| e <= at.0) {
        ClaimCheck::Expired
    } else if found.fingerprint == claim.fingerprint {
        ClaimCheck::Decided(CreateOutcome::Replay { response_enc: found.response_enc, payment_id: found.payment_id })
    } else {
        ClaimCheck::Decided(CreateOutcome::Conflict { scope: claim.scope })
    }
}

/// One status step of a payment: `transition`'s answer, a refusal as a conflict.
pub(crate) fn step(from: PaymentStatus, event: Event) -> Result<PaymentStatus, StoreError> {
    transition(from, event).map_err(|e| StoreError::Conflict(e.to_string()))
}

/// The statuses a payment passes through on `events`, in order (self-transitions included:
/// they change facts, not the status), or the first refusal. Nothing is written when it fails.
pub(crate) fn path(from: PaymentStatus, events: &[Event]) -> Result<Vec<PaymentStatus>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
    let mut at = from;
    for event in events {
        at = step(at, *event)?;
        out.push(at);
    }
    Ok(out)
}

/// The changes of a [`path`] that get a history row and a notification: every step to another
/// status, with the update's reason on the first of them only.
pub(crate) fn changes<'a>(
    from: PaymentStatus,
    path: &'a [PaymentStatus],
    reason: Option<&'a str>,
) -> impl Iterator<Item = (PaymentStatus, PaymentStatus, Option<&'a str>)> + 'a {
    let mut previous = from;
    let mut reason = reason;
    path.iter().filter_map(move |&status| {
        let change = (status != previous).then(|| (previous, status, reason.take()));
        previous = status;
        change
    })
}

/// Mirrors a recorded status change on the payment read in the same transaction (no second
/// read).
pub(crate) fn mirror(p: &mut Payment, to: PaymentStatus, at: Millis) {
    p.status = to;
    p.last_status_at = at;
    p.history.push(StatusChange { status: to, at, reason: None });
}

/// A modification already stored under a `modificationId`.
pub(crate) struct StoredModification {
    pub pk: String,
    pub payment_id: String,
    pub fingerprint: Vec<u8>,
    pub response: Option<Vec<u8>>,
}

/// What an earlier use of the request's `modificationId` calls for.
pub(crate) enum Earlier {
    /// Another request: [`BeginOutcome::Conflict`].
    Conflict,
    /// The same request, answered: [`BeginOutcome::Replay`] of its first answer.
    Replay(Vec<u8>),
    /// The same request, not answered yet: the caller reads the payment and answers
    /// [`BeginOutcome::Unanswered`].
    Unanswered { pk: String, payment_id: String },
}

pub(crate) fn earlier(found: StoredModification, m: &NewModification) -> Earlier {
    if found.fingerprint != m.fingerprint {
        Earlier::Conflict
    } else if let Some(response) = found.response {
        Earlier::Replay(response)
    } else {
        Earlier::Unanswered { pk: found.pk, payment_id: found.payment_id }
    }
}

/// Why a request opens nothing (nothing is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotOpened {
    /// The request names another currency than the payment's.
    Currency { expected: String },
    /// The money rules refuse it; the remaining amounts are counted in `currency`.
    Refused { refusal: Refusal, currency: String },
}

impl From<NotOpened> for BeginOutcome {
    fn from(n: NotOpened) -> Self {
        match n {
            NotOpened::Currency { expected } => BeginOutcome::CurrencyMismatch { expected },
            NotOpened::Refused { refusal, currency } => BeginOutcome::Refused { refusal, currency },
        }
    }
}

/// What a request makes of a payment: the modification to open, and the payment's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opening {
    pub kind: ModificationType,
    pub status: ModificationStatus,
    pub amount_minor: i64,
    pub event: Option<Event>,
}

/// Checks the request's currency, then asks the money rules (`modification::plan`) for a
/// merchant's request, or the settlement and chargeback rules for the sandbox's own; the
/// refusal is the answer to give, nothing written.
pub(crate) fn open(payment: &Payment, m: &NewModification) -> Result<Opening, NotOpened> {
    if let Some(c) = &m.currency
        && !c.eq_ignore_ascii_case(&payment.currency)
    {
        return Err(NotOpened::Currency { expected: payment.currency.clone() });
    }
    let refused = |refusal| NotOpened::Refused { refusal, currency: payment.currency.clone() };
    let ledger = payment.ledger();
    match m.request {
        ModificationRequest::Merchant(request) => {
            let p = plan(payment.status, &ledger, request).map_err(refused)?;
            Ok(Opening { kind: p.kind, status: p.kind.initial_status(), amount_minor: p.amount_minor, event: p.event })
        }
        ModificationRequest::Settlement if payment.status == PaymentStatus::Captured => Ok(Opening {
            kind: ModificationType::Settlement,
            status: ModificationStatus::Settled,
            amount_minor: ledger.captured.saturating_sub(ledger.refunded),
            event: Some(Event::Settled),
        }),
        ModificationRequest::Chargeback(amount)
            if matches!(payment.status, PaymentStatus::Captured | PaymentStatus::Settled | PaymentStatus::Refunded)
                && amount > 0
                && amount <= ledger.captured =>
        {
            Ok(Opening {
                kind: ModificationType::Chargeback,
                status: ModificationStatus::Chargeback,
                amount_minor: amount,
                event: None,
            })
        }
        ModificationRequest::Settlement | ModificationRequest::Chargeback(_) => {
            Err(refused(Refusal::InvalidState(payment.status)))
        }
    }
}

/// The modification just opened, as the payment read in the same transaction carries it.
pub(crate) fn opened(m: &NewModification, payment: &Payment, o: &Opening) -> Modification {
    Modification {
        pk: m.pk.clone(),
        payment_id: payment.id.clone(),
        merchant_id: m.merchant_id.clone(),
        modification_id: m.modification_id.clone(),
        kind: o.kind,
        status: o.status,
        amount_minor: o.amount_minor,
        currency: payment.currency.clone(),
        description: m.description.clone(),
        custom_references: m.custom_references.clone(),
        reconciliation_reference_id: None,
        failure_code: None,
        created_at: m.at,
        last_status_at: m.at,
        history: vec![ModificationChange { status: o.status, at: m.at }],
    }
}

/// A modification of `kind` ends only in its own success or failure status.
pub(crate) fn check_final(kind: ModificationType, outcome: ModificationStatus) -> Result<(), StoreError> {
    if outcome == kind.final_status(true) || outcome == kind.final_status(false) {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!("{} cannot end as {}", kind.as_str(), outcome.as_str())))
    }
}

/// A payment status stored as text (the enums' own `as_str`/`parse` are the one mapping both
/// stores write and read); an unknown one is a corrupt database, never a guess.
pub(crate) fn payment_status(s: &str) -> Result<PaymentStatus, StoreError> {
    PaymentStatus::parse(s).ok_or_else(|| StoreError::Internal(format!("unknown status {s:?} in database")))
}

/// A modification type stored as text.
pub(crate) fn modification_type(s: &str) -> Result<ModificationType, StoreError> {
    ModificationType::parse(s)
        .ok_or_else(|| StoreError::Internal(format!("unknown modification type {s:?} in database")))
}

/// A modification status stored as text.
pub(crate) fn modification_status(s: &str) -> Result<ModificationStatus, StoreError> {
    ModificationStatus::parse(s)
        .ok_or_else(|| StoreError::Internal(format!("unknown modification status {s:?} in database")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdempotencyScope;

    fn claim(fingerprint: &[u8]) -> IdempotencyClaim {
        IdempotencyClaim {
            scope: IdempotencyScope::Header,
            key: "k".into(),
            route: "/payment/creation".into(),
            fingerprint: fingerprint.to_vec(),
            response_enc: b"new".to_vec(),
            expires_at: None,
        }
    }

    fn stored(fingerprint: &[u8], expires_at_ms: Option<i64>) -> Option<StoredClaim> {
        Some(StoredClaim {
            fingerprint: fingerprint.to_vec(),
            response_enc: b"first".to_vec(),
            payment_id: "p1".into(),
            expires_at_ms,
        })
    }

    #[test]
    fn a_live_claim_replays_the_same_request_and_refuses_another_an_expired_one_does_not_count() {
        let at = Millis(1_000);
        assert_eq!(check_claim(&claim(b"a"), None, at), ClaimCheck::Free);
        assert_eq!(
            check_claim(&claim(b"a"), stored(b"a", Some(1_001)), at),
            ClaimCheck::Decided(CreateOutcome::Replay { response_enc: b"first".to_vec(), payment_id: "p1".into() })
        );
        assert_eq!(
            check_claim(&claim(b"b"), stored(b"a", None), at),
            ClaimCheck::Decided(CreateOutcome::Conflict { scope: IdempotencyScope::Header })
        );
        // Expiry is inclusive: a record that ends at the checkout's creation no longer counts.
        assert_eq!(check_claim(&claim(b"b"), stored(b"a", Some(1_000)), at), ClaimCheck::Expired);
    }

    #[test]
    fn a_path_keeps_self_transitions_but_only_real_changes_get_rows_and_the_reason_goes_on_the_first() {
        use PaymentStatus::*;
        let p = path(AuthorizationPending, &[Event::Authorized, Event::CaptureRequested]).unwrap();
        assert_eq!(p, [AuthorizationCompleted, CapturePending]);
        let c: Vec<_> = changes(AuthorizationPending, &p, Some("why")).collect();
        assert_eq!(
            c,
            [
                (AuthorizationPending, AuthorizationCompleted, Some("why")),
                (AuthorizationCompleted, CapturePending, None)
            ]
        );
        let further = path(Captured, &[Event::CaptureRequested, Event::CaptureSucceeded]).unwrap();
        assert_eq!(further, [Captured, Captured]);
        assert_eq!(changes(Captured, &further, Some("why")).count(), 0);
        assert!(matches!(path(Created, &[Event::CaptureSucceeded]), Err(StoreError::Conflict(_))));
    }
}
