//! Envelope encryption of one vault record, and the rotation steps.
//!
//! [`seal`] draws a fresh random 256-bit data key (DEK) per record and encrypts the plaintext
//! under it with AES-256-GCM; the DEK is then wrapped under the KEK with AES-256-GCM. Both use
//! random 96-bit nonces from the OS CSPRNG (a DEK encrypts one message, so nonce limits never
//! come near). Both are bound to the record's row by [`RecordAad`]; the wrapped DEK is also bound
//! to the KEK version, so a ciphertext moved to another row, field or key version never opens.
//!
//! Layouts: `wrapped_dek = nonce(12) ‖ AES-GCM(DEK)(32) ‖ tag(16)`,
//! `ciphertext = nonce(12) ‖ AES-GCM(plaintext) ‖ tag(16)`. The single-blob form
//! ([`Sealed::to_bytes`]) is `'V' ‖ 1 ‖ len(kek_id):u8 ‖ kek_id ‖ len(wrapped_dek):u16be ‖
//! wrapped_dek ‖ len(ciphertext):u32be ‖ ciphertext`.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::keys::{KEY_LEN, Kek, KeyError, KeyRing, is_kek_id, random_key};

/// Bytes of an AES-GCM nonce.
const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
const TAG_LEN: usize = 16;
/// Bytes of a wrapped DEK: nonce, encrypted key, tag.
pub const WRAPPED_DEK_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
/// Magic byte at the head of a sealed blob.
const MAGIC: u8 = b'V';
/// Blob format version; bump when the layout changes.
const VERSION: u8 = 1;
/// Domain-separation labels, so a data AAD can never pass as a wrap AAD or the reverse.
const DATA_LABEL: &[u8] = b"smartpay-vault/v1/data";
const WRAP_LABEL: &[u8] = b"smartpay-vault/v1/wrap";

/// Why a record could not be sealed or opened. Never carries key bytes or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The ciphertext names a key version that is not in the ring (e.g. a retired key).
    #[error("the ciphertext was sealed under key version {kek_id}, which is not loaded")]
    UnknownKey { kek_id: String },
    /// Authentication failed: wrong key, wrong record (AAD) or tampered bytes.
    #[error("the ciphertext does not authenticate: wrong key, wrong record or tampered")]
    Authentication,
    /// The blob or one of its parts does not have the sealed layout.
    #[error("the ciphertext is malformed")]
    Malformed,
    /// Encryption failed (the plaintext is beyond AES-GCM's length limit).
    #[error("encryption failed")]
    Encrypt,
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// The only key error sealing can meet is the random source failing.
impl From<KeyError> for VaultError {
    fn from(e: KeyError) -> Self {
        VaultError::Random(e.to_string())
    }
}

/// Which field of a stored payment option a ciphertext holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The card number (PAN).
    CardNumber,
    /// The card holder's name.
    HolderName,
    /// The card's expiry.
    Expiry,
    /// The card provider's token for the card (what later payments are made with).
    ProviderToken,
}

impl Field {
    /// The stable label bound into the AAD. Never change a label: existing rows would no longer open.
    pub fn label(self) -> &'static str {
        match self {
            Field::CardNumber => "card_number",
            Field::HolderName => "holder_name",
            Field::Expiry => "expiry",
            Field::ProviderToken => "provider_token",
        }
    }
}

/// The row a ciphertext belongs to; its canonical bytes are the AEAD associated data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordAad {
    pub merchant_id: String,
    pub account_id: String,
    pub option_ref: String,
    pub field: Field,
}

impl RecordAad {
    /// The binding of one field of one stored payment option.
    pub fn new(merchant_id: &str, account_id: &str, option_ref: &str, field: Field) -> RecordAad {
        RecordAad {
            merchant_id: merchant_id.to_owned(),
            account_id: account_id.to_owned(),
            option_ref: option_ref.to_owned(),
            field,
        }
    }

    /// Each part as a 4-byte big-endian length and its bytes, so no two different records
    /// share an encoding (`("ab","c")` ≠ `("a","bc")`).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let parts = [&self.merchant_id, &self.account_id, &self.option_ref, self.field.label()];
        let mut out = Vec::with_capacity(parts.iter().map(|p| 4 + p.len()).sum());
        for p in parts {
            push_prefixed(&mut out, p.as_bytes());
        }
        out
    }
}

