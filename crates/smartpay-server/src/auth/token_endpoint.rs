//! The token endpoint's use case (RFC 6749 §4.4, client credentials): reads the form, checks
//! the client's credentials under the brute-force lockout, and issues an access token. No HTTP
//! types: `http/error.rs` renders [`OAuthError`] as RFC 6749 §5.2 error responses.
//!
//! Every step is linear in the size of the (small, bounded) body, so a hostile form costs
//! microseconds: the body limit is a few KiB, the parameter count is capped, and repeated
//! parameters are found with a set.

use std::collections::HashSet;
use std::net::IpAddr;

use smartpay_store::StoreError;

use super::{Authenticator, ClientAuthError};
use crate::limiter::AuthLockout;

/// Most parameters a token request may have (RFC 6749 needs at most four).
const MAX_PARAMS: usize = 16;

/// Why a token request failed: the RFC 6749 §5.2 error and what to tell the client.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `invalid_request`: malformed, repeated or missing parameters.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The form is larger than the endpoint accepts (413, `invalid_request`).
    #[error("form too large")]
    TooLarge { limit: usize },
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    #[error("invalid scope")]
    InvalidScope,
    /// `invalid_client` (401); `basic` when the client authenticated with HTTP Basic, which
    /// asks for a `WWW-Authenticate` challenge (RFC 6749 §5.2).
    #[error("invalid client: {description}")]
    InvalidClient { description: &'static str, basic: bool },
    /// Too many failed attempts from this client address (429 with `Retry-After`).
    #[error("locked out")]
    LockedOut { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no signing key")]
    NoSigningKey,
}

/// An issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// Percent-decoding of `application/x-www-form-urlencoded` (with `+` as space).
pub fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The parameters of a form body; a repeated parameter is an error (RFC 6749 §3.2).
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, zeroize::Zeroizing<String>)>, OAuthError> {
    let text = std::str::from_utf8(body).map_err(|_| OAuthError::InvalidRequest("the body is not UTF-8"))?;
    let mut params = Vec::new();
    let mut seen = HashSet::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        if params.len() == MAX_PARAMS {
            return Err(OAuthError::InvalidRequest("too many parameters"));
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (form_decode(k), form_decode(v)) else {
            return Err(OAuthError::InvalidRequest("malformed form encoding"));
        };
        if !seen.insert(k.clone()) {
            return Err(OAuthError::InvalidRequest("a parameter is repeated"));
        }
        params.push((k, zeroize::Zeroizing::new(v)));
    }
    Ok(params)
}

/// A token request as the HTTP layer hands it over.
pub struct TokenRequest<'a> {
    /// The client's address (for the lockout).
    pub client_ip: IpAddr,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The form body (already limited in size).
    pub body: &'a [u8],
}

/// The client credentials grant.
pub async fn client_credentials(
    auth: &Authenticator,
    lockout: &AuthLockout,
    req: TokenRequest<'_>,
) -> Result<IssuedToken, OAuthError> {
    let params = parse_form(req.body)?;
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match param("grant_type") {
        None => return Err(OAuthError::InvalidRequest("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
    }
    if param("scope").is_some_and(|s| !s.trim().is_empty()) {
        return Err(OAuthError::InvalidScope);
    }
    let basic = req.authorization.filter(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case(b"basic "));
    let (client_id, secret, via_basic) = match (basic, param("client_id"), param("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::InvalidRequest("use one client authentication method, not two"));
        }
        (Some(h), _, None) => {
            // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
            match super::basic::parse(&h[6..])
                .and_then(|(u, p)| Some((form_decode(&u)?, zeroize::Zeroizing::new(form_decode(&p)?))))
            {
                Some((u, p)) => (u, p, true),
                None => {
                    lockout.failed(req.client_ip, "client");
                    return Err(OAuthError::InvalidClient { description: "client authentication failed", basic: true });
                }
            }
        }
        (None, Some(id), Some(secret)) => (id.to_owned(), zeroize::Zeroizing::new(secret.to_owned()), false),
        (None, _, _) => {
            return Err(OAuthError::InvalidClient { description: "client authentication is required", basic: false });
        }
    };
    // A client id longer than any we issue is still counted, under one shared key.
    let identity = if client_id.len() <= 64 { format!("client:{client_id}") } else { "client".to_owned() };
    if let Err(retry_after) = lockout.check(req.client_ip, &identity)
        && !auth.is_known_client(&client_id, &secret)
    {
        return Err(OAuthError::LockedOut { retry_after });
    }
    match auth.issue_token(&client_id, &secret).await {
        Ok(access_token) => {
            Ok(IssuedToken { access_token, expires_in: u64::try_from(auth.token_ttl()).unwrap_or(3600) })
        }
        Err(ClientAuthError::InvalidClient) => {
            lockout.failed(req.client_ip, &identity);
            tracing::info!("token request with invalid client credentials");
            Err(OAuthError::InvalidClient { description: "client authentication failed", basic: via_basic })
        }
        Err(ClientAuthError::Store(e)) => Err(OAuthError::Store(e)),
        Err(ClientAuthError::NoSigningKey) => Err(OAuthError::NoSigningKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_repeated_parameters_are_refused() {
        let p = parse_form(b"grant_type=client_credentials&client_id=a%2Bb&client_secret=x+y").unwrap();
        assert_eq!(p[1].0, "client_id");
        assert_eq!(p[1].1.as_str(), "a+b");
        assert_eq!(p[2].1.as_str(), "x y");
        assert!(matches!(parse_form(b"a=1&b=2&a=3"), Err(OAuthError::InvalidRequest("a parameter is repeated"))));
        assert!(matches!(parse_form(b"a=%zz"), Err(OAuthError::InvalidRequest("malformed form encoding"))));
        assert!(matches!(parse_form(b"a=%e2%28"), Err(OAuthError::InvalidRequest(_))), "not UTF-8 once decoded");
    }

    #[test]
    fn a_form_of_many_parameters_is_refused_after_a_few_without_quadratic_work() {
        let body: String = (0..100_000).map(|i| format!("p{i}=x&")).collect();
        assert!(matches!(parse_form(body.as_bytes()), Err(OAuthError::InvalidRequest("too many parameters"))));
        let body: String = (0..MAX_PARAMS).map(|i| format!("p{i}=x&")).collect();
        assert_eq!(parse_form(body.as_bytes()).unwrap().len(), MAX_PARAMS);
    }
}
