//! Request and response types of the SmartPay merchant API (reference §3–§4, CONTRACT §4–§5),
//! shared by the server and the merchant client SDK. Field names are the API's camelCase.
//!
//! Amounts travel as JSON numbers in major units and are carried here as [`Amount`], which
//! keeps the number's exact text: they never pass through `f64`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON number kept as its exact text, e.g. `10.99`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(String);

impl Amount {
    /// Wraps a decimal text; `None` unless it is a plain JSON number.
    pub fn from_decimal_text(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        serde_json::from_str::<serde_json::Number>(&text).ok().map(|_| Amount(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Amount::from_decimal_text(raw.get()).ok_or_else(|| serde::de::Error::custom("amount must be a JSON number"))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some("Amount in major units of the currency, exact (e.g. 10.99)."))
            .examples([serde_json::json!(10.99)])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Amount {}

/// `POST /payment/creation` → 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateCheckoutResponse {
    /// The payment's id (UUID), for every later call.
    pub transaction_id: String,
    /// 64 characters for the widget; give it to the shopper's browser, nothing else.
    pub checkout_token: String,
    /// Always `CREATED`.
    pub payment_status: String,
    /// When SmartPay received the request (ISO 8601 UTC, milliseconds).
    pub request_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_order_reference: Option<String>,
    /// Request properties SmartPay does not know and ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_properties: Vec<String>,
}

/// `customReferences`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomReferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom3: Option<String>,
}

/// `transactionOverview` of the status response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TransactionOverview {
    pub transaction_id: String,
    /// Payment option code (`VISA`, `MSTRCRD`, …); `CARDS` until the brand is known.
    pub payment_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_account_id: Option<String>,
    pub amount: Amount,
    pub currency_code: String,
    /// Merchant-initiated transaction.
    pub mit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_references: Option<CustomReferences>,
}

/// `modificationAmount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModificationAmount {
    pub amount: Amount,
    pub currency_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `modificationData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModificationData {
    /// `CAPTURE`, `REFUND`, `CANCELLATION`, `SETTLEMENT` or `CHARGEBACK`.
    #[serde(rename = "type")]
    pub kind: String,
    pub modification_id: String,
    pub reconciliation_reference_id: Option<String>,
}

/// One entry of a modification's `statusHistory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModificationStatusEntry {
    pub status: String,
    pub status_date: String,
    pub modification_amount: ModificationAmount,
}

/// A capture, refund, cancellation, settlement or chargeback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Modification {
    pub modification_data: ModificationData,
    pub creation_date: String,
    pub modification_amount: ModificationAmount,
    /// `CAPTURE_PENDING`, `CAPTURED`, `CAPTURE_FAILED`, `REFUND_PENDING`, `REFUNDED`,
    /// `REFUND_FAILED`, `CANCELLATION_PENDING`, `CANCELLED`, `CANCELLATION_FAILED`, `SETTLED`,
    /// `CHARGEBACK`.
    pub status: String,
    pub last_status_date: String,
    pub status_history: Vec<ModificationStatusEntry>,
    /// MOD1: the provider's refusal, on a failed modification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// MOD1 `errorDetails`: what the gateway and the provider said (reference §4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: serde_json::Map<String, serde_json::Value>,
    pub gateway_description: String,
    pub payment_provider_description: String,
}

/// The money of a payment (beyond the reference): what was authorized, captured and refunded,
/// and what can still be captured and refunded. Consistent with `modifications[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PaymentAmounts {
    pub authorized: Amount,
    pub captured: Amount,
    pub refunded: Amount,
    /// Captures and refunds the provider has not confirmed yet.
    pub capture_pending: Amount,
    pub refund_pending: Amount,
    pub capturable: Amount,
    pub refundable: Amount,
    pub currency_code: String,
}

/// One entry of the payment's `statusHistory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StatusHistoryEntry {
    pub status: String,
    pub status_date: String,
}

/// `POST /payment/capture`, `/refund`, `/cancel`, `/cancelOrRefund` → 200: the response model
/// with the single affected `modification` instead of the `modifications` array (reference §3.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModificationResponse {
    pub transaction_id: String,
    pub reconciliation_reference_id: Option<String>,
    pub description: String,
    pub payment_status: String,
    pub creation_date: String,
    pub last_status_date: String,
    pub transaction_overview: TransactionOverview,
    pub modification: Modification,
    pub status_history: Vec<StatusHistoryEntry>,
    pub amounts: PaymentAmounts,
    /// MOD1 (reference §4.5), when the provider refused the modification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_properties: Vec<String>,
}

/// `GET /payment/status/{transactionId}` → 200: the response model (reference §3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatusResponse {
    pub transaction_id: String,
    /// The provider's reference; `null` until a provider has one.
    pub reconciliation_reference_id: Option<String>,
    pub description: String,
    /// `CREATED`, `AUTHORIZATION_PENDING`, `AUTHORIZATION_COMPLETED`, `AUTHORIZATION_FAILED`,
    /// `CAPTURE_PENDING`, `CAPTURED`, `SETTLED`, `CANCELLED`, `REFUNDED` or `EXPIRED`.
    pub payment_status: String,
    pub creation_date: String,
    pub last_status_date: String,
    pub transaction_overview: TransactionOverview,
    pub modifications: Vec<Modification>,
    pub status_history: Vec<StatusHistoryEntry>,
    /// Why the provider declined (`payment_provider_card_stolen`, …), for the merchant's
    /// support staff. Never show it to the shopper (fraud risk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<String>,
    /// Beyond the reference: authorized, captured, refunded and remaining amounts.
    pub amounts: PaymentAmounts,
    /// MOD1 (reference §4.5) for a declined authorization: `error` is the decline code (as
    /// `declineReason`), never to be shown to the shopper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The body of a capture, refund, cancel or cancelOrRefund request (reference §3.3–§3.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModificationRequest {
    pub transaction_id: String,
    pub merchant_key: String,
    /// Unique per merchant: the same id with the same body returns the first answer.
    pub modification_id: String,
    /// Capture and refund only; absent for the whole remaining amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_amount: Option<ModificationAmount>,
    /// Cancel and cancelOrRefund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_references: Option<CustomReferences>,
}

/// One problem in an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorItem {
    /// Stable snake_case code (see docs/api.md).
    pub code: String,
    /// Human-readable, in the language of `Accept-Language` (en-US or de-DE).
    pub message: String,
    /// Dotted path of the offending request property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Facts behind the message, e.g. `{"maxLength": 60}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The error body of every 4xx and 5xx ("MOD2").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// W3C traceparent of the request, for support.
    pub trace_id: String,
    pub errors: Vec<ErrorItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_properties: Vec<String>,
}

/// `POST /oauth2/token` → 200 (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub token_type: String,
}

/// `POST /oauth2/token` → 400/401 (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthErrorResponse {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`, …
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_serialize_as_exact_numbers() {
        let a = Amount::from_decimal_text("0.30000000000000004441").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "0.30000000000000004441");
        let back: Amount = serde_json::from_str("10.990").unwrap();
        assert_eq!(back.as_str(), "10.990");
        assert!(serde_json::from_str::<Amount>("\"10.99\"").is_err());
        assert!(Amount::from_decimal_text("1e").is_none());
    }
}
