//! A fake PayU-like service: orders the shopper approves on a page of its own, confirmed after a
//! delay, with captures, refunds that settle later, cancellations, signed notifications to the
//! gateway, and test controls. It keeps orders in memory and never logs a request body.
//!
//! [`spawn`] starts it in two parts. The machine API (`/api/v2_1/orders…`; with
//! [`FakeConfig::test_controls`] also `/test/…`) listens on its own loopback address and answers
//! only requests carrying `Authorization: Bearer <api_key>` (compared in constant time; anything
//! else is 401 before any state is read), with a [`MAX_BODY_BYTES`] body limit. The approval page
//! is a separate router ([`SpawnedPayu::pages_router`]) that SmartPay mounts on its public
//! listener at [`FakeConfig::public_base`] (or that `smartpay sandbox-payu` serves on a port of
//! its own).
//!
//! API (amounts in minor units, JSON camelCase, errors `{"error": "<code>"}` never echoing the
//! request):
//! - `POST /api/v2_1/orders` creates an order (201) and answers its `redirectUri`; the same
//!   `extOrderId` again answers that order (200), whatever the rest of the body says.
//! - `GET /api/v2_1/orders/{orderId}` and `GET /api/v2_1/orders?extOrderId=K` read it.
//! - `POST /api/v2_1/orders/{orderId}/captures|refunds|cancellations` with
//!   `{amount, currency, idempotencyKey}`; the same key again answers that modification as it is
//!   now (a refund is `PENDING` until [`FakeConfig::refund_delay`] has passed).
//! - test controls: `POST /test/orders/{orderId}/script` ([`wire::Script`], 204) and
//!   `GET /test/stats` ([`wire::Stats`]); 404 when disabled.
//!
//! Memory is bounded: at most [`FakeConfig::max_orders`] orders (the oldest finished one is
//! forgotten to make room; when every old one is still in progress a new one is refused with 503
//! `payu_full`), each keeps at most 128 modification answers (409
//! beyond), every stored string is length-checked, and notifications in flight are capped.

mod notify;
mod orders;
mod pages;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
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

use self::notify::Notifier;
use self::orders::{Kind, Order, Scripted};
use super::wire;
use crate::service::books::Books;
use crate::service::{
    Background, Bearer, MAX_ID_LEN, bad, error, not_found, rejected, valid_ancestors, valid_currency, valid_key,
    web_url,
};

/// Largest API request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest `continueUrl` or `notifyUrl`.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 255;

const SERVICE: &str = "fake payu";

/// How the fake behaves and where it is reached.
#[derive(Clone)]
pub struct FakeConfig {
    /// Where the machine API listens (loopback).
    pub listen: SocketAddr,
    /// Bearer secret the connector must send.
    pub api_key: String,
    /// URL prefix where the pages router is reached by a browser (e.g. `http://127.0.0.1:8080/sandbox-payu`).
    pub public_base: String,
    /// Origin allowed to frame the approval page (SmartPay's own origin).
    pub frame_ancestor: String,
    /// How long an approved order stays `PENDING` before it is authorized.
    pub confirm_delay: Duration,
    /// How long a refund stays `PENDING` before it succeeds.
    pub refund_delay: Duration,
    /// HMAC key of the notifications' signatures.
    pub notify_secret: String,
    /// Serves `/test/…` (scripts and counters).
    pub test_controls: bool,
    /// Most orders kept in memory at once.
    pub max_orders: usize,
    /// Added to every API answer: the request is handled at once, the answer comes late (so a
    /// caller that gave up still finds the order it created).
    pub latency: Duration,
}

impl Default for FakeConfig {
    /// A local sandbox next to a server on port 8080, with fresh random secrets and no test
    /// controls.
    fn default() -> Self {
        FakeConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            api_key: crate::service::random_key(),
            public_base: "http://127.0.0.1:8080/sandbox-payu".into(),
            frame_ancestor: "http://127.0.0.1:8080".into(),
            confirm_delay: Duration::from_secs(3),
            refund_delay: Duration::from_secs(2),
            notify_secret: crate::service::random_key(),
            test_controls: false,
            max_orders: 100_000,
            latency: Duration::ZERO,
        }
    }
}

