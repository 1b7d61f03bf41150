//! One delivery attempt: a signed POST to the merchant's URL, with its auth.
//!
//! The HTTP client follows no redirects (a 3xx is a failed attempt), uses no proxy (a proxy
//! would resolve names beyond our checks), has a total timeout, reads at most
//! [`MAX_ANSWER_BYTES`] of the answer and discards it. Before sending, the URL is checked
//! ([`check_url`]) and its host resolved and checked ([`resolve_checked`]); the client's own
//! resolver checks every address again at connect time, so a DNS answer that changes in between
//! (rebinding) can only make the attempt fail, never reach a forbidden address.
//!
//! OAuth client-credentials tokens are cached per (token URL, client id, client secret) until
//! shortly before they expire, by the caller's clock (`now_unix`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::signature::signature_header;
use crate::ssrf::{Profile, UrlError, check_all, check_url, lookup, resolve_checked};

/// Most of a receiver's answer that is read (then discarded).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024;
/// Most of a token endpoint's answer that is read.
pub const MAX_TOKEN_ANSWER_BYTES: usize = 16 * 1024;
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = "SmartPay-Notifications/1";
/// A token is renewed this long before it expires.
const TOKEN_RENEW_MARGIN_S: i64 = 30;
/// Lifetime assumed when a token answer has no `expires_in`.
const TOKEN_DEFAULT_LIFETIME_S: i64 = 300;
/// Longest lifetime a token is cached for, whatever the endpoint says.
const TOKEN_MAX_LIFETIME_S: i64 = 24 * 3600;

/// How SmartPay authenticates toward the merchant's endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// HTTP Basic.
    Basic {
        username: String,
        password: String,
    },
    /// A bearer token from the merchant's OAuth provider (client-credentials grant, client
    /// authenticated with HTTP Basic as RFC 6749 §2.3.1 prefers).
    OAuth {
        token_url: String,
        client_id: String,
        client_secret: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            Auth::OAuth { token_url, client_id, .. } => f
                .debug_struct("OAuth")
                .field("token_url", &redacted_url(token_url))
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Where and how one merchant receives notifications.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub auth: Auth,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("url", &redacted_url(&self.url)).field("auth", &self.auth).finish()
    }
}

/// A URL for Debug output: without user name and password; `<invalid url>` if unparseable.
fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() || !u.username().is_empty() {
                // Both calls only fail for URLs that cannot have userinfo, which then has none.
                let _ = u.set_password(None);
                let _ = u.set_username("");
            }
            u.to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

/// Why an attempt got no answer. The receiver's non-2xx answers are not errors: they are in
/// [`Attempt::status_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The notification or token URL is not allowed; nothing was sent.
    #[error("refused: {0}")]
    Refused(UrlError),
    /// No connection (refused, unreachable, or the host did not resolve).
    #[error("could not connect")]
    Connect,
    /// No complete answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The TLS handshake failed (or TLS is not available for an `https` URL).
    #[error("TLS failed")]
    Tls,
    /// No access token from the merchant's OAuth provider.
    #[error("could not get an OAuth token")]
    OAuth,
    /// Anything else (e.g. an event id that is not a valid header value).
    #[error("failed")]
    Other,
}

impl AttemptError {
    /// A stable `snake_case` code, recorded per attempt.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptError::Refused(_) => "refused",
            AttemptError::Connect => "connect",
            AttemptError::Timeout => "timeout",
            AttemptError::Tls => "tls",
            AttemptError::OAuth => "oauth",
            AttemptError::Other => "other",
        }
    }
}

impl From<UrlError> for AttemptError {
    fn from(e: UrlError) -> Self {
        match e {
            UrlError::Resolve | UrlError::NoAddress => AttemptError::Connect,
            e => AttemptError::Refused(e),
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status code, when it answered.
    pub status_code: Option<u16>,
    /// Why it did not answer; `None` when it did.
    pub error: Option<AttemptError>,
    /// Wall time of the attempt, token fetch included.
    pub duration_ms: u64,
}

impl Attempt {
    /// Whether the receiver answered 2xx.
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// A cache key: a token is reused only for the same endpoint, client and secret, so a second
/// merchant naming someone else's client id without its secret gets no token.
#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    token_url: String,
    client_id: String,
    secret_sha256: [u8; 32],
}

struct CachedToken {
    access_token: String,
    /// Unix seconds after which the token is fetched anew.
    renew_at: i64,
}

/// The part of a token answer we use.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<i64>,
}

/// The client's resolver: the system's, with every address checked against the profile.
struct CheckedResolver {
    profile: Profile,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let profile = self.profile;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = check_all(lookup(&host, 0).await?, profile)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends notifications. One per server; cheap to share behind an `Arc`.
pub struct Deliverer {
    profile: Profile,
    /// `None` only if the HTTP client could not be built; every attempt then fails as `Other`.
    http: Option<reqwest::Client>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliverer").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Deliverer {
    /// A deliverer for `profile` whose requests (token requests included) each take at most
    /// `timeout`.
    pub fn new(profile: Profile, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(USER_AGENT)
            .dns_resolver(Arc::new(CheckedResolver { profile }))
            .build();
        if http.is_err() {
            tracing::error!("the notification HTTP client could not be built; deliveries will fail");
        }
        Deliverer { profile, http: http.ok(), tokens: Mutex::new(HashMap::new()) }
    }

