//! The fake acquirer behind the sandbox connector: an HTTP service with the behaviour of every
//! test card (CONTRACT §10), its own 3-D Secure challenge page, and configurable delays. It
//! keeps authorizations in memory and never keeps or logs a card number or CVC: a card only
//! decides the authorization's behaviour, which is all that is stored.
//!
//! `smartpay serve` mounts it at `/sandbox-acquirer` in sandbox mode; tests run it on its own
//! port. The connector reaches it over HTTP either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use smartpay_domain::card::{CardNumber, Expiry};
use smartpay_domain::html::escape;

use super::wire;

/// Delays of the fake acquirer.
#[derive(Debug, Clone)]
pub struct AcquirerConfig {
    /// Added to every answer.
    pub latency: Duration,
    /// How long "pending" cards stay pending before their final answer.
    pub pending_delay: Duration,
    /// How long the "no answer in time" card (…0408) makes the caller wait.
    pub slow_delay: Duration,
    /// The acquirer's own base URL as a browser reaches it (for challenge pages).
    pub public_base: String,
}

impl Default for AcquirerConfig {
    fn default() -> Self {
        AcquirerConfig {
            latency: Duration::ZERO,
            pending_delay: Duration::from_secs(5),
            slow_delay: Duration::from_secs(30),
            public_base: "http://127.0.0.1:8080/sandbox-acquirer".into(),
        }
    }
}

/// What a test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Approve,
    Decline(&'static str),
    Challenge,
    PendingThenApprove,
    PendingThenDecline,
    Slow,
    CaptureFails,
    RefundFails,
}

fn behaviour(pan: &str) -> Behaviour {
    match pan {
        "4000000000000002" => Behaviour::Decline("card_declined"),
        "4000000000009995" => Behaviour::Decline("insufficient_funds"),
        "4000000000000069" => Behaviour::Decline("expired_card"),
        "4100000000000019" => Behaviour::Decline("card_stolen"),
        "4000000000003220" => Behaviour::Challenge,
        "4000000000000259" => Behaviour::PendingThenApprove,
        "4000000000000267" => Behaviour::PendingThenDecline,
        "4000000000000408" => Behaviour::Slow,
        "4000000000000341" => Behaviour::CaptureFails,
        "4000000000005126" => Behaviour::RefundFails,
        _ => Behaviour::Approve,
    }
}

#[derive(Debug, Clone)]
struct Auth {
    id: String,
    status: &'static str,
    decline_code: Option<&'static str>,
    behaviour: Behaviour,
    amount: i64,
    currency: String,
    created: Instant,
    captured: i64,
    refunded: i64,
    cancelled: bool,
    return_url: Option<String>,
}

#[derive(Default)]
struct Books {
    auths: HashMap<String, Auth>,
    /// idempotency key → authorization id
    auth_keys: HashMap<String, String>,
    /// (authorization id, kind, idempotency key) → answer
    modifications: HashMap<(String, &'static str, String), wire::Modification>,
}

struct Acquirer {
    config: AcquirerConfig,
    books: Mutex<Books>,
}

type Shared = Arc<Acquirer>;

/// The acquirer's routes (`/v1/...`), to be served or nested.
pub fn router(config: AcquirerConfig) -> Router {
    let state: Shared = Arc::new(Acquirer { config, books: Mutex::new(Books::default()) });
    Router::new()
        .route("/v1/authorizations", post(authorize))
        .route("/v1/authorizations/{id}", get(authorization))
        .route("/v1/authorizations/{id}/captures", post(capture))
        .route("/v1/authorizations/{id}/refunds", post(refund))
        .route("/v1/authorizations/{id}/cancellations", post(cancel))
        .route("/v1/challenges/{id}", get(challenge_page).post(challenge_decision))
        .with_state(state)
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": msg}))).into_response()
}

impl Auth {
    /// Applies a due pending resolution.
    fn settle(&mut self, pending_delay: Duration) {
        if self.status == "PENDING" && self.created.elapsed() >= pending_delay {
            match self.behaviour {
                Behaviour::PendingThenDecline => {
                    self.status = "DECLINED";
                    self.decline_code = Some("card_declined");
                }
                _ => self.status = "AUTHORIZED",
            }
        }
    }

