//! Key material and the primitives built on it.
//!
//! One 256-bit master secret (a file outside the database) derives three independent keys:
//! the pepper for API-secret digests, the key for checkout-token digests, and the AES-256-GCM
//! key that seals stored replay responses and token-signing private keys. Generated secrets
//! come from the operating system's CSPRNG.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Format byte at the head of every sealed blob; bump when the layout changes.
const SEALED_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("sealed data is corrupt or was sealed under another key")]
    Unseal,
}

/// The server's derived keys. Debug output never shows them.
pub struct ServerKeys {
    pepper: Zeroizing<[u8; 32]>,
    token_key: Zeroizing<[u8; 32]>,
    seal: Aes256Gcm,
    /// The vault's keyed card fingerprints: a key of its own, never in the database.
    fingerprint_key: Zeroizing<[u8; 32]>,
    /// The in-process sandbox acquirer's card-token key (its tokens survive restarts).
    acquirer_token_key: Zeroizing<[u8; 32]>,
    sandbox_vault_kek: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(..)")
    }
}

fn derive(master: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let mut mac = new_hmac(master);
    mac.update(b"smartpay/v1/");
    mac.update(label.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

#[allow(clippy::expect_used)] // HMAC is defined for keys of every length: this cannot fail.
fn new_hmac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac = new_hmac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ServerKeys {
    pub fn from_master(master: &[u8; 32]) -> Self {
        let seal_key = derive(master, "seal");
        ServerKeys {
            pepper: derive(master, "api-secret-pepper"),
            token_key: derive(master, "checkout-token"),
            seal: Aes256Gcm::new(seal_key.as_slice().into()),
            fingerprint_key: derive(master, "vault-fingerprint"),
            acquirer_token_key: derive(master, "sandbox-acquirer-token"),
            sandbox_vault_kek: derive(master, "sandbox-vault-kek"),
        }
    }

    /// Reads the master key file (base64url of 32 bytes), creating it with mode 0600 when
    /// `create` is set and it does not exist.
    pub fn load_or_create(path: &std::path::Path, create: bool) -> Result<Self, SecretError> {
        let err = |reason: String| SecretError::KeyFile { path: path.display().to_string(), reason };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes =
                    Zeroizing::new(URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| err("not base64url".into()))?);
                let master: Zeroizing<[u8; 32]> =
                    Zeroizing::new(bytes.as_slice().try_into().map_err(|_| err("must hold exactly 32 bytes".into()))?);
                Ok(Self::from_master(&master))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let master = Zeroizing::new(random_array::<32>()?);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                write_private(path, URL_SAFE_NO_PAD.encode(master.as_slice()).as_bytes())
                    .map_err(|e| err(e.to_string()))?;
                Ok(Self::from_master(&master))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// The vault's fingerprint key (keyed hash of card numbers, to find duplicates).
    pub fn vault_fingerprint_key(&self) -> Zeroizing<[u8; 32]> {
        self.fingerprint_key.clone()
    }

    /// The vault key of a sandbox on PostgreSQL without a configured one: derived from the master
    /// key, so every node given the same master key has the same vault key (a key file in each
    /// node's data directory would differ between nodes).
    pub fn sandbox_vault_kek(&self) -> Zeroizing<[u8; 32]> {
        self.sandbox_vault_kek.clone()
    }

    /// The key the in-process sandbox acquirer seals its card tokens with.
    pub fn acquirer_token_key(&self) -> Zeroizing<[u8; 32]> {
        self.acquirer_token_key.clone()
    }

    /// Keyed digest of an API secret (authentication key, client secret).
    pub fn secret_digest(&self, secret: &str) -> [u8; 32] {
        hmac(&self.pepper, secret.as_bytes())
    }

    /// Keyed digest of a checkout token: how a token is found without storing it.
    pub fn token_digest(&self, token: &str) -> [u8; 32] {
        hmac(&self.token_key, token.as_bytes())
    }

    /// Encrypts `plaintext` bound to `aad`: `version ‖ nonce(12) ‖ ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = random_array::<12>()?;
        let ct =
            self.seal.encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad }).map_err(|_| SecretError::Unseal)?;
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        if sealed.len() < 1 + 12 + 16 || sealed[0] != SEALED_V1 {
            return Err(SecretError::Unseal);
        }
        let nonce: [u8; 12] = sealed[1..13].try_into().map_err(|_| SecretError::Unseal)?;
        self.seal
            .decrypt(&Nonce::from(nonce), Payload { msg: &sealed[13..], aad })
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Unseal)
    }
}

fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// `N` bytes from the OS CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(b)
}

/// `len` characters of `[A-Za-z0-9]`, uniformly, from the OS CSPRNG (rejection sampling).
pub fn random_alphanumeric(len: usize) -> Result<String, SecretError> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let buf = random_array::<64>()?;
        for b in buf {
            // 248 = 4 × 62: bytes at or above it would bias the draw.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// A new API secret: 256 random bits, base64url.
pub fn new_api_secret() -> Result<Zeroizing<String>, SecretError> {
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(random_array::<32>()?)))
}

/// Constant-time equality of two digests.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// SHA-256, for fingerprints and cache keys (not for secrets at rest).
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_tokens_are_64_alphanumerics_without_collisions() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let t = random_alphanumeric(64).unwrap();
            assert_eq!(t.len(), 64);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn sealed_data_only_opens_with_the_same_key_and_binding() {
        let keys = ServerKeys::from_master(&[7; 32]);
        let other = ServerKeys::from_master(&[8; 32]);
        let sealed = keys.seal(b"txn-1", b"secret response").unwrap();
        assert_eq!(keys.unseal(b"txn-1", &sealed).unwrap().as_slice(), b"secret response");
        assert!(keys.unseal(b"txn-2", &sealed).is_err(), "bound to its AAD");
        assert!(other.unseal(b"txn-1", &sealed).is_err(), "bound to its key");
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert!(keys.unseal(b"txn-1", &flipped).is_err(), "byte {i} flipped");
        }
    }

    #[test]
    fn derived_keys_differ_and_digests_are_keyed() {
        let a = ServerKeys::from_master(&[1; 32]);
        let b = ServerKeys::from_master(&[2; 32]);
        assert_ne!(a.secret_digest("s"), a.token_digest("s"));
        assert_ne!(a.secret_digest("s"), b.secret_digest("s"));
        assert_ne!(a.secret_digest("s").to_vec(), sha256(&[b"s"]).to_vec());
    }

    #[test]
    fn the_master_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let a = ServerKeys::load_or_create(&path, true).unwrap();
        let b = ServerKeys::load_or_create(&path, false).unwrap();
        assert_eq!(a.secret_digest("x"), b.secret_digest("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(ServerKeys::load_or_create(&dir.path().join("missing"), false).is_err());
    }
}
