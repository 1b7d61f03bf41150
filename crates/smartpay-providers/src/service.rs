//! Building blocks shared by the in-process fake services (the sandbox acquirer and the fake
//! PayU): the bearer-key check in front of a machine API, `{"error": "<code>"}` answers that never
//! echo a request, input checks, security headers for shopper-facing pages, a bounded store
//! ([`books`]) and a background listener that stops gracefully or on drop.

pub mod books;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sandbox::wire::ErrorBody;

/// Longest idempotency key (and other client-chosen key) a fake service accepts.
pub const MAX_KEY_LEN: usize = 255;
/// Longest id looked up (the services' own ids are 22 characters).
pub const MAX_ID_LEN: usize = 64;
/// Most origins one request may name as the ancestors of a page shown inside frames.
pub const MAX_FRAME_ANCESTORS: usize = 16;

/// A random API key (about 260 bits, base62).
pub fn random_key() -> String {
    format!("{}{}", crate::new_reference(), crate::new_reference())
}

/// An `InvalidInput` error naming the service.
pub fn invalid(service: &str, msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{service}: {msg}"))
}

/// An absolute http(s) URL with a host.
pub fn web_url(s: &str) -> Option<Url> {
    let url = Url::parse(s).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
}

/// [`web_url`] for a configuration field: the error names the service and the field.
pub fn config_url(service: &str, s: &str, what: &str) -> std::io::Result<Url> {
    web_url(s).ok_or_else(|| invalid(service, &format!("{what} must be an absolute http(s) URL")))
}

/// Checks that a configured API key is strong enough to guard a machine API.
pub fn check_api_key(service: &str, key: &str, what: &str) -> std::io::Result<()> {
    if key.len() < 16 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(service, &format!("{what} must be at least 16 visible ASCII characters")));
    }
    Ok(())
}

/// `scheme://host[:port]` of http(s), exactly as serialized (so it is safe inside a CSP).
pub fn is_origin(o: &str) -> bool {
    o.len() <= 200
        && Url::parse(o).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.origin().ascii_serialization() == o)
}

/// At most [`MAX_FRAME_ANCESTORS`] exact origins.
pub fn valid_ancestors(ancestors: &[String]) -> bool {
    ancestors.len() <= MAX_FRAME_ANCESTORS && ancestors.iter().all(|o| is_origin(o))
}

/// A non-empty key of at most [`MAX_KEY_LEN`] visible ASCII characters.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
}

/// Three upper-case ASCII letters.
pub fn valid_currency(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())
}

/// `{"error": code}` with `status`.
pub fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(ErrorBody { error: code.to_owned() })).into_response()
}

/// A 400 answer with `code`.
pub fn bad(code: &str) -> Response {
    error(StatusCode::BAD_REQUEST, code)
}

/// A 404 `not_found` answer.
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found")
}

/// A body the JSON reader refused. Its text may quote the request (card data included), so only
/// a code is answered.
pub fn rejected(e: &JsonRejection) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
    bad("malformed_request")
}

/// A capture, refund or cancellation request both fake providers take, checked the same way:
/// a JSON body with a positive amount, an ISO currency and a valid idempotency key, for an id
/// no longer than [`MAX_ID_LEN`] (a longer one is unknown: 404). The refusal is the answer.
#[allow(clippy::result_large_err)] // the error is the handler's response, returned at once
pub fn modification_request(
    id: &str,
    body: Result<axum::Json<crate::sandbox::wire::ModificationRequest>, JsonRejection>,
) -> Result<crate::sandbox::wire::ModificationRequest, Response> {
    let req = match body {
        Ok(axum::Json(req)) => req,
        Err(e) => return Err(rejected(&e)),
    };
    if req.amount <= 0 {
        return Err(bad("invalid_amount"));
    }
    if !valid_currency(&req.currency) {
        return Err(bad("invalid_currency"));
    }
    if !valid_key(&req.idempotency_key) {
        return Err(bad("invalid_idempotency_key"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(not_found());
    }
    Ok(req)
}
/// The exact `Authorization` header a machine API expects: `Bearer <key>`.
#[derive(Clone)]
pub struct Bearer(Arc<[u8]>);

impl Bearer {
    pub fn new(key: &str) -> Self {
        Bearer(format!("Bearer {key}").into_bytes().into())
    }
}

/// Middleware: anything without the bearer key (compared in constant time) is answered 401
/// before any state is read, unknown paths included.
pub async fn require_bearer(State(expected): State<Bearer>, req: Request, next: Next) -> Response {
    let ok = req.headers().get(header::AUTHORIZATION).is_some_and(|v| bool::from(v.as_bytes().ct_eq(&expected.0)));
    if !ok {
        let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

/// Middleware: every request waits `latency` before it is handled (a provider far away).
pub async fn delay_request(State(latency): State<Duration>, req: Request, next: Next) -> Response {
    tokio::time::sleep(latency).await;
    next.run(req).await
}

/// Middleware: every request is handled at once and its answer waits `latency` (a provider that
/// does the work but answers late, so a caller that gave up can still find what it asked for).
pub async fn delay_answer(State(latency): State<Duration>, req: Request, next: Next) -> Response {
    let answer = next.run(req).await;
    tokio::time::sleep(latency).await;
    answer
}

/// The headers of a shopper-facing page shown inside frames: its CSP, no sniffing, no referrer,
/// no caching.
pub fn page_headers(r: &mut Response, csp: HeaderValue) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A machine API served in the background on its own listener.
pub struct Background {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Background {
    /// Binds `listen` and serves `router` until stopped. `service` names it in the error log.
    pub async fn serve(listen: SocketAddr, router: Router, service: &'static str) -> std::io::Result<Background> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(service, error = %e, "API listener stopped");
            }
        });
        Ok(Background { addr, stop: Some(stop), task: Some(task) })
    }

    /// Stops accepting, lets requests in flight finish, and waits for the listener to close.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Background {
    /// Stops the listener at once.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
