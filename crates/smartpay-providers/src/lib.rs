//! Payment providers behind one trait.
//!
//! A provider authorizes, captures, refunds, cancels and reports status. Every call answers an
//! outcome — including *declined*, *pending* and *unknown* (no answer in time) — rather than an
//! error, because those are ordinary business results the payment engine must handle; errors are
//! reserved for requests the provider refused as malformed. Each provider keeps its wire types
//! and their mapping in its own module; adding one is a module and a line in [`Registry::new`].

mod client;
pub mod payu;
pub mod sandbox;
mod service;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use smartpay_domain::card::{CardNumber, Cvc, Expiry};

pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// What a provider can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Authorization and capture are separate steps.
    pub separate_capture: bool,
    pub partial_capture: bool,
    pub partial_refund: bool,
    /// Runs 3-D Secure challenges.
    pub three_ds: bool,
    /// Answers asynchronously (confirmation comes later, found by polling).
    pub asynchronous: bool,
}

/// Card data for one authorization. Debug output is masked by the card types.
#[derive(Debug)]
pub struct Card {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub cvc: Cvc,
    pub holder: Option<String>,
}

#[derive(Debug)]
pub struct AuthorizeRequest {
    /// SmartPay's transactionId; also the provider-side idempotency key of the authorization.
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub card: Card,
    /// Where the provider's 3-D Secure challenge page should return to. The sandbox acquirer
    /// ignores it: its challenges return only to the page it was configured with.
    pub return_url: Option<String>,
    /// Origins of the pages the challenge page will be shown inside (the merchant's shop, which
    /// holds SmartPay's card frame): CSP `frame-ancestors` checks every ancestor, not only the
    /// frame the challenge sits in.
    pub frame_ancestors: Vec<String>,
}

/// Why a provider declined. `code` is the MOD1 `errorDetails` code the merchant's server sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclineReason {
    CardDeclined,
    InsufficientFunds,
    ExpiredCard,
    CardStolen,
    AuthenticationFailed,
    Other(String),
}

impl DeclineReason {
    pub fn code(&self) -> &str {
        match self {
            DeclineReason::CardDeclined => "payment_provider_card_declined",
            DeclineReason::InsufficientFunds => "payment_provider_insufficient_funds",
            DeclineReason::ExpiredCard => "payment_provider_card_expired",
            DeclineReason::CardStolen => "payment_provider_card_stolen",
            DeclineReason::AuthenticationFailed => "payment_provider_authentication_failed",
            DeclineReason::Other(c) => c,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    Authorized {
        reference: String,
    },
    Declined {
        reference: Option<String>,
        reason: DeclineReason,
    },
    /// Accepted, not yet decided; confirmed later (found by [`Provider::status`]).
    Pending {
        reference: String,
    },
    /// The shopper must pass a 3-D Secure challenge at `url` first.
    ChallengeRequired {
        reference: String,
        url: String,
    },
    /// The shopper must approve the payment on the provider's page at `url` (asynchronous
    /// methods such as PayU); the outcome is learned later by polling.
    Redirect {
        reference: String,
        url: String,
    },
    /// No answer in time: the outcome must be found by polling, never by sending again blindly.
    Unknown,
}

/// The result of a capture, refund or cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModifyOutcome {
    Succeeded { reference: String },
    Failed { reason: String },
    Pending { reference: String },
    Unknown,
}

/// An authorization's state at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    Authorized,
    Declined(DeclineReason),
    /// Accepted, not decided yet.
    Pending,
    /// Waiting for the shopper: a 3-D Secure challenge or an approval page not completed yet.
    ChallengePending,
}

/// What the provider says about one authorization, with the amount and currency it holds (the
/// gateway compares them with the payment's before it believes the status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationState {
    pub reference: String,
    pub status: ProviderStatus,
    pub amount_minor: i64,
    pub currency: String,
}

/// The answer to a status question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(AuthorizationState),
    /// The provider does not know this authorization (never received, or forgotten).
    NotFound,
    /// No usable answer (timeout, 5xx, unreadable): ask again later.
    Unknown,
}

