//! Thin handlers: HTTP in, use case, HTTP out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use smartpay_api_types as api;

use super::extract::{Caller, JsonBody, RequestCtx};
use crate::app::AppState;
use crate::auth::token_endpoint::{self, OAuthError, TokenRequest};
use crate::checkout;
use crate::error::{ApiError, ErrorCode, Problem};

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Checks `X-Access-Token`: at most 512 characters and shaped like a JWT.
fn check_access_token(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(v) = headers.get("x-access-token") else { return Ok(()) };
    let bad = |rule: &str| {
        ApiError::invalid(
            Problem::new(ErrorCode::InvalidHeader)
                .at("X-Access-Token")
                .with("rule", smartpay_domain::violation::Fact::Text(rule.into())),
        )
    };
    let s = v.to_str().map_err(|_| bad("a JWT of at most 512 characters"))?;
    if s.len() > 512 {
        return Err(bad("at most 512 characters"));
    }
    let parts: Vec<&str> = s.split('.').collect();
    let b64 = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if parts.len() != 3 || !b64(parts[0]) || !b64(parts[1]) || !(parts[2].is_empty() || b64(parts[2])) {
        return Err(bad("a JWT (three base64url segments)"));
    }
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| bad("a JWT (three base64url segments)"))?;
    if !matches!(smartpay_domain::json::parse(&header), Ok(smartpay_domain::json::Value::Object(_))) {
        return Err(bad("a JWT whose header is a JSON object"));
    }
    Ok(())
}

