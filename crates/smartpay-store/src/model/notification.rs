//! Notification records: a merchant's delivery settings and signing secrets, the outbox rows
//! written with status changes, and the attempts to deliver them.

use smartpay_domain::Millis;

use super::EventOrigin;

/// How SmartPay authenticates toward a merchant's notification endpoint. Secrets are sealed
/// by the server (under the master key) before they reach the store.
#[derive(Clone, PartialEq, Eq)]
pub enum NotificationAuth {
    None,
    Basic { username: String, password_sealed: Vec<u8> },
    OAuth { token_url: String, client_id: String, client_secret_sealed: Vec<u8> },
}

impl std::fmt::Debug for NotificationAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => f.debug_struct("Basic").field("username", username).finish_non_exhaustive(),
            Self::OAuth { token_url, client_id, .. } => f
                .debug_struct("OAuth")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

impl NotificationAuth {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Basic { .. } => "BASIC",
            Self::OAuth { .. } => "OAUTH",
        }
    }
}

/// Where a merchant receives notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    pub url: String,
    pub auth: NotificationAuth,
    pub updated_at: Millis,
}

/// A signing secret (sealed). Active until `expires_at`, or until the next rotation retires it.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationSecret {
    pub id: String,
    pub merchant_id: String,
    pub secret_sealed: Vec<u8>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
}

impl std::fmt::Debug for NotificationSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationSecret")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationObject {
    Payment,
    Refund,
}

impl NotificationObject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Payment, Self::Refund].into_iter().find(|o| o.as_str() == s)
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not delivered yet; attempted again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up after the retry horizon; an operator may redeliver it.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str().eq_ignore_ascii_case(s))
    }
}

/// One notification (outbox row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The event id: the payload's `id` and `SmartPay-Event-Id`.
    pub id: String,
    pub merchant_id: String,
    pub payment_id: String,
    pub object_type: NotificationObject,
    /// The transactionId, or the refund's id.
    pub object_id: String,
    /// A refund's `modificationId`.
    pub modification_id: Option<String>,
    pub origin: EventOrigin,
    /// The payment's or refund's new status.
    pub status: String,
    pub reconciliation_reference_id: Option<String>,
    pub created_at: Millis,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Millis,
    /// The retry horizon counts from here (creation, or a manual redelivery).
    pub retry_from: Millis,
    pub delivered_at: Option<Millis>,
    /// The claim's token (see [`crate::Job::lease_token`]); empty when not claimed.
    pub lease_token: String,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub at: Millis,
    pub status_code: Option<u16>,
    /// A short code (`timeout`, `connect`, `refused_url`, …), never a response body.
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered,
    RetryAt(Millis),
    GiveUp,
}

/// Which notifications to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    pub merchant_id: Option<String>,
    pub payment_id: Option<String>,
    pub state: Option<DeliveryState>,
    pub limit: u32,
}
