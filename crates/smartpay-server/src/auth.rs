//! Authentication of API calls: HTTP Basic (merchantKey : authentication key, RFC 7617) and
//! OAuth2 Bearer access tokens this server issued (RFC 6750), plus issuing those tokens.
//!
//! Verified credentials are cached by a digest of what the caller sent, so a request costs a
//! hash and a map lookup. Caches and signing keys are refreshed whenever the store's
//! `auth_epoch` moves (every credential, merchant or key change bumps it), which a worker
//! checks every `auth_refresh_ms`: a revoked credential stops working within seconds.
//!
//! A token whose `kid` this node does not know yet (another node created a signing key since
//! the last refresh, or two nodes starting together each created one) makes the node read the
//! signing keys again before it refuses the token, at most once per [`KEY_RELOAD_GAP_MS`]: so a
//! token issued by one node is accepted by every other at once, and tokens with made-up key ids
//! cost no more than one read of the keys per gap.

pub mod basic;
pub mod jwt;
pub mod token_endpoint;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use p256::ecdsa::VerifyingKey;
use smartpay_domain::Millis;
use smartpay_domain::time::Clock;
use smartpay_store::{Credential, CredentialKind, SigningKey, Store, StoreError};

use crate::secrets::{ServerKeys, digests_equal, sha256};
use jwt::{KeyPair, TokenError};

/// Most entries a cache holds before it is emptied.
const CACHE_LIMIT: usize = 100_000;

/// Shortest time between two reads of the signing keys caused by tokens with an unknown `kid`.
pub const KEY_RELOAD_GAP_MS: i64 = 250;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Bearer,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub merchant_id: String,
    pub credential_id: String,
    pub scheme: Scheme,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or a scheme we do not support.
    #[error("no credentials")]
    Missing,
    /// Basic credentials that are malformed or wrong.
    #[error("invalid basic credentials")]
    Basic,
    /// A bearer token that is not one of ours, expired, or whose client was revoked.
    #[error("invalid bearer token: {0}")]
    Token(TokenError),
    /// The request itself is malformed (RFC 6750 `invalid_request`).
    #[error("malformed authorization: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a token request failed (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("invalid client")]
    InvalidClient,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no signing key")]
    NoSigningKey,
}

struct Keys {
    signing: Option<Arc<KeyPair>>,
    verifying: HashMap<String, VerifyingKey>,
    jwks: serde_json::Value,
}

#[derive(Clone)]
struct TokenHit {
    principal: Principal,
    client_id: String,
    exp: i64,
}

/// Checks credentials and issues access tokens.
pub struct Authenticator {
    /// Token times and key retirement are read from it.
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    secrets: Arc<ServerKeys>,
    issuer: String,
    token_ttl: i64,
    leeway: i64,
    keys: RwLock<Keys>,
    basic_cache: Mutex<HashMap<[u8; 32], Principal>>,
    token_cache: Mutex<HashMap<[u8; 32], TokenHit>>,
    /// Digests of (client id, secret) pairs the token endpoint verified.
    known_clients: Mutex<HashMap<[u8; 32], ()>>,
    /// client_id → (credential id, merchant id), or None when not an active client.
    client_cache: Mutex<HashMap<String, Option<(String, String)>>>,
    /// merchant → its identity issuer (keys, registered iss and aud), keyless when none is configured.
    identity_cache: Mutex<HashMap<String, Arc<jwt::IdentityVerifier>>>,
    epoch: AtomicI64,
    /// When a token with an unknown `kid` last made this node read the signing keys (clock
    /// milliseconds); the lock makes concurrent such tokens wait for one read, and `refresh`
    /// holds it too, so two reads of the keys never store out of order.
    key_reload: tokio::sync::Mutex<Option<Millis>>,
}

fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, k: K, v: V) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= CACHE_LIMIT {
            m.clear();
        }
        m.insert(k, v);
    }
}

impl Authenticator {
    pub async fn new(
        store: Arc<dyn Store>,
        secrets: Arc<ServerKeys>,
        issuer: String,
        token_ttl: i64,
        leeway: i64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let a = Authenticator {
            clock,
            store,
            secrets,
            issuer,
            token_ttl,
            leeway,
            keys: RwLock::new(Keys { signing: None, verifying: HashMap::new(), jwks: serde_json::json!({"keys": []}) }),
            basic_cache: Mutex::new(HashMap::new()),
            token_cache: Mutex::new(HashMap::new()),
            known_clients: Mutex::new(HashMap::new()),
            client_cache: Mutex::new(HashMap::new()),
            identity_cache: Mutex::new(HashMap::new()),
            epoch: AtomicI64::new(i64::MIN),
            key_reload: tokio::sync::Mutex::new(None),
        };
        a.refresh().await?;
        Ok(a)
    }

