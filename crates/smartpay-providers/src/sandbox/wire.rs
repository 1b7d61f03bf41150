//! The sandbox acquirer's wire format (JSON, amounts in minor units).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRequest {
    pub pan: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
    pub cvc: String,
    #[serde(default)]
    pub holder: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// Repeating a key returns the first authorization.
    pub idempotency_key: String,
    #[serde(default)]
    pub return_url: Option<String>,
}

/// `AUTHORIZED`, `DECLINED`, `PENDING` or `CHALLENGE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub challenge_url: Option<String>,
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationRequest {
    pub amount: i64,
    pub currency: String,
    pub idempotency_key: String,
}

/// `SUCCEEDED` or `FAILED`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Modification {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub failure_code: Option<String>,
}
