//! HTTP: the route table, the observing middleware (trace context, language, error bodies,
//! metrics, access log) and thin handlers that call the use cases.

mod accounts;
mod admin;
pub mod error;
mod extract;
mod handlers;
pub mod i18n;
pub mod listener;
pub mod notifications;
pub mod openapi;
pub(crate) mod widget;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use admin::admin_router;
pub use extract::RequestCtx;

use crate::app::AppState;
use crate::error::ApiError;
use error::ErrorSpec;

/// The route template a response was produced by, for metrics and logs.
#[derive(Clone)]
struct RouteTemplate(String);

/// Every route of the public listener, in one table. `openapi::tests` checks it against the
/// OpenAPI document. `sandbox_pages` are the sandbox providers' shopper-facing pages by path
/// prefix (the acquirer's 3-D Secure challenges, PayU's approval pages); their machine APIs
/// listen on loopback ports of their own.
pub fn router(state: Arc<AppState>, sandbox_pages: Vec<(&'static str, Router)>) -> Router {
    let api = Router::new()
        .route("/payment/creation", post(handlers::create_checkout))
        .route("/payment/status/{transactionId}", get(handlers::payment_status))
        .route("/payment/capture", post(handlers::capture))
        .route("/payment/refund", post(handlers::refund))
        .route("/payment/cancel", post(handlers::cancel))
        .route("/payment/cancelOrRefund", post(handlers::cancel_or_refund))
        .route("/oauth2/token", post(handlers::oauth_token))
        .route("/.well-known/jwks.json", get(handlers::jwks))
        .route("/health/live", get(handlers::live))
        .route("/health/ready", get(handlers::ready))
        .route("/openapi.json", get(handlers::openapi_json))
        .route("/sdk/smp-bundle.js", get(widget::loader))
        .route("/sdk/integrity.json", get(widget::integrity))
        .route("/sdk/bins.json", get(widget::bins))
        .route("/widget/frame", get(widget::frame))
        .route("/widget/frame.js", get(widget::frame_js))
        .route("/widget/frame.css", get(widget::frame_css))
        .route("/widget/challenge-return", get(widget::challenge_return))
        .route("/widget/challenge-return.js", get(widget::return_js))
        .route("/widget/api/payments", post(widget::submit))
        .route("/widget/api/payments/complete", post(widget::complete))
        .route("/widget/api/payments/redirect", post(widget::submit_redirect))
        .route("/widget/api/options", get(widget::options))
        .route("/widget/api/options/{reference}", axum::routing::delete(widget::delete_option))
        .route("/widget/api/options/{reference}/default", post(widget::default_option))
        .route("/providers/{provider}/notifications", post(handlers::provider_notification))
        .route(
            "/notifications/settings",
            get(notifications::get_settings).put(notifications::put_settings).delete(notifications::delete_settings),
        )
        .route("/notifications/signing-secrets", post(notifications::rotate_secret))
        .route("/accounts/{customerAccountId}", axum::routing::patch(accounts::update))
        .route("/accounts/{customerAccountId}/paymentOptions", get(accounts::list).post(accounts::store))
        .route(
            "/accounts/{customerAccountId}/paymentOptions/{storedPaymentOptionReference}",
            get(accounts::get_one).delete(accounts::delete),
        )
        .route("/notifications", get(notifications::list))
        .route("/notifications/{eventId}", get(notifications::get_one))
        .route("/notifications/{eventId}/redeliver", post(notifications::redeliver))
        .route("/checkout/{checkoutToken}", get(widget::hosted))
        .route("/widget/hosted.js", get(widget::hosted_js))
        .route("/demo", get(widget::demo))
        .route("/demo/demo.js", get(widget::demo_js))
        .route("/demo/api/checkouts", post(widget::demo_checkout))
        .route("/demo/api/status/{transactionId}", get(widget::demo_status))
        .route("/demo/api/capture/{transactionId}", post(widget::demo_capture))
        .route("/demo/api/refund/{transactionId}", post(widget::demo_refund))
        .route("/demo/api/cancel/{transactionId}", post(widget::demo_cancel))
        .route_layer(middleware::from_fn(tag_route));
    let mut app = Router::new().merge(api);
    for (prefix, pages) in sandbox_pages {
        app = app.nest_service(prefix, pages);
    }
    let body_timeout = Duration::from_millis(state.config.body_read_timeout_ms);
    let request_timeout = Duration::from_millis(state.config.request_timeout_ms);
    app.merge(openapi::docs_ui())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        // A request must arrive and be answered in bounded time (408 otherwise): a slow
        // body cannot hold a connection and its buffers for ever.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn tag_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(RouteTemplate(r));
    }
    resp
}

/// Establishes the request context, renders error bodies, records metrics and logs one line
/// per request: method, route template, status, duration, trace id. Never headers or bodies.
async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ctx = RequestCtx::from_parts(req.headers());
    req.extensions_mut().insert(ctx.clone());
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::REQUEST_TIMEOUT && resp.extensions().get::<ErrorSpec>().is_none() {
        // The timeout layer's bare 408 gets the error body every other error has.
        resp = ApiError::RequestTimeout.into_response();
    }

    if let Some(spec) = resp.extensions_mut().remove::<ErrorSpec>() {
        let body = error::render(&spec, &ctx.traceparent(), ctx.lang);
        let (mut parts, _) = resp.into_parts();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        parts.headers.remove(header::CONTENT_LENGTH);
        resp = Response::from_parts(parts, axum::body::Body::from(body));
    }
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.traceparent()) {
        headers.insert("traceparent", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.trace_id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));

    let route = resp.extensions().get::<RouteTemplate>().map_or("unmatched", |r| r.0.as_str()).to_owned();
    let status = resp.status().as_u16();
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    state.metrics.observe(method.as_str(), &route, status, micros);
    tracing::info!(
        target: "smartpay::access",
        method = %method,
        route = %route,
        status,
        duration_ms = micros as f64 / 1000.0,
        request_id = %ctx.trace_id,
        "request"
    );
    resp
}
