//! Key material: the key-encryption key (KEK), how it is loaded, the key ring used during a
//! rotation, and the fingerprint key.
//!
//! A KEK is 32 bytes from one of three sources ([`KekSource`]):
//! - a key file holding base64url or hex text of 32 bytes (or the 32 raw bytes), which must not
//!   be readable by group or others;
//! - an environment value in the same text encodings;
//! - two component files (same encodings) whose XOR is the KEK, so that no single custodian
//!   knows the key (split knowledge). A component alone is never turned into a key.
//!
//! Every KEK has a short public version, [`Kek::id`], which each ciphertext names. Key bytes
//! never appear in `Debug` output or errors, and are wiped from memory on drop.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length of every key in this crate, in bytes.
pub const KEY_LEN: usize = 32;

/// Length of a key version ([`Kek::id`]) in characters: 8 bytes as lowercase hex.
pub const KEK_ID_LEN: usize = 16;

/// The label hashed under a KEK to name its version.
const KEK_ID_LABEL: &[u8] = b"smartpay-vault kek id";

/// Key files larger than this are refused unread: a key file holds one short line.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// Why key material was refused. Messages name the source (a path, "environment value") and
/// key versions, never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be opened or read.
    #[error("key file {path}: {reason}")]
    Io { path: String, reason: String },
    /// A key file is readable by group or others.
    #[error("key file {path} is accessible by group or others (mode {mode:04o}); restrict it to its owner (chmod 600)")]
    Permissions { path: String, mode: u32 },
    /// The text is not base64url or hex of exactly 32 bytes.
    #[error("{origin}: not base64url or hex of exactly 32 bytes")]
    Encoding { origin: String },
    /// A split-knowledge component is all zero bytes.
    #[error("{origin}: key component is all zero")]
    ZeroComponent { origin: String },
    /// The two split-knowledge components are equal (their XOR would be zero).
    #[error("the two key components are equal")]
    EqualComponents,
    /// The key is all zero bytes.
    #[error("the key is all zero")]
    ZeroKey,
    /// The loaded key is not the version that was expected.
    #[error("key version {actual} was loaded where {expected} was expected")]
    IdMismatch { expected: String, actual: String },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A key-encryption key: wraps the per-record data keys. `Debug` shows only its version.
#[derive(Clone)]
pub struct Kek {
    key: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl Kek {
    /// A KEK from its 32 bytes; an all-zero key is refused.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Kek, KeyError> {
        if is_all_zero(bytes) {
            return Err(KeyError::ZeroKey);
        }
        let mac = hmac(bytes, KEK_ID_LABEL);
        Ok(Kek { key: Zeroizing::new(*bytes), id: to_hex(&mac[..KEK_ID_LEN / 2]) })
    }

    /// The key version: the first 8 bytes of HMAC-SHA256(kek, "smartpay-vault kek id") as 16
    /// lowercase hex characters. Public; every ciphertext names it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Refuses the key unless its version is `expected` (e.g. the version recorded in
    /// configuration, so a wrong component or key file fails at start).
    pub fn check_id(&self, expected: &str) -> Result<(), KeyError> {
        if self.id.as_bytes().ct_eq(expected.as_bytes()).into() {
            Ok(())
        } else {
            Err(KeyError::IdMismatch { expected: expected.to_owned(), actual: self.id.clone() })
        }
    }

    /// The key bytes, for the envelope code only.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek(<redacted>, id={})", self.id)
    }
}

/// The KEKs that can open ciphertexts: the current one and, while a rotation runs, the one
/// being retired. New ciphertexts are always sealed under `current`.
#[derive(Clone)]
pub struct KeyRing {
    pub current: Kek,
    pub previous: Option<Kek>,
}

impl KeyRing {
    /// A ring with one key.
    pub fn new(current: Kek) -> KeyRing {
        KeyRing { current, previous: None }
    }

    /// A ring for a rotation from `previous` to `current`.
    pub fn rotating(current: Kek, previous: Kek) -> KeyRing {
        KeyRing { current, previous: Some(previous) }
    }

    /// The key whose version is `id`, if the ring holds it.
    pub fn by_id(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current).chain(self.previous.as_ref()).find(|k| k.id == id)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("current", &self.current).field("previous", &self.previous).finish()
    }
}

/// The key of the card fingerprint, separate from the KEK (the server derives it from its
/// master key, so it never lives in the database). `Debug` is redacted.
#[derive(Clone)]
pub struct FingerprintKey(Zeroizing<[u8; KEY_LEN]>);

