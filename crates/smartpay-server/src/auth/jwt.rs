//! ES256 JSON Web Tokens: the access tokens `/oauth2/token` issues (RFC 9068 profile) and the
//! strict verifier the API applies to them.
//!
//! The verifier accepts only what this server issues: exactly three segments, a header of
//! exactly `alg: ES256`, `typ: at+jwt` and a known `kid` (any other header member, such as
//! `jku`, `x5u`, `jwk`, `x5c` or `crit`, is refused, never followed), duplicate-free JSON, a
//! valid P-256 signature in its low-S form, and then the claims (RFC 8725 §3). It also verifies
//! merchants' end-user identity tokens (`X-Access-Token`) with [`IdentityVerifier`].

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey as EcKey, VerifyingKey};
use smartpay_domain::json::{self, Value};
use smartpay_domain::schema::write_string;

use crate::secrets::{SecretError, random_array};

/// The `aud` of every access token.
pub const AUDIENCE: &str = "smartpay-api";
/// Longest token the verifier looks at.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token was refused. Deliberately coarse: callers only learn `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token header is not acceptable")]
    Header,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signature does not verify")]
    Signature,
    #[error("claim {0} is missing or wrong")]
    Claim(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
}

/// A P-256 key pair with its id.
pub struct KeyPair {
    pub kid: String,
    key: EcKey,
}

impl KeyPair {
    /// A new random key; its id is random too.
    pub fn generate() -> Result<Self, SecretError> {
        loop {
            let bytes = zeroize::Zeroizing::new(random_array::<32>()?);
            if let Ok(key) = EcKey::from_slice(bytes.as_slice()) {
                return Ok(KeyPair { kid: URL_SAFE_NO_PAD.encode(random_array::<12>()?), key });
            }
        }
    }

    pub fn from_private(kid: String, private: &[u8]) -> Option<Self> {
        EcKey::from_slice(private).ok().map(|key| KeyPair { kid, key })
    }

    /// The private scalar, for sealing into the store.
    pub fn private_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.key.to_bytes().to_vec())
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }

    /// Signs `claims` (a JSON object text) into a compact JWS.
    pub fn sign(&self, claims_json: &str) -> String {
        let mut header = String::from("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":");
        write_string(&self.kid, &mut header);
        header.push('}');
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims_json));
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        // P-256 signing does not normalize s; the verifier refuses the high half (malleability).
        let sig = sig.normalize_s().unwrap_or(sig);
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }
}

/// The public JWK (RFC 7517/7518) of a verifying key.
pub fn public_jwk(kid: &str, key: &VerifyingKey) -> serde_json::Value {
    let point = key.to_encoded_point(false);
    let coord = |c: Option<&p256::FieldBytes>| c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": coord(point.x()), "y": coord(point.y()),
    })
}

/// Reads an EC P-256 public JWK.
pub fn verifying_key_from_jwk(jwk: &serde_json::Value) -> Option<(String, VerifyingKey)> {
    if jwk.get("kty")?.as_str()? != "EC" || jwk.get("crv")?.as_str()? != "P-256" {
        return None;
    }
    let x = URL_SAFE_NO_PAD.decode(jwk.get("x")?.as_str()?).ok()?;
    let y = URL_SAFE_NO_PAD.decode(jwk.get("y")?.as_str()?).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let key = VerifyingKey::from_sec1_bytes(&sec1).ok()?;
    Some((jwk.get("kid")?.as_str()?.to_owned(), key))
}

/// A verified token's header and claims.
#[derive(Debug)]
pub struct Verified {
    pub kid: String,
    pub claims: Value,
}

fn decode_segment(seg: &str) -> Result<Vec<u8>, TokenError> {
    // Strict base64url without padding: the engine refuses `=`, `+`, `/` and stray bits.
    URL_SAFE_NO_PAD.decode(seg).map_err(|_| TokenError::Malformed)
}

