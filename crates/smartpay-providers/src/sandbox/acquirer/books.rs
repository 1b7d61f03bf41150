//! The acquirer's memory: authorizations, their idempotency keys and their modifications, with a
//! hard cap (see [`crate::service::books`]). When the cap is reached the oldest *finished*
//! authorization is forgotten (with its key and modifications) to make room. Finished means
//! decided: not pending any more, and not a challenge younger than [`CHALLENGE_LIFETIME`]. When
//! none of the oldest is finished the new authorization is refused (503).

use std::time::{Duration, Instant};

use super::super::wire;
use crate::service::books::Keyed;

/// How long an undecided challenge is protected from eviction; an older one was abandoned.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Modifications (captures, refunds, cancellations) one authorization keeps answers for.
pub const MAX_MODIFICATIONS: usize = 128;

/// What a test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Approve,
    Decline(&'static str),
    Challenge,
    PendingThenApprove,
    PendingThenDecline,
    Slow,
    CaptureFails,
    RefundFails,
}

/// The behaviour of a test card (CONTRACT §10); any other valid card is approved.
pub fn behaviour(pan: &str) -> Behaviour {
    match pan {
        "4000000000000002" => Behaviour::Decline("card_declined"),
        "4000000000009995" => Behaviour::Decline("insufficient_funds"),
        "4000000000000069" => Behaviour::Decline("expired_card"),
        "4100000000000019" => Behaviour::Decline("card_stolen"),
        "4000000000003220" => Behaviour::Challenge,
        "4000000000000259" => Behaviour::PendingThenApprove,
        "4000000000000267" => Behaviour::PendingThenDecline,
        "4000000000000408" => Behaviour::Slow,
        "4000000000000341" => Behaviour::CaptureFails,
        "4000000000005126" => Behaviour::RefundFails,
        _ => Behaviour::Approve,
    }
}

/// One stored modification answer, found again by its kind and idempotency key.
#[derive(Debug, Clone)]
pub struct StoredModification {
    pub kind: &'static str,
    pub key: String,
    pub answer: wire::Modification,
}

/// One authorization. Holds no card data: the card only chose `behaviour`.
#[derive(Debug, Clone)]
pub struct Auth {
    pub id: String,
    pub idempotency_key: String,
    pub status: &'static str,
    pub decline_code: Option<&'static str>,
    pub behaviour: Behaviour,
    pub amount: i64,
    pub currency: String,
    pub created: Instant,
    pub captured: i64,
    pub refunded: i64,
    pub cancelled: bool,
    pub modifications: Vec<StoredModification>,
    /// Origins that may hold the challenge page besides SmartPay's (checked origins).
    pub frame_ancestors: Vec<String>,
}

impl Auth {
    /// Applies a due pending resolution.
    pub fn settle(&mut self, pending_delay: Duration) {
        if self.status == "PENDING" && self.created.elapsed() >= pending_delay {
            match self.behaviour {
                Behaviour::PendingThenDecline => {
                    self.status = "DECLINED";
                    self.decline_code = Some("card_declined");
                }
                _ => self.status = "AUTHORIZED",
            }
        }
    }

    /// Whether forgetting it loses nothing still in progress.
    pub fn finished(&mut self, pending_delay: Duration) -> bool {
        self.settle(pending_delay);
        match self.status {
            "PENDING" => false,
            "CHALLENGE" => self.created.elapsed() >= CHALLENGE_LIFETIME,
            _ => true,
        }
    }

    pub fn wire(&self, public_base: &str) -> wire::Authorization {
        wire::Authorization {
            id: self.id.clone(),
            status: self.status.to_owned(),
            decline_code: self.decline_code.map(str::to_owned),
            challenge_url: (self.status == "CHALLENGE").then(|| format!("{public_base}/v1/challenges/{}", self.id)),
            amount: self.amount,
            currency: self.currency.clone(),
            captured: self.captured,
            refunded: self.refunded,
            cancelled: self.cancelled,
        }
    }
}

impl Keyed for Auth {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> &str {
        &self.idempotency_key
    }
}

/// Every authorization the acquirer remembers.
pub type Books = crate::service::books::Books<Auth>;

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(n: usize, status: &'static str) -> Auth {
        Auth {
            id: format!("id-{n}"),
            idempotency_key: format!("key-{n}"),
            status,
            decline_code: None,
            behaviour: Behaviour::Approve,
            amount: 100,
            currency: "EUR".into(),
            created: Instant::now(),
            captured: 0,
            refunded: 0,
            cancelled: false,
            modifications: Vec::new(),
            frame_ancestors: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_finished_authorization_makes_room_and_takes_its_key_along() {
        let mut books = Books::default();
        let long = Duration::from_secs(3600);
        let finished = |a: &mut Auth| a.finished(long);
        books.insert(auth(0, "PENDING"), 2, finished).unwrap();
        books.insert(auth(1, "AUTHORIZED"), 2, finished).unwrap();
        books.insert(auth(2, "AUTHORIZED"), 2, finished).unwrap();
        assert_eq!(books.len(), 2);
        assert!(books.get_mut("id-0").is_some(), "a pending authorization is kept");
        assert!(books.get_mut("id-1").is_none() && books.by_key_mut("key-1").is_none());
        assert!(books.by_key_mut("key-2").is_some());
    }

    #[test]
    fn a_memory_full_of_undecided_authorizations_refuses_new_ones() {
        let mut books = Books::default();
        let long = Duration::from_secs(3600);
        let finished = |a: &mut Auth| a.finished(long);
        books.insert(auth(0, "PENDING"), 2, finished).unwrap();
        books.insert(auth(1, "CHALLENGE"), 2, finished).unwrap();
        assert!(books.insert(auth(2, "AUTHORIZED"), 2, finished).is_err());
        assert_eq!(books.len(), 2);
    }
}