    /// One attempt: POSTs `body` to `target` with `Content-Type: application/json`,
    /// `User-Agent`, `SmartPay-Event-Id: event_id`,
    /// `SmartPay-Signature: signature_header(secrets, now_unix, body)` and the target's auth.
    /// `now_unix` is also the clock of the token cache.
    pub async fn deliver(
        &self,
        target: &Target,
        event_id: &str,
        body: &[u8],
        secrets: &[&[u8]],
        now_unix: i64,
    ) -> Attempt {
        let started = Instant::now();
        let (status_code, error) = match self.attempt(target, event_id, body, secrets, now_unix).await {
            Ok(code) => (Some(code), None),
            Err(e) => (None, Some(e)),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Attempt { status_code, error, duration_ms }
    }

    /// The receiver's status code, or why there is none.
    async fn attempt(
        &self,
        target: &Target,
        event_id: &str,
        body: &[u8],
        secrets: &[&[u8]],
        now_unix: i64,
    ) -> Result<u16, AttemptError> {
        let http = self.http.as_ref().ok_or(AttemptError::Other)?;
        let url = check_url(&target.url, self.profile)?;
        let event_id = HeaderValue::from_str(event_id).map_err(|_| AttemptError::Other)?;
        let mut request = http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("SmartPay-Event-Id", event_id)
            .header("SmartPay-Signature", signature_header(secrets, now_unix, body))
            .body(body.to_vec());
        let mut token_key = None;
        match &target.auth {
            Auth::None => {}
            Auth::Basic { username, password } => request = request.basic_auth(username, Some(password)),
            Auth::OAuth { token_url, client_id, client_secret } => {
                let key = TokenKey {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    secret_sha256: Sha256::digest(client_secret.as_bytes()).into(),
                };
                let token = self.token(http, &key, client_secret, now_unix).await?;
                request = request.bearer_auth(token);
                token_key = Some(key);
            }
        }
        // Refusals are reported precisely here; the client's resolver checks again at connect.
        resolve_checked(&url, self.profile).await?;
        let mut response = request.send().await.map_err(|e| classify(&e, &url))?;
        let status = response.status().as_u16();
        // The answer is read only to let the connection be reused; its content is not kept.
        let _ = read_bounded(&mut response, MAX_ANSWER_BYTES).await;
        if status == 401
            && let Some(key) = token_key
        {
            self.forget_token(&key);
        }
        Ok(status)
    }

    /// A valid cached token for `key`, or a new one from its endpoint.
    async fn token(
        &self,
        http: &reqwest::Client,
        key: &TokenKey,
        client_secret: &str,
        now_unix: i64,
    ) -> Result<String, AttemptError> {
        if let Some(token) = self.cached_token(key, now_unix) {
            return Ok(token);
        }
        let url = check_url(&key.token_url, self.profile)?;
        resolve_checked(&url, self.profile).await?;
        let sent = http
            .post(url)
            .basic_auth(&key.client_id, Some(client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        let mut response = sent.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "no answer from the OAuth token endpoint");
            AttemptError::OAuth
        })?;
        if !response.status().is_success() {
            tracing::warn!(status = response.status().as_u16(), "the OAuth token endpoint refused");
            return Err(AttemptError::OAuth);
        }
        let answer = read_bounded(&mut response, MAX_TOKEN_ANSWER_BYTES).await.ok_or(AttemptError::OAuth)?;
        let answer: TokenAnswer = serde_json::from_slice(&answer).map_err(|_| AttemptError::OAuth)?;
        let bearer = answer.token_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("bearer"));
        if !bearer || answer.access_token.is_empty() || HeaderValue::from_str(&answer.access_token).is_err() {
            return Err(AttemptError::OAuth);
        }
        let lifetime = answer.expires_in.unwrap_or(TOKEN_DEFAULT_LIFETIME_S).min(TOKEN_MAX_LIFETIME_S);
        self.store_token(key, &answer.access_token, now_unix, lifetime);
        Ok(answer.access_token)
    }

