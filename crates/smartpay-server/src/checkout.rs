//! Use cases of the integration guide's first and last steps: Create Checkout and Get Payment
//! Status. Validate → authorize → claim idempotency → store (one transaction) → respond.

use std::sync::atomic::Ordering;

use smartpay_api_types as api;
use smartpay_domain::checkout::{self, ValidCheckout};
use smartpay_domain::json::Value;
use smartpay_store::{CreateOutcome, IdempotencyClaim, IdempotencyScope, NewCheckout};

use crate::app::{AppState, InFlight};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::secrets::{self, sha256};

pub const CREATE_ROUTE: &str = "POST /payment/creation";

/// A Create Checkout answer: the exact response body, and whether it was replayed.
pub struct CreateAnswer {
    pub body: Vec<u8>,
    pub replayed: bool,
}

/// Checks an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(key: &[u8]) -> Result<String, ApiError> {
    let ok = !key.is_empty() && key.len() <= 255 && key.iter().all(|b| (0x21..=0x7e).contains(b));
    match std::str::from_utf8(key) {
        Ok(s) if ok => Ok(s.to_owned()),
        _ => Err(ApiError::invalid(
            Problem::new(ErrorCode::InvalidHeader)
                .at("Idempotency-Key")
                .with("rule", smartpay_domain::violation::Fact::Text("1 to 255 visible ASCII characters".into())),
        )),
    }
}

fn claim_in_flight<'a>(
    state: &'a AppState,
    merchant: &str,
    claims: &[IdempotencyClaim],
) -> Result<InFlight<'a>, ApiError> {
    let keys = claims.iter().map(|c| (merchant.to_owned(), c.scope.as_str(), c.key.clone())).collect();
    state.claim_in_flight(keys).map_err(|busy| match busy.and_then(|i| claims.get(i)) {
        Some(claim) => ApiError::RequestInProgress { property: property_of(claim.scope) },
        None => ApiError::Internal("in-flight set poisoned".into()),
    })
}

fn property_of(scope: IdempotencyScope) -> &'static str {
    match scope {
        IdempotencyScope::Header => "Idempotency-Key",
        IdempotencyScope::PartnerReference => "partnerReference",
    }
}

/// Create Checkout (`POST /payment/creation`).
pub async fn create(
    state: &AppState,
    who: &Principal,
    body: &Value,
    idempotency_key: Option<String>,
    identity_subject: Option<String>,
) -> Result<CreateAnswer, ApiError> {
    // Another merchant's key learns nothing, not even validation results.
    let validated = checkout::validate(body);
    if let Some(key) = checkout::merchant_key_of(body)
        && !key.eq_ignore_ascii_case(&who.merchant_id)
    {
        // Only the body's own unknown property names, never a validation result.
        let ignored = match &validated {
            Ok(v) => v.ignored.clone(),
            Err((_, ignored)) => ignored.clone(),
        };
        return Err(ApiError::MerchantKeyMismatch { ignored });
    }
    let valid: ValidCheckout = validated.map_err(|(violations, ignored)| ApiError::Invalid {
        problems: violations.into_iter().map(Problem::from).collect(),
        ignored,
    })?;
    let ignored = valid.ignored.clone();

    let now = state.now();
    // UUIDv7: time-ordered, so the payment's B-tree inserts append instead of touching a
    // random page each (a measured difference in group-commit size; docs/benchmarks.md).
    let id = uuid::Uuid::now_v7().to_string();
    let token = secrets::random_alphanumeric(64)?;
    let response = api::CreateCheckoutResponse {
        transaction_id: id.clone(),
        checkout_token: token,
        payment_status: smartpay_domain::PaymentStatus::Created.as_str().to_owned(),
        request_time: now.to_iso8601(),
        external_order_reference: valid.external_order_reference.clone(),
        ignored_properties: valid.ignored.clone(),
    };
    let body = serde_json::to_vec(&response).map_err(|e| ApiError::Internal(e.to_string()))?;

    let fingerprint = sha256(&[CREATE_ROUTE.as_bytes(), b"\0", valid.canonical.as_bytes()]).to_vec();
    let mut claims = Vec::new();
    let needs_replay = idempotency_key.is_some() || valid.partner_reference.is_some();
    let response_enc = if needs_replay { state.secrets.seal(id.as_bytes(), &body)? } else { Vec::new() };
    if let Some(key) = idempotency_key {
        let ttl = i64::try_from(state.config.idempotency_ttl_seconds).unwrap_or(86_400);
        claims.push(IdempotencyClaim {
            scope: IdempotencyScope::Header,
            key,
            route: CREATE_ROUTE.into(),
            fingerprint: fingerprint.clone(),
            response_enc: response_enc.clone(),
            expires_at: Some(now.plus_seconds(ttl)),
        });
    }
    if let Some(reference) = &valid.partner_reference {
        claims.push(IdempotencyClaim {
            scope: IdempotencyScope::PartnerReference,
            key: reference.clone(),
            route: CREATE_ROUTE.into(),
            fingerprint,
            response_enc,
            expires_at: None,
        });
    }
    let _in_flight = claim_in_flight(state, &who.merchant_id, &claims)?;

    let ttl = i64::try_from(state.config.checkout_ttl_seconds).unwrap_or(3600);
    let outcome = state
        .store
        .create_checkout(NewCheckout {
            id: id.clone(),
            merchant_id: who.merchant_id.clone(),
            amount_minor: valid.amount.minor,
            currency: valid.amount.currency.code().to_owned(),
            description: valid.description,
            partner_reference: valid.partner_reference,
            customer_account_id: valid.customer_account_id,
            external_order_reference: valid.external_order_reference,
            custom_references: valid.custom_references_json,
            culture: valid.culture,
            request_json: valid.canonical,
            token_digest: state.secrets.token_digest(&response.checkout_token).to_vec(),
            identity_subject,
            created_at: now,
            expires_at: now.plus_seconds(ttl),
            claims,
        })
        .await?;
    match outcome {
        CreateOutcome::Created => {
            state.metrics.counters.checkouts_created.fetch_add(1, Ordering::Relaxed);
            tracing::info!(transaction_id = %id, "checkout created");
            Ok(CreateAnswer { body, replayed: false })
        }
        CreateOutcome::Replay { response_enc, payment_id } => {
            let first = state.secrets.unseal(payment_id.as_bytes(), &response_enc)?;
            state.metrics.counters.checkouts_replayed.fetch_add(1, Ordering::Relaxed);
            Ok(CreateAnswer { body: first.to_vec(), replayed: true })
        }
        CreateOutcome::Conflict { scope } => {
            Err(ApiError::IdempotencyConflict { property: property_of(scope), ignored: ignored.clone() })
        }
    }
}

/// Checks a `transactionId` path parameter.
pub fn parse_transaction_id(id: &str) -> Result<String, ApiError> {
    if smartpay_domain::schema::is_uuid(id) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid(
            Problem::new(ErrorCode::InvalidFormat)
                .at("transactionId")
                .with("format", smartpay_domain::violation::Fact::Text("uuid".into())),
        ))
    }
}

/// Get Payment Status (`GET /payment/status/{transactionId}`).
pub async fn status(
    state: &AppState,
    who: &Principal,
    transaction_id: &str,
) -> Result<api::PaymentStatusResponse, ApiError> {
    let id = parse_transaction_id(transaction_id)?;
    let payment = state.store.payment(&who.merchant_id, &id).await?.ok_or(ApiError::NotFound)?;
    crate::view::status_response(&payment)
}