impl fmt::Debug for FakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeConfig")
            .field("listen", &self.listen)
            .field("api_key", &"<redacted>")
            .field("public_base", &self.public_base)
            .field("frame_ancestor", &self.frame_ancestor)
            .field("confirm_delay", &self.confirm_delay)
            .field("refund_delay", &self.refund_delay)
            .field("notify_secret", &"<redacted>")
            .field("test_controls", &self.test_controls)
            .field("max_orders", &self.max_orders)
            .field("latency", &self.latency)
            .finish()
    }
}

/// A running fake. Dropping it stops the API listener and pending notifications at once;
/// [`SpawnedPayu::shutdown`] stops the listener gracefully.
pub struct SpawnedPayu {
    /// Where the machine API listens.
    pub api_addr: SocketAddr,
    /// The approval page's routes, to be nested at [`FakeConfig::public_base`]'s path.
    pub pages_router: Router,
    state: Shared,
    api: Background,
}

impl SpawnedPayu {
    /// The machine API's base URL, e.g. `http://127.0.0.1:41235`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// How many orders are kept in memory now.
    pub fn stored(&self) -> usize {
        self.state.orders.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// The calls answered so far (what `GET /test/stats` says).
    pub fn stats(&self) -> wire::Stats {
        self.state.stats()
    }

    /// Stops accepting, lets requests in flight finish, waits for the listener to close, and drops
    /// the notifications not sent yet.
    pub async fn shutdown(mut self) {
        self.state.notifier.stop();
        self.api.shutdown().await;
    }
}

impl Drop for SpawnedPayu {
    fn drop(&mut self) {
        self.state.notifier.stop();
    }
}

impl fmt::Debug for SpawnedPayu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnedPayu").field("api_addr", &self.api_addr).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Counters {
    status_reads: AtomicU64,
    order_creates: AtomicU64,
    modifications: AtomicU64,
}

struct Payu {
    public_base: String,
    /// SmartPay's origin.
    frame_ancestor: String,
    /// The pages' policy when no order's origins apply.
    base_csp: HeaderValue,
    confirm_delay: Duration,
    refund_delay: Duration,
    max_orders: usize,
    orders: Mutex<Books<Order>>,
    notifier: Notifier,
    counters: Counters,
}

type Shared = Arc<Payu>;

fn invalid(msg: &str) -> std::io::Error {
    crate::service::invalid(SERVICE, msg)
}

impl Payu {
    fn new(c: &FakeConfig) -> std::io::Result<Payu> {
        crate::service::check_api_key(SERVICE, &c.api_key, "api_key")?;
        crate::service::check_api_key(SERVICE, &c.notify_secret, "notify_secret")?;
        if !c.listen.ip().is_loopback() {
            return Err(invalid("the API must listen on a loopback address"));
        }
        if c.max_orders == 0 {
            return Err(invalid("max_orders must be at least 1"));
        }
        crate::service::config_url(SERVICE, &c.public_base, "public_base")?;
        let ancestor =
            crate::service::config_url(SERVICE, &c.frame_ancestor, "frame_ancestor")?.origin().ascii_serialization();
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'self' {ancestor}"
        );
        let base_csp = HeaderValue::from_str(&csp).map_err(|_| invalid("frame_ancestor is not a valid origin"))?;
        Ok(Payu {
            public_base: c.public_base.trim_end_matches('/').to_owned(),
            frame_ancestor: ancestor,
            base_csp,
            confirm_delay: c.confirm_delay,
            refund_delay: c.refund_delay,
            max_orders: c.max_orders,
            orders: Mutex::new(Books::default()),
            notifier: Notifier::new(&c.notify_secret),
            counters: Counters::default(),
        })
    }

    fn stats(&self) -> wire::Stats {
        wire::Stats {
            status_reads: self.counters.status_reads.load(Ordering::Relaxed),
            order_creates: self.counters.order_creates.load(Ordering::Relaxed),
            modifications: self.counters.modifications.load(Ordering::Relaxed),
            notifications_delivered: self.notifier.delivered(),
            notifications_in_flight: self.notifier.in_flight().try_into().unwrap_or(u64::MAX),
            orders: self.orders.lock().map(|o| o.len()).unwrap_or(0).try_into().unwrap_or(u64::MAX),
        }
    }

    /// The shopper's decision on order `id` (from the page or a script): records it if the order
    /// is still open and schedules its notification. The order's `continueUrl`; `None` when the
    /// order is unknown.
    fn decide(&self, id: &str, approve: bool) -> Option<Url> {
        let (continue_url, notice) = {
            let mut orders = self.orders.lock().ok()?;
            let o = orders.get_mut(id)?;
            let changed = o.decide(approve);
            let notice = o.notify_url.clone().filter(|_| changed).map(|url| {
                let status = if approve { "WAITING_FOR_CONFIRMATION" } else { "CANCELED" };
                let n = wire::Notification {
                    event_id: crate::new_reference(),
                    order_id: o.id.clone(),
                    ext_order_id: o.ext_order_id.clone(),
                    status: status.into(),
                };
                (url, n)
            });
            (o.continue_url.clone(), notice)
        };
        if let Some((url, n)) = notice {
            // An approved order is final once confirmed; a declined one at once.
            let delay = if approve { self.confirm_delay } else { Duration::ZERO };
            self.notifier.schedule(url, delay, n);
        }
        Some(continue_url)
    }
}

