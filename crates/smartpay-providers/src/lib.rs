//! Payment providers behind one trait.
//!
//! A provider authorizes, captures, refunds, cancels and reports status, and may store cards (a
//! token then pays instead of the card number). Every call answers an outcome — including
//! *declined*, *pending* and *unknown* (no answer in time) — rather than an error, because those
//! are ordinary business results the payment engine must handle; errors are reserved for
//! requests the provider refused as malformed. Each provider keeps its wire types
//! and their mapping in its own module; adding one is a module and a line in [`Registry::new`].

mod client;
pub mod payu;
pub mod sandbox;
mod service;

use std::collections::HashMap;
use std::fmt;
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

/// Card data for one authorization. Debug output is masked: the card types show at most BIN 6
/// and last 4 and never the CVC, and the holder's name is not shown.
pub struct Card {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub cvc: Cvc,
    pub holder: Option<String>,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("number", &self.number)
            .field("expiry", &self.expiry)
            .field("cvc", &self.cvc)
            .field("holder", &self.holder.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What an authorization is paid with: a card entered now, or a card the provider stored
/// earlier ([`Provider::tokenize`]), named by the provider's token. A token payment sends no
/// card number and no CVC (a card-on-file payment: the shopper does not enter the CVC again).
pub enum PaymentSource {
    Card(Card),
    Token {
        /// The provider's token for the card.
        token: String,
        /// The card's expiry, as stored with the token.
        expiry: Expiry,
    },
}

impl fmt::Debug for PaymentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentSource::Card(card) => f.debug_tuple("Card").field(card).finish(),
            PaymentSource::Token { token, expiry } => {
                f.debug_struct("Token").field("token", &masked_token(token)).field("expiry", expiry).finish()
            }
        }
    }
}

/// A provider token as `tok_…` and at most its last 4 characters (all of a short one is hidden).
pub fn masked_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() < 16 {
        return format!("<token, {} chars>", chars.len());
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("tok_…{tail}")
}

#[derive(Debug)]
pub struct AuthorizeRequest {
    /// SmartPay's transactionId; also the provider-side idempotency key of the authorization.
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The card, or the provider's token for a stored card.
    pub source: PaymentSource,
    /// Where the provider's 3-D Secure challenge page should return to. The sandbox acquirer
    /// ignores it: its challenges return only to the page it was configured with.
    pub return_url: Option<String>,
    /// Origins of the pages the challenge page will be shown inside (the merchant's shop, which
    /// holds SmartPay's card frame): CSP `frame-ancestors` checks every ancestor, not only the
    /// frame the challenge sits in.
    pub frame_ancestors: Vec<String>,
}

/// A card to store at the provider: the provider keeps it (or, statelessly, seals it into the
/// token) and answers a token that later pays with [`PaymentSource::Token`].
pub struct TokenizeRequest {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub holder: Option<String>,
}

impl fmt::Debug for TokenizeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenizeRequest")
            .field("number", &self.number)
            .field("expiry", &self.expiry)
            .field("holder", &self.holder.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The answer to a [`TokenizeRequest`].
#[derive(Clone, PartialEq, Eq)]
pub enum TokenizeOutcome {
    /// Stored: `token` pays with this card from now on.
    Tokenized { token: String },
    /// The provider refused this card data; `code` is its error code (for the sandbox acquirer
    /// `invalid_pan`, `invalid_expiry` or `invalid_holder`).
    Refused { code: String },
    /// No usable answer. Nothing is lost by asking again (sandbox tokens are stateless).
    Unknown,
}

impl fmt::Debug for TokenizeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizeOutcome::Tokenized { token } => {
                f.debug_struct("Tokenized").field("token", &masked_token(token)).finish()
            }
            TokenizeOutcome::Refused { code } => f.debug_struct("Refused").field("code", code).finish(),
            TokenizeOutcome::Unknown => f.write_str("Unknown"),
        }
    }
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
    /// Stores a card at the provider and answers its token, which [`PaymentSource::Token`] pays
    /// with later. Providers that cannot store cards refuse.
    fn tokenize(&self, req: TokenizeRequest) -> ProviderFuture<'_, TokenizeOutcome> {
        let _ = req;
        Box::pin(async { Err(ProviderError::Rejected(format!("{} cannot store cards", self.name()))) })
    }
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
