//! Modifications — captures, refunds, cancellations, settlements and chargebacks — and the
//! money rules they obey (CONTRACT §6–§7). No IO: the store calls [`plan`] and [`on_outcome`]
//! inside the transaction that writes the result, so the decisions see every committed
//! modification and nothing can slip between check and write.
//!
//! The invariants: captured (pending + succeeded) ≤ authorized; refunded (pending + succeeded)
//! ≤ captured (succeeded); a cancellation only of an authorization nothing was captured from.
//! [`verify`] checks them (and the top-level status) for any stored payment.

use crate::status::{Event, PaymentStatus};

/// When a merchant's authorizations are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// Together with the authorization.
    Auto,
    /// Only through the Capture API.
    Manual,
    /// Automatically, a configured time after the authorization (a durable scheduled job).
    Delayed,
}

impl CaptureMode {
    pub const ALL: [CaptureMode; 3] = [Self::Auto, Self::Manual, Self::Delayed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Manual => "manual",
            Self::Delayed => "delayed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// `modificationData.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModificationType {
    Capture,
    Refund,
    Cancellation,
    Settlement,
    Chargeback,
}

impl ModificationType {
    pub const ALL: [ModificationType; 5] =
        [Self::Capture, Self::Refund, Self::Cancellation, Self::Settlement, Self::Chargeback];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "CAPTURE",
            Self::Refund => "REFUND",
            Self::Cancellation => "CANCELLATION",
            Self::Settlement => "SETTLEMENT",
            Self::Chargeback => "CHARGEBACK",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The status a new modification of this type starts in.
    pub fn initial_status(self) -> ModificationStatus {
        match self {
            Self::Capture => ModificationStatus::CapturePending,
            Self::Refund => ModificationStatus::RefundPending,
            Self::Cancellation => ModificationStatus::CancellationPending,
            Self::Settlement => ModificationStatus::Settled,
            Self::Chargeback => ModificationStatus::Chargeback,
        }
    }

    /// The status the provider's confirmation (`true`) or refusal (`false`) leads to.
    pub fn final_status(self, succeeded: bool) -> ModificationStatus {
        match (self, succeeded) {
            (Self::Capture, true) => ModificationStatus::Captured,
            (Self::Capture, false) => ModificationStatus::CaptureFailed,
            (Self::Refund, true) => ModificationStatus::Refunded,
            (Self::Refund, false) => ModificationStatus::RefundFailed,
            (Self::Cancellation, true) => ModificationStatus::Cancelled,
            (Self::Cancellation, false) => ModificationStatus::CancellationFailed,
            (Self::Settlement, _) => ModificationStatus::Settled,
            (Self::Chargeback, _) => ModificationStatus::Chargeback,
        }
    }
}

/// A modification's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModificationStatus {
    CapturePending,
    Captured,
    CaptureFailed,
    RefundPending,
    Refunded,
    RefundFailed,
    CancellationPending,
    Cancelled,
    CancellationFailed,
    Settled,
    Chargeback,
}

impl ModificationStatus {
    pub const ALL: [ModificationStatus; 11] = [
        Self::CapturePending,
        Self::Captured,
        Self::CaptureFailed,
        Self::RefundPending,
        Self::Refunded,
        Self::RefundFailed,
        Self::CancellationPending,
        Self::Cancelled,
        Self::CancellationFailed,
        Self::Settled,
        Self::Chargeback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CapturePending => "CAPTURE_PENDING",
            Self::Captured => "CAPTURED",
            Self::CaptureFailed => "CAPTURE_FAILED",
            Self::RefundPending => "REFUND_PENDING",
            Self::Refunded => "REFUNDED",
            Self::RefundFailed => "REFUND_FAILED",
            Self::CancellationPending => "CANCELLATION_PENDING",
            Self::Cancelled => "CANCELLED",
            Self::CancellationFailed => "CANCELLATION_FAILED",
            Self::Settled => "SETTLED",
            Self::Chargeback => "CHARGEBACK",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Waiting for the provider.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::CapturePending | Self::RefundPending | Self::CancellationPending)
    }
}