/// Create Checkout.
#[utoipa::path(
    post, path = "/payment/creation", tag = "Checkout",
    description = "Starts a payment: returns its transactionId and the checkoutToken the widget needs. \
        Honours `partnerReference` (unique per merchant) and the `Idempotency-Key` header: the same request again \
        returns the first response; a different one gets 409.",
    request_body(content = inline(Object), description = "Create Checkout request; the schema is `CreateCheckoutRequest`.", content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; replays the first response for 24 h.",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
        ("Accept-Language" = Option<String>, Header, description = "en-US (default) or de-DE, for error messages."),
        ("X-Access-Token" = Option<String>, Header, description = "End-user identity JWT, at most 512 characters. Where the merchant registered its identity issuer's keys, the signature (ES256) and expiry are verified and the subject is recorded.",
            max_length = 512, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$"),
    ),
    responses(
        (status = 200, description = "Checkout created (or replayed)", body = api::CreateCheckoutResponse),
        (status = 400, description = "Invalid request: every violation is listed", body = api::ErrorBody),
        (status = 401, description = "Not authenticated, or an X-Access-Token that the merchant's identity issuer did not sign", body = api::ErrorBody),
        (status = 403, description = "merchantKey is not the caller's", body = api::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = api::ErrorBody),
        (status = 409, description = "Idempotency conflict or request in progress", body = api::ErrorBody),
        (status = 413, description = "Body too large", body = api::ErrorBody),
        (status = 415, description = "Not application/json", body = api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this client address: retry after `Retry-After` seconds (credentials verified before still pass)", body = api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Store unavailable", body = api::ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn create_checkout(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(checkout::check_idempotency_key(v.as_bytes())?),
        None => None,
    };
    check_access_token(&headers)?;
    let identity_subject = match headers.get("x-access-token").and_then(|v| v.to_str().ok()) {
        Some(token) => match state.auth.identity_subject(&who.merchant_id, token).await {
            Ok(subject) => subject,
            Err(crate::auth::AuthError::Store(e)) => return Err(e.into()),
            Err(e) => {
                tracing::info!(reason = %e, "X-Access-Token refused");
                return Err(ApiError::InvalidAccessToken);
            }
        },
        None => None,
    };
    let answer = checkout::create(&state, &who, &body, idempotency_key, identity_subject).await?;
    let mut resp = json_response(StatusCode::OK, answer.body);
    if answer.replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Get Payment Status.
#[utoipa::path(
    get, path = "/payment/status/{transactionId}", tag = "Checkout",
    description = "The payment's status, its history and its modifications. Another merchant's payment is 404, as if it did not exist.",
    params(("transactionId" = String, Path, description = "The transactionId (UUID) from Create Checkout.",
        pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")),
    responses(
        (status = 200, description = "The payment", body = api::PaymentStatusResponse),
        (status = 400, description = "transactionId is not a UUID", body = api::ErrorBody),
        (status = 401, description = "Not authenticated", body = api::ErrorBody),
        (status = 404, description = "No such payment for this merchant", body = api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this client address: retry after `Retry-After` seconds (credentials verified before still pass)", body = api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn payment_status(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = checkout::status(&state, &who, &id).await?;
    let body = serde_json::to_vec(&status).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

/// OAuth2 token endpoint (client credentials).
#[utoipa::path(
    post, path = "/oauth2/token", tag = "Authentication",
    description = "RFC 6749 §4.4 client credentials. Send `grant_type=client_credentials` with the client id and secret in the \
        form body, or in an `Authorization: Basic` header. The access token is an ES256 JWT valid for `expires_in` seconds.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials&client_id=…&client_secret=…"),
    responses(
        (status = 200, description = "Access token", body = api::TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type, invalid_scope", body = api::OAuthErrorResponse),
        (status = 401, description = "invalid_client", body = api::OAuthErrorResponse),
        (status = 408, description = "The form did not arrive in time", body = api::ErrorBody),
        (status = 413, description = "invalid_request: the form is larger than the endpoint accepts", body = api::OAuthErrorResponse),
        (status = 429, description = "Too many failed attempts from this client address for this client, or from this address at all: retry after `Retry-After` seconds", body = api::OAuthErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn oauth_token(
    State(state): State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    req: axum::extract::Request,
) -> Response {
    let client_ip = state.client_ip(peer.ip(), req.headers());
    if !super::extract::has_media_type(req.headers(), "application/x-www-form-urlencoded") {
        return OAuthError::InvalidRequest("the body must be application/x-www-form-urlencoded").into_response();
    }
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
    let body = match super::extract::read_body(req, state.config.token_max_body_bytes).await {
        Ok(b) => b,
        Err(ApiError::PayloadTooLarge { limit }) => return OAuthError::TooLarge { limit }.into_response(),
        Err(e) => return e.into_response(),
    };
    let request = TokenRequest { client_ip, authorization: authorization.as_deref(), body: &body };
    let counters = &state.metrics.counters;
    match token_endpoint::client_credentials(&state.auth, &state.auth_lockout, request).await {
        Ok(token) => {
            counters.tokens_issued.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::to_vec(&api::TokenResponse {
                access_token: token.access_token,
                expires_in: token.expires_in,
                token_type: "Bearer".into(),
            })
            .unwrap_or_default();
            let mut resp = json_response(StatusCode::OK, body);
            resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => {
            match &e {
                OAuthError::InvalidClient { .. } => {
                    counters.auth_failures_bearer.fetch_add(1, Ordering::Relaxed);
                }
                OAuthError::LockedOut { .. } => {
                    counters.auth_lockouts.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            e.into_response()
        }
    }
}

/// JSON Web Key Set.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "Authentication",
    description = "Public keys that verify access tokens (ES256). Several keys are listed during a rotation.",
    responses((status = 200, description = "RFC 7517 JWK Set", body = Object)))]
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut resp = Json(state.auth.jwks()).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    resp
}

/// Liveness.
#[utoipa::path(get, path = "/health/live", tag = "Operations", description = "The process is up.",
    responses((status = 200, description = "Alive", body = Object)))]
pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness.
#[utoipa::path(get, path = "/health/ready", tag = "Operations", description = "The store answers reads and writes.",
    responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Store unavailable", body = Object)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "unavailable"}))).into_response()
        }
    }
}

/// Prometheus metrics (served on the admin listener, `admin_listen`).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    if let Ok(stats) = state.store.job_stats(state.now()).await {
        text.push_str(&crate::metrics::render_jobs(&stats, state.now()));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations", description = "The OpenAPI 3.1 description of this API.",
    responses((status = 200, description = "OpenAPI document", body = Object)))]
pub async fn openapi_json(_ctx: RequestCtx) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::document_json().to_owned()).into_response()
}

