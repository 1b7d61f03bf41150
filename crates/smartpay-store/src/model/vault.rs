//! Vault records: accounts, stored payment options (their secrets sealed by the server), key
//! versions and rotations. Plain data; the cryptography is `smartpay-vault`'s.

use smartpay_domain::Millis;

/// A vault account: one per (merchant, customerAccountId).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub merchant_id: String,
    pub account_id: String,
    /// Canonical JSON of the last Update Account.
    pub billing_address: Option<String>,
    pub consumer: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A stored payment option. `pan_sealed` and `token_sealed` are envelope-encrypted blobs that
/// name their key version (`kek_id`); Debug never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredOption {
    pub reference: String,
    pub merchant_id: String,
    pub account_id: String,
    /// VISA, MSTRCRD, AMEX, …
    pub code: String,
    /// BIN 6 + `****` + last 4.
    pub masked: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
    pub fingerprint: Vec<u8>,
    pub kek_id: String,
    pub pan_sealed: Vec<u8>,
    pub token_sealed: Vec<u8>,
    pub provider: String,
    pub is_default: bool,
    pub created_at: Millis,
}

impl std::fmt::Debug for StoredOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredOption")
            .field("reference", &self.reference)
            .field("merchant_id", &self.merchant_id)
            .field("code", &self.code)
            .field("masked", &self.masked)
            .field("kek_id", &self.kek_id)
            .field("is_default", &self.is_default)
            .finish_non_exhaustive()
    }
}

/// What storing an option did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOption {
    Added,
    /// The account already holds this card (same keyed fingerprint): its reference.
    Duplicate(String),
    /// No such account.
    NoAccount,
}

/// A key version the vault knows.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultKey {
    pub kek_id: String,
    /// A fixed value sealed under the key: opening it proves a key given at start is this one.
    pub check_sealed: Vec<u8>,
    pub retired: bool,
    pub created_at: Millis,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKey").field("kek_id", &self.kek_id).field("retired", &self.retired).finish_non_exhaustive()
    }
}

/// KEK rotation re-wraps data keys; DEK rotation re-encrypts records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationKind {
    Kek,
    Dek,
}

impl RotationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kek => "KEK",
            Self::Dek => "DEK",
        }
    }
}

/// A key rotation and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub id: i64,
    pub kind: RotationKind,
    pub from_kek: String,
    pub to_kek: String,
    /// The last option reference done (options are processed in reference order).
    pub cursor: String,
    pub done: u64,
    pub finished: bool,
}

/// New sealed blobs for one option (a rotation step), applied only if the option still holds
/// `expected_pan_sealed` (a concurrent delete or rotation wins).
#[derive(Clone, PartialEq, Eq)]
pub struct Reseal {
    pub reference: String,
    pub expected_pan_sealed: Vec<u8>,
    pub kek_id: String,
    pub pan_sealed: Vec<u8>,
    pub token_sealed: Vec<u8>,
}
