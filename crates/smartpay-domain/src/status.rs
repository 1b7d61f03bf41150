//! The payment status model (CONTRACT §6) and the one function that moves it.
//!
//! Nothing else in the code base changes a payment's status: use cases ask [`transition`]
//! and store what it answers, together with a history row, in one transaction.

use std::fmt;

/// `paymentStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Created,
    AuthorizationPending,
    AuthorizationCompleted,
    AuthorizationFailed,
    CapturePending,
    Captured,
    Settled,
    Cancelled,
    Refunded,
    Expired,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 10] = [
        Self::Created,
        Self::AuthorizationPending,
        Self::AuthorizationCompleted,
        Self::AuthorizationFailed,
        Self::CapturePending,
        Self::Captured,
        Self::Settled,
        Self::Cancelled,
        Self::Refunded,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::AuthorizationPending => "AUTHORIZATION_PENDING",
            Self::AuthorizationCompleted => "AUTHORIZATION_COMPLETED",
            Self::AuthorizationFailed => "AUTHORIZATION_FAILED",
            Self::CapturePending => "CAPTURE_PENDING",
            Self::Captured => "CAPTURED",
            Self::Settled => "SETTLED",
            Self::Cancelled => "CANCELLED",
            Self::Refunded => "REFUNDED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No event moves a payment out of a final status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::AuthorizationFailed | Self::Cancelled | Self::Refunded | Self::Expired)
    }

    /// Whether the status is one the seed tells merchants to poll again.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::AuthorizationPending | Self::CapturePending)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The shopper submitted a payment option; the provider is asked to authorize.
    AuthorizationRequested,
    /// The provider authorized.
    Authorized,
    /// The provider declined, or the authorization failed for good.
    AuthorizationFailed,
    /// A capture was requested (automatically or through the Capture API).
    CaptureRequested,
    /// The provider confirmed a capture.
    CaptureSucceeded,
    /// The provider refused a capture; the authorization itself still stands.
    CaptureFailed,
    /// Captured funds were settled to the merchant.
    Settled,
    /// The authorization was released.
    Cancelled,
    /// Refunds now cover the whole captured amount.
    RefundedInFull,
    /// The checkout's lifetime ended before the shopper paid.
    Expired,
}

impl Event {
    pub const ALL: [Event; 10] = [
        Self::AuthorizationRequested,
        Self::Authorized,
        Self::AuthorizationFailed,
        Self::CaptureRequested,
        Self::CaptureSucceeded,
        Self::CaptureFailed,
        Self::Settled,
        Self::Cancelled,
        Self::RefundedInFull,
        Self::Expired,
    ];
}

/// The event does not apply to the payment's current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed in status {from}")]
pub struct InvalidTransition {
    pub from: PaymentStatus,
    pub event: Event,
}

/// Decides the status that follows `event` in status `from`.
pub fn transition(from: PaymentStatus, event: Event) -> Result<PaymentStatus, InvalidTransition> {
    use Event as E;
    use PaymentStatus as S;
    let to = match (from, event) {
        (S::Created, E::AuthorizationRequested) => S::AuthorizationPending,
        (S::Created, E::Expired) => S::Expired,
        (S::AuthorizationPending, E::Authorized) => S::AuthorizationCompleted,
        (S::AuthorizationPending, E::AuthorizationFailed) => S::AuthorizationFailed,
        (S::AuthorizationCompleted, E::CaptureRequested) => S::CapturePending,
        (S::AuthorizationCompleted, E::Cancelled) => S::Cancelled,
        (S::CapturePending, E::CaptureSucceeded) => S::Captured,
        // The pending capture is resolved as failed: the payment is back to "authorized, not
        // captured", so the merchant can capture again or cancel.
        (S::CapturePending, E::CaptureFailed) => S::AuthorizationCompleted,
        // Further partial captures, and their outcomes, leave a captured payment captured.
        (S::Captured, E::CaptureRequested | E::CaptureSucceeded | E::CaptureFailed) => S::Captured,
        (S::Captured, E::Settled) => S::Settled,
        (S::Captured | S::Settled, E::RefundedInFull) => S::Refunded,
        (
            S::Created
            | S::AuthorizationPending
            | S::AuthorizationCompleted
            | S::AuthorizationFailed
            | S::CapturePending
            | S::Captured
            | S::Settled
            | S::Cancelled
            | S::Refunded
            | S::Expired,
            _,
        ) => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use PaymentStatus as S;

    #[test]
    fn every_status_and_event_pair_is_decided_as_the_contract_says() {
        let allowed: &[(S, E, S)] = &[
            (S::Created, E::AuthorizationRequested, S::AuthorizationPending),
            (S::Created, E::Expired, S::Expired),
            (S::AuthorizationPending, E::Authorized, S::AuthorizationCompleted),
            (S::AuthorizationPending, E::AuthorizationFailed, S::AuthorizationFailed),
            (S::AuthorizationCompleted, E::CaptureRequested, S::CapturePending),
            (S::AuthorizationCompleted, E::Cancelled, S::Cancelled),
            (S::CapturePending, E::CaptureSucceeded, S::Captured),
            (S::CapturePending, E::CaptureFailed, S::AuthorizationCompleted),
            (S::Captured, E::CaptureRequested, S::Captured),
            (S::Captured, E::CaptureSucceeded, S::Captured),
            (S::Captured, E::CaptureFailed, S::Captured),
            (S::Captured, E::Settled, S::Settled),
            (S::Captured, E::RefundedInFull, S::Refunded),
            (S::Settled, E::RefundedInFull, S::Refunded),
        ];
        let mut checked = 0;
        for from in S::ALL {
            for event in E::ALL {
                let expected = allowed.iter().find(|(f, e, _)| *f == from && *e == event).map(|(_, _, to)| *to);
                match expected {
                    Some(to) => assert_eq!(transition(from, event), Ok(to), "{from} + {event:?}"),
                    None => assert_eq!(
                        transition(from, event),
                        Err(InvalidTransition { from, event }),
                        "{from} + {event:?}"
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 100);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert_eq!(S::parse("AUTORIZATION_INITIALIZED"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Progress order; a failed capture's return to AUTHORIZATION_COMPLETED is the one step
        /// back the model allows.
        fn rank(s: S) -> u8 {
            match s {
                S::Created => 0,
                S::AuthorizationPending => 1,
                S::AuthorizationCompleted => 2,
                S::CapturePending => 3,
                S::Captured => 4,
                S::Settled => 5,
                S::AuthorizationFailed | S::Cancelled | S::Refunded | S::Expired => 6,
            }
        }

        proptest! {
            #[test]
            fn random_event_sequences_keep_the_model_sound(events in prop::collection::vec(0usize..10, 0..40)) {
                let mut s = S::Created;
                let mut captured_once = false;
                for i in events {
                    let e = E::ALL[i];
                    match transition(s, e) {
                        Ok(next) => {
                            prop_assert!(!s.is_final(), "left final status {s}");
                            let back = rank(next) < rank(s);
                            prop_assert!(!back || (s == S::CapturePending && e == E::CaptureFailed && next == S::AuthorizationCompleted));
                            if captured_once {
                                prop_assert!(matches!(next, S::Captured | S::Settled | S::Refunded), "{next} after a capture");
                            }
                            captured_once |= next == S::Captured;
                            s = next;
                        }
                        Err(err) => prop_assert_eq!(err.from, s),
                    }
                }
            }
        }
    }
}
