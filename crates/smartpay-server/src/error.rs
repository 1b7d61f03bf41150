//! The errors use cases and handlers return. One place (`http/error.rs`) turns them into HTTP
//! statuses and the MOD2 error body; this module has no HTTP types.

use smartpay_domain::json::SyntaxError;
use smartpay_domain::violation::{Fact, Violation};
use smartpay_store::StoreError;

/// One problem to report: a stable code, the property it concerns, and facts for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub property: Option<String>,
    pub context: Vec<(&'static str, Fact)>,
}

impl Problem {
    pub fn new(code: &'static str) -> Self {
        Problem { code, property: None, context: Vec::new() }
    }

    pub fn at(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }

    pub fn with(mut self, key: &'static str, fact: Fact) -> Self {
        self.context.push((key, fact));
        self
    }
}

impl From<Violation> for Problem {
    fn from(v: Violation) -> Self {
        Problem { code: v.code.as_str(), property: Some(v.property), context: v.context }
    }
}

/// Which authentication challenge a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No usable credentials: offer both schemes, with no error code (RFC 6750 §3.1).
    Any,
    /// Wrong or malformed Basic credentials.
    Basic,
    /// A bearer token that is not valid: `error="invalid_token"`.
    InvalidToken,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Invalid { problems: Vec<Problem>, ignored: Vec<String> },
    #[error("malformed JSON: {0}")]
    MalformedJson(SyntaxError),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    #[error("not authenticated")]
    Unauthorized(Challenge),
    /// An `X-Access-Token` the merchant's identity issuer did not sign, or that expired.
    #[error("invalid X-Access-Token")]
    InvalidAccessToken,
    /// RFC 6750 `invalid_request`: the Authorization itself is malformed.
    #[error("malformed authorization: {0}")]
    InvalidAuthorization(&'static str),
    #[error("merchantKey does not match the credentials")]
    MerchantKeyMismatch { ignored: Vec<String> },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("idempotency conflict on {property}")]
    IdempotencyConflict { property: &'static str },
    #[error("request in progress on {property}")]
    RequestInProgress { property: &'static str },
    /// The checkout token's checkout expired.
    #[error("checkout expired")]
    CheckoutExpired,
    /// Too many requests from this client or for this merchant.
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// The payment's status does not allow the operation.
    #[error("invalid state {status}")]
    InvalidState { status: smartpay_domain::PaymentStatus },
    /// A widget call from an origin other than SmartPay's own.
    #[error("forbidden origin")]
    ForbiddenOrigin,
    /// Too many card submissions on one checkout.
    #[error("checkout locked")]
    CheckoutLocked,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(problem: Problem) -> Self {
        ApiError::Invalid { problems: vec![problem], ignored: Vec::new() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(m) | StoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<crate::secrets::SecretError> for ApiError {
    fn from(e: crate::secrets::SecretError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
