//! The payment credential vault's cryptography, with no store and no HTTP.
//!
//! - [`keys`]: the key-encryption key ([`Kek`]) and where it comes from ([`KekSource`]: a key
//!   file, an environment value, or two split-knowledge components XORed at start), the
//!   [`KeyRing`] used while a rotation runs, and the [`FingerprintKey`].
//! - [`envelope`]: per-record envelope encryption. Each record gets a fresh random data key
//!   (DEK); the plaintext is sealed under the DEK with AES-256-GCM, the DEK is wrapped under the
//!   KEK with AES-256-GCM, and both are bound to the record's row by [`RecordAad`]. Every
//!   [`Sealed`] names its KEK version. [`rewrap`] and [`reencrypt`] are the rotation steps.
//! - [`card`]: the keyed card-number [`fingerprint`] (finds duplicates without an unkeyed hash)
//!   and the display [`masked`] form.
//!
//! Nothing here prints key bytes or plaintext: every secret type's `Debug` is redacted, errors
//! name sources and key versions only, and key bytes are wiped from memory on drop.

pub mod card;
pub mod envelope;
pub mod keys;

pub use card::{fingerprint, masked};
pub use envelope::{Field, RecordAad, Sealed, VaultError, open, reencrypt, rewrap, seal};
pub use keys::{
    FingerprintKey, Kek, KekSource, KeyError, KeyRing, generate_components, generate_key, load_kek, write_key_file,
};