    pub fn token_ttl(&self) -> i64 {
        self.token_ttl
    }

    /// Reloads keys and empties caches when the store's auth epoch moved.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let epoch = self.store.auth_epoch().await?;
        if epoch == self.epoch.load(Ordering::Acquire) {
            return Ok(false);
        }
        // One reader of the keys at a time: a reload for an unknown kid that read the keys
        // before a rotation must not store them after this refresh stored the newer ones.
        let _keys_read = self.key_reload.lock().await;
        self.reload_keys(self.clock.now()).await?;
        if let Ok(mut m) = self.basic_cache.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.token_cache.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.known_clients.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.client_cache.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.identity_cache.lock() {
            m.clear();
        }
        self.epoch.store(epoch, Ordering::Release);
        Ok(true)
    }

    fn load_keys(&self, records: &[SigningKey], now: Millis) -> Keys {
        let grace = (self.token_ttl + self.leeway) * 1000;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        let mut signing = None;
        for r in records {
            if r.retired_at.is_some_and(|t| t.0 + grace < now.0) {
                continue;
            }
            let Ok(private) = self.secrets.unseal(r.kid.as_bytes(), &r.private_enc) else {
                tracing::error!(kid = %r.kid, "signing key cannot be unsealed with this master key; skipped");
                continue;
            };
            let Some(pair) = KeyPair::from_private(r.kid.clone(), &private) else { continue };
            verifying.insert(r.kid.clone(), pair.verifying_key());
            jwks.push(jwt::public_jwk(&r.kid, &pair.verifying_key()));
            if r.retired_at.is_none() {
                signing = Some(Arc::new(pair));
            }
        }
        Keys { signing, verifying, jwks: serde_json::json!({ "keys": jwks }) }
    }

    /// The JWK Set of every key that may have signed a live token.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.read().map(|k| k.jwks.clone()).unwrap_or_else(|_| serde_json::json!({"keys": []}))
    }

    /// Authenticates the `Authorization` header values of a request.
    pub async fn authenticate(&self, authorization: &[&[u8]]) -> Result<Principal, AuthError> {
        let value = match authorization {
            [] => return Err(AuthError::Missing),
            [one] => *one,
            _ => return Err(AuthError::Malformed("more than one Authorization header")),
        };
        let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &[][..]),
        };
        if scheme.eq_ignore_ascii_case(b"basic") {
            self.basic(value, rest).await
        } else if scheme.eq_ignore_ascii_case(b"bearer") {
            self.bearer(rest).await
        } else {
            Err(AuthError::Missing)
        }
    }

    /// Whether these `Authorization` values were verified before and are still cached: the
    /// lockout lets such callers through, since they are not guessing. Costs a hash and a lookup.
    pub fn is_known(&self, authorization: &[&[u8]]) -> bool {
        let [value] = authorization else { return false };
        let Some(i) = value.iter().position(|b| *b == b' ') else { return false };
        let (scheme, rest) = (&value[..i], &value[i + 1..]);
        if scheme.eq_ignore_ascii_case(b"basic") {
            let key = sha256(&[b"basic\0", value]);
            self.basic_cache.lock().is_ok_and(|m| m.contains_key(&key))
        } else if scheme.eq_ignore_ascii_case(b"bearer") {
            let key = sha256(&[b"bearer\0", rest]);
            self.token_cache.lock().is_ok_and(|m| m.contains_key(&key))
        } else {
            false
        }
    }

    /// Whether this client id and secret were verified before (the token endpoint's lockout
    /// lets them through).
    pub fn is_known_client(&self, client_id: &str, secret: &str) -> bool {
        let key = sha256(&[b"client\0", client_id.as_bytes(), b"\0", secret.as_bytes()]);
        self.known_clients.lock().is_ok_and(|m| m.contains_key(&key))
    }

    async fn basic(&self, whole: &[u8], credentials: &[u8]) -> Result<Principal, AuthError> {
        let cache_key = sha256(&[b"basic\0", whole]);
        if let Some(p) = self.basic_cache.lock().ok().and_then(|m| m.get(&cache_key).cloned()) {
            return Ok(p);
        }
        let (user, secret) = basic::parse(credentials).ok_or(AuthError::Basic)?;
        if !smartpay_domain::schema::is_uuid(&user) {
            return Err(AuthError::Basic);
        }
        let digest = self.secrets.secret_digest(&secret);
        let creds = self.store.active_basic_credentials(&user).await?;
        let found = creds.iter().find(|c| digests_equal(&c.secret_digest, &digest)).ok_or(AuthError::Basic)?;
        let p = Principal {
            merchant_id: found.merchant_id.clone(),
            credential_id: found.id.clone(),
            scheme: Scheme::Basic,
        };
        insert_bounded(&self.basic_cache, cache_key, p.clone());
        Ok(p)
    }

    async fn client(&self, client_id: &str) -> Result<Option<(String, String)>, StoreError> {
        if let Some(hit) = self.client_cache.lock().ok().and_then(|m| m.get(client_id).cloned()) {
            return Ok(hit);
        }
        let found = self.store.active_oauth_client(client_id).await?.map(|c| (c.id, c.merchant_id));
        insert_bounded(&self.client_cache, client_id.to_owned(), found.clone());
        Ok(found)
    }

    async fn bearer(&self, token: &[u8]) -> Result<Principal, AuthError> {
        // RFC 6750 §2.1 b64token.
        let valid = !token.is_empty()
            && token.len() <= jwt::MAX_TOKEN_LEN
            && token
                .iter()
                .rev()
                .skip_while(|b| **b == b'=')
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b));
        if !valid {
            return Err(if token.len() > jwt::MAX_TOKEN_LEN {
                AuthError::Token(TokenError::Malformed)
            } else {
                AuthError::Malformed("bearer token syntax")
            });
        }
        let token = std::str::from_utf8(token).map_err(|_| AuthError::Malformed("bearer token syntax"))?;
        let now = self.clock.now().0 / 1000;
        let cache_key = sha256(&[b"bearer\0", token.as_bytes()]);
        let hit = self.token_cache.lock().ok().and_then(|m| m.get(&cache_key).cloned());
        let hit = match hit {
            Some(h) => h,
            None => {
                let h = self.verify_access_token(token, now).await?;
                insert_bounded(&self.token_cache, cache_key, h.clone());
                h
            }
        };
        if now > hit.exp + self.leeway {
            return Err(AuthError::Token(TokenError::Expired));
        }
        // The client may have been revoked since the token was issued.
        match self.client(&hit.client_id).await? {
            Some((_, merchant)) if merchant == hit.principal.merchant_id => Ok(hit.principal),
            _ => Err(AuthError::Token(TokenError::Claim("client_id"))),
        }
    }

    /// Verifies the token's signature with the keys this node knows; with an unknown `kid`,
    /// reads the signing keys again (see the module's documentation) and tries once more.
    fn verify_signature(&self, token: &str) -> Result<jwt::Verified, TokenError> {
        let keys = self.keys.read().map_err(|_| TokenError::UnknownKey)?;
        jwt::verify_es256(token, Some("at+jwt"), |kid| keys.verifying.get(kid).copied())
    }

    /// Reads the signing keys again, unless that was done less than [`KEY_RELOAD_GAP_MS`] ago;
    /// callers arriving during a read wait for it.
    async fn reload_keys_for_unknown_kid(&self) -> Result<(), StoreError> {
        let mut last = self.key_reload.lock().await;
        let now = self.clock.now();
        // A clock set back counts as the gap having passed.
        if last.is_some_and(|t| (0..KEY_RELOAD_GAP_MS).contains(&now.0.saturating_sub(t.0))) {
            return Ok(());
        }
        *last = Some(now);
        self.reload_keys(now).await
    }

    /// Reads the signing keys from the store and makes them this node's (callers hold
    /// `key_reload`).
    async fn reload_keys(&self, now: Millis) -> Result<(), StoreError> {
        let records = self.store.signing_keys().await?;
        let keys = self.load_keys(&records, now);
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
        Ok(())
    }

    async fn verify_access_token(&self, token: &str, now: i64) -> Result<TokenHit, AuthError> {
        let verified = match self.verify_signature(token) {
            Err(TokenError::UnknownKey) => {
                self.reload_keys_for_unknown_kid().await?;
                self.verify_signature(token)
            }
            other => other,
        }
        .map_err(AuthError::Token)?;
        let c = &verified.claims;
        let t = |e| AuthError::Token(e);
        if jwt::str_claim(c, "iss").map_err(t)? != self.issuer {
            return Err(t(TokenError::Claim("iss")));
        }
        if !jwt::audience_contains(c, jwt::AUDIENCE) {
            return Err(t(TokenError::Claim("aud")));
        }
        let sub = jwt::str_claim(c, "sub").map_err(t)?;
        let client_id = jwt::str_claim(c, "client_id").map_err(t)?;
        if sub != client_id {
            return Err(t(TokenError::Claim("sub")));
        }
        let merchant = jwt::str_claim(c, "merchant_key").map_err(t)?;
        jwt::str_claim(c, "jti").map_err(t)?;
        let exp = jwt::check_times(c, now, self.leeway, Some(self.token_ttl + self.leeway)).map_err(t)?;
        let (credential_id, client_merchant) =
            self.client(client_id).await?.ok_or(t(TokenError::Claim("client_id")))?;
        if client_merchant != merchant {
            return Err(t(TokenError::Claim("merchant_key")));
        }
        Ok(TokenHit {
            principal: Principal { merchant_id: merchant.to_owned(), credential_id, scheme: Scheme::Bearer },
            client_id: client_id.to_owned(),
            exp,
        })
    }

    /// Verifies an `X-Access-Token` against the merchant's identity issuer keys (and its `iss`
    /// and `aud` where the merchant registered them) and returns its subject. `Ok(None)` when
    /// the merchant configured no issuer (the token is then only checked for shape, by the caller).
    pub async fn identity_subject(&self, merchant_id: &str, token: &str) -> Result<Option<String>, AuthError> {
        let cached = self.identity_cache.lock().ok().and_then(|m| m.get(merchant_id).cloned());
        let verifier = match cached {
            Some(v) => v,
            None => {
                let registered = self.store.identity_issuer(merchant_id).await?.unwrap_or_default();
                let verifier = Arc::new(jwt::IdentityVerifier::new(
                    registered.jwks.as_deref(),
                    registered.issuer,
                    registered.audience,
                ));
                insert_bounded(&self.identity_cache, merchant_id.to_owned(), verifier.clone());
                verifier
            }
        };
        if !verifier.has_keys() {
            return Ok(None);
        }
        let sub = verifier.subject(token, self.clock.now().0 / 1000, self.leeway).map_err(AuthError::Token)?;
        Ok(Some(sub))
    }

    /// Issues an access token for a client that proves its secret (client_credentials grant).
    pub async fn issue_token(&self, client_id: &str, client_secret: &str) -> Result<String, ClientAuthError> {
        let client = self.store.active_oauth_client(client_id).await?.ok_or(ClientAuthError::InvalidClient)?;
        let digest = self.secrets.secret_digest(client_secret);
        if !digests_equal(&client.secret_digest, &digest) {
            return Err(ClientAuthError::InvalidClient);
        }
        let known = sha256(&[b"client\0", client_id.as_bytes(), b"\0", client_secret.as_bytes()]);
        insert_bounded(&self.known_clients, known, ());
        let signing = self.keys.read().ok().and_then(|k| k.signing.clone()).ok_or(ClientAuthError::NoSigningKey)?;
        let now = self.clock.now().0 / 1000;
        let claims = jwt::access_claims(&self.issuer, client_id, &client.merchant_id, now, self.token_ttl)
            .map_err(|_| ClientAuthError::NoSigningKey)?;
        Ok(signing.sign(&claims))
    }
}