async fn modification(
    state: &AppState,
    who: &crate::auth::Principal,
    op: smartpay_domain::modify::Operation,
    body: &smartpay_domain::json::Value,
) -> Result<Response, ApiError> {
    let answer = crate::modify::request(state, who, op, body).await?;
    let mut resp = json_response(StatusCode::OK, answer.body);
    if answer.replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Capture.
#[utoipa::path(
    post, path = "/payment/capture", tag = "Modifications",
    description = "Captures all (no `modifiedAmount`) or part of an authorized payment; several partial captures may follow each other \
        up to the authorized amount. The answer is the payment with the single `modification`; a provider's refusal is a \
        `CAPTURE_FAILED` modification with MOD1 `error`/`errorDetails`. The same `modificationId` with the same body returns the \
        first answer; with another body, 409.",
    request_body(content = inline(Object), description = "The schema is `CaptureOrRefundRequest`.", content_type = "application/json"),
    responses(
        (status = 200, description = "The payment and the capture", body = api::ModificationResponse),
        (status = 400, description = "Invalid request, or another currency than the payment's (`currency_mismatch`)", body = api::ErrorBody),
        (status = 401, description = "Not authenticated", body = api::ErrorBody),
        (status = 403, description = "merchantKey is not the caller's", body = api::ErrorBody),
        (status = 404, description = "No such payment for this merchant", body = api::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = api::ErrorBody),
        (status = 409, description = "`invalid_state`, `idempotency_conflict` or `request_in_progress`", body = api::ErrorBody),
        (status = 413, description = "Body too large", body = api::ErrorBody),
        (status = 415, description = "Not application/json", body = api::ErrorBody),
        (status = 422, description = "`amount_exceeds_capturable`, with `remaining` in `context`", body = api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this client address", body = api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn capture(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    modification(&state, &who, smartpay_domain::modify::Operation::Capture, &body).await
}

/// Refund.
#[utoipa::path(
    post, path = "/payment/refund", tag = "Modifications",
    description = "Refunds all that is left (no `modifiedAmount`) or part of a captured or settled payment; several partial refunds \
        may follow each other up to the captured amount. The payment becomes `REFUNDED` when everything captured is refunded. \
        A provider's refusal is a `REFUND_FAILED` modification with MOD1 details.",
    request_body(content = inline(Object), description = "The schema is `CaptureOrRefundRequest`.", content_type = "application/json"),
    responses(
        (status = 200, description = "The payment and the refund", body = api::ModificationResponse),
        (status = 400, description = "Invalid request, or another currency than the payment's (`currency_mismatch`)", body = api::ErrorBody),
        (status = 401, description = "Not authenticated", body = api::ErrorBody),
        (status = 403, description = "merchantKey is not the caller's", body = api::ErrorBody),
        (status = 404, description = "No such payment for this merchant", body = api::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = api::ErrorBody),
        (status = 409, description = "`invalid_state`, `idempotency_conflict` or `request_in_progress`", body = api::ErrorBody),
        (status = 413, description = "Body too large", body = api::ErrorBody),
        (status = 415, description = "Not application/json", body = api::ErrorBody),
        (status = 422, description = "`amount_exceeds_refundable`, with `remaining` in `context`", body = api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this client address", body = api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn refund(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    modification(&state, &who, smartpay_domain::modify::Operation::Refund, &body).await
}

/// Cancel.
#[utoipa::path(
    post, path = "/payment/cancel", tag = "Modifications",
    description = "Releases an authorization nothing was captured from (`AUTHORIZATION_COMPLETED`); the payment becomes `CANCELLED`.",
    request_body(content = inline(Object), description = "The schema is `CancelRequest`.", content_type = "application/json"),
    responses(
        (status = 200, description = "The payment and the cancellation", body = api::ModificationResponse),
        (status = 400, description = "Invalid request", body = api::ErrorBody),
        (status = 401, description = "Not authenticated", body = api::ErrorBody),
        (status = 403, description = "merchantKey is not the caller's", body = api::ErrorBody),
        (status = 404, description = "No such payment for this merchant", body = api::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = api::ErrorBody),
        (status = 409, description = "`invalid_state`, `idempotency_conflict` or `request_in_progress`", body = api::ErrorBody),
        (status = 413, description = "Body too large", body = api::ErrorBody),
        (status = 415, description = "Not application/json", body = api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this client address", body = api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    modification(&state, &who, smartpay_domain::modify::Operation::Cancel, &body).await
}

/// Cancel or refund.
#[utoipa::path(
    post, path = "/payment/cancelOrRefund", tag = "Modifications",
    description = "Cancels the payment when nothing was captured, else refunds everything still refundable.",
    request_body(content = inline(Object), description = "The schema is `CancelRequest`.", content_type = "application/json"),
    responses(
        (status = 200, description = "The payment and the cancellation or refund", body = api::ModificationResponse),
        (status = 400, description = "Invalid request", body = api::ErrorBody),
        (status = 401, description = "Not authenticated", body = api::ErrorBody),
        (status = 403, description = "merchantKey is not the caller's", body = api::ErrorBody),
        (status = 404, description = "No such payment for this merchant", body = api::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = api::ErrorBody),
        (status = 409, description = "`invalid_state`, `idempotency_conflict` or `request_in_progress`", body = api::ErrorBody),
        (status = 413, description = "Body too large", body = api::ErrorBody),
        (status = 415, description = "Not application/json", body = api::ErrorBody),
        (status = 422, description = "`amount_exceeds_refundable`: nothing is left to refund", body = api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this client address", body = api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn cancel_or_refund(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    modification(&state, &who, smartpay_domain::modify::Operation::CancelOrRefund, &body).await
}

/// Largest inbound provider notification read.
const MAX_NOTICE_BYTES: usize = 16 * 1024;

/// An inbound notification from a payment provider (sandbox PayU). Verified by the provider's
/// signature, deduplicated by its event id, and taken only as a reason to ask the provider
/// soon: its content never changes a payment by itself.
#[utoipa::path(
    post, path = "/providers/{provider}/notifications", tag = "Providers",
    description = "A payment provider tells SmartPay that something changed (signed). SmartPay then asks the provider; the notification's content is never taken as the payment's status.",
    params(("provider" = String, Path, description = "The provider, e.g. `payu`")),
    request_body(content = Object, description = "The provider's notification", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (or seen before)"),
        (status = 401, description = "Unsigned, or the signature is wrong or stale", body = api::ErrorBody),
        (status = 400, description = "Malformed", body = api::ErrorBody),
        (status = 404, description = "No such provider", body = api::ErrorBody),
        (status = 413, description = "Body too large", body = api::ErrorBody),
    )
)]
pub async fn provider_notification(
    State(state): State<Arc<AppState>>,
    Path(provider): Path<String>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_NOTICE_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_NOTICE_BYTES })?;
    let signature = parts.headers.get("openpayu-signature").and_then(|v| v.to_str().ok());
    use crate::resolve::NoticeAnswer;
    match crate::resolve::on_provider_notice(&state, &provider, signature, &bytes).await? {
        NoticeAnswer::Accepted | NoticeAnswer::Duplicate => {
            Ok(json_response(StatusCode::OK, b"{\"status\":\"OK\"}".to_vec()))
        }
        NoticeAnswer::UnknownProvider | NoticeAnswer::Refused(smartpay_providers::NoticeError::Unsupported) => {
            Err(ApiError::NotFound)
        }
        NoticeAnswer::Refused(smartpay_providers::NoticeError::Malformed) => {
            Err(ApiError::invalid(Problem::new(ErrorCode::InvalidValue).at("body")))
        }
        NoticeAnswer::Refused(_) => Err(ApiError::Unauthorized(crate::error::Challenge::Signature)),
    }
}
