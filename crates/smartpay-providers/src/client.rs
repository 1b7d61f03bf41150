//! The connectors' side of a provider's HTTP API, shared by every connector: bearer
//! authentication, no redirects followed, at most [`MAX_ANSWER_BYTES`] read from an answer, path
//! segments percent-encoded, and no error body ever logged or returned — a refusal becomes
//! [`ProviderError::Rejected`] with the status code and the answer's error code when it is one of
//! the provider's known codes (`other` for an unknown `snake_case` word, `unreadable` otherwise).

use std::time::Duration;

use reqwest::Url;

use crate::ProviderError;

/// Largest answer a connector reads from a provider.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest error code taken from a refusal; anything longer or not `snake_case` is `unreadable`.
const MAX_ERROR_CODE: usize = 64;
/// Largest refusal body read for its code.
const MAX_ERROR_BYTES: usize = 1024;

/// What a request to a provider brought back.
#[derive(Debug)]
pub enum Answer<R> {
    /// A 2xx answer that parsed.
    Body(R),
    /// 404 with the `not_found` code: the provider does not know the object.
    NotFound,
    /// No usable answer: timeout, connection error, 5xx, 408 or 429, an oversized, broken-off or
    /// unreadable body. The outcome must be asked for again later.
    Silent,
}

impl<R> Answer<R> {
    /// The body, `None` when there was no usable answer; an unknown object is a refusal here
    /// (a modification of an authorization the provider does not know).
    pub fn body(self) -> Result<Option<R>, ProviderError> {
        match self {
            Answer::Body(r) => Ok(Some(r)),
            Answer::NotFound => Err(ProviderError::Rejected("404 not_found".into())),
            Answer::Silent => Ok(None),
        }
    }
}

/// A request the provider refused (4xx other than its own `404 not_found`), by status and error
/// code (one of the provider's known codes, `other` or `unreadable`; never the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
}

impl From<Refusal> for ProviderError {
    fn from(r: Refusal) -> Self {
        ProviderError::Rejected(format!("{} {}", r.status, r.code))
    }
}

/// A provider's machine API as one connector reaches it.
pub struct Api {
    provider: &'static str,
    base_url: String,
    api_key: String,
    known_codes: &'static [&'static str],
    http: reqwest::Client,
}

