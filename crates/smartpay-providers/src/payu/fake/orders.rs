//! The fake's orders: what the shopper decided and when, the money moved, the answers given to
//! each modification key, and the test script. Statuses follow from real `Instant`s: an approved
//! order is `PENDING` until `confirm_delay` has passed, then `WAITING_FOR_CONFIRMATION`
//! (authorized), `COMPLETED` once captured; a declined one is `CANCELED`. A refund is `PENDING`
//! until `refund_delay` has passed, then `SUCCEEDED`.

use std::time::{Duration, Instant};

use reqwest::Url;

use super::super::wire;
use crate::service::books::Keyed;

/// Modifications (captures, refunds, cancellations) one order keeps answers for.
pub const MAX_MODIFICATIONS: usize = 128;
/// How long an order nobody approved is protected from eviction; an older one was abandoned.
pub const ORDER_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The shopper's choice on the approval page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Open,
    Approved(Instant),
    Declined,
}

/// A capture, a refund or a cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Capture,
    Refund,
    Cancellation,
}

impl Kind {
    /// The path segment naming it.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "captures" => Some(Kind::Capture),
            "refunds" => Some(Kind::Refund),
            "cancellations" => Some(Kind::Cancellation),
            _ => None,
        }
    }
}

/// A modification's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Succeeded,
    Failed(&'static str),
    /// A refund: `PENDING` until then, `SUCCEEDED` after.
    SettlesAt(Instant),
}

/// One modification, found again by its kind and idempotency key.
#[derive(Debug, Clone)]
pub struct StoredModification {
    pub kind: Kind,
    pub key: String,
    pub id: String,
    pub amount: i64,
    pub done: Done,
}

impl StoredModification {
    /// The answer for this modification now.
    pub fn answer(&self) -> wire::Modification {
        let (status, failure_code) = match self.done {
            Done::Succeeded => ("SUCCEEDED", None),
            Done::Failed(code) => ("FAILED", Some(code.to_owned())),
            Done::SettlesAt(at) if Instant::now() < at => ("PENDING", None),
            Done::SettlesAt(_) => ("SUCCEEDED", None),
        };
        wire::Modification { id: self.id.clone(), status: status.into(), failure_code }
    }
}

/// What the test controls make the next status reads say.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    pub pending_polls: u32,
    pub fail_polls: u32,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

/// One order. Its strings were checked when it was created.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub ext_order_id: String,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub continue_url: Url,
    pub notify_url: Option<Url>,
    /// Origins that may hold the approval page besides SmartPay's (checked origins).
    pub frame_ancestors: Vec<String>,
    /// The approval page's form token: a decision must carry it.
    pub nonce: String,
    pub created: Instant,
    pub decision: Decision,
    pub captured: i64,
    pub cancelled: bool,
    pub modifications: Vec<StoredModification>,
    pub script: Scripted,
}

impl Keyed for Order {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> &str {
        &self.ext_order_id
    }
}

