//! The errors use cases and handlers return. One place (`http/error.rs`) turns them into HTTP
//! statuses and the MOD2 error body; this module has no HTTP types.
//!
//! Every code the API can answer with is an [`ErrorCode`], so a message table that forgets one
//! (`http/i18n.rs`) does not compile.

use smartpay_domain::json::SyntaxError;
use smartpay_domain::violation::{Code, Fact, Violation};
use smartpay_store::StoreError;

/// Declares [`ErrorCode`], its wire strings and [`ErrorCode::ALL`] from one list, so `ALL` cannot
/// miss a code.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)+) => {
        /// The API's stable error codes (`errors[].code`, listed in `docs/api.md`): one meaning each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: [ErrorCode; [$($code),+].len()] = [$(ErrorCode::$variant),+];

            /// The snake_case code on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    /// A mandatory property is absent (`alternative`: another property that would do).
    MissingProperty => "missing_property",
    /// Wrong JSON type (`expected`, `actual`).
    InvalidType => "invalid_type",
    /// Longer than allowed (`maxLength`).
    ValueTooLong => "value_too_long",
    /// Shorter than required (`minLength`).
    ValueTooShort => "value_too_short",
    /// Does not match the pattern (`format`).
    InvalidFormat => "invalid_format",
    /// Not one of the allowed values (`allowedValues`).
    InvalidValue => "invalid_value",
    /// Control characters, bidirectional overrides, or characters outside a charset (`allowed`).
    InvalidCharacters => "invalid_characters",
    /// A number outside its range (`minimum`, `maximum`).
    ValueOutOfBounds => "value_out_of_bounds",
    /// More decimals than allowed (`maxDecimals`, and `currencyCode` for amounts).
    InvalidAmountPrecision => "invalid_amount_precision",
    /// Not an active ISO 4217 currency with minor units.
    UnsupportedCurrency => "unsupported_currency",
    /// Not an ISO 3166-1 country (`standard`).
    UnsupportedCountry => "unsupported_country",
    /// An array longer than allowed (`maxItems`).
    TooManyItems => "too_many_items",
    /// Properties that cannot be given together.
    ConflictingProperties => "conflicting_properties",
    /// A JSON syntax error (`line`, `column`, `detail`).
    MalformedJson => "malformed_json",
    /// `Idempotency-Key` or `X-Access-Token` malformed (`rule`).
    InvalidHeader => "invalid_header",
    /// A malformed `Authorization` (RFC 6750 `invalid_request`).
    InvalidRequest => "invalid_request",
    /// The body is not `application/json`.
    UnsupportedMediaType => "unsupported_media_type",
    /// The body is over the limit (`maxBytes`).
    PayloadTooLarge => "payload_too_large",
    /// No valid credentials.
    Unauthorized => "unauthorized",
    /// The body's `merchantKey` is not the caller's.
    MerchantKeyMismatch => "merchant_key_mismatch",
    /// No such object for this merchant, or no such route.
    NotFound => "not_found",
    /// The route exists, the method does not.
    MethodNotAllowed => "method_not_allowed",
    /// An idempotency key or `partnerReference` used before with a different request.
    IdempotencyConflict => "idempotency_conflict",
    /// The first request with this idempotency key is still running.
    RequestInProgress => "request_in_progress",
    /// A widget call from another origin than SmartPay's own.
    ForbiddenOrigin => "forbidden_origin",
    /// The checkout's lifetime ended.
    CheckoutExpired => "checkout_expired",
    /// Too many requests from this client or for this merchant.
    RateLimited => "rate_limited",
    /// The payment's status forbids the operation (`paymentStatus`).
    InvalidState => "invalid_state",
    /// Too many card submissions on one checkout.
    CheckoutLocked => "checkout_locked",
    /// A card field is not a valid card number, expiry or CVC.
    InvalidCardData => "invalid_card_data",
    /// The card's expiry date has passed.
    CardExpired => "card_expired",
    /// The card's brand is not accepted.
    UnsupportedCardBrand => "unsupported_card_brand",
    /// A capture larger than what is left to capture (`remaining`, `currencyCode`).
    AmountExceedsCapturable => "amount_exceeds_capturable",
    /// A refund larger than what is left to refund (`remaining`, `currencyCode`).
    AmountExceedsRefundable => "amount_exceeds_refundable",
    /// `modifiedAmount.currencyCode` is not the payment's currency (`expected`).
    CurrencyMismatch => "currency_mismatch",
    /// The request did not arrive, or was not answered, within the server's time limits.
    RequestTimeout => "request_timeout",
    /// The store is unavailable.
    ServiceUnavailable => "service_unavailable",
    /// The payment credential vault cannot serve (its keys are missing or wrong); the rest of
    /// the API still does.
    VaultUnavailable => "vault_unavailable",
    /// Anything else; details are logged, never answered.
    InternalError => "internal_error",
}