/// Starts the fake: binds the machine API on `config.listen` and serves it in the background, and
/// returns the pages router for the caller to mount. Fails on a listener error or an unusable
/// configuration (non-loopback `listen`, short secrets, relative URLs, no room for orders).
pub async fn spawn(config: FakeConfig) -> std::io::Result<SpawnedPayu> {
    let state: Shared = Arc::new(Payu::new(&config)?);
    let api = Background::serve(config.listen, api_router(state.clone(), &config), SERVICE).await?;
    Ok(SpawnedPayu { api_addr: api.addr, pages_router: pages::router(state.clone()), state, api })
}

fn api_router(state: Shared, config: &FakeConfig) -> Router {
    let mut r = Router::new()
        .route("/api/v2_1/orders", post(create).get(find))
        .route("/api/v2_1/orders/{id}", get(read))
        .route("/api/v2_1/orders/{id}/{kind}", post(modify));
    if config.test_controls {
        r = r.route("/test/orders/{id}/script", post(script)).route("/test/stats", get(stats));
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(config.latency, crate::service::delay_answer))
        // Outermost: unauthenticated requests, unknown paths included, stop here.
        .layer(middleware::from_fn_with_state(Bearer::new(&config.api_key), crate::service::require_bearer))
        .with_state(state)
}

fn internal() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal")
}

/// An absolute http(s) URL of at most [`MAX_URL_LEN`].
fn checked_url(s: &str) -> Option<Url> {
    if s.len() > MAX_URL_LEN {
        return None;
    }
    web_url(s)
}

/// The checked URLs of an order request.
struct Checked {
    continue_url: Url,
    notify_url: Option<Url>,
}

/// Checks every field of an order request; `Err` is the error code.
fn check(req: &wire::OrderRequest) -> Result<Checked, &'static str> {
    if !valid_key(&req.ext_order_id) {
        return Err("invalid_ext_order_id");
    }
    if req.total_amount <= 0 {
        return Err("invalid_amount");
    }
    if !valid_currency(&req.currency_code) {
        return Err("invalid_currency");
    }
    let d = &req.description;
    if d.trim().is_empty() || d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control) {
        return Err("invalid_description");
    }
    let continue_url = checked_url(&req.continue_url).ok_or("invalid_continue_url")?;
    let notify_url = match &req.notify_url {
        Some(u) => Some(checked_url(u).ok_or("invalid_notify_url")?),
        None => None,
    };
    if !valid_ancestors(&req.frame_ancestors) {
        return Err("invalid_frame_ancestors");
    }
    Ok(Checked { continue_url, notify_url })
}

