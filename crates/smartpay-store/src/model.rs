//! Records the store reads and writes. Plain data: rules live in `smartpay-domain`.

use smartpay_domain::modification::{CaptureMode, ModificationStatus, ModificationType, Request};
use smartpay_domain::{Millis, PaymentStatus};

mod notification;
mod vault;
pub use notification::*;
pub use vault::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantStatus {
    Active,
    Disabled,
}

#[derive(Debug, Clone)]
pub struct Merchant {
    /// The merchantKey.
    pub id: String,
    pub name: String,
    pub status: MerchantStatus,
    pub capture_mode: CaptureMode,
    /// Capture mode `delayed`: seconds from authorization to the automatic capture.
    pub capture_delay_seconds: Option<u64>,
    /// Authorizations left uncaptured this long are cancelled; `None`: never.
    pub auto_cancel_seconds: Option<u64>,
    /// JWK Set of the merchant's end-user identity issuer, verifying `X-Access-Token`.
    pub identity_jwks: Option<String>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// `Authorization: Basic base64(merchantKey:authenticationKey)`.
    Basic,
    /// OAuth2 client credentials (`client_id` / `client_secret`).
    OAuth,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Basic => "BASIC",
            CredentialKind::OAuth => "OAUTH",
        }
    }
}

/// An API credential. Only a keyed digest of its secret is ever stored.
#[derive(Clone)]
pub struct Credential {
    pub id: String,
    pub merchant_id: String,
    pub kind: CredentialKind,
    pub client_id: Option<String>,
    pub secret_digest: Vec<u8>,
    pub label: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("label", &self.label)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// How a merchant's end-user identity tokens (`X-Access-Token`) are verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityIssuer {
    /// JWK Set of the issuer's signing keys; `None` leaves tokens unverified.
    pub jwks: Option<String>,
    /// The `iss` tokens must carry; `None` accepts any.
    pub issuer: Option<String>,
    /// The audience `aud` must be or contain; `None` accepts any.
    pub audience: Option<String>,
}

/// A token-signing key; the private half is encrypted by the server before it gets here.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_enc: Vec<u8>,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
}

/// Which request property makes a create request repeatable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyScope {
    /// The `Idempotency-Key` header.
    Header,
    /// The body's `partnerReference`.
    PartnerReference,
}

impl IdempotencyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            IdempotencyScope::Header => "IDEMPOTENCY_KEY",
            IdempotencyScope::PartnerReference => "PARTNER_REFERENCE",
        }
    }
}

/// A claim on an idempotency key, written with the payment it produced.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub key: String,
    pub route: String,
    pub fingerprint: Vec<u8>,
    /// The response to replay, already encrypted by the caller.
    pub response_enc: Vec<u8>,
    pub expires_at: Option<Millis>,
}

/// A new checkout, ready to store.
#[derive(Debug, Clone)]
pub struct NewCheckout {
    pub id: String,
    pub merchant_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    pub partner_reference: Option<String>,
    pub customer_account_id: Option<String>,
    pub external_order_reference: Option<String>,
    pub custom_references: Option<String>,
    pub culture: Option<String>,
    pub request_json: String,
    pub token_digest: Vec<u8>,
    pub identity_subject: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub claims: Vec<IdempotencyClaim>,
}

/// What storing a checkout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// An earlier request with the same key and the same fingerprint: its stored response.
    Replay {
        response_enc: Vec<u8>,
        payment_id: String,
    },
    /// The key was used before with a different request.
    Conflict {
        scope: IdempotencyScope,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: PaymentStatus,
    pub at: Millis,
    pub reason: Option<String>,
}

/// A payment as Get Payment Status shows it.
#[derive(Debug, Clone)]
pub struct Payment {
    pub id: String,
    pub merchant_id: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    pub partner_reference: Option<String>,
    pub customer_account_id: Option<String>,
    pub external_order_reference: Option<String>,
    pub custom_references: Option<String>,
    pub payment_method: String,
    pub reconciliation_reference_id: Option<String>,
    pub mit: bool,
    /// Subject of the verified `X-Access-Token` the checkout was created with.
    pub identity_subject: Option<String>,
    /// The provider that handles the payment, once a payment option was submitted.
    pub provider: Option<String>,
    /// Card submissions so far (valid or not).
    pub attempts: u32,
    pub decline_code: Option<String>,
    /// The 3-D Secure challenge the shopper must pass, while one is pending.
    pub challenge_url: Option<String>,
    /// The stored payment option the payment was made with.
    pub stored_option_reference: Option<String>,
    /// The option this payment stored (the shopper ticked "store"): removed again when the
    /// authorization fails.
    pub new_option_reference: Option<String>,
    /// `consumer.culture` (or `businessConsumer.culture`) of the checkout: the widget's language
    /// when the page passes none.
    pub culture: Option<String>,
    /// Why the payment waits for an operator: the provider contradicted it (another amount or
    /// currency), so pending resolution stopped instead of advancing it.
    pub review_reason: Option<String>,
    pub created_at: Millis,
    pub last_status_at: Millis,
    pub expires_at: Millis,
    pub history: Vec<StatusChange>,
    /// Captures, refunds, cancellations, settlements and chargebacks, oldest first.
    pub modifications: Vec<Modification>,
}

