//! The sandbox demo shop's "server" (`/demo`): creates checkouts for the sandbox merchant from
//! the demo page's order form, shows their status and captures, refunds or cancels them — only
//! in sandbox mode, and only for the page that created them (a `demoSession`: an HMAC of the
//! transaction id under a server key).

use smartpay_api_types::PaymentStatusResponse;
use smartpay_domain::json::Value;
use smartpay_domain::modify::Operation;
use smartpay_domain::violation::Fact;

use crate::app::AppState;
use crate::auth::{Principal, Scheme};
use crate::config::Mode;
use crate::error::{ApiError, ErrorCode, Problem};

/// The demo page's order form.
#[derive(Debug, Default)]
pub struct Order {
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub culture: Option<String>,
}

/// The demo exists only in sandbox mode (never in production, even with the sandbox acquirer).
pub fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.mode == Mode::Sandbox && state.config.sandbox_enabled() { Ok(()) } else { Err(ApiError::NotFound) }
}

/// The demo's session for one of its checkouts.
fn session(state: &AppState, transaction_id: &str) -> String {
    state.secrets.token_digest(&format!("demo-session\0{transaction_id}")).iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid(field: &str, rule: &str) -> ApiError {
    ApiError::invalid(Problem::new(ErrorCode::InvalidFormat).at(field).with("format", Fact::Text(rule.into())))
}

/// A decimal amount typed into the demo page, such as `10.99`, as an exact JSON number.
fn decimal(field: &str, amount: &str) -> Result<serde_json::Number, ApiError> {
    let rule = "a decimal amount such as 10.99";
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 7 || fraction.len() > 3 || !digits(whole) || !digits(fraction) {
        return Err(invalid(field, rule));
    }
    amount.parse().map_err(|_| invalid(field, rule))
}

/// The order form, checked field by field, as a Create Checkout body (a JSON value, never text
/// pasted together); the merchant API's own validation follows.
fn checkout_body(merchant_key: &str, order: &Order) -> Result<Value, ApiError> {
    let amount = decimal("amount", order.amount.as_deref().unwrap_or("10.99"))?;
    let currency = order.currency.as_deref().unwrap_or("EUR");
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid("currency", "an ISO 4217 code such as EUR"));
    }
    let culture = if order.culture.as_deref() == Some("de-DE") { "de-DE" } else { "en-US" };
    let body = serde_json::json!({
        "merchantKey": merchant_key,
        "payment": {"amount": amount, "currencyCode": currency, "description": "SmartPay demo order"},
        "consumer": {"firstName": "Demo", "lastName": "Shopper", "emailAddress": "shopper@example.com", "culture": culture},
        "billingAddress": {"addressLine1": "Leopoldstrasse", "number": "244", "city": "Munich", "postCode": "80807", "countryCode": "DE"}
    });
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    smartpay_domain::json::parse(&bytes).map_err(ApiError::MalformedJson)
}

async fn sandbox_merchant(state: &AppState) -> Result<Principal, ApiError> {
    let merchant = state.store.merchants().await?.into_iter().next().ok_or(ApiError::NotFound)?;
    Ok(Principal { merchant_id: merchant.id, credential_id: "demo".into(), scheme: Scheme::Basic })
}

/// Creates a checkout for the sandbox merchant: Create Checkout's answer plus `demoSession`.
pub async fn create_checkout(state: &AppState, order: &Order) -> Result<serde_json::Value, ApiError> {
    enabled(state)?;
    let who = sandbox_merchant(state).await?;
    let body = checkout_body(&who.merchant_id, order)?;
    let answer = crate::checkout::create(state, &who, &body, None, None).await?;
    let mut created: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let id = created.get("transactionId").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    if let Some(obj) = created.as_object_mut() {
        obj.insert("demoSession".into(), session(state, &id).into());
    }
    Ok(created)
}

/// Whether `shown` is the `demoSession` of `transaction_id` (in sandbox mode); 404 otherwise, so
/// the demo reveals nothing about payments it did not create.
pub fn owns(state: &AppState, transaction_id: &str, shown: &[u8]) -> Result<(), ApiError> {
    enabled(state)?;
    if crate::secrets::digests_equal(shown, session(state, transaction_id).as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// The status of a checkout the demo created, for the page holding its `demoSession`; 404 for
/// anything else.
pub async fn status(state: &AppState, transaction_id: &str, shown: &[u8]) -> Result<PaymentStatusResponse, ApiError> {
    owns(state, transaction_id, shown)?;
    crate::checkout::status(state, &sandbox_merchant(state).await?, transaction_id).await
}

/// Captures, refunds or cancels a payment the demo created, as the sandbox merchant would
/// through the merchant API (a fresh `modificationId` per click), for the page holding its
/// `demoSession`; 404 for anything else. `body` may carry `{"amount": "1.00"}` for a partial
/// capture or refund (in the payment's currency); cancellations take no amount. The answer is
/// the merchant API's: the payment with its single `modification`, or its error.
pub async fn modify(
    state: &AppState,
    transaction_id: &str,
    shown: &[u8],
    operation: Operation,
    body: Option<&Value>,
) -> Result<Vec<u8>, ApiError> {
    owns(state, transaction_id, shown)?;
    let who = sandbox_merchant(state).await?;
    let payment = state.store.payment(&who.merchant_id, transaction_id).await?.ok_or(ApiError::NotFound)?;
    let amount = match body.and_then(|b| b.get("amount")) {
        None | Some(Value::Null) => None,
        Some(Value::String(t) | Value::Number(t)) if t.is_empty() => None,
        Some(Value::String(t) | Value::Number(t)) => Some(decimal("amount", t)?),
        Some(_) => return Err(invalid("amount", "a decimal amount such as 10.99")),
    };
    let mut request = serde_json::json!({
        "transactionId": transaction_id,
        "merchantKey": who.merchant_id,
        "modificationId": format!("demo-{}", uuid::Uuid::now_v7()),
    });
    if let (Some(amount), Operation::Capture | Operation::Refund) = (amount, operation) {
        request["modifiedAmount"] = serde_json::json!({"amount": amount, "currencyCode": payment.currency});
    }
    let bytes = serde_json::to_vec(&request).map_err(|e| ApiError::Internal(e.to_string()))?;
    let request = smartpay_domain::json::parse(&bytes).map_err(ApiError::MalformedJson)?;
    Ok(crate::modify::request(state, &who, operation, &request).await?.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_form_becomes_a_json_value_and_injection_is_refused() {
        let ok = Order { amount: Some("12.50".into()), currency: Some("EUR".into()), culture: Some("de-DE".into()) };
        let body = checkout_body("m", &ok).unwrap();
        assert_eq!(body.get("payment").and_then(|p| p.get("currencyCode")).and_then(|c| c.as_str()), Some("EUR"));
        for bad in ["10.99,\"partnerReference\":\"X\"", "1e9", "-1", "", "12345678", "1.2345", "0x10"] {
            let order = Order { amount: Some(bad.into()), ..Order::default() };
            assert!(checkout_body("m", &order).is_err(), "{bad}");
        }
        let order = Order { currency: Some("EUR\",\"x\":\"".into()), ..Order::default() };
        assert!(checkout_body("m", &order).is_err());
    }
}
