//! PAYU, the asynchronous provider: a connector ([`PayuConnector`]) and a fake PayU-like service
//! it talks to over real HTTP ([`fake`]).
//!
//! A payment is an *order*: the connector creates it ([`Provider::start_redirect`]) and gets the
//! approval page's URL, where the shopper approves or declines; the outcome is learned by
//! polling the order ([`Provider::status`], or [`Provider::find`] by SmartPay's transactionId,
//! which is the order's `extOrderId`). PayU may also POST a notification to the gateway; the
//! connector verifies its signature ([`signature`]) and only hands back whom to ask — never a
//! status. Captures, refunds and cancellations are answered `SUCCEEDED`, `FAILED` or `PENDING`
//! (refunds settle later: repeating the request with the same key is how it is polled). HTTP
//! handling — bearer key, bounded reads, error-code whitelist — is shared with the sandbox
//! connector (see `crate::client`).

pub mod fake;
mod mapping;
pub mod signature;
pub mod wire;

use std::fmt;
use std::time::Duration;

use crate::client::Api;
use crate::*;

/// Longest provider reference or event id accepted from a notification.
const MAX_NOTICE_ID_LEN: usize = 128;
/// Largest notification body verified.
pub const MAX_NOTIFICATION_BYTES: usize = 16 * 1024;

/// How the connector reaches PayU.
#[derive(Clone)]
pub struct ConnectorConfig {
    /// PayU's machine API, e.g. `http://127.0.0.1:41235` ([`fake::SpawnedPayu::api_base`]).
    pub base_url: String,
    /// Longest wait for an answer; beyond it the outcome is `Unknown`.
    pub timeout: Duration,
    /// PayU's API key ([`fake::FakeConfig::api_key`]), sent as a bearer token.
    pub api_key: String,
    /// The key PayU signs its notifications with ([`fake::FakeConfig::notify_secret`]).
    pub notify_secret: String,
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("api_key", &"<redacted>")
            .field("notify_secret", &"<redacted>")
            .finish()
    }
}

/// The error codes PayU (the fake) answers.
const KNOWN_ERROR_CODES: &[&str] = &[
    "unauthorized",
    "malformed_request",
    "body_too_large",
    "invalid_ext_order_id",
    "invalid_amount",
    "invalid_currency",
    "invalid_description",
    "invalid_continue_url",
    "invalid_notify_url",
    "invalid_frame_ancestors",
    "invalid_idempotency_key",
    "invalid_script",
    "currency_mismatch",
    "not_found",
    "too_many_modifications",
    "payu_full",
];

/// The connector: SmartPay's side of PayU's API.
pub struct PayuConnector {
    api: Api,
    notify_secret: String,
}

impl PayuConnector {
    pub fn new(config: ConnectorConfig) -> Self {
        let api = Api::new("payu", &config.base_url, &config.api_key, config.timeout, KNOWN_ERROR_CODES);
        PayuConnector { api, notify_secret: config.notify_secret }
    }

    async fn lookup(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Lookup, ProviderError> {
        self.api.lookup::<wire::Order>(segments, query, mapping::lookup).await
    }

    async fn modify(&self, kind: &str, req: ModifyRequest) -> Result<ModifyOutcome, ProviderError> {
        self.api.modify(&["api", "v2_1", "orders", &req.reference, kind], &req).await
    }

    async fn create_order(&self, req: RedirectRequest) -> Result<AuthorizeOutcome, ProviderError> {
        let body = mapping::order_request(&req);
        let answer: Option<wire::OrderCreated> = self.api.post(&["api", "v2_1", "orders"], &body).await?.body()?;
        Ok(answer.map_or(AuthorizeOutcome::Unknown, |o| mapping::redirect_outcome(&req, &o)))
    }
}

/// A short id of visible ASCII characters.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NOTICE_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Provider for PayuConnector {
    fn name(&self) -> &'static str {
        "payu"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            separate_capture: true,
            partial_capture: true,
            partial_refund: true,
            three_ds: false,
            asynchronous: true,
        }
    }

    /// PayU takes no card data: its payments start with [`Provider::start_redirect`].
    fn authorize(&self, req: AuthorizeRequest) -> ProviderFuture<'_, AuthorizeOutcome> {
        let _ = req;
        Box::pin(async { Err(ProviderError::Rejected("payu takes no card payments: use a redirect".into())) })
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
        Box::pin(async move { self.lookup(&["api", "v2_1", "orders", &reference], &[]).await })
    }

    fn find(&self, idempotency_key: &str) -> ProviderFuture<'_, Lookup> {
        let key = idempotency_key.to_owned();
        Box::pin(async move { self.lookup(&["api", "v2_1", "orders"], &[("extOrderId", &key)]).await })
    }

    fn start_redirect(&self, req: RedirectRequest) -> ProviderFuture<'_, AuthorizeOutcome> {
        Box::pin(async move { self.create_order(req).await })
    }

    fn verify_notification(&self, signature: Option<&str>, body: &[u8]) -> Result<Notice, NoticeError> {
        if body.len() > MAX_NOTIFICATION_BYTES {
            return Err(NoticeError::Malformed);
        }
        signature::verify(&self.notify_secret, signature, body, smartpay_domain::Millis::now())?;
        let n: wire::Notification = serde_json::from_slice(body).map_err(|_| NoticeError::Malformed)?;
        if !valid_id(&n.event_id) || !valid_id(&n.order_id) {
            return Err(NoticeError::Malformed);
        }
        Ok(Notice { event_id: n.event_id, reference: n.order_id })
    }
}