impl Payment {
    /// The money rules' view of the payment: authorized once it was, and its modifications.
    pub fn ledger(&self) -> smartpay_domain::modification::Ledger {
        let authorized = match self.status {
            PaymentStatus::Created
            | PaymentStatus::AuthorizationPending
            | PaymentStatus::AuthorizationFailed
            | PaymentStatus::Expired => 0,
            _ => self.amount_minor,
        };
        smartpay_domain::modification::Ledger::of(authorized, &self.entries())
    }

    /// The modifications as the money rules see them.
    pub fn entries(&self) -> Vec<smartpay_domain::modification::Entry> {
        self.modifications
            .iter()
            .map(|m| smartpay_domain::modification::Entry {
                kind: m.kind,
                status: m.status,
                amount_minor: m.amount_minor,
            })
            .collect()
    }
}

/// A modification's status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModificationChange {
    pub status: ModificationStatus,
    pub at: Millis,
}

/// A capture, refund, cancellation, settlement or chargeback of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modification {
    /// Internal id; also the idempotency key sent to the provider.
    pub pk: String,
    pub payment_id: String,
    pub merchant_id: String,
    /// The merchant's `modificationId` (generated for automatic ones).
    pub modification_id: String,
    pub kind: ModificationType,
    pub status: ModificationStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub description: Option<String>,
    pub custom_references: Option<String>,
    /// The provider's reference of this modification, once known.
    pub reconciliation_reference_id: Option<String>,
    /// The provider's refusal code, when it refused.
    pub failure_code: Option<String>,
    pub created_at: Millis,
    pub last_status_at: Millis,
    pub history: Vec<ModificationChange>,
}

/// What a new modification asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModificationRequest {
    /// A merchant's (or an automatic) capture, refund, cancel or cancelOrRefund, checked by
    /// `smartpay_domain::modification::plan`.
    Merchant(Request),
    /// The captured funds were settled (final at once).
    Settlement,
    /// A chargeback of this amount (final at once; the payment's status stays).
    Chargeback(i64),
}

/// A modification to open, in one transaction with the checks that allow it.
#[derive(Debug, Clone)]
pub struct NewModification {
    pub pk: String,
    pub merchant_id: String,
    pub payment_id: String,
    pub modification_id: String,
    pub request: ModificationRequest,
    /// The currency the request named; another than the payment's is refused.
    pub currency: Option<String>,
    pub description: Option<String>,
    pub custom_references: Option<String>,
    /// Digest of the canonical request: a repeated `modificationId` with another is a conflict.
    pub fingerprint: Vec<u8>,
    pub at: Millis,
    /// Who asked: recorded on the notifications the change causes.
    pub origin: EventOrigin,
    /// When the modification is still pending, pending resolution looks at it then (scheduled
    /// in the same transaction, so a crash before the provider's answer cannot strand it).
    pub resolve_at: Option<Millis>,
    /// Moves the payment from AUTHORIZATION_PENDING to AUTHORIZATION_COMPLETED with these facts
    /// first, in the same transaction (automatic capture on authorization).
    pub authorize_first: Option<PaymentUpdate>,
}

/// What recording a provider's answer on a pending modification writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModificationAnswer {
    /// The final status (the kind's success or failure status).
    pub status: ModificationStatus,
    pub reconciliation_reference_id: Option<String>,
    /// The provider's refusal (MOD1 code).
    pub failure_code: Option<String>,
    pub at: Millis,
    /// Jobs to schedule with it.
    pub schedule: Vec<(JobKind, Millis)>,
    /// Who caused it (for the notifications it writes).
    pub origin: EventOrigin,
}