impl From<Code> for ErrorCode {
    fn from(code: Code) -> Self {
        match code {
            Code::MissingProperty => ErrorCode::MissingProperty,
            Code::InvalidType => ErrorCode::InvalidType,
            Code::ValueTooLong => ErrorCode::ValueTooLong,
            Code::ValueTooShort => ErrorCode::ValueTooShort,
            Code::InvalidFormat => ErrorCode::InvalidFormat,
            Code::InvalidValue => ErrorCode::InvalidValue,
            Code::InvalidCharacters => ErrorCode::InvalidCharacters,
            Code::ValueOutOfBounds => ErrorCode::ValueOutOfBounds,
            Code::InvalidAmountPrecision => ErrorCode::InvalidAmountPrecision,
            Code::UnsupportedCurrency => ErrorCode::UnsupportedCurrency,
            Code::UnsupportedCountry => ErrorCode::UnsupportedCountry,
            Code::TooManyItems => ErrorCode::TooManyItems,
            Code::ConflictingProperties => ErrorCode::ConflictingProperties,
            Code::MalformedJson => ErrorCode::MalformedJson,
        }
    }
}

/// One problem to report: a stable code, the property it concerns, and facts for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ErrorCode,
    pub property: Option<String>,
    pub context: Vec<(&'static str, Fact)>,
}

impl Problem {
    /// A problem with no property and no facts yet.
    pub fn new(code: ErrorCode) -> Self {
        Problem { code, property: None, context: Vec::new() }
    }

    /// The property (dotted path or header name) the problem concerns.
    pub fn at(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }

    /// Adds a fact for `context` and the message.
    pub fn with(mut self, key: &'static str, fact: Fact) -> Self {
        self.context.push((key, fact));
        self
    }
}

impl From<Violation> for Problem {
    fn from(v: Violation) -> Self {
        Problem { code: v.code.into(), property: Some(v.property), context: v.context }
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
    /// A provider's notification without a valid signature (no HTTP authentication scheme).
    Signature,
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
    IdempotencyConflict { property: &'static str, ignored: Vec<String> },
    /// A capture or refund above what is left (422), with the remaining amount as text.
    #[error("amount exceeds what remains")]
    AmountExceeds { code: ErrorCode, remaining: String, currency: String, ignored: Vec<String> },
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
    InvalidState { status: smartpay_domain::PaymentStatus, ignored: Vec<String> },
    /// A widget call from an origin other than SmartPay's own.
    #[error("forbidden origin")]
    ForbiddenOrigin,
    /// Too many card submissions on one checkout.
    #[error("checkout locked")]
    CheckoutLocked,
    /// The body did not arrive, or the answer was not ready, within the time limits.
    #[error("request timeout")]
    RequestTimeout,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The vault's keys are missing or wrong (details are logged at start).
    #[error("vault unavailable")]
    VaultUnavailable,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_code_keeps_its_wire_string() {
        let domain = [
            Code::MissingProperty,
            Code::InvalidType,
            Code::ValueTooLong,
            Code::ValueTooShort,
            Code::InvalidFormat,
            Code::InvalidValue,
            Code::InvalidCharacters,
            Code::ValueOutOfBounds,
            Code::InvalidAmountPrecision,
            Code::UnsupportedCurrency,
            Code::UnsupportedCountry,
            Code::TooManyItems,
            Code::ConflictingProperties,
            Code::MalformedJson,
        ];
        for code in domain {
            assert_eq!(ErrorCode::from(code).as_str(), code.as_str());
        }
    }

    #[test]
    fn wire_codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
        }
        assert_eq!(ErrorCode::PayloadTooLarge.as_str(), "payload_too_large");
    }

    #[test]
    fn violations_become_problems_with_their_property_and_facts() {
        let v = Violation::new(Code::ValueTooLong, "consumer.firstName").with("maxLength", Fact::Int(60));
        let p = Problem::from(v);
        assert_eq!(p.code, ErrorCode::ValueTooLong);
        assert_eq!(p.property.as_deref(), Some("consumer.firstName"));
        assert_eq!(p.context, vec![("maxLength", Fact::Int(60))]);
    }
}
