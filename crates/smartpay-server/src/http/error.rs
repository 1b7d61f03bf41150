//! The one place that picks HTTP statuses and error codes, and renders the MOD2 error body
//! (`{"traceId", "errors": [{code, message, property, context}], "ignoredProperties"}`).
//!
//! Handlers return [`ApiError`]; its response carries an [`ErrorSpec`] and no body yet. The
//! observing middleware, which knows the request's trace id and language, renders the body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use smartpay_domain::violation::Fact;

use super::i18n::{self, Lang};
use crate::auth::token_endpoint::OAuthError;
use crate::error::{ApiError, Challenge, ErrorCode, Problem};

/// What an error response should say, waiting to be rendered.
#[derive(Debug, Clone)]
pub struct ErrorSpec {
    pub problems: Vec<Problem>,
    pub ignored: Vec<String>,
}

const BASIC_CHALLENGE: &str = "Basic realm=\"SmartPay\", charset=\"UTF-8\"";
const BEARER_CHALLENGE: &str = "Bearer realm=\"SmartPay\"";
const BEARER_INVALID_TOKEN: &str = "Bearer realm=\"SmartPay\", error=\"invalid_token\"";
const BEARER_INVALID_REQUEST: &str = "Bearer realm=\"SmartPay\", error=\"invalid_request\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut challenges: Vec<&'static str> = Vec::new();
        let mut retry_after = None;
        let mut retry_after_owned: Option<String> = None;
        let (status, problems, ignored) = match self {
            ApiError::Invalid { problems, ignored } => (StatusCode::BAD_REQUEST, problems, ignored),
            ApiError::MalformedJson(e) => (
                StatusCode::BAD_REQUEST,
                vec![
                    Problem::new(ErrorCode::MalformedJson)
                        .with("line", Fact::Int(e.line as i64))
                        .with("column", Fact::Int(e.column as i64))
                        .with("detail", Fact::Text(e.kind.to_string()))
                        .with("detailDe", Fact::Text(i18n::syntax_de(&e.kind))),
                ],
                vec![],
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                vec![Problem::new(ErrorCode::UnsupportedMediaType).at("Content-Type")],
                vec![],
            ),
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                vec![Problem::new(ErrorCode::PayloadTooLarge).with("maxBytes", Fact::Int(limit as i64))],
                vec![],
            ),
            ApiError::Unauthorized(Challenge::Signature) => {
                (StatusCode::UNAUTHORIZED, vec![Problem::new(ErrorCode::Unauthorized).at("OpenPayu-Signature")], vec![])
            }
            ApiError::Unauthorized(c) => {
                match c {
                    Challenge::Any => challenges.extend([BASIC_CHALLENGE, BEARER_CHALLENGE]),
                    Challenge::Basic => challenges.push(BASIC_CHALLENGE),
                    Challenge::InvalidToken | Challenge::Signature => challenges.push(BEARER_INVALID_TOKEN),
                }
                (StatusCode::UNAUTHORIZED, vec![Problem::new(ErrorCode::Unauthorized)], vec![])
            }
            ApiError::InvalidAccessToken => {
                challenges.push(BEARER_INVALID_TOKEN);
                (StatusCode::UNAUTHORIZED, vec![Problem::new(ErrorCode::Unauthorized).at("X-Access-Token")], vec![])
            }
            ApiError::InvalidAuthorization(_) => {
                challenges.push(BEARER_INVALID_REQUEST);
                (StatusCode::BAD_REQUEST, vec![Problem::new(ErrorCode::InvalidRequest).at("Authorization")], vec![])
            }
            ApiError::MerchantKeyMismatch { ignored } => {
                (StatusCode::FORBIDDEN, vec![Problem::new(ErrorCode::MerchantKeyMismatch).at("merchantKey")], ignored)
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, vec![Problem::new(ErrorCode::NotFound)], vec![]),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, vec![Problem::new(ErrorCode::MethodNotAllowed)], vec![])
            }
            ApiError::IdempotencyConflict { property, ignored } => {
                (StatusCode::CONFLICT, vec![Problem::new(ErrorCode::IdempotencyConflict).at(property)], ignored)
            }
            ApiError::AmountExceeds { code, remaining, currency, ignored } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![
                    Problem::new(code)
                        .at("modifiedAmount.amount")
                        .with("remaining", Fact::Text(remaining))
                        .with("currencyCode", Fact::Text(currency)),
                ],
                ignored,
            ),
            ApiError::RequestInProgress { property } => {
                retry_after = Some("1");
                (StatusCode::CONFLICT, vec![Problem::new(ErrorCode::RequestInProgress).at(property)], vec![])
            }
            ApiError::CheckoutExpired => {
                challenges.push("CheckoutToken realm=\"SmartPay widget\"");
                (StatusCode::UNAUTHORIZED, vec![Problem::new(ErrorCode::CheckoutExpired).at("checkoutToken")], vec![])
            }
            ApiError::RateLimited { retry_after } => {
                retry_after_owned = Some(retry_after.to_string());
                (StatusCode::TOO_MANY_REQUESTS, vec![Problem::new(ErrorCode::RateLimited)], vec![])
            }
            ApiError::InvalidState { status, ignored } => (
                StatusCode::CONFLICT,
                vec![Problem::new(ErrorCode::InvalidState).with("paymentStatus", Fact::Text(status.as_str().into()))],
                ignored,
            ),
            ApiError::ForbiddenOrigin => {
                (StatusCode::FORBIDDEN, vec![Problem::new(ErrorCode::ForbiddenOrigin).at("Origin")], vec![])
            }
            ApiError::CheckoutLocked => (StatusCode::CONFLICT, vec![Problem::new(ErrorCode::CheckoutLocked)], vec![]),
            ApiError::RequestTimeout => {
                (StatusCode::REQUEST_TIMEOUT, vec![Problem::new(ErrorCode::RequestTimeout)], vec![])
            }
            ApiError::Unavailable(reason) => {
                tracing::error!(%reason, "store unavailable");
                retry_after = Some("5");
                (StatusCode::SERVICE_UNAVAILABLE, vec![Problem::new(ErrorCode::ServiceUnavailable)], vec![])
            }
            ApiError::VaultUnavailable => {
                retry_after = Some("30");
                (StatusCode::SERVICE_UNAVAILABLE, vec![Problem::new(ErrorCode::VaultUnavailable)], vec![])
            }
            ApiError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, vec![Problem::new(ErrorCode::InternalError)], vec![])
            }
        };
        let mut resp = status.into_response();
        for c in challenges {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(r) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(r));
        }
        if let Some(r) = retry_after_owned.and_then(|r| HeaderValue::from_str(&r).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, r);
        }
        resp.extensions_mut().insert(ErrorSpec { problems, ignored });
        resp
    }
}