/// Creates a signing key and makes it the one that signs; earlier keys keep verifying the
/// tokens they signed until those expire.
pub async fn rotate_signing_key(store: &dyn Store, secrets: &ServerKeys) -> anyhow::Result<String> {
    let pair = KeyPair::generate()?;
    let private_enc = secrets.seal(pair.kid.as_bytes(), &pair.private_bytes())?;
    store
        .rotate_signing_key(SigningKey {
            kid: pair.kid.clone(),
            alg: "ES256".into(),
            public_jwk: jwt::public_jwk(&pair.kid, &pair.verifying_key()).to_string(),
            private_enc,
            created_at: Millis::now(),
            retired_at: None,
        })
        .await?;
    Ok(pair.kid)
}

/// Ensures a key that signs exists.
pub async fn ensure_signing_key(store: &dyn Store, secrets: &ServerKeys) -> anyhow::Result<()> {
    let keys = store.signing_keys().await?;
    if !keys.iter().any(|k| k.retired_at.is_none()) {
        let kid = rotate_signing_key(store, secrets).await?;
        tracing::info!(%kid, "created token-signing key");
    }
    Ok(())
}

/// A credential whose secret is shown exactly once.
pub struct IssuedCredential {
    pub credential: Credential,
    pub secret: zeroize::Zeroizing<String>,
}

/// Creates and stores a new API credential for a merchant.
pub async fn add_credential(
    store: &dyn Store,
    secrets: &ServerKeys,
    merchant_id: &str,
    kind: CredentialKind,
    label: &str,
) -> anyhow::Result<IssuedCredential> {
    let secret = crate::secrets::new_api_secret()?;
    let client_id = match kind {
        CredentialKind::OAuth => Some(crate::secrets::random_alphanumeric(26)?),
        CredentialKind::Basic => None,
    };
    let credential = Credential {
        id: format!("cred_{}", crate::secrets::random_alphanumeric(20)?),
        merchant_id: merchant_id.to_owned(),
        kind,
        client_id,
        secret_digest: secrets.secret_digest(&secret).to_vec(),
        label: label.to_owned(),
        created_at: Millis::now(),
        revoked_at: None,
    };
    store.add_credential(credential.clone()).await?;
    Ok(IssuedCredential { credential, secret })
}