impl FingerprintKey {
    /// A fingerprint key from its 32 bytes; an all-zero key is refused.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<FingerprintKey, KeyError> {
        if is_all_zero(bytes) {
            return Err(KeyError::ZeroKey);
        }
        Ok(FingerprintKey(Zeroizing::new(*bytes)))
    }

    /// HMAC-SHA256 of `data` under this key.
    pub(crate) fn mac(&self, data: &[u8]) -> [u8; 32] {
        hmac(&self.0, data)
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(<redacted>)")
    }
}

/// Where the KEK comes from. `Debug` never shows an environment value.
#[derive(Clone)]
pub enum KekSource {
    /// A key file: base64url or hex text of 32 bytes, or the 32 raw bytes; owner-only mode.
    File(PathBuf),
    /// The key as text (base64url or hex of 32 bytes), e.g. from an environment variable.
    Env(Zeroizing<String>),
    /// Two component files (each like a key file); the KEK is their XOR.
    Components(PathBuf, PathBuf),
}

impl fmt::Debug for KekSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekSource::File(p) => f.debug_tuple("File").field(p).finish(),
            KekSource::Env(_) => f.write_str("Env(<redacted>)"),
            KekSource::Components(a, b) => f.debug_tuple("Components").field(a).field(b).finish(),
        }
    }
}

/// Loads the KEK from `src`, refusing malformed, exposed or degenerate key material.
pub fn load_kek(src: &KekSource) -> Result<Kek, KeyError> {
    match src {
        KekSource::File(path) => Kek::from_bytes(&*read_key_file(path)?),
        KekSource::Env(value) => {
            let origin = "environment value";
            Kek::from_bytes(&*decode_key(value.as_bytes()).ok_or_else(|| encoding(origin))?)
        }
        KekSource::Components(first, second) => Kek::from_bytes(&*combine(first, second)?),
    }
}

/// XOR of two component files, after refusing zero and equal components.
fn combine(first: &Path, second: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let a = read_component(first)?;
    let b = read_component(second)?;
    if bool::from(a.ct_eq(&*b)) {
        return Err(KeyError::EqualComponents);
    }
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    for (k, (x, y)) in kek.iter_mut().zip(a.iter().zip(b.iter())) {
        *k = x ^ y;
    }
    // Unreachable after the equality check, kept so the rule does not depend on it.
    if is_all_zero(&kek) {
        return Err(KeyError::ZeroKey);
    }
    Ok(kek)
}

fn read_component(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let c = read_key_file(path)?;
    if is_all_zero(&c) {
        return Err(KeyError::ZeroComponent { origin: path.display().to_string() });
    }
    Ok(c)
}

/// Reads and decodes one key or component file, refusing group/world-accessible files.
fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| KeyError::Io { path: shown.clone(), reason: e.to_string() };
    let file = std::fs::File::open(path).map_err(io)?;
    check_private(&file, &shown)?;
    let mut raw = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut raw).map_err(io)?;
    if raw.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(encoding(&shown));
    }
    if let Ok(bytes) = <[u8; KEY_LEN]>::try_from(raw.as_slice()) {
        // 32 raw bytes: no text encoding of 32 bytes is 32 characters long, so this is unambiguous.
        return Ok(Zeroizing::new(bytes));
    }
    decode_key(&raw).ok_or_else(|| encoding(&shown))
}

#[cfg(unix)]
fn check_private(file: &std::fs::File, shown: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file.metadata().map_err(|e| KeyError::Io { path: shown.to_owned(), reason: e.to_string() })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: shown.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_file: &std::fs::File, _shown: &str) -> Result<(), KeyError> {
    Ok(())
}

fn encoding(origin: &str) -> KeyError {
    KeyError::Encoding { origin: origin.to_owned() }
}

/// Decodes base64url (padded or not) or hex (either case) text of exactly 32 bytes,
/// ignoring surrounding whitespace.
fn decode_key(text: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let text = text.trim_ascii();
    if text.len() == 2 * KEY_LEN {
        return from_hex(text);
    }
    let unpadded = text.strip_suffix(b"=").unwrap_or(text);
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(unpadded).ok()?);
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok().map(Zeroizing::new)
}