fn push_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    // A part longer than 4 GiB cannot occur (they are ids); saturating keeps this total.
    out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(part);
}

/// One sealed record: the KEK version, the wrapped DEK and the ciphertext. `Debug` shows the
/// version and lengths only. A store may keep the parts in columns (the version in its own
/// column lets a rotation find what is left) or as one blob ([`Sealed::to_bytes`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub kek_id: String,
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sealed(<redacted>, kek_id={}, wrapped_dek={} bytes, ciphertext={} bytes)",
            self.kek_id,
            self.wrapped_dek.len(),
            self.ciphertext.len()
        )
    }
}

impl Sealed {
    /// The versioned single-blob form. Parts that do not fit the layout (never the case for what
    /// [`seal`], [`rewrap`] or [`reencrypt`] return) yield a blob [`Sealed::from_bytes`] refuses.
    pub fn to_bytes(&self) -> Vec<u8> {
        let id = self.kek_id.as_bytes();
        let mut out = Vec::with_capacity(2 + 1 + id.len() + 2 + self.wrapped_dek.len() + 4 + self.ciphertext.len());
        out.extend_from_slice(&[MAGIC, VERSION, u8::try_from(id.len()).unwrap_or(0)]);
        out.extend_from_slice(id);
        out.extend_from_slice(&u16::try_from(self.wrapped_dek.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.wrapped_dek);
        out.extend_from_slice(&u32::try_from(self.ciphertext.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses a blob from [`Sealed::to_bytes`], checking magic, version, every length and the
    /// shape of each part. Never panics; anything else is [`VaultError::Malformed`].
    pub fn from_bytes(blob: &[u8]) -> Result<Sealed, VaultError> {
        let mut r = Reader(blob);
        if r.take(2)? != [MAGIC, VERSION] {
            return Err(VaultError::Malformed);
        }
        let id_len = usize::from(r.take(1)?[0]);
        let kek_id = std::str::from_utf8(r.take(id_len)?).map_err(|_| VaultError::Malformed)?.to_owned();
        let wrapped_len = usize::from(u16::from_be_bytes(r.array()?));
        let wrapped_dek = r.take(wrapped_len)?.to_vec();
        let ct_len = usize::try_from(u32::from_be_bytes(r.array()?)).map_err(|_| VaultError::Malformed)?;
        let ciphertext = r.take(ct_len)?.to_vec();
        if !r.0.is_empty() {
            return Err(VaultError::Malformed);
        }
        let sealed = Sealed { kek_id, wrapped_dek, ciphertext };
        sealed.check_shape()?;
        Ok(sealed)
    }

    /// Refuses parts that cannot have come from [`seal`].
    fn check_shape(&self) -> Result<(), VaultError> {
        if is_kek_id(&self.kek_id)
            && self.wrapped_dek.len() == WRAPPED_DEK_LEN
            && self.ciphertext.len() >= NONCE_LEN + TAG_LEN
        {
            Ok(())
        } else {
            Err(VaultError::Malformed)
        }
    }
}

/// A cursor over a blob whose reads fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VaultError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(VaultError::Malformed)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], VaultError> {
        self.take(N)?.try_into().map_err(|_| VaultError::Malformed)
    }
}

/// Seals `plaintext` for the row `aad` under a fresh DEK wrapped by `kek`.
pub fn seal(kek: &Kek, aad: &RecordAad, plaintext: &[u8]) -> Result<Sealed, VaultError> {
    let dek = random_key()?;
    let ciphertext = encrypt(&dek, &data_aad(aad), plaintext)?;
    wrap(kek, aad, &dek, ciphertext)
}

/// Opens a record: picks the KEK named by `sealed.kek_id` from `keys`, unwraps the DEK and
/// decrypts. [`VaultError::UnknownKey`] when the version is not loaded,
/// [`VaultError::Authentication`] when the key, the row or the bytes are wrong.
pub fn open(keys: &KeyRing, aad: &RecordAad, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let dek = unwrap_dek(keys, aad, sealed)?;
    decrypt(&dek, &data_aad(aad), &sealed.ciphertext)
}

/// KEK rotation of one record: unwraps its DEK with the KEK it names (from `keys`) and wraps it
/// under `new_kek`. The ciphertext bytes stay; they are authenticated first, so a corrupt record
/// stops the rotation instead of being carried over.
pub fn rewrap(keys: &KeyRing, aad: &RecordAad, sealed: &Sealed, new_kek: &Kek) -> Result<Sealed, VaultError> {
    let dek = unwrap_dek(keys, aad, sealed)?;
    decrypt(&dek, &data_aad(aad), &sealed.ciphertext)?;
    wrap(new_kek, aad, &dek, sealed.ciphertext.clone())
}

/// DEK rotation of one record: opens it and seals the plaintext again under a fresh DEK
/// wrapped by `kek`.
pub fn reencrypt(keys: &KeyRing, aad: &RecordAad, sealed: &Sealed, kek: &Kek) -> Result<Sealed, VaultError> {
    let plaintext = open(keys, aad, sealed)?;
    seal(kek, aad, &plaintext)
}

fn wrap(kek: &Kek, aad: &RecordAad, dek: &[u8; KEY_LEN], ciphertext: Vec<u8>) -> Result<Sealed, VaultError> {
    let wrapped_dek = encrypt(kek.bytes(), &wrap_aad(kek.id(), aad), dek)?;
    Ok(Sealed { kek_id: kek.id().to_owned(), wrapped_dek, ciphertext })
}

fn unwrap_dek(keys: &KeyRing, aad: &RecordAad, sealed: &Sealed) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    sealed.check_shape()?;
    let kek = keys.by_id(&sealed.kek_id).ok_or_else(|| VaultError::UnknownKey { kek_id: sealed.kek_id.clone() })?;
    let dek = decrypt(kek.bytes(), &wrap_aad(kek.id(), aad), &sealed.wrapped_dek)?;
    <[u8; KEY_LEN]>::try_from(dek.as_slice()).map(Zeroizing::new).map_err(|_| VaultError::Authentication)
}

fn data_aad(aad: &RecordAad) -> Vec<u8> {
    let mut out = DATA_LABEL.to_vec();
    out.extend_from_slice(&aad.canonical_bytes());
    out
}

fn wrap_aad(kek_id: &str, aad: &RecordAad) -> Vec<u8> {
    let mut out = WRAP_LABEL.to_vec();
    push_prefixed(&mut out, kek_id.as_bytes());
    out.extend_from_slice(&aad.canonical_bytes());
    out
}

/// `nonce ‖ AES-256-GCM(key, nonce, msg, aad)` with a random nonce.
fn encrypt(key: &[u8; KEY_LEN], aad: &[u8], msg: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let ct = cipher.encrypt(&Nonce::from(nonce), Payload { msg, aad }).map_err(|_| VaultError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn decrypt(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let (nonce, ct) = sealed.split_first_chunk::<NONCE_LEN>().ok_or(VaultError::Malformed)?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    cipher
        .decrypt(&Nonce::from(*nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(option_ref: &str) -> RecordAad {
        RecordAad::new("m-1", "acct-1", option_ref, Field::CardNumber)
    }

    #[test]
    fn canonical_bytes_are_unambiguous() {
        let a = RecordAad::new("ab", "c", "x", Field::CardNumber);
        let b = RecordAad::new("a", "bc", "x", Field::CardNumber);
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
        let c = RecordAad::new("m", "a", "o", Field::CardNumber);
        let d = RecordAad::new("m", "a", "o", Field::HolderName);
        assert_ne!(c.canonical_bytes(), d.canonical_bytes());
    }

    #[test]
    fn a_sealed_record_opens_only_for_its_row() {
        let kek = Kek::from_bytes(&[5; 32]).unwrap();
        let ring = KeyRing::new(kek.clone());
        let sealed = seal(&kek, &aad("o-1"), b"4111111111111111").unwrap();
        assert_eq!(sealed.kek_id, kek.id());
        assert_eq!(sealed.wrapped_dek.len(), WRAPPED_DEK_LEN);
        assert_eq!(sealed.ciphertext.len(), NONCE_LEN + 16 + TAG_LEN);
        assert_eq!(open(&ring, &aad("o-1"), &sealed).unwrap().as_slice(), b"4111111111111111");
        assert_eq!(open(&ring, &aad("o-2"), &sealed).unwrap_err(), VaultError::Authentication);
    }

    #[test]
    fn the_ciphertext_itself_is_bound_to_its_row_not_only_the_wrapped_key() {
        let kek = Kek::from_bytes(&[6; 32]).unwrap();
        let ring = KeyRing::new(kek.clone());
        let sealed = seal(&kek, &aad("o-1"), b"4111111111111111").unwrap();
        let dek = unwrap_dek(&ring, &aad("o-1"), &sealed).unwrap();
        assert!(decrypt(&dek, &data_aad(&aad("o-1")), &sealed.ciphertext).is_ok());
        assert_eq!(decrypt(&dek, &data_aad(&aad("o-2")), &sealed.ciphertext).unwrap_err(), VaultError::Authentication);
        assert_eq!(
            decrypt(&dek, &aad("o-1").canonical_bytes(), &sealed.ciphertext).unwrap_err(),
            VaultError::Authentication
        );
    }

    #[test]
    fn an_empty_plaintext_round_trips() {
        let kek = Kek::from_bytes(&[5; 32]).unwrap();
        let sealed = seal(&kek, &aad("o"), b"").unwrap();
        let back = Sealed::from_bytes(&sealed.to_bytes()).unwrap();
        assert_eq!(open(&KeyRing::new(kek), &aad("o"), &back).unwrap().as_slice(), b"");
    }

    #[test]
    fn an_unknown_key_version_is_its_own_error() {
        let a = Kek::from_bytes(&[1; 32]).unwrap();
        let b = Kek::from_bytes(&[2; 32]).unwrap();
        let sealed = seal(&a, &aad("o"), b"x").unwrap();
        assert_eq!(
            open(&KeyRing::new(b.clone()), &aad("o"), &sealed).unwrap_err(),
            VaultError::UnknownKey { kek_id: a.id().to_owned() }
        );
        // The same bytes relabelled with b's version still fail: the wrap is bound to the key.
        let relabelled = Sealed { kek_id: b.id().to_owned(), ..sealed };
        assert_eq!(open(&KeyRing::new(b), &aad("o"), &relabelled).unwrap_err(), VaultError::Authentication);
    }

    #[test]
    fn blobs_round_trip_and_refuse_bad_framing() {
        let kek = Kek::from_bytes(&[3; 32]).unwrap();
        let sealed = seal(&kek, &aad("o"), b"hello").unwrap();
        let blob = sealed.to_bytes();
        assert_eq!(blob[0], b'V');
        assert_eq!(blob[1], 1);
        assert_eq!(Sealed::from_bytes(&blob).unwrap(), sealed);
        for n in 0..blob.len() {
            assert_eq!(Sealed::from_bytes(&blob[..n]).unwrap_err(), VaultError::Malformed, "truncated to {n}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(Sealed::from_bytes(&longer).unwrap_err(), VaultError::Malformed);
        let mut v2 = blob;
        v2[1] = 2;
        assert_eq!(Sealed::from_bytes(&v2).unwrap_err(), VaultError::Malformed);
    }

    #[test]
    fn hand_built_parts_of_the_wrong_shape_are_malformed() {
        let kek = Kek::from_bytes(&[3; 32]).unwrap();
        let ring = KeyRing::new(kek.clone());
        let good = seal(&kek, &aad("o"), b"x").unwrap();
        let bad_id = Sealed { kek_id: "not an id".into(), ..good.clone() };
        let short_dek = Sealed { wrapped_dek: good.wrapped_dek[..10].to_vec(), ..good.clone() };
        let short_ct = Sealed { ciphertext: vec![0; 5], ..good };
        for s in [bad_id, short_dek, short_ct] {
            assert_eq!(open(&ring, &aad("o"), &s).unwrap_err(), VaultError::Malformed);
            assert_eq!(Sealed::from_bytes(&s.to_bytes()).unwrap_err(), VaultError::Malformed);
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = Sealed::from_bytes(&bytes);
            }

            #[test]
            fn parsing_a_mangled_header_never_panics(
                id_len in any::<u8>(), wrapped_len in any::<u16>(), ct_len in any::<u32>(),
                tail in proptest::collection::vec(any::<u8>(), 0..120),
            ) {
                let mut blob = vec![b'V', 1, id_len];
                blob.extend(std::iter::repeat_n(b'a', usize::from(id_len)));
                blob.extend_from_slice(&wrapped_len.to_be_bytes());
                blob.extend_from_slice(&tail);
                blob.extend_from_slice(&ct_len.to_be_bytes());
                blob.extend_from_slice(&tail);
                let _ = Sealed::from_bytes(&blob);
            }
        }
    }
}
