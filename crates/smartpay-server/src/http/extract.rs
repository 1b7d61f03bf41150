//! Extractors: the request context, the authenticated merchant, and strict JSON bodies.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use smartpay_domain::json::{self, Value};

use super::i18n::{self, Lang};
use crate::app::AppState;
use crate::auth::{AuthError, Principal};
use crate::error::{ApiError, Challenge};

/// Per-request facts the middleware establishes.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// W3C trace id (32 hex digits).
    pub trace_id: String,
    /// This server's span id (16 hex digits).
    pub span_id: String,
    pub lang: Lang,
}

impl RequestCtx {
    /// The W3C `traceparent` of this request.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    pub fn from_parts(parts: &axum::http::HeaderMap) -> Self {
        let incoming = parts.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
        let random = trace_random();
        let trace_id = incoming.unwrap_or_else(|| hex(&random[..16]));
        RequestCtx {
            trace_id,
            span_id: hex(&random[16..]),
            lang: i18n::negotiate(parts.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok())),
        }
    }
}

/// 24 random bytes for a trace id and a span id. They identify a request in logs and traces
/// and protect nothing, so they come from a per-thread SplitMix64 sequence seeded once from the
/// operating system, not from a system call per request.
fn trace_random() -> [u8; 24] {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            crate::secrets::random_array::<8>().map_or(0x9E37_79B9_7F4A_7C15, u64::from_le_bytes),
        );
    }
    let mut out = [0u8; 24];
    STATE.with(|state| {
        for chunk in out.chunks_mut(8) {
            let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
    });
    out
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

/// The trace id of a valid `traceparent` (W3C Trace Context §3.2).
fn parse_traceparent(v: &str) -> Option<String> {
    let mut it = v.trim().split('-');
    let (version, trace, parent, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let hexish =
        |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (version == "00"
        && hexish(trace, 32)
        && hexish(parent, 16)
        && hexish(flags, 2)
        && trace != "0".repeat(32)
        && it.next().is_none())
    .then(|| trace.to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestCtx>().cloned().unwrap_or_else(|| RequestCtx::from_parts(&parts.headers)))
    }
}

/// The authenticated caller: Basic or Bearer.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // RFC 6750 §2.3 allows tokens in the query; we refuse them (they end up in logs).
        if parts.uri.query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token="))) {
            return Err(ApiError::InvalidAuthorization("token in query string"));
        }
        let values: Vec<&[u8]> = parts.headers.get_all(header::AUTHORIZATION).iter().map(|v| v.as_bytes()).collect();
        let counters = &state.metrics.counters;
        // Brute-force defence: a client that failed too often for this identity (or from this
        // address at all) may not try new credentials now; credentials already verified pass
        // (and skip the lockout's work: decoding the claimed identity and two counter lookups).
        let ip = client_ip(parts, state);
        let identity = || claimed_identity(&values);
        if !state.auth.is_known(&values)
            && let Err(wait) = state.auth_lockout.check(ip, &identity())
        {
            counters.auth_lockouts.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::RateLimited { retry_after: wait });
        }
        let failed = || state.auth_lockout.failed(ip, &identity());
        match state.auth.authenticate(&values).await {
            Ok(p) => Ok(Caller(p)),
            Err(AuthError::Missing) => Err(ApiError::Unauthorized(Challenge::Any)),
            Err(AuthError::Basic) => {
                failed();
                counters.auth_failures_basic.fetch_add(1, Ordering::Relaxed);
                tracing::info!("basic authentication failed");
                Err(ApiError::Unauthorized(Challenge::Basic))
            }
            Err(AuthError::Token(e)) => {
                failed();
                counters.auth_failures_bearer.fetch_add(1, Ordering::Relaxed);
                tracing::info!(reason = %e, "bearer authentication failed");
                Err(ApiError::Unauthorized(Challenge::InvalidToken))
            }
            Err(AuthError::Malformed(what)) => Err(ApiError::InvalidAuthorization(what)),
            Err(AuthError::Store(e)) => Err(e.into()),
        }
    }
}

/// Who the credentials claim to be, for the lockout: the Basic user id (a merchantKey), or
/// `bearer` for tokens (a forged token's claims are the attacker's choice, so they share one key).
fn claimed_identity(authorization: &[&[u8]]) -> String {
    let Some(value) = authorization.first() else { return "none".into() };
    if value.len() > 6 && value[..6].eq_ignore_ascii_case(b"basic ") {
        match crate::auth::basic::parse(&value[6..]) {
            Some((user, _)) if user.len() <= 64 => format!("basic:{user}"),
            _ => "basic".into(),
        }
    } else {
        "bearer".into()
    }
}

/// The client's address: the TCP peer, or what a trusted proxy says (`trusted_proxies`).
pub fn client_ip(parts: &Parts, state: &AppState) -> std::net::IpAddr {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    state.client_ip(peer, &parts.headers)
}

/// Whether a body read failed because the body did not arrive in time.
pub fn is_body_timeout(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Reads a body of at most `limit` bytes: 413 beyond it (by `Content-Length` before reading),
/// 408 when it does not arrive within the body timeout.
pub async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| if is_body_timeout(&e) { ApiError::RequestTimeout } else { ApiError::PayloadTooLarge { limit } })
}

/// A JSON body: `application/json`, within the size limit, parsed strictly.
pub struct JsonBody(pub Value);

/// Whether the Content-Type is `media_type` (parameters such as `charset` aside).
pub fn has_media_type(headers: &axum::http::HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media_type))
}

impl FromRequest<Arc<AppState>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if !has_media_type(req.headers(), "application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state.config.max_body_bytes).await?;
        json::parse(&bytes).map(JsonBody).map_err(ApiError::MalformedJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_gets_its_own_trace_and_span_ids() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let ctx = RequestCtx::from_parts(&axum::http::HeaderMap::new());
            assert_eq!((ctx.trace_id.len(), ctx.span_id.len()), (32, 16));
            assert_ne!(ctx.trace_id, "0".repeat(32), "W3C: an all-zero trace id is invalid");
            assert!(seen.insert(ctx.trace_id), "a trace id came twice");
        }
        // Another thread's sequence is seeded on its own.
        let other = std::thread::spawn(|| RequestCtx::from_parts(&axum::http::HeaderMap::new()).trace_id)
            .join()
            .unwrap_or_default();
        assert!(!seen.contains(&other));
    }
}
