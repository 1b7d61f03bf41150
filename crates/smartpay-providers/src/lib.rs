//! Payment providers behind one trait.
//!
//! A provider authorizes, captures, refunds, cancels and reports status. Every call answers an
//! outcome — including *declined*, *pending* and *unknown* (no answer in time) — rather than an
//! error, because those are ordinary business results the payment engine must handle; errors are
//! reserved for requests the provider refused as malformed. Each provider keeps its wire types
//! and their mapping in its own module; adding one is a module and a line in [`Registry::new`].

pub mod sandbox;

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
    Pending,
    ChallengePending,
    Unknown,
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
    /// The authorization's current state.
    fn status(&self, reference: &str) -> ProviderFuture<'_, ProviderStatus>;
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
