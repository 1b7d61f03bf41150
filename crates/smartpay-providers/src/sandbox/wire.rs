//! The sandbox acquirer's wire format (JSON, amounts in minor units). Types that carry card data
//! print it masked in `Debug` (at most BIN 6 and last 4 of the PAN, never the CVC) and wipe it
//! from memory when dropped.

use std::fmt;

use serde::{Deserialize, Serialize};
use smartpay_domain::card::CardNumber;
use zeroize::Zeroize;

pub use crate::masked_token;

/// An authorization, paid with a card (`pan`, `cvc`) or with a token from `POST /v1/tokens`
/// (`token`; the CVC may then be left out). Exactly one of `pan` and `token` is given; an empty
/// `pan` or `cvc` counts as absent. With a token, the expiry must be the one sealed in it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRequest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pan: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub expiry_month: u8,
    pub expiry_year: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cvc: String,
    /// A payment with a card the merchant keeps on file (informational at the sandbox).
    #[serde(default)]
    pub stored_credential: bool,
    #[serde(default)]
    pub holder: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// Repeating a key returns the first authorization.
    pub idempotency_key: String,
    /// Ignored by the acquirer, which returns every challenge to its one configured page; kept
    /// so older connectors still speak the format.
    #[serde(default)]
    pub return_url: Option<String>,
    /// Origins allowed to hold the challenge page besides SmartPay's own (the merchant's pages).
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
}

/// The PAN as BIN 6 + `****` + last 4 when it is a card number, otherwise only its length.
pub fn masked_pan(pan: &str) -> String {
    match CardNumber::parse(pan) {
        Ok((n, _)) => n.masked(),
        Err(_) => format!("<not a card number, {} chars>", pan.chars().count()),
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("pan", &masked_pan(&self.pan))
            .field("token", &self.token.as_deref().map(masked_token))
            .field("expiry_month", &self.expiry_month)
            .field("expiry_year", &self.expiry_year)
            .field("cvc", &"***")
            .field("stored_credential", &self.stored_credential)
            .field("holder", &self.holder.as_ref().map(|_| "<redacted>"))
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .field("idempotency_key", &self.idempotency_key)
            .field("return_url", &self.return_url)
            .field("frame_ancestors", &self.frame_ancestors)
            .finish()
    }
}

impl Drop for AuthorizationRequest {
    fn drop(&mut self) {
        self.pan.zeroize();
        self.cvc.zeroize();
        if let Some(t) = &mut self.token {
            t.zeroize();
        }
    }
}

/// `POST /v1/tokens`: a card to store. The acquirer keeps nothing: the card is sealed into the
/// token it answers.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    pub pan: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("pan", &masked_pan(&self.pan))
            .field("expiry_month", &self.expiry_month)
            .field("expiry_year", &self.expiry_year)
            .field("holder", &self.holder.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Drop for TokenRequest {
    fn drop(&mut self) {
        self.pan.zeroize();
    }
}

/// The answer to `POST /v1/tokens` (201): the token and what may be shown of the card.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// `tok_` + base64url(nonce ‖ AES-256-GCM(card)).
    pub token: String,
    /// The brand's payment option code (`VISA`, `MSTRCRD`, …).
    pub brand: String,
    pub last4: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &masked_token(&self.token))
            .field("brand", &self.brand)
            .field("last4", &self.last4)
            .field("expiry_month", &self.expiry_month)
            .field("expiry_year", &self.expiry_year)
            .finish()
    }
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
    /// Sums of the successful captures and refunds, and whether it was cancelled: what the
    /// acquirer actually did (tests count effects with it).
    #[serde(default)]
    pub captured: i64,
    #[serde(default)]
    pub refunded: i64,
    #[serde(default)]
    pub cancelled: bool,
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

/// An error answer: `{"error": "<code>"}`, a short `snake_case` code and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_card_number_or_the_cvc() {
        let req = AuthorizationRequest {
            pan: "4000056655665556".into(),
            token: None,
            expiry_month: 12,
            expiry_year: 2040,
            cvc: "918".into(),
            stored_credential: false,
            holder: Some("Jane Canary".into()),
            amount: 1099,
            currency: "EUR".into(),
            idempotency_key: "pay-1".into(),
            return_url: None,
            frame_ancestors: Vec::new(),
        };
        let shown = format!("{req:?} {req:#?}");
        assert!(!shown.contains("4000056655665556"), "{shown}");
        assert!(!shown.contains("918"), "{shown}");
        assert!(!shown.contains("Jane Canary"), "{shown}");
        assert!(shown.contains("400005****5556"), "masked PAN is still useful: {shown}");
    }

    #[test]
    fn debug_output_shows_at_most_the_last_four_characters_of_a_token() {
        let token = "tok_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
        let req = AuthorizationRequest {
            pan: String::new(),
            token: Some(token.into()),
            expiry_month: 12,
            expiry_year: 2040,
            cvc: String::new(),
            stored_credential: true,
            holder: None,
            amount: 1099,
            currency: "EUR".into(),
            idempotency_key: "pay-1".into(),
            return_url: None,
            frame_ancestors: Vec::new(),
        };
        let answer = TokenResponse {
            token: token.into(),
            brand: "VISA".into(),
            last4: "5556".into(),
            expiry_month: 12,
            expiry_year: 2040,
        };
        for shown in [format!("{req:?}"), format!("{answer:#?}")] {
            assert!(!shown.contains("AbCdEfGh") && !shown.contains("z012345"), "{shown}");
            assert!(shown.contains("tok_…6789"), "{shown}");
        }
        let stored = TokenRequest {
            pan: "4000056655665556".into(),
            expiry_month: 12,
            expiry_year: 2040,
            holder: Some("Jane Canary".into()),
        };
        let shown = format!("{stored:?}");
        assert!(!shown.contains("4000056655665556") && !shown.contains("Jane"), "{shown}");
        assert_eq!(masked_token("tok_short"), "<token, 9 chars>");
    }

    #[test]
    fn a_malformed_pan_is_shown_only_by_its_length() {
        assert_eq!(masked_pan("4000 0566 5566 555"), "<not a card number, 18 chars>");
    }
}
