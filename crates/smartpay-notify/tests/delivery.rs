//! Deliveries over real HTTP to an axum receiver on loopback (Sandbox profile): retries until
//! a 2xx with the same event id and a verifiable signature (row D6), secret rotation, Basic and
//! OAuth auth with the token cache, redirects not followed, timeouts, refusals in Production
//! without any connection (row D8).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine;
use smartpay_notify::*;

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"whsec-current-0123456789";
const OLD_SECRET: &[u8] = b"whsec-previous-9876543210";

/// One request as the receiver saw it.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
}

#[derive(Default)]
struct Receiver {
    /// Requests to `/hook` (and `/unauthorized`).
    hooks: Mutex<Vec<Received>>,
    /// Requests to `/token`.
    tokens: Mutex<Vec<Received>>,
    /// Requests to `/followed`, the target of `/redirect`.
    followed: AtomicUsize,
    /// `/hook` answers 500 to this many requests first.
    fail_first: usize,
}

impl Receiver {
    fn hooks(&self) -> Vec<Received> {
        self.hooks.lock().unwrap().clone()
    }
    fn token_requests(&self) -> usize {
        self.tokens.lock().unwrap().len()
    }
}

fn record(list: &Mutex<Vec<Received>>, headers: HeaderMap, body: Bytes) -> usize {
    let mut list = list.lock().unwrap();
    list.push(Received { headers, body: body.to_vec() });
    list.len()
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = record(&r.hooks, headers, body);
    if n <= r.fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

async fn unauthorized(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    record(&r.hooks, headers, body);
    StatusCode::UNAUTHORIZED
}

/// A client-credentials token endpoint for client `client-1` with secret `cs-1`.
async fn token(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("client-1:cs-1"));
    let n = record(&r.tokens, headers.clone(), body.clone());
    let auth_ok = headers.get(header::AUTHORIZATION).is_some_and(|v| v.to_str().unwrap() == expected);
    if !auth_ok || body.as_ref() != b"grant_type=client_credentials" {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response();
    }
    let answer = serde_json::json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600});
    ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
}

async fn redirect() -> impl IntoResponse {
    (StatusCode::FOUND, [(header::LOCATION, "/followed")])
}

async fn followed(State(r): State<Arc<Receiver>>) -> StatusCode {
    r.followed.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

/// Never answers.
async fn silent() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// 2xx with an answer far larger than what the deliverer reads.
async fn big() -> impl IntoResponse {
    (StatusCode::OK, vec![b'x'; 1 << 20])
}

/// Starts a receiver; its base URL (`http://127.0.0.1:<port>`) and its records.
async fn receiver(fail_first: usize) -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver { fail_first, ..Receiver::default() });
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .route("/unauthorized", post(unauthorized))
        .route("/token", post(token))
        .route("/redirect", post(redirect))
        .route("/followed", post(followed).get(followed))
        .route("/silent", post(silent))
        .route("/big", post(big))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state)
}

fn event() -> Event {
    Event {
        id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        merchant_key: "31928de9-1344-469f-b0eb-8e5d0fef3d21".into(),
        created_at_ms: NOW * 1000 + 123,
        origin: Origin::Api,
        object_type: ObjectType::Payment,
        object_id: "933a0fab-80a0-42c5-b010-c71174f4ab32".into(),
        modification_id: None,
        transaction_id: "933a0fab-80a0-42c5-b010-c71174f4ab32".into(),
        status: "CAPTURED".into(),
        reconciliation_reference_id: Some("RTEvocd9ZkGirboB8haVlw".into()),
    }
}

fn sandbox() -> Deliverer {
    Deliverer::new(Profile::Sandbox, Duration::from_secs(10))
}

fn target(url: String) -> Target {
    Target { url, auth: Auth::None }
}

#[tokio::test]
async fn d6_five_failures_then_delivered_with_the_same_event_id_and_valid_signatures() {
    let (base, rx) = receiver(5).await;
    let d = sandbox();
    let e = event();
    let body = payload(&e);
    let t = target(format!("{base}/hook"));
    let mut attempts = Vec::new();
    for i in 0..6 {
        // Each retry signs with the time it is sent.
        attempts.push(d.deliver(&t, &e.id, &body, &[SECRET], NOW + i * 60).await);
    }
    for a in &attempts[..5] {
        assert_eq!((a.status_code, a.error), (Some(500), None));
        assert!(!a.delivered());
    }
    assert_eq!((attempts[5].status_code, attempts[5].error), (Some(200), None));
    assert!(attempts[5].delivered());

    let seen = rx.hooks();
    assert_eq!(seen.len(), 6);
    for (i, r) in (0i64..).zip(&seen) {
        assert_eq!(r.header("smartpay-event-id"), e.id);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("user-agent"), USER_AGENT);
        assert_eq!(r.header("authorization"), "");
        assert_eq!(r.body, body, "same bytes on every attempt");
        let sig = r.header("smartpay-signature");
        let sent_at = NOW + i * 60;
        assert!(sig.starts_with(&format!("t={sent_at},v1=")), "{sig}");
        assert_eq!(verify(sig, &r.body, &[SECRET], sent_at, 300), Ok(()));
        // One byte changed: no match.
        let mut tampered = r.body.clone();
        tampered[10] ^= 1;
        assert_eq!(verify(sig, &tampered, &[SECRET], sent_at, 300), Err(VerifyError::NoMatch));
        // Checked more than 300 s later: stale.
        assert_eq!(verify(sig, &r.body, &[SECRET], sent_at + 301, 300), Err(VerifyError::Stale));
        assert_eq!(verify(sig, &r.body, &[OLD_SECRET], sent_at, 300), Err(VerifyError::NoMatch));
    }
}