/// Verifies the signature of an ES256 compact JWS whose header has exactly the members
/// `alg: ES256`, `kid` and `typ: expected_typ` (any or no `typ` when `expected_typ` is None).
pub fn verify_es256(
    token: &str,
    expected_typ: Option<&str>,
    key_for: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<Verified, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header = json::parse(&decode_segment(h)?).map_err(|_| TokenError::Malformed)?;
    let Value::Object(members) = &header else { return Err(TokenError::Malformed) };
    let mut kid = None;
    let mut alg_ok = false;
    let mut typ_ok = expected_typ.is_none();
    for (k, v) in members {
        match (k.as_str(), v) {
            ("alg", Value::String(a)) if a == "ES256" => alg_ok = true,
            ("typ", Value::String(t)) if expected_typ.is_some_and(|e| e.eq_ignore_ascii_case(t)) => typ_ok = true,
            // An external issuer's token type is its own business.
            ("typ", Value::String(_)) if expected_typ.is_none() => {}
            ("kid", Value::String(k)) if k.len() <= 64 => kid = Some(k.clone()),
            _ => return Err(TokenError::Header),
        }
    }
    let (true, true, Some(kid)) = (alg_ok, typ_ok, kid) else { return Err(TokenError::Header) };
    let key = key_for(&kid).ok_or(TokenError::UnknownKey)?;
    let sig_bytes = decode_segment(s)?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| TokenError::Signature)?;
    // (r, n − s) verifies too: only the low-S form is accepted, so a token has one encoding.
    if sig.normalize_s().is_some() {
        return Err(TokenError::Signature);
    }
    let signing_input = &token[..h.len() + 1 + p.len()];
    key.verify(signing_input.as_bytes(), &sig).map_err(|_| TokenError::Signature)?;
    let claims = json::parse(&decode_segment(p)?).map_err(|_| TokenError::Malformed)?;
    if !matches!(claims, Value::Object(_)) {
        return Err(TokenError::Malformed);
    }
    Ok(Verified { kid, claims })
}

/// Whether `aud` is `audience` or an array that holds it (RFC 7519 §4.1.3).
pub fn audience_contains(claims: &Value, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// A merchant's end-user identity issuer, which signs the `X-Access-Token`s of its requests:
/// its keys and, where the merchant registered them, the `iss` its tokens must carry and the
/// audience their `aud` must contain.
#[derive(Debug, Default)]
pub struct IdentityVerifier {
    /// kid → key.
    pub keys: HashMap<String, VerifyingKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl IdentityVerifier {
    /// Reads a registered JWK Set (`{"keys": [...]}`); keys other than EC P-256 with a `kid`
    /// are skipped, and text that is not a JWK Set gives no keys.
    pub fn new(jwks: Option<&str>, issuer: Option<String>, audience: Option<String>) -> Self {
        let keys = jwks
            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
            .and_then(|v| v.get("keys").and_then(|k| k.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(verifying_key_from_jwk)
            .collect();
        IdentityVerifier { keys, issuer, audience }
    }

    /// Whether a key is registered: without one no token can be verified.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies an identity token at `now` (seconds) and returns its `sub`.
    pub fn subject(&self, token: &str, now: i64, leeway: i64) -> Result<String, TokenError> {
        let verified = verify_es256(token, None, |kid| self.keys.get(kid).copied())?;
        let claims = &verified.claims;
        check_times(claims, now, leeway, None)?;
        if let Some(issuer) = &self.issuer
            && str_claim(claims, "iss")? != issuer
        {
            return Err(TokenError::Claim("iss"));
        }
        if let Some(audience) = &self.audience
            && !audience_contains(claims, audience)
        {
            return Err(TokenError::Claim("aud"));
        }
        Ok(str_claim(claims, "sub")?.to_owned())
    }
}

/// A claim as an integer (NumericDate).
pub fn int_claim(claims: &Value, name: &'static str) -> Result<i64, TokenError> {
    match claims.get(name) {
        Some(Value::Number(n)) => smartpay_domain::money::parse_minor(n, 0).map_err(|_| TokenError::Claim(name)),
        _ => Err(TokenError::Claim(name)),
    }
}

/// A claim as a string.
pub fn str_claim<'a>(claims: &'a Value, name: &'static str) -> Result<&'a str, TokenError> {
    claims.get(name).and_then(Value::as_str).ok_or(TokenError::Claim(name))
}

/// Checks `exp`, `nbf` and `iat` against `now` (seconds) with `leeway` seconds.
pub fn check_times(claims: &Value, now: i64, leeway: i64, max_lifetime: Option<i64>) -> Result<i64, TokenError> {
    let exp = int_claim(claims, "exp")?;
    if now > exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    // A present `nbf` must be a NumericDate in the past (within leeway).
    if claims.get("nbf").is_some() && int_claim(claims, "nbf")? > now.saturating_add(leeway) {
        return Err(TokenError::NotYetValid);
    }
    if let Some(max) = max_lifetime {
        let iat = int_claim(claims, "iat")?;
        if iat > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        if exp.saturating_sub(iat) > max {
            return Err(TokenError::Claim("exp"));
        }
    }
    Ok(exp)
}

/// The claims of a new access token, as JSON text.
pub fn access_claims(
    issuer: &str,
    client_id: &str,
    merchant_key: &str,
    now: i64,
    ttl: i64,
) -> Result<String, SecretError> {
    let jti = URL_SAFE_NO_PAD.encode(random_array::<16>()?);
    Ok(serde_json::json!({
        "iss": issuer, "aud": AUDIENCE, "sub": client_id, "client_id": client_id,
        "merchant_key": merchant_key, "iat": now, "exp": now + ttl, "jti": jti,
    })
    .to_string())
}

#[cfg(test)]
mod tests;