/// One modification as the money rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: ModificationType,
    pub status: ModificationStatus,
    pub amount_minor: i64,
}

/// The money of a payment, summed from its modifications (minor units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    pub authorized: i64,
    pub capture_pending: i64,
    pub captured: i64,
    pub refund_pending: i64,
    pub refunded: i64,
    pub chargebacks: i64,
    pub cancellation_pending: bool,
    pub cancelled: bool,
    pub settled: bool,
}

impl Ledger {
    /// `authorized` is the payment's amount once it was authorized (0 before).
    pub fn of(authorized: i64, entries: &[Entry]) -> Ledger {
        let mut l = Ledger { authorized, ..Ledger::default() };
        for e in entries {
            let a = e.amount_minor;
            use ModificationStatus as M;
            match e.status {
                M::CapturePending => l.capture_pending = l.capture_pending.saturating_add(a),
                M::Captured => l.captured = l.captured.saturating_add(a),
                M::RefundPending => l.refund_pending = l.refund_pending.saturating_add(a),
                M::Refunded => l.refunded = l.refunded.saturating_add(a),
                M::CancellationPending => l.cancellation_pending = true,
                M::Cancelled => l.cancelled = true,
                M::Settled => l.settled = true,
                M::Chargeback => l.chargebacks = l.chargebacks.saturating_add(a),
                M::CaptureFailed | M::RefundFailed | M::CancellationFailed => {}
            }
        }
        l
    }

    /// What may still be captured.
    pub fn capturable(&self) -> i64 {
        if self.cancelled || self.cancellation_pending {
            return 0;
        }
        self.authorized.saturating_sub(self.capture_pending).saturating_sub(self.captured).max(0)
    }

    /// What may still be refunded.
    pub fn refundable(&self) -> i64 {
        self.captured.saturating_sub(self.refund_pending).saturating_sub(self.refunded).max(0)
    }
}

/// What the merchant asks for. `None` amounts mean "all that is left".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Capture(Option<i64>),
    Refund(Option<i64>),
    Cancel,
    /// Cancel when nothing was captured, else refund everything refundable.
    CancelOrRefund,
}

/// Why a request is refused (nothing is written then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The payment's status does not allow it (409 `invalid_state`).
    InvalidState(PaymentStatus),
    /// More than can still be captured (422 `amount_exceeds_capturable`).
    ExceedsCapturable { remaining: i64 },
    /// More than can still be refunded (422 `amount_exceeds_refundable`).
    ExceedsRefundable { remaining: i64 },
}

/// An accepted request: the modification to open and the payment event that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub kind: ModificationType,
    pub amount_minor: i64,
    pub event: Option<Event>,
}

/// Decides whether `request` may be made on a payment in `status` with `ledger`.
pub fn plan(status: PaymentStatus, ledger: &Ledger, request: Request) -> Result<Plan, Refusal> {
    use PaymentStatus as S;
    let invalid = Err(Refusal::InvalidState(status));
    match request {
        Request::Capture(amount) => {
            if !matches!(status, S::AuthorizationCompleted | S::CapturePending | S::Captured)
                || ledger.cancelled
                || ledger.cancellation_pending
            {
                return invalid;
            }
            let remaining = ledger.capturable();
            let amount = amount.unwrap_or(remaining);
            if amount <= 0 || amount > remaining {
                return Err(Refusal::ExceedsCapturable { remaining });
            }
            let event = (status == S::AuthorizationCompleted).then_some(Event::CaptureRequested);
            Ok(Plan { kind: ModificationType::Capture, amount_minor: amount, event })
        }
        Request::Refund(amount) => {
            if !matches!(status, S::Captured | S::Settled) {
                return invalid;
            }
            let remaining = ledger.refundable();
            let amount = amount.unwrap_or(remaining);
            if amount <= 0 || amount > remaining {
                return Err(Refusal::ExceedsRefundable { remaining });
            }
            Ok(Plan { kind: ModificationType::Refund, amount_minor: amount, event: None })
        }
        Request::Cancel => {
            let untouched = ledger.capture_pending == 0 && ledger.captured == 0;
            if status != S::AuthorizationCompleted || !untouched || ledger.cancellation_pending || ledger.cancelled {
                return invalid;
            }
            Ok(Plan { kind: ModificationType::Cancellation, amount_minor: ledger.authorized, event: None })
        }
        Request::CancelOrRefund => match status {
            S::AuthorizationCompleted => plan(status, ledger, Request::Cancel),
            S::Captured | S::Settled => plan(status, ledger, Request::Refund(None)),
            _ => invalid,
        },
    }
}