#[tokio::test]
async fn during_rotation_both_signatures_are_sent_and_each_verifies_alone() {
    let (base, rx) = receiver(0).await;
    let e = event();
    let body = payload(&e);
    let a = sandbox().deliver(&target(format!("{base}/hook")), &e.id, &body, &[OLD_SECRET, SECRET], NOW).await;
    assert!(a.delivered());
    let r = &rx.hooks()[0];
    let sig = r.header("smartpay-signature");
    assert_eq!(sig.matches(",v1=").count(), 2, "{sig}");
    assert_eq!(verify(sig, &r.body, &[OLD_SECRET], NOW, 300), Ok(()));
    assert_eq!(verify(sig, &r.body, &[SECRET], NOW, 300), Ok(()));
    assert_eq!(verify(sig, &r.body, &[b"unrelated"], NOW, 300), Err(VerifyError::NoMatch));
    // Each v1 alone is the one of its secret.
    let parts: Vec<&str> = sig.split(',').collect();
    assert_eq!(verify(&format!("{},{}", parts[0], parts[1]), &r.body, &[OLD_SECRET], NOW, 300), Ok(()));
    assert_eq!(verify(&format!("{},{}", parts[0], parts[2]), &r.body, &[SECRET], NOW, 300), Ok(()));
    assert_eq!(verify(&format!("{},{}", parts[0], parts[1]), &r.body, &[SECRET], NOW, 300), Err(VerifyError::NoMatch));
}

#[tokio::test]
async fn basic_auth_reaches_the_receiver() {
    let (base, rx) = receiver(0).await;
    let t = Target {
        url: format!("{base}/hook"),
        auth: Auth::Basic { username: "merchant".into(), password: "s3cret:pw".into() },
    };
    let a = sandbox().deliver(&t, "ev-1", b"{}", &[SECRET], NOW).await;
    assert!(a.delivered(), "{a:?}");
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("merchant:s3cret:pw"));
    assert_eq!(rx.hooks()[0].header("authorization"), expected);
}

fn oauth(base: &str, path: &str, secret: &str) -> Target {
    Target {
        url: format!("{base}{path}"),
        auth: Auth::OAuth {
            token_url: format!("{base}/token"),
            client_id: "client-1".into(),
            client_secret: secret.into(),
        },
    }
}

