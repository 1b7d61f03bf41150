//! The fake acquirer behind the sandbox connector: an HTTP service with the behaviour of every
//! test card (CONTRACT §10), its own 3-D Secure challenge page, and configurable delays. It
//! keeps authorizations in memory and never keeps or logs a card number or CVC: a card only
//! decides the authorization's behaviour, which is all that is stored.
//!
//! [`spawn`] starts it in two parts. The machine API (`/v1/authorizations…`: authorize — where
//! repeating an idempotency key answers the first authorization —, look up, capture, refund,
//! cancel, and find by idempotency key) listens on its own loopback address and answers only requests carrying
//! `Authorization: Bearer <api_key>` (compared in constant time; anything else is 401 before any
//! state is read), with a 4 KiB body limit. The shopper-facing challenge page is a separate
//! router ([`SpawnedAcquirer::challenge_router`]) that SmartPay mounts on its public listener at
//! [`AcquirerConfig::public_base`]; its decision redirects only to [`AcquirerConfig::return_url`].
//!
//! Memory is bounded: at most [`AcquirerConfig::max_authorizations`] are kept (the oldest
//! finished one is forgotten to make room; when every old one is still undecided a new one is
//! refused with 503, see `books`), every stored string is length-checked (400 beyond
//! [`MAX_KEY_LEN`]), and each authorization keeps at most 32 modification answers (409 beyond).
//! Errors are `{"error": "<code>"}` and never echo the request.
//!
//! Cards can be stored: `POST /v1/tokens` answers a stateless token ([`tokens`]) that an
//! authorization sends instead of the card number (and may then leave out the CVC); the card
//! sealed in it behaves exactly as if its number had been sent.

mod books;
mod challenge;
pub mod tokens;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::Url;
use smartpay_domain::card::{CardNumber, Expiry};

use self::books::{Auth, Behaviour, Books};
use super::wire;
use crate::service::{
    Background, Bearer, MAX_ID_LEN, bad, error, not_found, rejected, valid_ancestors, valid_currency, valid_key,
};
pub use crate::service::{MAX_KEY_LEN, random_key};
/// Largest API request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// How the fake acquirer behaves and where it is reached.
#[derive(Clone)]
pub struct AcquirerConfig {
    /// Added to every answer.
    pub latency: Duration,
    /// How long "pending" cards stay pending before their final answer.
    pub pending_delay: Duration,
    /// How long the "no answer in time" card (…0408) makes the caller wait.
    pub slow_delay: Duration,
    /// URL prefix where the challenge router is mounted, as a browser reaches it (e.g. http://127.0.0.1:8080/sandbox-acquirer)
    pub public_base: String,
    /// The one page a challenge returns to (SmartPay's /widget/challenge-return, absolute URL)
    pub return_url: String,
    /// Origin allowed to frame the challenge page (SmartPay's own origin)
    pub frame_ancestor: String,
    /// Bearer secret the connector must send
    pub api_key: String,
    /// Most authorizations kept in memory at once.
    pub max_authorizations: usize,
    /// Where the machine API listens (loopback)
    pub listen: SocketAddr,
    /// The AES-256-GCM key that seals stored cards into tokens ([`tokens`]). Tokens made under
    /// one key work after a restart with the same key, and with no other. Never all zeros.
    pub token_key: [u8; 32],
}

impl Default for AcquirerConfig {
    /// A local sandbox next to a server on port 8080, with a fresh random API key.
    fn default() -> Self {
        AcquirerConfig {
            latency: Duration::ZERO,
            pending_delay: Duration::from_secs(5),
            slow_delay: Duration::from_secs(30),
            public_base: "http://127.0.0.1:8080/sandbox-acquirer".into(),
            return_url: "http://127.0.0.1:8080/widget/challenge-return".into(),
            frame_ancestor: "http://127.0.0.1:8080".into(),
            api_key: random_key(),
            max_authorizations: 100_000,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            token_key: random_token_key(),
        }
    }
}

/// A fresh random token key: the digest of a random API key (about 260 bits from the operating
/// system's random source), so tokens last as long as this process.
fn random_token_key() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(random_key().as_bytes()).into()
}

impl fmt::Debug for AcquirerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquirerConfig")
            .field("latency", &self.latency)
            .field("pending_delay", &self.pending_delay)
            .field("slow_delay", &self.slow_delay)
            .field("public_base", &self.public_base)
            .field("return_url", &self.return_url)
            .field("frame_ancestor", &self.frame_ancestor)
            .field("api_key", &"<redacted>")
            .field("max_authorizations", &self.max_authorizations)
            .field("listen", &self.listen)
            .field("token_key", &"<redacted>")
            .finish()
    }
}