/// What opening a modification did.
#[derive(Debug, Clone)]
pub enum BeginOutcome {
    /// Opened; the payment as it is now (with the new modification).
    Started { payment: Payment, pk: String },
    /// Refused by the money rules; nothing was written.
    Refused {
        refusal: smartpay_domain::modification::Refusal,
        /// The payment's currency, in which a refusal's remaining amount is counted.
        currency: String,
    },
    /// The request names another currency than the payment's; nothing was written.
    CurrencyMismatch { expected: String },
    /// No such payment for this merchant.
    NotFound,
    /// The `modificationId` was used before with the same request, which has an answer.
    Replay { response: Vec<u8> },
    /// The `modificationId` was used before with the same request, not answered yet.
    Unanswered { payment: Payment, pk: String },
    /// The `modificationId` was used before with another request.
    Conflict,
}

/// A job to run later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    DelayedCapture,
    AutoCancel,
    Settlement,
    /// Polls the provider until a pending authorization is final (CONTRACT §11).
    ResolveAuthorization,
    /// Polls the provider until a pending capture, refund or cancellation is final.
    ResolveModification,
}

impl JobKind {
    pub const ALL: [JobKind; 5] = [
        Self::DelayedCapture,
        Self::AutoCancel,
        Self::Settlement,
        Self::ResolveAuthorization,
        Self::ResolveModification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DelayedCapture => "DELAYED_CAPTURE",
            Self::AutoCancel => "AUTO_CANCEL",
            Self::Settlement => "SETTLEMENT",
            Self::ResolveAuthorization => "RESOLVE_AUTHORIZATION",
            Self::ResolveModification => "RESOLVE_MODIFICATION",
        }
    }

    /// Pending resolution rather than a scheduled modification.
    pub fn is_resolution(self) -> bool {
        matches!(self, Self::ResolveAuthorization | Self::ResolveModification)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A job a worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub payment_id: String,
    pub merchant_id: String,
    /// The modification's id for [`JobKind::ResolveModification`]; empty otherwise.
    pub target: String,
    /// Runs so far, this one included.
    pub attempts: u32,
    /// When the job was scheduled first (for pending resolution: when the payment or
    /// modification became pending, from which its deadline counts).
    pub created_at: Millis,
    pub due_at: Millis,
    pub last_error: Option<String>,
    /// This claim's token: completing or retrying the job needs it, so a worker whose lease
    /// ran out cannot undo the work of the one that took the job over.
    pub lease_token: String,
}

/// A queued job with what an operator needs to see about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub job: Job,
    pub leased_until: Millis,
    pub payment_status: PaymentStatus,
    pub provider: Option<String>,
}

/// Queue figures per job kind, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStat {
    pub kind: JobKind,
    /// Jobs queued.
    pub queued: u64,
    /// Of those, due now.
    pub due: u64,
    /// The oldest job's creation (for pending resolution: the oldest pending payment or
    /// modification).
    pub oldest: Option<Millis>,
}

/// Who caused a status change, as notifications report it (`origin`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EventOrigin {
    /// A merchant's API call.
    Api,
    /// A shopper's action in the widget or hosted page.
    Widget,
    /// SmartPay's own background work (pending resolution, scheduled jobs, expiry, settlement).
    #[default]
    Automated,
}

impl EventOrigin {
    pub const ALL: [EventOrigin; 3] = [Self::Api, Self::Widget, Self::Automated];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Widget => "widget",
            Self::Automated => "automated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A payment the expiry sweep moved to `EXPIRED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub payment_id: String,
    pub merchant_id: String,
}

/// Facts recorded with a status change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentUpdate {
    pub provider: Option<String>,
    pub reconciliation_reference_id: Option<String>,
    pub payment_method: Option<String>,
    pub decline_code: Option<String>,
    /// `Some(None)` clears a pending challenge.
    pub challenge_url: Option<Option<String>>,
    /// Why, for the history row of the first change (never card data).
    pub reason: Option<String>,
    /// Counts the change as a card submission, refused once this many were made.
    pub attempt_cap: Option<u32>,
    /// Jobs to schedule with the change (at most one of each kind per payment).
    pub schedule: Vec<(JobKind, Millis)>,
    /// The stored payment option the payment is made with.
    pub stored_option_reference: Option<String>,
    /// The option the payment stored (see [`Payment::new_option_reference`]).
    pub new_option_reference: Option<String>,
    /// Who caused the change (for the notifications it writes).
    pub origin: EventOrigin,
}
