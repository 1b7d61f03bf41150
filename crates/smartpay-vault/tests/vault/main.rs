//! Integration tests of the vault's cryptography, by reliability-matrix row: G2 (binding and
//! integrity), G3 (key sources and split knowledge), G5 (nonce hygiene), G6 (masking), G7
//! (keyed fingerprint), H2 (redacted `Debug`) and rotation. Test names read as sentences.

// Test helpers fail loudly: unwrap and panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binding;
mod components;
mod fingerprint;
mod masking;
mod nonces;
mod redaction;
mod rotation;

use smartpay_vault::{Field, Kek, KeyRing, RecordAad};

/// A KEK from a fixed byte pattern.
pub fn kek(fill: u8) -> Kek {
    Kek::from_bytes(&[fill; 32]).unwrap()
}

/// A ring holding only `k`.
pub fn ring(k: &Kek) -> KeyRing {
    KeyRing::new(k.clone())
}

/// The card-number binding of option `i` of one account.
pub fn aad(i: usize) -> RecordAad {
    RecordAad::new("merchant-1", "account-1", &format!("opt-{i}"), Field::CardNumber)
}

/// Lowercase hex, for building key files and canaries.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
