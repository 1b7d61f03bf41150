//! The sandbox acquirer: a connector ([`SandboxConnector`]) and the fake acquirer it talks to
//! over real HTTP ([`acquirer`]), which implements every test card of CONTRACT §10, a 3-D Secure
//! challenge page of its own, and configurable latency.
//!
//! The connector authenticates with the acquirer's API key (`Authorization: Bearer`), follows no
//! redirects, reads at most [`MAX_ANSWER_BYTES`] of an answer, and never logs or returns an
//! error body: a refusal becomes [`ProviderError::Rejected`] with the status code and the
//! answer's error code when it is a short `snake_case` word, `unreadable` otherwise.

pub mod acquirer;
mod mapping;
pub mod wire;

use std::fmt;
use std::time::Duration;

use crate::*;

/// Largest answer the connector reads from the acquirer.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest error code taken from a refusal; anything longer or not `snake_case` is `unreadable`.
const MAX_ERROR_CODE: usize = 64;

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
    config: ConnectorConfig,
    http: reqwest::Client,
}

impl SandboxConnector {
    pub fn new(config: ConnectorConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        SandboxConnector { config, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// POSTs `body` and reads the answer; `None` when no usable answer came in time.
    async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Option<R>, ProviderError> {
        let sent = self.http.post(self.url(path)).bearer_auth(&self.config.api_key).json(body).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(provider = "sandbox", error = %e.without_url(), "no answer from the acquirer");
                return Ok(None);
            }
        };
        read(resp).await
    }
}

/// Up to `limit` bytes of the body; `None` when it is longer or breaks off.
async fn read_bounded(resp: &mut reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf)
}

/// The `error` code of a refusal's body if it is a short `snake_case` word; never the body itself.
pub fn error_code(body: &[u8]) -> &'static str {
    let Ok(e) = serde_json::from_slice::<wire::ErrorBody>(body) else { return "unreadable" };
    let ok = !e.error.is_empty()
        && e.error.len() <= MAX_ERROR_CODE
        && e.error.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return "unreadable";
    }
    // Known codes only, so nothing a provider chose ends up in logs or errors verbatim.
    KNOWN_ERROR_CODES.iter().find(|c| **c == e.error).copied().unwrap_or("other")
}

/// The error codes the sandbox acquirer answers.
const KNOWN_ERROR_CODES: &[&str] = &[
    "unauthorized",
    "malformed_request",
    "body_too_large",
    "invalid_pan",
    "invalid_cvc",
    "invalid_amount",
    "invalid_currency",
    "invalid_idempotency_key",
    "invalid_holder",
    "currency_mismatch",
    "not_found",
    "too_many_modifications",
    "acquirer_full",
];

async fn read<R: serde::de::DeserializeOwned>(mut resp: reqwest::Response) -> Result<Option<R>, ProviderError> {
    let status = resp.status();
    if status.is_client_error() {
        let code = read_bounded(&mut resp, 1024).await.map_or("unreadable", |b| error_code(&b));
        tracing::warn!(provider = "sandbox", status = status.as_u16(), code, "the acquirer refused the request");
        return Err(ProviderError::Rejected(format!("{} {code}", status.as_u16())));
    }
    if !status.is_success() {
        tracing::warn!(provider = "sandbox", status = status.as_u16(), "the acquirer failed");
        return Ok(None);
    }
    let Some(body) = read_bounded(&mut resp, MAX_ANSWER_BYTES).await else {
        tracing::warn!(provider = "sandbox", "no complete answer from the acquirer");
        return Ok(None);
    };
    match serde_json::from_slice::<R>(&body) {
        Ok(r) => Ok(Some(r)),
        Err(_) => {
            tracing::warn!(provider = "sandbox", "unreadable answer from the acquirer");
            Ok(None)
        }
    }
}

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
            let answer: Option<wire::Authorization> = self.post("/v1/authorizations", &body).await?;
            Ok(answer.map_or(AuthorizeOutcome::Unknown, |a| mapping::authorize_outcome(&a)))
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

    fn status(&self, reference: &str) -> ProviderFuture<'_, ProviderStatus> {
        let url = self.url(&format!("/v1/authorizations/{reference}"));
        Box::pin(async move {
            let answer: Option<wire::Authorization> =
                match self.http.get(url).bearer_auth(&self.config.api_key).send().await {
                    Ok(r) => read(r).await?,
                    Err(_) => None,
                };
            Ok(answer.map_or(ProviderStatus::Unknown, |a| mapping::provider_status(&a)))
        })
    }
}

impl SandboxConnector {
    async fn modify(&self, kind: &str, req: ModifyRequest) -> Result<ModifyOutcome, ProviderError> {
        let body = wire::ModificationRequest {
            amount: req.amount_minor,
            currency: req.currency.clone(),
            idempotency_key: req.modification_id.clone(),
        };
        let answer: Option<wire::Modification> =
            self.post(&format!("/v1/authorizations/{}/{kind}", req.reference), &body).await?;
        Ok(answer.map_or(ModifyOutcome::Unknown, |m| mapping::modify_outcome(&m)))
    }
}