fn from_hex(text: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    if text.len() != 2 * out.len() {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Whether `id` has the shape of a key version (16 lowercase hex characters).
pub(crate) fn is_kek_id(id: &str) -> bool {
    id.len() == KEK_ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_all_zero(bytes: &[u8; KEY_LEN]) -> bool {
    bool::from(bytes.ct_eq(&[0u8; KEY_LEN]))
}

/// A new KEK as base64url text, for a key file or an environment variable.
pub fn generate_key() -> Result<Zeroizing<String>, KeyError> {
    let key = random_key()?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(key.as_slice())))
}

/// Two new split-knowledge components as base64url text, one per custodian. Each is a uniformly
/// random 32 bytes (so each alone tells nothing about the KEK, their XOR); they are non-zero and
/// distinct.
pub fn generate_components() -> Result<(Zeroizing<String>, Zeroizing<String>), KeyError> {
    loop {
        let a = random_key()?;
        let b = random_key()?;
        if !is_all_zero(&a) && !is_all_zero(&b) && !bool::from(a.ct_eq(&*b)) {
            return Ok((
                Zeroizing::new(URL_SAFE_NO_PAD.encode(a.as_slice())),
                Zeroizing::new(URL_SAFE_NO_PAD.encode(b.as_slice())),
            ));
        }
    }
}

/// 32 bytes from the OS CSPRNG.
pub(crate) fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::getrandom(key.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(key)
}

/// Writes `text` (a generated key or component) to a new file readable only by its owner;
/// refuses to overwrite an existing file.
pub fn write_key_file(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| KeyError::Io { path: path.display().to_string(), reason: e.to_string() };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)
}

#[allow(clippy::expect_used)] // HMAC is defined for keys of every length: this cannot fail.
fn new_hmac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hmac(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; 32] {
    let mut mac = new_hmac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kek_id_is_the_first_8_bytes_of_its_hmac_in_hex() {
        let kek = Kek::from_bytes(&[7; 32]).unwrap();
        let mut mac = new_hmac(&[7; 32]);
        mac.update(b"smartpay-vault kek id");
        let full = mac.finalize().into_bytes();
        assert_eq!(kek.id(), to_hex(&full[..8]));
        assert_eq!(kek.id().len(), 16);
        assert!(is_kek_id(kek.id()));
        assert_ne!(kek.id(), Kek::from_bytes(&[8; 32]).unwrap().id());
    }

    #[test]
    fn zero_keys_are_refused() {
        assert_eq!(Kek::from_bytes(&[0; 32]).unwrap_err(), KeyError::ZeroKey);
        assert_eq!(FingerprintKey::from_bytes(&[0; 32]).unwrap_err(), KeyError::ZeroKey);
    }

    #[test]
    fn keys_decode_from_hex_and_base64url_only_at_32_bytes() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 1) as u8);
        let hex = to_hex(&key);
        let b64 = URL_SAFE_NO_PAD.encode(key);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(key);
        for text in [hex.clone(), hex.to_uppercase(), format!("  {b64}\n"), padded] {
            assert_eq!(*decode_key(text.as_bytes()).unwrap(), key, "{text}");
        }
        assert!(decode_key(&hex.as_bytes()[..62]).is_none());
        assert!(decode_key(URL_SAFE_NO_PAD.encode(&key[..31]).as_bytes()).is_none());
        assert!(decode_key(URL_SAFE_NO_PAD.encode([1u8; 33]).as_bytes()).is_none());
        assert!(decode_key(format!("{}zz", &hex[..62]).as_bytes()).is_none());
        assert!(decode_key(b"").is_none());
    }

    #[test]
    fn the_ring_finds_keys_by_version() {
        let a = Kek::from_bytes(&[1; 32]).unwrap();
        let b = Kek::from_bytes(&[2; 32]).unwrap();
        let c = Kek::from_bytes(&[3; 32]).unwrap();
        let ring = KeyRing::rotating(b.clone(), a.clone());
        assert_eq!(ring.by_id(a.id()).unwrap().id(), a.id());
        assert_eq!(ring.by_id(b.id()).unwrap().id(), b.id());
        assert!(ring.by_id(c.id()).is_none());
        assert!(KeyRing::new(b).by_id(a.id()).is_none());
    }

    #[test]
    fn check_id_accepts_only_the_expected_version() {
        let kek = Kek::from_bytes(&[9; 32]).unwrap();
        assert!(kek.check_id(kek.id()).is_ok());
        assert!(matches!(kek.check_id("0000000000000000"), Err(KeyError::IdMismatch { .. })));
    }

    #[test]
    fn generated_keys_are_distinct_and_loadable() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(*a, *b);
        assert!(decode_key(a.as_bytes()).is_some());
        let (c1, c2) = generate_components().unwrap();
        assert_ne!(*c1, *c2);
        assert!(decode_key(c1.as_bytes()).is_some() && decode_key(c2.as_bytes()).is_some());
    }
}