impl Order {
    /// The order's status now.
    pub fn status(&self, confirm_delay: Duration) -> &'static str {
        match self.decision {
            Decision::Open => "NEW",
            Decision::Declined => "CANCELED",
            Decision::Approved(at) if at.elapsed() < confirm_delay => "PENDING",
            Decision::Approved(_) if self.captured > 0 => "COMPLETED",
            Decision::Approved(_) => "WAITING_FOR_CONFIRMATION",
        }
    }

    /// Approved and confirmed: capturable.
    pub fn authorized(&self, confirm_delay: Duration) -> bool {
        matches!(self.decision, Decision::Approved(at) if at.elapsed() >= confirm_delay)
    }

    /// Records the shopper's decision; `false` when the order was decided already.
    pub fn decide(&mut self, approve: bool) -> bool {
        if self.decision != Decision::Open {
            return false;
        }
        self.decision = if approve { Decision::Approved(Instant::now()) } else { Decision::Declined };
        true
    }

    fn refunds(&self, settled_only: bool) -> i64 {
        let now = Instant::now();
        self.modifications
            .iter()
            .filter(|m| m.kind == Kind::Refund)
            .filter(|m| match m.done {
                Done::Failed(_) => false,
                Done::Succeeded => true,
                Done::SettlesAt(at) => !settled_only || at <= now,
            })
            .fold(0i64, |sum, m| sum.saturating_add(m.amount))
    }

    /// Whether forgetting it loses nothing still in progress.
    pub fn finished(&self, confirm_delay: Duration) -> bool {
        let refund_settling = self.refunds(false) != self.refunds(true);
        match self.decision {
            Decision::Declined => true,
            Decision::Approved(_) => self.authorized(confirm_delay) && !refund_settling,
            Decision::Open => self.created.elapsed() >= ORDER_LIFETIME,
        }
    }

    /// The order as a status read shows it (before any script).
    pub fn view(&self, confirm_delay: Duration) -> wire::Order {
        wire::Order {
            order_id: self.id.clone(),
            ext_order_id: self.ext_order_id.clone(),
            status: self.status(confirm_delay).into(),
            total_amount: self.amount,
            currency_code: self.currency.clone(),
            captured: self.captured,
            refunded: self.refunds(true),
            cancelled: self.cancelled,
        }
    }

    /// The answer to its creation (or to a repeated one).
    pub fn created(&self, public_base: &str, confirm_delay: Duration) -> wire::OrderCreated {
        wire::OrderCreated {
            order_id: self.id.clone(),
            ext_order_id: self.ext_order_id.clone(),
            redirect_uri: format!("{public_base}/pay/{}", self.id),
            status: self.status(confirm_delay).into(),
            total_amount: self.amount,
            currency_code: self.currency.clone(),
        }
    }

    /// Applies a new modification under the money rules: captures only of an authorized,
    /// uncancelled order and within its amount; refunds within the captured amount (pending ones
    /// counted); cancellations of any order nothing was captured of (an undecided one is
    /// declined by it).
    pub fn modify(
        &mut self,
        kind: Kind,
        key: String,
        amount: i64,
        confirm_delay: Duration,
        refund_delay: Duration,
    ) -> wire::Modification {
        let exceeds = |done: i64, limit: i64| done.checked_add(amount).is_none_or(|total| total > limit);
        let authorized = self.authorized(confirm_delay) && !self.cancelled;
        let failure = match kind {
            Kind::Capture if !authorized => Some("not_authorized"),
            Kind::Capture if exceeds(self.captured, self.amount) => Some("amount_exceeds_authorized"),
            Kind::Refund if exceeds(self.refunds(false), self.captured) => Some("amount_exceeds_captured"),
            // An order the shopper has not decided (or that is not confirmed yet) can be
            // cancelled too: the gateway gave up on it, and a late approval must not count.
            Kind::Cancellation if self.decision == Decision::Declined || self.cancelled || self.captured > 0 => {
                Some("not_cancellable")
            }
            _ => None,
        };
        let done = match (failure, kind) {
            (Some(code), _) => Done::Failed(code),
            (None, Kind::Capture) => {
                // Checked above: the sum neither overflows nor passes the amount.
                self.captured = self.captured.saturating_add(amount);
                Done::Succeeded
            }
            (None, Kind::Refund) => Done::SettlesAt(Instant::now() + refund_delay),
            (None, Kind::Cancellation) => {
                self.cancelled = true;
                if self.decision == Decision::Open {
                    self.decision = Decision::Declined;
                }
                Done::Succeeded
            }
        };
        let m = StoredModification { kind, key, id: crate::new_reference(), amount, done };
        let answer = m.answer();
        self.modifications.push(m);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            id: "o1".into(),
            ext_order_id: "pay-1".into(),
            amount: 1000,
            currency: "EUR".into(),
            description: "Tea".into(),
            continue_url: Url::parse("http://127.0.0.1/back").unwrap(),
            notify_url: None,
            frame_ancestors: Vec::new(),
            nonce: "n".into(),
            created: Instant::now(),
            decision: Decision::Open,
            captured: 0,
            cancelled: false,
            modifications: Vec::new(),
            script: Scripted::default(),
        }
    }

    #[test]
    fn an_order_moves_from_new_through_pending_to_authorized_and_completed() {
        let mut o = order();
        assert_eq!(o.status(Duration::ZERO), "NEW");
        assert!(o.decide(true));
        assert!(!o.decide(false), "decided once");
        assert_eq!(o.status(Duration::from_secs(3600)), "PENDING");
        assert_eq!(o.status(Duration::ZERO), "WAITING_FOR_CONFIRMATION");
        let m = o.modify(Kind::Capture, "c1".into(), 400, Duration::ZERO, Duration::ZERO);
        assert_eq!(m.status, "SUCCEEDED");
        assert_eq!(o.status(Duration::ZERO), "COMPLETED");
    }

    #[test]
    fn nothing_is_captured_before_confirmation_and_refunds_count_pending_ones() {
        let mut o = order();
        o.decide(true);
        let early = o.modify(Kind::Capture, "c0".into(), 100, Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(early.failure_code.as_deref(), Some("not_authorized"));
        o.modify(Kind::Capture, "c1".into(), 500, Duration::ZERO, Duration::ZERO);
        let long = Duration::from_secs(3600);
        assert_eq!(o.modify(Kind::Refund, "r1".into(), 300, Duration::ZERO, long).status, "PENDING");
        let over = o.modify(Kind::Refund, "r2".into(), 300, Duration::ZERO, long);
        assert_eq!(over.failure_code.as_deref(), Some("amount_exceeds_captured"), "the pending 300 counts");
        assert_eq!(o.view(Duration::ZERO).refunded, 0, "a pending refund is not shown as refunded");
        assert!(!o.finished(Duration::ZERO), "a settling refund keeps the order");
        let cancel = o.modify(Kind::Cancellation, "x1".into(), 1000, Duration::ZERO, long);
        assert_eq!(cancel.failure_code.as_deref(), Some("not_cancellable"));
    }

    #[test]
    fn a_declined_order_is_cancelled_and_finished() {
        let mut o = order();
        assert!(!o.finished(Duration::ZERO), "an open order is kept for a while");
        o.decide(false);
        assert_eq!(o.status(Duration::ZERO), "CANCELED");
        assert!(o.finished(Duration::ZERO));
    }
}