#[tokio::test]
async fn oauth_tokens_are_fetched_cached_and_renewed_before_expiry() {
    let (base, rx) = receiver(0).await;
    let d = sandbox();
    let t = oauth(&base, "/hook", "cs-1");
    assert!(d.deliver(&t, "ev-1", b"{}", &[SECRET], NOW).await.delivered());
    assert!(d.deliver(&t, "ev-2", b"{}", &[SECRET], NOW + 3000).await.delivered());
    assert_eq!(rx.token_requests(), 1, "the second delivery reuses the token");
    // 3600 s lifetime, renewed 30 s before it ends.
    assert!(d.deliver(&t, "ev-3", b"{}", &[SECRET], NOW + 3570).await.delivered());
    assert_eq!(rx.token_requests(), 2, "an expiring token is fetched anew");
    let auths: Vec<String> = rx.hooks().iter().map(|r| r.header("authorization").to_string()).collect();
    assert_eq!(auths, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
    let token_request = rx.tokens.lock().unwrap()[0].clone();
    assert_eq!(token_request.header("content-type"), "application/x-www-form-urlencoded");
}

#[tokio::test]
async fn a_cached_token_is_not_given_to_a_target_with_another_secret() {
    let (base, rx) = receiver(0).await;
    let d = sandbox();
    assert!(d.deliver(&oauth(&base, "/hook", "cs-1"), "ev-1", b"{}", &[SECRET], NOW).await.delivered());
    // Same token endpoint and client id, wrong secret: the endpoint is asked and refuses.
    let a = d.deliver(&oauth(&base, "/hook", "wrong"), "ev-2", b"{}", &[SECRET], NOW).await;
    assert_eq!((a.status_code, a.error), (None, Some(AttemptError::OAuth)));
    assert_eq!(rx.token_requests(), 2);
    assert_eq!(rx.hooks().len(), 1, "nothing sent without a token");
}

#[tokio::test]
async fn a_401_from_the_receiver_drops_the_cached_token() {
    let (base, rx) = receiver(0).await;
    let d = sandbox();
    let t = oauth(&base, "/unauthorized", "cs-1");
    for now in [NOW, NOW + 1] {
        let a = d.deliver(&t, "ev-1", b"{}", &[SECRET], now).await;
        assert_eq!((a.status_code, a.error), (Some(401), None));
    }
    assert_eq!(rx.token_requests(), 2, "the token the receiver refused is not reused");
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let (base, rx) = receiver(0).await;
    let a = sandbox().deliver(&target(format!("{base}/redirect")), "ev-1", b"{}", &[SECRET], NOW).await;
    assert_eq!((a.status_code, a.error), (Some(302), None));
    assert!(!a.delivered());
    assert_eq!(rx.followed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_times_out() {
    let (base, _rx) = receiver(0).await;
    let d = Deliverer::new(Profile::Sandbox, Duration::from_millis(300));
    let a = d.deliver(&target(format!("{base}/silent")), "ev-1", b"{}", &[SECRET], NOW).await;
    assert_eq!((a.status_code, a.error), (None, Some(AttemptError::Timeout)));
    assert_eq!(a.error.unwrap().as_str(), "timeout");
}

#[tokio::test]
async fn a_large_answer_is_not_read_whole_and_does_not_fail_the_attempt() {
    let (base, _rx) = receiver(0).await;
    let a = sandbox().deliver(&target(format!("{base}/big")), "ev-1", b"{}", &[SECRET], NOW).await;
    assert!(a.delivered(), "{a:?}");
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let a = sandbox().deliver(&target(format!("http://{addr}/hook")), "ev-1", b"{}", &[SECRET], NOW).await;
    assert_eq!((a.status_code, a.error), (None, Some(AttemptError::Connect)));
}

#[tokio::test]
async fn https_to_a_plain_http_receiver_is_a_tls_failure() {
    let (base, rx) = receiver(0).await;
    let url = format!("{}/hook", base.replacen("http://", "https://", 1));
    let a = sandbox().deliver(&target(url), "ev-1", b"{}", &[SECRET], NOW).await;
    assert_eq!((a.status_code, a.error), (None, Some(AttemptError::Tls)));
    assert!(rx.hooks().is_empty());
}

#[tokio::test]
async fn an_event_id_that_is_not_a_header_value_fails_without_sending() {
    let (base, rx) = receiver(0).await;
    let a = sandbox().deliver(&target(format!("{base}/hook")), "ev\n1", b"{}", &[SECRET], NOW).await;
    assert_eq!(a.error, Some(AttemptError::Other));
    assert!(rx.hooks().is_empty());
}

#[tokio::test]
async fn production_refuses_loopback_receivers_without_connecting() {
    let (base, rx) = receiver(0).await;
    let port = base.rsplit(':').next().unwrap();
    let d = Deliverer::new(Profile::Production, Duration::from_secs(5));
    let cases = [
        (format!("{base}/hook"), UrlError::Scheme),
        (format!("https://127.0.0.1:{port}/hook"), UrlError::IpLiteral),
        (format!("https://[::1]:{port}/hook"), UrlError::IpLiteral),
        (format!("https://localhost:{port}/hook"), UrlError::ForbiddenAddress),
        (format!("https://user:pw@localhost:{port}/hook"), UrlError::UserInfo),
    ];
    for (url, why) in cases {
        let a = d.deliver(&target(url.clone()), "ev-1", b"{}", &[SECRET], NOW).await;
        assert_eq!((a.status_code, a.error), (None, Some(AttemptError::Refused(why))), "{url}");
    }
    // An OAuth token endpoint on loopback is refused the same way, before the receiver is tried.
    let t = Target {
        url: "https://hooks.example.com/x".into(),
        auth: Auth::OAuth {
            token_url: format!("https://localhost:{port}/token"),
            client_id: "client-1".into(),
            client_secret: "cs-1".into(),
        },
    };
    let a = d.deliver(&t, "ev-1", b"{}", &[SECRET], NOW).await;
    assert_eq!(a.error, Some(AttemptError::Refused(UrlError::ForbiddenAddress)));
    assert!(rx.hooks().is_empty());
    assert_eq!(rx.token_requests(), 0);
}

#[tokio::test]
async fn sandbox_refuses_a_token_endpoint_on_a_private_address() {
    let (base, rx) = receiver(0).await;
    let t = Target {
        url: format!("{base}/hook"),
        auth: Auth::OAuth {
            token_url: "http://169.254.169.254/latest/meta-data/iam".into(),
            client_id: "client-1".into(),
            client_secret: "cs-1".into(),
        },
    };
    let a = sandbox().deliver(&t, "ev-1", b"{}", &[SECRET], NOW).await;
    assert_eq!(a.error, Some(AttemptError::Refused(UrlError::ForbiddenAddress)));
    assert!(rx.hooks().is_empty());
}
