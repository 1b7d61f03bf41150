//! Records the store's own unit tests build (`sqlite/tests.rs`, `postgres/*` tests); the
//! contract suite has its own in `tests/contract/support.rs`, outside the crate.

use smartpay_domain::Millis;
use smartpay_domain::modification::CaptureMode;

use crate::{IdempotencyClaim, Merchant, MerchantStatus, NewCheckout};

/// An active merchant capturing automatically.
pub(crate) fn merchant_record(id: &str) -> Merchant {
    Merchant {
        id: id.into(),
        name: "Shop".into(),
        status: MerchantStatus::Active,
        capture_mode: CaptureMode::Auto,
        capture_delay_seconds: None,
        auto_cancel_seconds: None,
        identity_jwks: None,
        created_at: Millis(1),
    }
}

/// A 10.99 EUR checkout created at 1 s, expiring at 61 s, its token digest its id.
pub(crate) fn checkout(id: &str, merchant: &str, claims: Vec<IdempotencyClaim>) -> NewCheckout {
    NewCheckout {
        id: id.into(),
        merchant_id: merchant.into(),
        amount_minor: 1099,
        currency: "EUR".into(),
        description: "d".into(),
        partner_reference: None,
        customer_account_id: None,
        external_order_reference: None,
        custom_references: None,
        culture: None,
        request_json: "{}".into(),
        token_digest: id.as_bytes().to_vec(),
        identity_subject: None,
        created_at: Millis(1_000),
        expires_at: Millis(61_000),
        claims,
    }
}