/// A running acquirer. Dropping it stops the API listener at once; [`SpawnedAcquirer::shutdown`]
/// stops it gracefully.
pub struct SpawnedAcquirer {
    /// Where the machine API listens.
    pub api_addr: SocketAddr,
    /// The challenge page's routes, to be nested at [`AcquirerConfig::public_base`]'s path.
    pub challenge_router: Router,
    state: Shared,
    api: Background,
}

impl SpawnedAcquirer {
    /// The machine API's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// How many authorizations are kept in memory now.
    pub fn stored(&self) -> usize {
        self.state.books.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Stops accepting, lets requests in flight finish, and waits for the listener to close.
    pub async fn shutdown(mut self) {
        self.api.shutdown().await;
    }
}

impl fmt::Debug for SpawnedAcquirer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnedAcquirer").field("api_addr", &self.api_addr).finish_non_exhaustive()
    }
}

struct Acquirer {
    pending_delay: Duration,
    slow_delay: Duration,
    public_base: String,
    return_url: Url,
    challenge_csp: HeaderValue,
    max_authorizations: usize,
    books: Mutex<Books>,
    tokens: tokens::TokenKey,
}

type Shared = Arc<Acquirer>;

const SERVICE: &str = "sandbox acquirer";

fn invalid(msg: &str) -> std::io::Error {
    crate::service::invalid(SERVICE, msg)
}

fn web_url(s: &str, what: &str) -> std::io::Result<Url> {
    crate::service::config_url(SERVICE, s, what)
}

impl Acquirer {
    fn new(c: &AcquirerConfig) -> std::io::Result<Acquirer> {
        crate::service::check_api_key(SERVICE, &c.api_key, "api_key")?;
        if !c.listen.ip().is_loopback() {
            return Err(invalid("the API must listen on a loopback address"));
        }
        if c.token_key == [0; 32] {
            return Err(invalid("token_key must not be all zeros"));
        }
        if c.max_authorizations == 0 {
            return Err(invalid("max_authorizations must be at least 1"));
        }
        web_url(&c.public_base, "public_base")?;
        let return_url = web_url(&c.return_url, "return_url")?;
        let ancestor = web_url(&c.frame_ancestor, "frame_ancestor")?.origin().ascii_serialization();
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; base-uri 'none'; frame-ancestors {ancestor}",
            return_url.origin().ascii_serialization()
        );
        let challenge_csp = HeaderValue::from_str(&csp).map_err(|_| invalid("frame_ancestor is not a valid origin"))?;
        Ok(Acquirer {
            pending_delay: c.pending_delay,
            slow_delay: c.slow_delay,
            public_base: c.public_base.trim_end_matches('/').to_owned(),
            return_url,
            challenge_csp,
            max_authorizations: c.max_authorizations,
            books: Mutex::new(Books::default()),
            tokens: tokens::TokenKey::new(&c.token_key),
        })
    }
}

/// Starts the acquirer: binds the machine API on `config.listen` and serves it in the
/// background, and returns the challenge router for the caller to mount. Fails on a listener
/// error or an unusable configuration (non-loopback `listen`, short `api_key`, relative URLs).
pub async fn spawn(config: AcquirerConfig) -> std::io::Result<SpawnedAcquirer> {
    let state: Shared = Arc::new(Acquirer::new(&config)?);
    let api = api_router(state.clone(), &config);
    let api = Background::serve(config.listen, api, SERVICE).await?;
    Ok(SpawnedAcquirer { api_addr: api.addr, challenge_router: challenge::router(state.clone()), state, api })
}

fn api_router(state: Shared, config: &AcquirerConfig) -> Router {
    Router::new()
        .route("/v1/tokens", post(tokens::tokenize))
        .route("/v1/authorizations", post(authorize).get(find))
        .route("/v1/authorizations/{id}", get(authorization))
        .route("/v1/authorizations/{id}/captures", post(capture))
        .route("/v1/authorizations/{id}/refunds", post(refund))
        .route("/v1/authorizations/{id}/cancellations", post(cancel))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(config.latency, crate::service::delay_request))
        // Outermost: unauthenticated requests, unknown paths included, stop here.
        .layer(middleware::from_fn_with_state(Bearer::new(&config.api_key), crate::service::require_bearer))
        .with_state(state)
}