async fn create(State(payu): State<Shared>, body: Result<Json<wire::OrderRequest>, JsonRejection>) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return rejected(&e),
    };
    let checked = match check(&req) {
        Ok(c) => c,
        Err(code) => return bad(code),
    };
    payu.counters.order_creates.fetch_add(1, Ordering::Relaxed);
    let Ok(mut orders) = payu.orders.lock() else { return internal() };
    if let Some(o) = orders.by_key_mut(&req.ext_order_id) {
        return (StatusCode::OK, Json(o.created(&payu.public_base, payu.confirm_delay))).into_response();
    }
    let order = Order {
        id: crate::new_reference(),
        ext_order_id: req.ext_order_id,
        amount: req.total_amount,
        currency: req.currency_code,
        description: req.description,
        continue_url: checked.continue_url,
        notify_url: checked.notify_url,
        frame_ancestors: req.frame_ancestors,
        nonce: crate::new_reference(),
        created: Instant::now(),
        decision: orders::Decision::Open,
        captured: 0,
        cancelled: false,
        modifications: Vec::new(),
        script: Scripted::default(),
    };
    let answer = order.created(&payu.public_base, payu.confirm_delay);
    if orders.insert(order, payu.max_orders, |o| o.finished(payu.confirm_delay)).is_err() {
        drop(orders);
        tracing::warn!(max = payu.max_orders, "fake payu full of orders in progress");
        return error(StatusCode::SERVICE_UNAVAILABLE, "payu_full");
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// A status read of `found`, as its script says: first the scripted failures (500), then the
/// scripted `PENDING` answers, with the scripted amount and currency.
fn answer_read(payu: &Payu, found: Option<&mut Order>) -> Response {
    payu.counters.status_reads.fetch_add(1, Ordering::Relaxed);
    let Some(o) = found else { return not_found() };
    if o.script.fail_polls > 0 {
        o.script.fail_polls -= 1;
        return internal();
    }
    let mut view = o.view(payu.confirm_delay);
    if o.script.pending_polls > 0 {
        o.script.pending_polls -= 1;
        view.status = "PENDING".into();
    }
    if let Some(amount) = o.script.amount {
        view.total_amount = amount;
    }
    if let Some(currency) = &o.script.currency {
        view.currency_code.clone_from(currency);
    }
    Json(view).into_response()
}

async fn read(State(payu): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(mut orders) = payu.orders.lock() else { return internal() };
    let found = if id.len() > MAX_ID_LEN { None } else { orders.get_mut(&id) };
    answer_read(&payu, found)
}

/// `GET /api/v2_1/orders?extOrderId=K`.
#[derive(serde::Deserialize)]
struct FindQuery {
    #[serde(rename = "extOrderId")]
    ext_order_id: String,
}

async fn find(State(payu): State<Shared>, query: Result<Query<FindQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = query else { return bad("invalid_ext_order_id") };
    if !valid_key(&q.ext_order_id) {
        return bad("invalid_ext_order_id");
    }
    let Ok(mut orders) = payu.orders.lock() else { return internal() };
    let found = orders.by_key_mut(&q.ext_order_id);
    answer_read(&payu, found)
}

async fn modify(
    State(payu): State<Shared>,
    Path((id, kind)): Path<(String, String)>,
    body: Result<Json<wire::ModificationRequest>, JsonRejection>,
) -> Response {
    let Some(kind) = Kind::parse(&kind) else { return not_found() };
    let req = match crate::service::modification_request(&id, body) {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    payu.counters.modifications.fetch_add(1, Ordering::Relaxed);
    let Ok(mut orders) = payu.orders.lock() else { return internal() };
    let Some(o) = orders.get_mut(&id) else { return not_found() };
    if let Some(m) = o.modifications.iter().find(|m| m.kind == kind && m.key == req.idempotency_key) {
        return Json(m.answer()).into_response();
    }
    if o.modifications.len() >= orders::MAX_MODIFICATIONS {
        return error(StatusCode::CONFLICT, "too_many_modifications");
    }
    if req.currency != o.currency {
        return bad("currency_mismatch");
    }
    Json(o.modify(kind, req.idempotency_key, req.amount, payu.confirm_delay, payu.refund_delay)).into_response()
}

async fn script(
    State(payu): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<wire::Script>, JsonRejection>,
) -> Response {
    let s = match body {
        Ok(Json(s)) => s,
        Err(e) => return rejected(&e),
    };
    if s.currency_override.as_deref().is_some_and(|c| !valid_currency(c)) {
        return bad("invalid_script");
    }
    {
        let Ok(mut orders) = payu.orders.lock() else { return internal() };
        let found = if id.len() > MAX_ID_LEN { None } else { orders.get_mut(&id) };
        let Some(o) = found else { return not_found() };
        let script = &mut o.script;
        if let Some(n) = s.pending_polls {
            script.pending_polls = n;
        }
        if let Some(n) = s.fail_polls {
            script.fail_polls = n;
        }
        if s.amount_override.is_some() {
            script.amount = s.amount_override;
        }
        if s.currency_override.is_some() {
            script.currency = s.currency_override;
        }
    }
    if let Some(approve) = s.approve {
        payu.decide(&id, approve);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(payu): State<Shared>) -> Response {
    Json(payu.stats()).into_response()
}
