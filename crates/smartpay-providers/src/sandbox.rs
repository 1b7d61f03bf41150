//! The sandbox acquirer: a connector ([`SandboxConnector`]) and the fake acquirer it talks to
//! over real HTTP ([`acquirer`]), which implements every test card of CONTRACT §10, a 3-D Secure
//! challenge page of its own, and configurable latency.
//!
//! Cards can be stored ([`Provider::tokenize`], `POST /v1/tokens`): the acquirer answers a
//! stateless token (the card sealed with AES-256-GCM under [`acquirer::AcquirerConfig::token_key`]),
//! and a later authorization sends that token instead of the card number, without a CVC.
//!
//! The connector authenticates with the acquirer's API key (`Authorization: Bearer`), follows no
//! redirects, reads at most [`MAX_ANSWER_BYTES`] of an answer, and never logs or returns an
//! error body: a refusal becomes [`ProviderError::Rejected`] with the status code and the
//! answer's error code when it is one of the acquirer's codes (see `crate::client`). A lookup
//! answers [`Lookup::NotFound`] only on the acquirer's own `404 not_found`.

pub mod acquirer;
pub(crate) mod mapping;
pub mod wire;

use std::fmt;
use std::time::Duration;

use crate::*;

pub use crate::client::MAX_ANSWER_BYTES;
use crate::client::{Answer, Api};

/// How the connector reaches the sandbox acquirer.
#[derive(Clone)]
pub struct ConnectorConfig {
    /// The acquirer's machine API, e.g. `http://127.0.0.1:41234` ([`acquirer::SpawnedAcquirer::api_base`]).
    pub base_url: String,
    /// Longest wait for an answer; beyond it the outcome is `Unknown`.
    pub timeout: Duration,
    /// The acquirer's API key ([`acquirer::AcquirerConfig::api_key`]), sent as a bearer token.
    pub api_key: String,
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// The connector: SmartPay's side of the sandbox acquirer's API.
pub struct SandboxConnector {
    api: Api,
}

impl SandboxConnector {
    pub fn new(config: ConnectorConfig) -> Self {
        let api = Api::new("sandbox", &config.base_url, &config.api_key, config.timeout, KNOWN_ERROR_CODES);
        SandboxConnector { api }
    }

    async fn lookup(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Lookup, ProviderError> {
        self.api.lookup::<wire::Authorization>(segments, query, mapping::lookup).await
    }

    async fn modify(&self, kind: &str, req: ModifyRequest) -> Result<ModifyOutcome, ProviderError> {
        self.api.modify(&["v1", "authorizations", &req.reference, kind], &req).await
    }
}

/// The `error` code of a refusal's body if it is a short `snake_case` word; never the body itself.
pub fn error_code(body: &[u8]) -> &'static str {
    crate::client::error_code(body, KNOWN_ERROR_CODES)
}

/// The error codes the sandbox acquirer answers.
const KNOWN_ERROR_CODES: &[&str] = &[
    "unauthorized",
    "malformed_request",
    "body_too_large",
    "invalid_pan",
    "invalid_expiry",
    "invalid_token",
    "invalid_cvc",
    "invalid_amount",
    "invalid_currency",
    "invalid_idempotency_key",
    "invalid_holder",
    "invalid_frame_ancestors",
    "currency_mismatch",
    "not_found",
    "too_many_modifications",
    "acquirer_full",
];

/// The refusals of `POST /v1/tokens` that concern the card data (the answer
/// [`TokenizeOutcome::Refused`]); any other refusal is a bug or a misconfiguration.
const CARD_REFUSALS: &[&str] = &["invalid_pan", "invalid_expiry", "invalid_holder"];

impl Provider for SandboxConnector {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            separate_capture: true,
            partial_capture: true,
            partial_refund: true,
            three_ds: true,
            asynchronous: false,
        }
    }

    fn authorize(&self, req: AuthorizeRequest) -> ProviderFuture<'_, AuthorizeOutcome> {
        Box::pin(async move {
            let body = mapping::authorization_request(&req);
            let answer: Option<wire::Authorization> = self.api.post(&["v1", "authorizations"], &body).await?.body()?;
            Ok(answer.map_or(AuthorizeOutcome::Unknown, |a| mapping::authorize_outcome(&a)))
        })
    }

    fn tokenize(&self, req: TokenizeRequest) -> ProviderFuture<'_, TokenizeOutcome> {
        Box::pin(async move {
            let body = mapping::token_request(&req);
            let answer = self.api.post_refusable::<_, wire::TokenResponse>(&["v1", "tokens"], &body).await?;
            Ok(match answer {
                Ok(Answer::Body(t)) => TokenizeOutcome::Tokenized { token: t.token },
                Ok(Answer::Silent) => TokenizeOutcome::Unknown,
                Ok(Answer::NotFound) => return Err(ProviderError::Rejected("404 not_found".into())),
                Err(r) if r.status == 400 && CARD_REFUSALS.contains(&r.code) => {
                    TokenizeOutcome::Refused { code: r.code.to_owned() }
                }
                Err(r) => return Err(r.into()),
            })
        })
    }

    fn capture(&self, req: ModifyRequest) -> ProviderFuture<'_, ModifyOutcome> {
        Box::pin(async move { self.modify("captures", req).await })
    }

    fn refund(&self, req: ModifyRequest) -> ProviderFuture<'_, ModifyOutcome> {
        Box::pin(async move { self.modify("refunds", req).await })
    }

    fn cancel(&self, req: ModifyRequest) -> ProviderFuture<'_, ModifyOutcome> {
        Box::pin(async move { self.modify("cancellations", req).await })
    }

    fn status(&self, reference: &str) -> ProviderFuture<'_, Lookup> {
        let reference = reference.to_owned();
        Box::pin(async move { self.lookup(&["v1", "authorizations", &reference], &[]).await })
    }

    fn find(&self, idempotency_key: &str) -> ProviderFuture<'_, Lookup> {
        let key = idempotency_key.to_owned();
        Box::pin(async move { self.lookup(&["v1", "authorizations"], &[("idempotencyKey", &key)]).await })
    }
}