/// What a valid authorization request pays with: the card's behaviour and the expiry to check.
struct Checked {
    behaviour: Behaviour,
    expiry_month: u8,
    expiry_year: u16,
}

/// The card an authorization names, by its number or by its token; `Err` is the error code.
/// Exactly one of them must be given; the CVC is required with a number only.
fn payer(acq: &Acquirer, req: &wire::AuthorizationRequest) -> Result<Checked, &'static str> {
    match (req.pan.is_empty(), &req.token) {
        (false, None) => {
            if req.pan.len() > 32 {
                return Err("invalid_pan");
            }
            let Ok((pan, _)) = CardNumber::parse(&req.pan) else { return Err("invalid_pan") };
            if req.cvc.is_empty() {
                return Err("invalid_cvc");
            }
            Ok(Checked {
                behaviour: books::behaviour(pan.expose()),
                expiry_month: req.expiry_month,
                expiry_year: req.expiry_year,
            })
        }
        (true, Some(token)) => {
            let Some(card) = acq.tokens.open(token) else { return Err("invalid_token") };
            if (req.expiry_month, req.expiry_year) != (card.expiry.month, card.expiry.year) {
                return Err("invalid_expiry");
            }
            Ok(Checked {
                behaviour: books::behaviour(card.number.expose()),
                expiry_month: card.expiry.month,
                expiry_year: card.expiry.year,
            })
        }
        _ => Err("malformed_request"),
    }
}

/// Checks every field of an authorization request; `Err` is the error code.
fn check(acq: &Acquirer, req: &wire::AuthorizationRequest) -> Result<Checked, &'static str> {
    let checked = payer(acq, req)?;
    if !req.cvc.is_empty() && (!(3..=4).contains(&req.cvc.len()) || !req.cvc.bytes().all(|b| b.is_ascii_digit())) {
        return Err("invalid_cvc");
    }
    if req.amount <= 0 {
        return Err("invalid_amount");
    }
    if !valid_currency(&req.currency) {
        return Err("invalid_currency");
    }
    if !valid_key(&req.idempotency_key) {
        return Err("invalid_idempotency_key");
    }
    if req.holder.as_ref().is_some_and(|h| h.len() > MAX_KEY_LEN) {
        return Err("invalid_holder");
    }
    if !valid_ancestors(&req.frame_ancestors) {
        return Err("invalid_frame_ancestors");
    }
    Ok(checked)
}

async fn authorize(
    State(acq): State<Shared>,
    body: Result<Json<wire::AuthorizationRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return rejected(&e),
    };
    let (b, expiry_ok) = match check(&acq, &req) {
        Ok(c) => {
            let (y, m, _) = smartpay_domain::Millis::now().date();
            (c.behaviour, Expiry::parse(&format!("{:02}/{}", c.expiry_month, c.expiry_year), (y, m)).is_ok())
        }
        Err(code) => return bad(code),
    };
    let answer = {
        let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
        if let Some(a) = books.by_key_mut(&req.idempotency_key) {
            a.settle(acq.pending_delay);
            return Json(a.wire(&acq.public_base)).into_response();
        }
        let (status, decline_code) = match b {
            _ if !expiry_ok => ("DECLINED", Some("expired_card")),
            Behaviour::Decline(code) => ("DECLINED", Some(code)),
            Behaviour::Challenge => ("CHALLENGE", None),
            Behaviour::PendingThenApprove | Behaviour::PendingThenDecline => ("PENDING", None),
            Behaviour::Approve | Behaviour::Slow | Behaviour::CaptureFails | Behaviour::RefundFails => {
                ("AUTHORIZED", None)
            }
        };
        let auth = Auth {
            id: crate::new_reference(),
            idempotency_key: req.idempotency_key.clone(),
            status,
            decline_code,
            behaviour: b,
            amount: req.amount,
            currency: req.currency.clone(),
            created: Instant::now(),
            captured: 0,
            refunded: 0,
            cancelled: false,
            modifications: Vec::new(),
            frame_ancestors: req.frame_ancestors.clone(),
        };
        let answer = auth.wire(&acq.public_base);
        if books.insert(auth, acq.max_authorizations, |a| a.finished(acq.pending_delay)).is_err() {
            drop(books);
            tracing::warn!(max = acq.max_authorizations, "sandbox acquirer full of undecided authorizations");
            return error(StatusCode::SERVICE_UNAVAILABLE, "acquirer_full");
        }
        answer
    };
    if b == Behaviour::Slow {
        // Decided at once, answered late: the caller gives up and must poll.
        tokio::time::sleep(acq.slow_delay).await;
    }
    Json(answer).into_response()
}

