//! The sandbox acquirer: a connector ([`SandboxConnector`]) and the fake acquirer it talks to
//! over real HTTP ([`acquirer`]), which implements every test card of CONTRACT §10, a 3-D Secure
//! challenge page of its own, and configurable latency.

pub mod acquirer;
mod mapping;
pub mod wire;

use std::time::Duration;

use crate::*;

/// How the connector reaches the sandbox acquirer.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// e.g. `http://127.0.0.1:8080/sandbox-acquirer`
    pub base_url: String,
    /// Longest wait for an answer; beyond it the outcome is `Unknown`.
    pub timeout: Duration,
}

/// The connector: SmartPay's side of the sandbox acquirer's API.
pub struct SandboxConnector {
    config: ConnectorConfig,
    http: reqwest::Client,
}

impl SandboxConnector {
    pub fn new(config: ConnectorConfig) -> Self {
        let http = reqwest::Client::builder().timeout(config.timeout).build().unwrap_or_default();
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
        let resp = match self.http.post(self.url(path)).json(body).send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(provider = "sandbox", error = %e.without_url(), "no answer from the acquirer");
                return Ok(None);
            }
        };
        read(resp).await
    }
}

async fn read<R: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<Option<R>, ProviderError> {
    let status = resp.status();
    if status.is_client_error() {
        let text = resp.text().await.unwrap_or_default();
        return Err(ProviderError::Rejected(format!("{status}: {text}")));
    }
    if !status.is_success() {
        return Ok(None);
    }
    match resp.json::<R>().await {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::warn!(provider = "sandbox", error = %e.without_url(), "unreadable answer from the acquirer");
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
            let answer: Option<wire::Authorization> = match self.http.get(url).send().await {
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