    fn wire(&self, public_base: &str) -> wire::Authorization {
        wire::Authorization {
            id: self.id.clone(),
            status: self.status.to_owned(),
            decline_code: self.decline_code.map(str::to_owned),
            challenge_url: (self.status == "CHALLENGE").then(|| format!("{public_base}/v1/challenges/{}", self.id)),
            amount: self.amount,
            currency: self.currency.clone(),
        }
    }
}

async fn authorize(State(acq): State<Shared>, Json(req): Json<wire::AuthorizationRequest>) -> Response {
    tokio::time::sleep(acq.config.latency).await;
    let Ok((pan, _)) = CardNumber::parse(&req.pan) else { return bad("pan is not a valid card number") };
    if req.amount <= 0 || req.currency.len() != 3 {
        return bad("amount and currency are required");
    }
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > 255 {
        return bad("idempotencyKey is required");
    }
    let b = behaviour(pan.expose());
    let (y, m, _) = smartpay_domain::Millis::now().date();
    let expiry_ok = Expiry::parse(&format!("{:02}/{}", req.expiry_month, req.expiry_year), (y, m)).is_ok();
    let auth = {
        let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
        if let Some(existing) = books.auth_keys.get(&req.idempotency_key).cloned() {
            let a = books.auths.get_mut(&existing).map(|a| {
                a.settle(acq.config.pending_delay);
                a.clone()
            });
            drop(books);
            return match a {
                Some(a) => Json(a.wire(&acq.config.public_base)).into_response(),
                None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            };
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
            status,
            decline_code,
            behaviour: b,
            amount: req.amount,
            currency: req.currency.clone(),
            created: Instant::now(),
            captured: 0,
            refunded: 0,
            cancelled: false,
            return_url: req.return_url.clone(),
        };
        books.auth_keys.insert(req.idempotency_key.clone(), auth.id.clone());
        books.auths.insert(auth.id.clone(), auth.clone());
        auth
    };
    if b == Behaviour::Slow {
        // Decided at once, answered late: the caller gives up and must poll.
        tokio::time::sleep(acq.config.slow_delay).await;
    }
    Json(auth.wire(&acq.config.public_base)).into_response()
}

async fn authorization(State(acq): State<Shared>, Path(id): Path<String>) -> Response {
    tokio::time::sleep(acq.config.latency).await;
    let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    match books.auths.get_mut(&id) {
        Some(a) => {
            a.settle(acq.config.pending_delay);
            Json(a.wire(&acq.config.public_base)).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn modify(acq: &Acquirer, id: &str, kind: &'static str, req: &wire::ModificationRequest) -> Response {
    tokio::time::sleep(acq.config.latency).await;
    if req.amount <= 0 || req.idempotency_key.is_empty() {
        return bad("amount and idempotencyKey are required");
    }
    let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let key = (id.to_owned(), kind, req.idempotency_key.clone());
    if let Some(m) = books.modifications.get(&key) {
        return Json(m.clone()).into_response();
    }
    let Some(a) = books.auths.get_mut(id) else { return StatusCode::NOT_FOUND.into_response() };
    a.settle(acq.config.pending_delay);
    if req.currency != a.currency {
        return bad("currency differs from the authorization's");
    }
    let failure: Option<&str> = match kind {
        "captures" if a.status != "AUTHORIZED" || a.cancelled => Some("not_authorized"),
        "captures" if a.captured + req.amount > a.amount => Some("amount_exceeds_authorized"),
        "captures" if a.behaviour == Behaviour::CaptureFails => Some("capture_failed"),
        "refunds" if a.refunded + req.amount > a.captured => Some("amount_exceeds_captured"),
        "refunds" if a.behaviour == Behaviour::RefundFails => Some("refund_failed"),
        "cancellations" if a.status != "AUTHORIZED" || a.captured > 0 || a.cancelled => Some("not_cancellable"),
        _ => None,
    };
    if failure.is_none() {
        match kind {
            "captures" => a.captured += req.amount,
            "refunds" => a.refunded += req.amount,
            _ => a.cancelled = true,
        }
    }
    let m = wire::Modification {
        id: crate::new_reference(),
        status: if failure.is_some() { "FAILED".into() } else { "SUCCEEDED".into() },
        failure_code: failure.map(str::to_owned),
    };
    books.modifications.insert(key, m.clone());
    Json(m).into_response()
}

async fn capture(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    Json(req): Json<wire::ModificationRequest>,
) -> Response {
    modify(&acq, &id, "captures", &req).await
}

async fn refund(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    Json(req): Json<wire::ModificationRequest>,
) -> Response {
    modify(&acq, &id, "refunds", &req).await
}

async fn cancel(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    Json(req): Json<wire::ModificationRequest>,
) -> Response {
    modify(&acq, &id, "cancellations", &req).await
}

fn page(body: &str) -> Response {
    let mut r = Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Sandbox Bank — 3-D Secure</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.6rem 1.2rem;margin:.3rem}}</style></head><body>{body}</body></html>"
    ))
    .into_response();
    // No script at all on the challenge page; forms only post to itself.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; base-uri 'none'",
        ),
    );
    r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

async fn challenge_page(State(acq): State<Shared>, Path(id): Path<String>) -> Response {
    let auth = acq.books.lock().ok().and_then(|b| b.auths.get(&id).cloned());
    match auth {
        Some(a) if a.status == "CHALLENGE" => {
            let amount = smartpay_domain::Currency::from_code(&a.currency)
                .map(|c| smartpay_domain::money::format_minor(a.amount, c.exponent()))
                .unwrap_or_else(|| a.amount.to_string());
            page(&format!(
                "<h1>Sandbox Bank</h1><p>Confirm the payment of <strong>{} {}</strong>.</p>\
                 <p>This is the sandbox's 3-D Secure challenge: choose the outcome.</p>\
                 <form method=\"post\"><button name=\"decision\" value=\"approve\" id=\"approve\">Approve</button>\
                 <button name=\"decision\" value=\"fail\" id=\"fail\">Fail authentication</button></form>",
                escape(&amount),
                escape(&a.currency)
            ))
        }
        Some(_) => page("<h1>Sandbox Bank</h1><p>This challenge is already complete.</p>"),
        None => (StatusCode::NOT_FOUND, page("<h1>Sandbox Bank</h1><p>Unknown challenge.</p>")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Decision {
    decision: String,
}

async fn challenge_decision(State(acq): State<Shared>, Path(id): Path<String>, Form(d): Form<Decision>) -> Response {
    let return_url = {
        let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
        let Some(a) = books.auths.get_mut(&id) else { return StatusCode::NOT_FOUND.into_response() };
        if a.status == "CHALLENGE" {
            if d.decision == "approve" {
                a.status = "AUTHORIZED";
            } else {
                a.status = "DECLINED";
                a.decline_code = Some("authentication_failed");
            }
        }
        a.return_url.clone()
    };
    match return_url {
        Some(url) => Redirect::to(&url).into_response(),
        None => page("<h1>Sandbox Bank</h1><p>Authentication complete. You can close this window.</p>"),
    }
}