/// An asynchronous (redirect) payment to start at the provider.
#[derive(Debug, Clone)]
pub struct RedirectRequest {
    /// SmartPay's transactionId; also the provider-side idempotency key (PayU's `extOrderId`).
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    /// Where the provider's page sends the shopper back to.
    pub return_url: String,
    /// Where the provider may send notifications about the payment (SmartPay's inbound
    /// endpoint); `None` when the gateway relies on polling alone.
    pub notify_url: Option<String>,
    /// Origins of the pages the approval page will be shown inside (see [`AuthorizeRequest`]).
    pub frame_ancestors: Vec<String>,
}

/// A provider's notification that something changed, verified. It only tells the gateway whom
/// to ask: its content is never taken as the payment's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The provider's id of this notification, for deduplication.
    pub event_id: String,
    /// The authorization's provider reference.
    pub reference: String,
}

/// Why an inbound notification was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("this provider sends no notifications")]
    Unsupported,
    #[error("the notification is not signed")]
    Unsigned,
    #[error("the notification's signature is wrong")]
    BadSignature,
    #[error("the notification is malformed")]
    Malformed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyRequest {
    /// The authorization's provider reference.
    pub reference: String,
    /// SmartPay's modificationId: the provider-side idempotency key.
    pub modification_id: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the request as malformed: a bug on our side, not a payment outcome.
    #[error("provider rejected the request: {0}")]
    Rejected(String),
}

/// One payment provider.
pub trait Provider: Send + Sync + 'static {
    /// Stable name, e.g. `sandbox`.
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    fn authorize(&self, req: AuthorizeRequest) -> ProviderFuture<'_, AuthorizeOutcome>;
    fn capture(&self, req: ModifyRequest) -> ProviderFuture<'_, ModifyOutcome>;
    fn refund(&self, req: ModifyRequest) -> ProviderFuture<'_, ModifyOutcome>;
    fn cancel(&self, req: ModifyRequest) -> ProviderFuture<'_, ModifyOutcome>;
    /// The authorization's current state, by the provider's reference.
    fn status(&self, reference: &str) -> ProviderFuture<'_, Lookup>;
    /// The authorization sent with `idempotency_key` (SmartPay's transactionId), for when the
    /// answer to the authorization request itself was lost (timeout, crash).
    fn find(&self, idempotency_key: &str) -> ProviderFuture<'_, Lookup>;
    /// Starts an asynchronous payment the shopper approves on the provider's page.
    fn start_redirect(&self, req: RedirectRequest) -> ProviderFuture<'_, AuthorizeOutcome> {
        let _ = req;
        Box::pin(async { Err(ProviderError::Rejected(format!("{} has no redirect payments", self.name()))) })
    }
    /// Verifies an inbound notification (`signature` is the provider's signature header).
    fn verify_notification(&self, signature: Option<&str>, body: &[u8]) -> Result<Notice, NoticeError> {
        let _ = (signature, body);
        Err(NoticeError::Unsupported)
    }
}

/// The providers a server can use, by name.
#[derive(Clone, Default)]
pub struct Registry {
    providers: HashMap<&'static str, Arc<dyn Provider>>,
}

impl Registry {
    /// The registry with every built-in provider that `config` enables.
    pub fn new(config: &ProvidersConfig) -> Self {
        let mut r = Registry::default();
        if let Some(s) = &config.sandbox {
            r.register(Arc::new(sandbox::SandboxConnector::new(s.clone())));
        }
        if let Some(p) = &config.payu {
            r.register(Arc::new(payu::PayuConnector::new(p.clone())));
        }
        r
    }

    pub fn register(&mut self, p: Arc<dyn Provider>) {
        self.providers.insert(p.name(), p);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.providers.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut n: Vec<_> = self.providers.keys().copied().collect();
        n.sort_unstable();
        n
    }
}

/// Which providers are enabled, and how they are reached.
#[derive(Debug, Clone, Default)]
pub struct ProvidersConfig {
    pub sandbox: Option<sandbox::ConnectorConfig>,
    /// The asynchronous provider PAYU (in the sandbox, the fake [`payu::fake`]).
    pub payu: Option<payu::ConnectorConfig>,
}

/// A provider reference like the seed's `zKZhOVjJitCdHdJzicGmI`: 22 random base62 characters.
pub fn new_reference() -> String {
    const A: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(22);
    while out.len() < 22 {
        let mut buf = [0u8; 32];
        if getrandom::getrandom(&mut buf).is_err() {
            continue;
        }
        for b in buf {
            if b < 248 && out.len() < 22 {
                out.push(char::from(A[usize::from(b % 62)]));
            }
        }
    }
    out
}