    fn cached_token(&self, key: &TokenKey, now_unix: i64) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        tokens.get(key).filter(|t| now_unix < t.renew_at).map(|t| t.access_token.clone())
    }

    /// Caches a token until `TOKEN_RENEW_MARGIN_S` before it expires (not at all if it lives
    /// shorter than that) and drops the expired ones.
    fn store_token(&self, key: &TokenKey, access_token: &str, now_unix: i64, lifetime_s: i64) {
        let renew_at = now_unix.saturating_add(lifetime_s.saturating_sub(TOKEN_RENEW_MARGIN_S));
        let Ok(mut tokens) = self.tokens.lock() else { return };
        tokens.retain(|_, t| t.renew_at > now_unix);
        if renew_at > now_unix {
            tokens.insert(key.clone(), CachedToken { access_token: access_token.to_string(), renew_at });
        }
    }

    fn forget_token(&self, key: &TokenKey) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(key);
        }
    }
}

/// What a failed send means for the attempt.
fn classify(e: &reqwest::Error, url: &url::Url) -> AttemptError {
    if let Some(refusal) = find_source::<UrlError>(e) {
        return AttemptError::from(*refusal);
    }
    if e.is_timeout() {
        return AttemptError::Timeout;
    }
    if url.scheme() == "https" && looks_like_tls(e) {
        return AttemptError::Tls;
    }
    if e.is_connect() {
        return AttemptError::Connect;
    }
    tracing::warn!(error = %e, "notification attempt failed");
    AttemptError::Other
}

/// The first error of type `T` in `e`'s source chain.
fn find_source<T: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<T>() {
            return Some(t);
        }
        source = s.source();
    }
    None
}

/// A TLS failure: rustls and native-tls surface handshake errors as `InvalidData` I/O errors or
/// errors naming TLS, the handshake or the certificate; a build without TLS refuses `https` with
/// "scheme is not http" (hyper-util's connector).
fn looks_like_tls(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData) {
            return true;
        }
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("scheme is not http")
            || ["tls", "certificate", "handshake", "corrupt message", "invalid peer"].iter().any(|w| text.contains(w))
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Up to `limit` bytes of the body; `None` when it is longer or breaks off.
async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_every_secret() {
        let targets = [
            Target {
                url: "https://hooks.example.com/x".into(),
                auth: Auth::Basic { username: "merchant".into(), password: "pw-SECRET-1".into() },
            },
            Target {
                url: "https://user:pw-SECRET-2@hooks.example.com/x".into(),
                auth: Auth::OAuth {
                    token_url: "https://id:pw-SECRET-3@auth.example.com/token".into(),
                    client_id: "client-1".into(),
                    client_secret: "cs-SECRET-4".into(),
                },
            },
        ];
        for t in &targets {
            let debug = format!("{t:?} {:?}", t.auth);
            assert!(!debug.contains("SECRET"), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
        }
        assert!(format!("{:?}", targets[0]).contains("merchant"));
        assert!(format!("{:?}", targets[1]).contains("client-1"));
    }

    #[test]
    fn delivered_means_an_answer_in_2xx() {
        let a = |status_code, error| Attempt { status_code, error, duration_ms: 1 };
        assert!(a(Some(200), None).delivered());
        assert!(a(Some(204), None).delivered());
        assert!(!a(Some(302), None).delivered());
        assert!(!a(Some(500), None).delivered());
        assert!(!a(None, Some(AttemptError::Timeout)).delivered());
        assert!(!a(Some(199), None).delivered());
    }

    #[test]
    fn attempt_error_codes() {
        assert_eq!(AttemptError::Refused(UrlError::Scheme).as_str(), "refused");
        assert_eq!(AttemptError::Refused(UrlError::Scheme).to_string(), "refused: the URL's scheme is not allowed");
        assert_eq!(AttemptError::from(UrlError::Resolve), AttemptError::Connect);
        assert_eq!(AttemptError::from(UrlError::ForbiddenAddress), AttemptError::Refused(UrlError::ForbiddenAddress));
        assert_eq!(AttemptError::OAuth.as_str(), "oauth");
    }

    #[tokio::test]
    async fn the_clients_resolver_refuses_names_of_forbidden_addresses() {
        let name: Name = "localhost".parse().unwrap();
        let refused = CheckedResolver { profile: Profile::Production }.resolve(name).await;
        let err = refused.err().unwrap();
        assert_eq!(err.downcast_ref::<UrlError>(), Some(&UrlError::ForbiddenAddress));
        let name: Name = "localhost".parse().unwrap();
        let allowed = CheckedResolver { profile: Profile::Sandbox }.resolve(name).await.unwrap();
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