async fn authorization(State(acq): State<Shared>, Path(id): Path<String>) -> Response {
    if id.len() > MAX_ID_LEN {
        return not_found();
    }
    let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let found = books.get_mut(&id);
    answer_lookup(&acq, found)
}

/// `GET /v1/authorizations?idempotencyKey=K`.
#[derive(serde::Deserialize)]
struct FindQuery {
    #[serde(rename = "idempotencyKey")]
    idempotency_key: String,
}

/// The authorization created with an idempotency key: how a caller whose authorization request
/// got no answer (timeout, crash) learns what became of it.
async fn find(State(acq): State<Shared>, query: Result<Query<FindQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = query else { return bad("invalid_idempotency_key") };
    if !valid_key(&q.idempotency_key) {
        return bad("invalid_idempotency_key");
    }
    let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let found = books.by_key_mut(&q.idempotency_key);
    answer_lookup(&acq, found)
}

fn answer_lookup(acq: &Acquirer, found: Option<&mut Auth>) -> Response {
    match found {
        Some(a) => {
            a.settle(acq.pending_delay);
            Json(a.wire(&acq.public_base)).into_response()
        }
        None => not_found(),
    }
}

async fn modify(
    acq: &Acquirer,
    id: &str,
    kind: &'static str,
    body: Result<Json<wire::ModificationRequest>, JsonRejection>,
) -> Response {
    let req = match crate::service::modification_request(id, body) {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let Some(a) = books.get_mut(id) else { return not_found() };
    if let Some(m) = a.modifications.iter().find(|m| m.kind == kind && m.key == req.idempotency_key) {
        return Json(m.answer.clone()).into_response();
    }
    if a.modifications.len() >= books::MAX_MODIFICATIONS {
        return error(StatusCode::CONFLICT, "too_many_modifications");
    }
    a.settle(acq.pending_delay);
    if req.currency != a.currency {
        return bad("currency_mismatch");
    }
    let exceeds = |done: i64, limit: i64| done.checked_add(req.amount).is_none_or(|total| total > limit);
    let failure: Option<&str> = match kind {
        "captures" if a.status != "AUTHORIZED" || a.cancelled => Some("not_authorized"),
        "captures" if exceeds(a.captured, a.amount) => Some("amount_exceeds_authorized"),
        "captures" if a.behaviour == Behaviour::CaptureFails => Some("capture_failed"),
        "refunds" if exceeds(a.refunded, a.captured) => Some("amount_exceeds_captured"),
        "refunds" if a.behaviour == Behaviour::RefundFails => Some("refund_failed"),
        // An undecided authorization (a challenge nobody completed, a pending one) can be
        // voided too: the gateway gave up on it, and a late approval must not authorize it.
        "cancellations" if a.status == "DECLINED" || a.captured > 0 || a.cancelled => Some("not_cancellable"),
        _ => None,
    };
    if failure.is_none() {
        // Checked above: neither sum overflows nor passes its limit.
        match kind {
            "captures" => a.captured = a.captured.saturating_add(req.amount),
            "refunds" => a.refunded = a.refunded.saturating_add(req.amount),
            _ => {
                a.cancelled = true;
                if matches!(a.status, "CHALLENGE" | "PENDING") {
                    a.status = "DECLINED";
                    a.decline_code = Some("cancelled");
                }
            }
        }
    }
    let m = wire::Modification {
        id: crate::new_reference(),
        status: if failure.is_some() { "FAILED".into() } else { "SUCCEEDED".into() },
        failure_code: failure.map(str::to_owned),
    };
    a.modifications.push(books::StoredModification { kind, key: req.idempotency_key, answer: m.clone() });
    Json(m).into_response()
}

async fn capture(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<wire::ModificationRequest>, JsonRejection>,
) -> Response {
    modify(&acq, &id, "captures", body).await
}

async fn refund(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<wire::ModificationRequest>, JsonRejection>,
) -> Response {
    modify(&acq, &id, "refunds", body).await
}

async fn cancel(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<wire::ModificationRequest>, JsonRejection>,
) -> Response {
    modify(&acq, &id, "cancellations", body).await
}