impl Api {
    /// `known_codes` are the error codes the provider documents: only these are repeated in a
    /// [`ProviderError`].
    pub fn new(
        provider: &'static str,
        base_url: &str,
        api_key: &str,
        timeout: Duration,
        known_codes: &'static [&'static str],
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Api {
            provider,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            known_codes,
            http,
        }
    }

    /// The base URL followed by `segments`, each percent-encoded (a reference can never reach
    /// another path; empty and dot segments are refused), and `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ProviderError> {
        let bad_base =
            || ProviderError::Rejected(format!("{}: base_url is not an absolute http(s) URL", self.provider));
        if segments.iter().any(|s| matches!(*s, "" | "." | "..")) {
            return Err(ProviderError::Rejected(format!("{}: an empty or dot path segment", self.provider)));
        }
        let mut url = Url::parse(&self.base_url).map_err(|_| bad_base())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_base());
        }
        url.path_segments_mut().map_err(|_| bad_base())?.pop_if_empty().extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// POSTs `body` as JSON to `segments`.
    pub async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<Answer<R>, ProviderError> {
        Ok(self.post_refusable(segments, body).await??)
    }

    /// [`Api::post`] with a refusal kept apart (the outer error: the request could not be
    /// built), for calls where some refusals are business answers rather than bugs.
    pub async fn post_refusable<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<Result<Answer<R>, Refusal>, ProviderError> {
        let url = self.url(segments, &[])?;
        let sent = self.http.post(url).bearer_auth(&self.api_key).json(body).send().await;
        Ok(self.answer(sent).await)
    }

    /// GETs `segments?query`.
    pub async fn get<R: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Answer<R>, ProviderError> {
        let url = self.url(segments, query)?;
        let sent = self.http.get(url).bearer_auth(&self.api_key).send().await;
        Ok(self.answer(sent).await?)
    }

    /// An object looked up with `GET segments?query`, mapped by the connector: unknown to the
    /// provider is [`crate::Lookup::NotFound`], no usable answer [`crate::Lookup::Unknown`].
    pub async fn lookup<R: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        map: impl FnOnce(&R) -> crate::Lookup,
    ) -> Result<crate::Lookup, ProviderError> {
        Ok(match self.get::<R>(segments, query).await? {
            Answer::Body(r) => map(&r),
            Answer::NotFound => crate::Lookup::NotFound,
            Answer::Silent => crate::Lookup::Unknown,
        })
    }

    /// A capture, refund or cancellation posted to `segments` in the wire shape both fake
    /// providers share (amount, currency, the modification id as idempotency key); no usable
    /// answer is [`crate::ModifyOutcome::Unknown`] (asked for again by pending resolution).
    pub async fn modify(
        &self,
        segments: &[&str],
        req: &crate::ModifyRequest,
    ) -> Result<crate::ModifyOutcome, ProviderError> {
        let body = crate::sandbox::wire::ModificationRequest {
            amount: req.amount_minor,
            currency: req.currency.clone(),
            idempotency_key: req.modification_id.clone(),
        };
        let answer: Option<crate::sandbox::wire::Modification> = self.post(segments, &body).await?.body()?;
        Ok(answer.map_or(crate::ModifyOutcome::Unknown, |m| crate::sandbox::mapping::modify_outcome(&m)))
    }

    async fn answer<R: serde::de::DeserializeOwned>(
        &self,
        sent: reqwest::Result<reqwest::Response>,
    ) -> Result<Answer<R>, Refusal> {
        let provider = self.provider;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(provider, error = %e.without_url(), "no answer from the provider");
                return Ok(Answer::Silent);
            }
        };
        let status = resp.status();
        if matches!(status.as_u16(), 408 | 429) {
            tracing::warn!(provider, status = status.as_u16(), "the provider asks to try again later");
            return Ok(Answer::Silent);
        }
        if status.is_client_error() {
            let code = read_bounded(&mut resp, MAX_ERROR_BYTES)
                .await
                .map_or("unreadable", |b| error_code(&b, self.known_codes));
            if status.as_u16() == 404 && code == "not_found" {
                return Ok(Answer::NotFound);
            }
            tracing::warn!(provider, status = status.as_u16(), code, "the provider refused the request");
            return Err(Refusal { status: status.as_u16(), code });
        }
        if !status.is_success() {
            tracing::warn!(provider, status = status.as_u16(), "the provider failed");
            return Ok(Answer::Silent);
        }
        let Some(body) = read_bounded(&mut resp, MAX_ANSWER_BYTES).await else {
            tracing::warn!(provider, "no complete answer from the provider");
            return Ok(Answer::Silent);
        };
        match serde_json::from_slice::<R>(&body) {
            Ok(r) => Ok(Answer::Body(r)),
            Err(_) => {
                tracing::warn!(provider, "unreadable answer from the provider");
                Ok(Answer::Silent)
            }
        }
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

/// The `error` code of a refusal's body if it is one of `known` (`other` for another short
/// `snake_case` word, `unreadable` for anything else); never the body itself.
pub fn error_code(body: &[u8], known: &'static [&'static str]) -> &'static str {
    let Ok(e) = serde_json::from_slice::<crate::sandbox::wire::ErrorBody>(body) else { return "unreadable" };
    let ok = !e.error.is_empty()
        && e.error.len() <= MAX_ERROR_CODE
        && e.error.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return "unreadable";
    }
    // Known codes only, so nothing a provider chose ends up in logs or errors verbatim.
    known.iter().find(|c| **c == e.error).copied().unwrap_or("other")
}