fn fact_json(f: &Fact) -> serde_json::Value {
    match f {
        Fact::Int(i) => serde_json::Value::from(*i),
        Fact::Text(t) => serde_json::Value::from(t.clone()),
        Fact::List(l) => serde_json::Value::from(l.clone()),
    }
}

/// Renders the MOD2 body.
pub fn render(spec: &ErrorSpec, trace_id: &str, lang: Lang) -> Vec<u8> {
    let errors: Vec<smartpay_api_types::ErrorItem> = spec
        .problems
        .iter()
        .map(|p| {
            let context: serde_json::Map<String, serde_json::Value> = p
                .context
                .iter()
                .filter(|(k, _)| *k != "detailDe")
                .map(|(k, f)| ((*k).to_owned(), fact_json(f)))
                .collect();
            smartpay_api_types::ErrorItem {
                code: p.code.as_str().to_owned(),
                message: i18n::message(p, lang),
                property: p.property.clone(),
                context: (!context.is_empty()).then_some(context),
            }
        })
        .collect();
    let body = smartpay_api_types::ErrorBody {
        trace_id: trace_id.to_owned(),
        errors,
        ignored_properties: spec.ignored.clone(),
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"errors\":[{\"code\":\"internal_error\"}]}".to_vec())
}

/// RFC 6749 §5.2 error responses of the token endpoint: `{"error", "error_description"}`, never
/// cached, with a Basic challenge when the client authenticated with HTTP Basic.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let basic_challenge = matches!(self, OAuthError::InvalidClient { basic: true, .. });
        let retry_after = match self {
            OAuthError::LockedOut { retry_after } => Some(retry_after),
            _ => None,
        };
        let (status, error, description) = match self {
            OAuthError::InvalidRequest(what) => (StatusCode::BAD_REQUEST, "invalid_request", what),
            OAuthError::TooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the form is larger than this endpoint accepts")
            }
            OAuthError::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported")
            }
            OAuthError::InvalidScope => (StatusCode::BAD_REQUEST, "invalid_scope", "no scopes are defined; omit scope"),
            OAuthError::InvalidClient { description, .. } => (StatusCode::UNAUTHORIZED, "invalid_client", description),
            OAuthError::LockedOut { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "invalid_client", "too many failed attempts; retry later")
            }
            OAuthError::Store(e) => return ApiError::from(e).into_response(),
            OAuthError::NoSigningKey => return ApiError::Internal("no signing key".into()).into_response(),
        };
        let body = serde_json::to_vec(&smartpay_api_types::OAuthErrorResponse {
            error: error.into(),
            error_description: Some(description.into()),
        })
        .unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if basic_challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        }
        if let Some(v) = retry_after.and_then(|r| HeaderValue::from_str(&r.to_string()).ok()) {
            h.insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