/// The payment event that follows a modification reaching `outcome`, given the ledger *after*
/// the modification's new status is counted. `None`: the payment's status stays.
pub fn on_outcome(status: PaymentStatus, after: &Ledger, outcome: ModificationStatus) -> Option<Event> {
    use ModificationStatus as M;
    use PaymentStatus as S;
    match (status, outcome) {
        (S::CapturePending, M::Captured) => Some(Event::CaptureSucceeded),
        // Only when no capture is left in flight does a failure send the payment back.
        (S::CapturePending, M::CaptureFailed) if after.capture_pending == 0 && after.captured == 0 => {
            Some(Event::CaptureFailed)
        }
        // Everything captured is refunded and no capture is left in flight: after the last
        // refund, or after the last pending capture failed.
        (S::Captured | S::Settled, M::Refunded | M::CaptureFailed)
            if after.captured > 0 && after.refunded == after.captured && after.capture_pending == 0 =>
        {
            Some(Event::RefundedInFull)
        }
        (S::AuthorizationCompleted, M::Cancelled) => Some(Event::Cancelled),
        (S::Captured, M::Settled) => Some(Event::Settled),
        _ => None,
    }
}

/// Checks a stored payment against the invariants; each broken rule is one line.
pub fn verify(status: PaymentStatus, amount_minor: i64, entries: &[Entry]) -> Vec<String> {
    use PaymentStatus as S;
    let mut problems = Vec::new();
    let authorized = if matches!(status, S::Created | S::AuthorizationPending | S::AuthorizationFailed | S::Expired) {
        0
    } else {
        amount_minor
    };
    if authorized == 0 && !entries.is_empty() {
        problems.push(format!("{} modification(s) on a payment that was never authorized ({status})", entries.len()));
    }
    let l = Ledger::of(authorized, entries);
    if l.capture_pending.saturating_add(l.captured) > l.authorized {
        problems.push(format!(
            "captured {} + pending {} exceeds authorized {}",
            l.captured, l.capture_pending, l.authorized
        ));
    }
    if l.refund_pending.saturating_add(l.refunded) > l.captured {
        problems
            .push(format!("refunded {} + pending {} exceeds captured {}", l.refunded, l.refund_pending, l.captured));
    }
    if entries.iter().any(|e| e.amount_minor < 0) {
        problems.push("a negative modification amount".into());
    }
    if (l.cancelled || l.cancellation_pending) && (l.captured > 0 || l.capture_pending > 0) {
        problems.push("a cancellation of an authorization that was captured".into());
    }
    let consistent = match status {
        S::Created | S::AuthorizationPending | S::AuthorizationFailed | S::Expired => entries.is_empty(),
        S::AuthorizationCompleted => l.captured == 0 && l.capture_pending == 0 && !l.cancelled,
        S::CapturePending => l.captured == 0 && l.capture_pending > 0,
        S::Captured => l.captured > 0 && !(l.refunded == l.captured && l.capture_pending == 0),
        S::Settled => l.captured > 0 && l.settled,
        S::Cancelled => l.cancelled && l.captured == 0,
        S::Refunded => l.captured > 0 && l.refunded == l.captured,
    };
    if !consistent {
        problems.push(format!(
            "status {status} does not match the modifications (captured {}, pending capture {}, refunded {}, cancelled {})",
            l.captured, l.capture_pending, l.refunded, l.cancelled
        ));
    }
    problems
}

#[cfg(test)]
mod tests;
