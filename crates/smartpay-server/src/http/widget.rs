//! The widget's HTTP side: the loader script, the card frame (served from SmartPay's origin,
//! embeddable only by the merchant's registered origins), the frame's payment API (authorized by
//! the checkout token: cards, and redirect methods such as `PAYU` where their provider is enabled),
//! the return page of 3-D Secure challenges and approval pages, the hosted checkout and the sandbox
//! demo.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::JsonBody;
use crate::app::AppState;
use crate::demo;
use crate::engine::{self, CardInput};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::widget::{self, Asset};

fn asset(a: &Asset, cache: &'static str) -> Response {
    let mut r = a.body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// `/sdk/smp-bundle.js`: loadable from any page (CORS, so `integrity` can be checked).
#[utoipa::path(get, path = "/sdk/smp-bundle.js", tag = "Widget", description = "The widget loader: defines `window.SmpLibrary.SmartPayAppInstance.renderWidget(options)`. CORS-enabled so pages can pin its integrity hash.", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub async fn loader() -> Response {
    let mut r = asset(&widget::LOADER, "public, max-age=300");
    r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

/// `/sdk/integrity.json`: the published Subresource Integrity hash of the loader.
#[utoipa::path(get, path = "/sdk/integrity.json", tag = "Widget", description = "The Subresource Integrity value of the loader, for `<script integrity=…>`.", responses((status = 200, description = "`{\"smp-bundle.js\": \"sha384-…\"}`", body = Object)))]
pub async fn integrity() -> Response {
    let mut r = Json(serde_json::json!({ "smp-bundle.js": widget::loader_integrity() })).into_response();
    r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

#[utoipa::path(get, path = "/sdk/bins.json", tag = "Widget", description = "The BIN table the card frame detects brands with (the server's own).", responses((status = 200, description = "BIN ranges", body = Object)))]
pub async fn bins() -> Response {
    let mut r = widget::bins_json().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[utoipa::path(get, path = "/widget/frame.js", tag = "Widget", description = "Script of the card frame.", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub async fn frame_js() -> Response {
    asset(&widget::FRAME_JS, "no-cache")
}

#[utoipa::path(get, path = "/widget/frame.css", tag = "Widget", description = "Styles of the card frame, hosted checkout and demo.", responses((status = 200, description = "CSS", body = String, content_type = "text/css")))]
pub async fn frame_css() -> Response {
    asset(&widget::FRAME_CSS, "no-cache")
}

#[utoipa::path(get, path = "/widget/challenge-return.js", tag = "Widget", description = "Script of the 3-D Secure return page.", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub async fn return_js() -> Response {
    asset(&widget::RETURN_JS, "no-cache")
}

#[utoipa::path(get, path = "/widget/hosted.js", tag = "Widget", description = "Script of the hosted checkout page.", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub async fn hosted_js() -> Response {
    asset(&widget::HOSTED_JS, "no-cache")
}

#[utoipa::path(get, path = "/demo/demo.js", tag = "Demo", description = "Script of the demo shop.", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub async fn demo_js() -> Response {
    asset(&widget::DEMO_JS, "no-cache")
}

/// The origins allowed for a checkout's merchant; none without a checkout (or on a store error).
async fn origins_of(state: &AppState, payment: Option<&smartpay_store::Payment>) -> Vec<String> {
    match payment {
        Some(p) => widget::allowed_origins(state, &p.merchant_id).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The origins that may frame a checkout's card frame; none without a checkout.
async fn ancestors_of(state: &AppState, payment: Option<&smartpay_store::Payment>) -> Vec<String> {
    match payment {
        Some(p) => widget::frame_ancestors(state, &p.merchant_id).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// A page with a strict CSP: scripts and styles only from this origin, no inline script.
fn page(html: String, frame_ancestors: &str) -> Response {
    let mut r = axum::response::Html(html).into_response();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
         frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    );
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    r
}

#[derive(Deserialize)]
pub struct FrameQuery {
    t: Option<String>,
    origin: Option<String>,
    /// The `culture` the merchant's page passed to `renderWidget`, if any.
    culture: Option<String>,
    /// The browser's language (`navigator.language`), sent by the loader.
    lang: Option<String>,
    mode: Option<String>,
}

/// The widget's language (CONTRACT §9): the culture the page passed, else the checkout's
/// `consumer.culture`, else the browser's language, else `en-US`. The first one given decides;
/// a language without texts here falls back to `en-US` (reference §3.17).
fn culture_of(requested: Option<&str>, consumer: Option<&str>, browser: Option<&str>) -> &'static str {
    let pick = [requested, consumer, browser]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|c| !c.is_empty())
        .unwrap_or("en-US")
        .to_ascii_lowercase();
    if pick == "de" || pick.starts_with("de-") || pick.starts_with("de_") { "de-DE" } else { "en-US" }
}

/// The vault journey a checkout starts on (reference §1.2): `REGISTERED` with a
/// `customerAccountId`, else `GUEST`.
fn journey_of(payment: &smartpay_store::Payment) -> &'static str {
    if payment.customer_account_id.is_some() { "REGISTERED" } else { "GUEST" }
}

/// `/widget/frame`: the card fields. Embeddable only by the merchant's registered origins.
#[utoipa::path(get, path = "/widget/frame", tag = "Widget", description = "The card frame the loader embeds. Its CSP allows only the merchant's registered origins as ancestors; an unknown token or an unregistered `origin` gets a frame that reports `ERR_CONFIG`. It offers cards, and `PAYU` where sandbox PayU is enabled.", params(("t" = String, Query, description = "checkoutToken"), ("origin" = String, Query, description = "Origin of the embedding page"), ("culture" = Option<String>, Query, description = "The culture the page passed (de-DE or en-US); without it the checkout's consumer.culture, then `lang`, then en-US"), ("lang" = Option<String>, Query, description = "The browser's language"), ("mode" = Option<String>, Query, description = "full (selector) or confirm (selection, multi-page)")), responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub async fn frame(State(state): State<Arc<AppState>>, Query(q): Query<FrameQuery>) -> Response {
    let token = q.t.unwrap_or_default();
    let (payment, error) = match engine::checkout_for_token(&state, &token).await {
        Ok(p) => (Some(p), None),
        Err(_) => (None, Some("ERR_CONFIG")),
    };
    let allowed = ancestors_of(&state, payment.as_ref()).await;
    let parent = q.origin.as_deref().and_then(widget::normalize_origin);
    let error = error.or(match &parent {
        Some(o) if allowed.contains(o) => None,
        _ => Some("ERR_CONFIG"),
    });
    let ancestors = if allowed.is_empty() { "'none'".to_owned() } else { allowed.join(" ") };
    let browser = q.lang.as_deref();
    let (amount, currency, description, status, culture, merchant) = match &payment {
        Some(p) => {
            let exponent = smartpay_domain::Currency::from_code(&p.currency).map_or(2, |c| c.exponent());
            let merchant =
                state.store.merchant(&p.merchant_id).await.ok().flatten().map(|m| m.name).unwrap_or_default();
            (
                smartpay_domain::money::format_minor(p.amount_minor, exponent),
                p.currency.clone(),
                p.description.clone(),
                p.status.as_str().to_owned(),
                culture_of(q.culture.as_deref(), p.culture.as_deref(), browser),
                merchant,
            )
        }
        None => (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            culture_of(q.culture.as_deref(), None, browser),
            String::new(),
        ),
    };
    let journey = match (&payment, error) {
        (Some(p), None) => journey_of(p),
        _ => "GUEST",
    };
    let methods = if error.is_none() && status == "CREATED" { redirect_methods(&state) } else { Vec::new() };
    let html = widget::render_frame(&widget::FrameView {
        token: if error.is_none() { &token } else { "" },
        parent_origin: parent.as_deref().unwrap_or(""),
        culture,
        amount: &amount,
        currency: &currency,
        description: &description,
        merchant: &merchant,
        status: &status,
        mode: q.mode.as_deref().unwrap_or("full"),
        error: error.unwrap_or(""),
        journey,
    });
    page(offer_methods(html, &methods), &ancestors)
}

/// The redirect methods (`PAYU`, …) whose provider is enabled here (sandbox PayU in sandbox mode).
fn redirect_methods(state: &AppState) -> Vec<&'static str> {
    engine::REDIRECT_METHODS
        .iter()
        .filter(|(_, provider)| state.providers().get(provider).is_some())
        .map(|(method, _)| *method)
        .collect()
}

/// The frame page lists the methods it offers in `data-methods` on its `<body>`; the template
/// says `CARDS` (always offered), and the redirect methods available are added here. Every value
/// the template fills in is HTML-escaped (a `"` becomes `&#34;`), so the attribute's literal text
/// can only be the template's own, which comes before any of the merchant's text.
fn offer_methods(html: String, methods: &[&str]) -> String {
    const OFFERED: &str = "data-methods=\"CARDS\"";
    if methods.is_empty() {
        return html;
    }
    let list = std::iter::once("CARDS").chain(methods.iter().copied()).collect::<Vec<_>>().join(" ");
    html.replacen(OFFERED, &format!("data-methods=\"{list}\""), 1)
}

/// `/widget/challenge-return`: where the provider's 3-D Secure or approval page sends the shopper back.
#[utoipa::path(get, path = "/widget/challenge-return", tag = "Widget", description = "Where a provider's 3-D Secure page or approval page (`PAYU`) returns to, inside the card frame.", responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub async fn challenge_return() -> Response {
    page(
        widget::render_challenge_return(),
        // It sits inside the card frame inside the merchant's page, and only tells the frame
        // (same origin) that the challenge is over: any ancestor may hold it.
        "*",
    )
}

/// The frame's calls come only from this server's own origin.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let own = widget::normalize_origin(state.public_base());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).and_then(widget::normalize_origin);
    if origin.is_some() && origin == own { Ok(()) } else { Err(ApiError::ForbiddenOrigin) }
}

/// [`same_origin`] for the frame's reads: browsers send no `Origin` with a same-origin `GET`,
/// but they do send `Sec-Fetch-Site: same-origin` (a header pages cannot set). An `Origin`
/// that is sent must still be this server's.
fn same_origin_read(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if same_site_read(headers) { Ok(()) } else { same_origin(state, headers) }
}

/// A request without `Origin` that the browser marks as coming from this very origin.
fn same_site_read(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    !headers.contains_key(header::ORIGIN) && site == Some("same-origin")
}

fn token_of(headers: &HeaderMap) -> Result<String, ApiError> {
    headers.get("x-checkout-token").and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or(ApiError::NotFound)
}

fn text_field(body: &smartpay_domain::json::Value, name: &str) -> Option<String> {
    body.get(name)?.as_str().map(str::to_owned)
}

fn no_store(v: impl serde::Serialize) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `POST /widget/api/payments`: the frame submits the card.
#[utoipa::path(post, path = "/widget/api/payments", tag = "Widget", description = "The card frame submits the shopper's card (same origin only). The answer never carries decline details or card data.", params(("X-Checkout-Token" = String, Header, description = "The checkout token")), request_body(content = Object, description = "`{\"number\", \"expiry\": \"MM/YY\", \"cvc\", \"holderName\"?}`", content_type = "application/json"), responses((status = 200, description = "The payment's status", body = engine::PaymentAnswer), (status = 400, description = "Invalid card data, by field", body = smartpay_api_types::ErrorBody), (status = 401, description = "Checkout expired", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Unknown checkout token", body = smartpay_api_types::ErrorBody), (status = 409, description = "Already submitted, or locked after too many attempts", body = smartpay_api_types::ErrorBody), (status = 429, description = "Rate limited", body = smartpay_api_types::ErrorBody)))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    // Origin and token first: an unauthenticated request is refused before its body is read.
    same_origin(&state, req.headers())?;
    let token = token_of(req.headers())?;
    let payment = engine::checkout_for_token(&state, &token).await?;
    let client_ip = state.client_ip(peer.ip(), req.headers()).to_string();
    let JsonBody(body) = JsonBody::from_request(req, &state).await?;
    if let Some(reference) = text_field(&body, "storedPaymentOptionReference") {
        return Ok(no_store(engine::submit_stored(&state, payment, &reference, &client_ip).await?));
    }
    let input = card_input(&body)?;
    Ok(no_store(engine::submit_card(&state, payment, input, &client_ip).await?))
}

/// What the widget shows for a checkout's vault: the journey and the stored options.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultView {
    /// `GUEST` (no customerAccountId), `REGISTERED` (an account; `options` may be empty).
    journey: &'static str,
    options: Vec<crate::accounts::OptionView>,
    /// Whether a newly entered card may be stored (a registered journey with the vault serving).
    can_store: bool,
    /// The vault is unavailable: stored options cannot be shown or stored right now.
    vault_unavailable: bool,
}

/// `GET /widget/api/options`: the checkout's journey and stored options.
#[utoipa::path(get, path = "/widget/api/options", tag = "Widget", description = "The checkout's vault journey (GUEST or REGISTERED) and its account's stored options (masked), for the card frame (same origin only).", params(("X-Checkout-Token" = String, Header, description = "The checkout token")), responses((status = 200, description = "Journey and options", body = VaultView), (status = 401, description = "Checkout expired", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Unknown checkout token", body = smartpay_api_types::ErrorBody)))]
pub async fn options(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    same_origin_read(&state, &headers)?;
    let token = token_of(&headers)?;
    let payment = engine::checkout_for_token(&state, &token).await?;
    let Some(account) = payment.customer_account_id.as_deref() else {
        return Ok(no_store(VaultView {
            journey: "GUEST",
            options: Vec::new(),
            can_store: false,
            vault_unavailable: false,
        }));
    };
    match crate::accounts::list(&state, &payment.merchant_id, account).await {
        Ok(options) => {
            Ok(no_store(VaultView { journey: "REGISTERED", options, can_store: true, vault_unavailable: false }))
        }
        Err(ApiError::VaultUnavailable) => Ok(no_store(VaultView {
            journey: "REGISTERED",
            options: Vec::new(),
            can_store: false,
            vault_unavailable: true,
        })),
        Err(e) => Err(e),
    }
}

/// `DELETE /widget/api/options/{reference}`: the shopper deletes a stored option.
#[utoipa::path(delete, path = "/widget/api/options/{reference}", tag = "Widget", description = "The shopper deletes one of the checkout account's stored options (same origin only).", params(("X-Checkout-Token" = String, Header, description = "The checkout token"), ("reference" = String, Path, description = "storedPaymentOptionReference")), responses((status = 200, description = "`{\"status\":\"OK\"}`", body = Object), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Unknown token or option", body = smartpay_api_types::ErrorBody), (status = 503, description = "The vault is unavailable", body = smartpay_api_types::ErrorBody)))]
pub async fn delete_option(
    State(state): State<Arc<AppState>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    same_origin(&state, &headers)?;
    let token = token_of(&headers)?;
    let payment = engine::checkout_for_token(&state, &token).await?;
    let account = payment.customer_account_id.as_deref().ok_or(ApiError::NotFound)?;
    crate::accounts::delete(&state, &payment.merchant_id, account, &reference).await?;
    Ok(no_store(serde_json::json!({"status": "OK"})))
}

/// `POST /widget/api/options/{reference}/default`: the shopper makes an option the default.
#[utoipa::path(post, path = "/widget/api/options/{reference}/default", tag = "Widget", description = "The shopper makes one of the checkout account's stored options the default (same origin only).", params(("X-Checkout-Token" = String, Header, description = "The checkout token"), ("reference" = String, Path, description = "storedPaymentOptionReference")), responses((status = 200, description = "`{\"status\":\"OK\"}`", body = Object), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Unknown token or option", body = smartpay_api_types::ErrorBody), (status = 503, description = "The vault is unavailable", body = smartpay_api_types::ErrorBody)))]
pub async fn default_option(
    State(state): State<Arc<AppState>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    same_origin(&state, &headers)?;
    let token = token_of(&headers)?;
    let payment = engine::checkout_for_token(&state, &token).await?;
    let account = payment.customer_account_id.as_deref().ok_or(ApiError::NotFound)?;
    crate::accounts::set_default(&state, &payment.merchant_id, account, &reference).await?;
    Ok(no_store(serde_json::json!({"status": "OK"})))
}

/// The card fields of the frame's submission.
fn card_input(body: &smartpay_domain::json::Value) -> Result<CardInput, ApiError> {
    let missing = |name: &str| ApiError::invalid(Problem::new(ErrorCode::MissingProperty).at(format!("card.{name}")));
    Ok(CardInput {
        number: text_field(body, "number").ok_or_else(|| missing("number"))?,
        expiry: text_field(body, "expiry").ok_or_else(|| missing("expiry"))?,
        cvc: text_field(body, "cvc").ok_or_else(|| missing("cvc"))?,
        holder_name: text_field(body, "holderName"),
        store: matches!(body.get("storeCard"), Some(smartpay_domain::json::Value::Bool(true))),
    })
}

/// `POST /widget/api/payments/redirect`: the shopper chose an asynchronous method (`PAYU`).
#[utoipa::path(post, path = "/widget/api/payments/redirect", tag = "Widget", description = "The widget starts an asynchronous payment (`{\"paymentMethod\": \"PAYU\"}`, same origin only). The answer's `challengeUrl` is the provider's approval page; the payment stays `AUTHORIZATION_PENDING` until SmartPay learns the outcome from the provider.", params(("X-Checkout-Token" = String, Header, description = "The checkout token")), request_body(content = Object, description = "`{\"paymentMethod\": \"PAYU\"}`", content_type = "application/json"), responses((status = 200, description = "The payment's status and the approval page", body = engine::PaymentAnswer), (status = 400, description = "Unknown payment method", body = smartpay_api_types::ErrorBody), (status = 401, description = "Checkout expired", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Unknown checkout token", body = smartpay_api_types::ErrorBody), (status = 409, description = "Already submitted, or locked after too many attempts", body = smartpay_api_types::ErrorBody), (status = 429, description = "Rate limited", body = smartpay_api_types::ErrorBody)))]
pub async fn submit_redirect(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    same_origin(&state, req.headers())?;
    let token = token_of(req.headers())?;
    let payment = engine::checkout_for_token(&state, &token).await?;
    let client_ip = state.client_ip(peer.ip(), req.headers()).to_string();
    let JsonBody(body) = JsonBody::from_request(req, &state).await?;
    let method = text_field(&body, "paymentMethod")
        .ok_or_else(|| ApiError::invalid(Problem::new(ErrorCode::MissingProperty).at("paymentMethod")))?;
    Ok(no_store(engine::start_redirect(&state, payment, &method, &client_ip).await?))
}

/// `POST /widget/api/payments/complete`: after the 3-D Secure challenge or the approval page.
#[utoipa::path(post, path = "/widget/api/payments/complete", tag = "Widget", description = "After a 3-D Secure challenge or a provider's approval page (`PAYU`): SmartPay asks the provider how it ended. An approved `PAYU` payment stays `AUTHORIZATION_PENDING` until the provider confirms it.", params(("X-Checkout-Token" = String, Header, description = "The checkout token")), responses((status = 200, description = "The payment's status", body = engine::PaymentAnswer), (status = 400, description = "Invalid card data, by field", body = smartpay_api_types::ErrorBody), (status = 401, description = "Checkout expired", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Unknown checkout token", body = smartpay_api_types::ErrorBody), (status = 409, description = "Already submitted, or locked after too many attempts", body = smartpay_api_types::ErrorBody), (status = 429, description = "Rate limited", body = smartpay_api_types::ErrorBody)))]
pub async fn complete(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    same_origin(&state, &headers)?;
    let token = token_of(&headers)?;
    Ok(no_store(engine::complete_challenge(&state, &token).await?))
}

#[derive(Deserialize)]
pub struct HostedQuery {
    #[serde(rename = "returnUrl")]
    return_url: Option<String>,
    culture: Option<String>,
}

/// `/checkout/{checkoutToken}`: the same checkout as a full page (mobile WebViews, redirects).
#[utoipa::path(get, path = "/checkout/{checkoutToken}", tag = "Widget", description = "The checkout as a full page (mobile WebViews, redirects). With `returnUrl`, the shopper is sent back with `transactionId` and `transactionStatus` (or `errorCode`).", params(("checkoutToken" = String, Path, description = "The checkout token"), ("returnUrl" = Option<String>, Query, description = "Absolute http(s) URL"), ("culture" = Option<String>, Query, description = "de-DE or en-US")), responses((status = 200, description = "HTML", body = String, content_type = "text/html"), (status = 404, description = "Unknown or expired checkout", body = String, content_type = "text/html")))]
pub async fn hosted(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    Query(q): Query<HostedQuery>,
) -> Response {
    let payment = engine::checkout_for_token(&state, &token).await.ok();
    let known = payment.is_some();
    // Only back to the merchant's own registered origins: never an open redirect.
    let allowed = origins_of(&state, payment.as_ref()).await;
    let return_url = q.return_url.filter(|u| {
        u.len() <= 2048
            && !u.contains(char::is_whitespace)
            && widget::origin_of_url(u).is_some_and(|o| allowed.contains(&o))
    });
    let own_origin = widget::normalize_origin(state.public_base());
    let html = widget::render_hosted(&widget::HostedView {
        token: if known { &token } else { "" },
        return_url: return_url.as_deref().unwrap_or(""),
        // Only a culture the link names: without one the frame picks the checkout's
        // `consumer.culture`, then the browser's language.
        culture: q.culture.as_deref().map(|c| culture_of(Some(c), None, None)).unwrap_or(""),
        origin: own_origin.as_deref().unwrap_or(""),
    });
    let mut r = page(html, "'none'");
    if !known {
        *r.status_mut() = StatusCode::NOT_FOUND;
    }
    r
}

/// `/demo`: a merchant page for newcomers (sandbox only).
#[utoipa::path(get, path = "/demo", tag = "Demo", description = "A merchant page for newcomers (sandbox only).", responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub async fn demo(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = demo::enabled(&state) {
        return e.into_response();
    }
    let html = widget::render_demo(&widget::DemoView { integrity: widget::loader_integrity() });
    page(html, "'none'")
}

/// The demo shop's "server": creates a checkout for the sandbox merchant.
#[utoipa::path(post, path = "/demo/api/checkouts", tag = "Demo", description = "The demo shop's server: creates a checkout for the sandbox merchant (sandbox mode only). The answer adds `demoSession`, which reads this checkout's status.", request_body(content = Object, description = "`{\"amount\"?, \"currency\"?, \"culture\"?}`", content_type = "application/json"), responses((status = 200, description = "As Create Checkout, plus `demoSession`", body = smartpay_api_types::CreateCheckoutResponse), (status = 400, description = "Invalid amount or currency", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Not in sandbox mode", body = smartpay_api_types::ErrorBody)))]
pub async fn demo_checkout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    demo::enabled(&state)?;
    same_origin(&state, &headers)?;
    let text = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let order = demo::Order { amount: text("amount"), currency: text("currency"), culture: text("culture") };
    Ok(no_store(demo::create_checkout(&state, &order).await?))
}

/// The demo shop's "server" asks Get Payment Status, as the integration guide's step 5.
#[utoipa::path(get, path = "/demo/api/status/{transactionId}", tag = "Demo", description = "The demo shop's server asks Get Payment Status (sandbox mode only), for a checkout the demo created.", params(("transactionId" = String, Path, description = "The transactionId"), ("X-Demo-Session" = String, Header, description = "The `demoSession` the checkout was created with")), responses((status = 200, description = "As Get Payment Status", body = smartpay_api_types::PaymentStatusResponse), (status = 404, description = "Not a checkout of this demo session, or not in sandbox mode", body = smartpay_api_types::ErrorBody)))]
pub async fn demo_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = headers.get("x-demo-session").map(|v| v.as_bytes()).unwrap_or_default();
    Ok(no_store(demo::status(&state, &id, session).await?))
}

/// Runs a demo page's capture, refund or cancellation: same origin, its `demoSession`, then an
/// optional JSON body (`{"amount"}`), and answers like the merchant API.
async fn demo_modify(
    state: &Arc<AppState>,
    id: &str,
    operation: smartpay_domain::modify::Operation,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    demo::enabled(state)?;
    same_origin(state, req.headers())?;
    let session = req.headers().get("x-demo-session").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    // A request for a payment this page did not create is refused before its body is read.
    demo::owns(state, id, &session)?;
    let body = if req.headers().contains_key(header::CONTENT_TYPE) {
        Some(JsonBody::from_request(req, state).await?.0)
    } else {
        None
    };
    let answer = demo::modify(state, id, &session, operation, body.as_ref()).await?;
    let mut r = answer.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The demo shop's "server" captures a payment, as the merchant API's capture.
#[utoipa::path(post, path = "/demo/api/capture/{transactionId}", tag = "Demo", description = "The demo shop's server captures all (no body) or part (`{\"amount\": \"1.00\"}`) of a payment the demo created, as the sandbox merchant through Capture (sandbox mode only; same origin only).", params(("transactionId" = String, Path, description = "The transactionId"), ("X-Demo-Session" = String, Header, description = "The `demoSession` the checkout was created with")), request_body(content = Object, description = "Optional: `{\"amount\"?}` in the payment's currency", content_type = "application/json"), responses((status = 200, description = "As Capture", body = smartpay_api_types::ModificationResponse), (status = 400, description = "Invalid amount", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Not a checkout of this demo session, or not in sandbox mode", body = smartpay_api_types::ErrorBody), (status = 409, description = "`invalid_state`", body = smartpay_api_types::ErrorBody), (status = 422, description = "`amount_exceeds_capturable`", body = smartpay_api_types::ErrorBody)))]
pub async fn demo_capture(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    demo_modify(&state, &id, smartpay_domain::modify::Operation::Capture, req).await
}

/// The demo shop's "server" refunds a payment, as the merchant API's refund.
#[utoipa::path(post, path = "/demo/api/refund/{transactionId}", tag = "Demo", description = "The demo shop's server refunds all that is left (no body) or part (`{\"amount\": \"1.00\"}`) of a payment the demo created, as the sandbox merchant through Refund (sandbox mode only; same origin only).", params(("transactionId" = String, Path, description = "The transactionId"), ("X-Demo-Session" = String, Header, description = "The `demoSession` the checkout was created with")), request_body(content = Object, description = "Optional: `{\"amount\"?}` in the payment's currency", content_type = "application/json"), responses((status = 200, description = "As Refund", body = smartpay_api_types::ModificationResponse), (status = 400, description = "Invalid amount", body = smartpay_api_types::ErrorBody), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Not a checkout of this demo session, or not in sandbox mode", body = smartpay_api_types::ErrorBody), (status = 409, description = "`invalid_state`", body = smartpay_api_types::ErrorBody), (status = 422, description = "`amount_exceeds_refundable`", body = smartpay_api_types::ErrorBody)))]
pub async fn demo_refund(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    demo_modify(&state, &id, smartpay_domain::modify::Operation::Refund, req).await
}

/// The demo shop's "server" cancels a payment, as the merchant API's cancel.
#[utoipa::path(post, path = "/demo/api/cancel/{transactionId}", tag = "Demo", description = "The demo shop's server cancels an authorization nothing was captured from, for a payment the demo created, as the sandbox merchant through Cancel (sandbox mode only; same origin only).", params(("transactionId" = String, Path, description = "The transactionId"), ("X-Demo-Session" = String, Header, description = "The `demoSession` the checkout was created with")), responses((status = 200, description = "As Cancel", body = smartpay_api_types::ModificationResponse), (status = 403, description = "Not called from SmartPay's own origin", body = smartpay_api_types::ErrorBody), (status = 404, description = "Not a checkout of this demo session, or not in sandbox mode", body = smartpay_api_types::ErrorBody), (status = 409, description = "`invalid_state`, e.g. already captured", body = smartpay_api_types::ErrorBody)))]
pub async fn demo_cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    demo_modify(&state, &id, smartpay_domain::modify::Operation::Cancel, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(description: &str) -> String {
        widget::render_frame(&frame_view(description))
    }

    fn frame_view(description: &str) -> widget::FrameView<'_> {
        widget::FrameView {
            token: "tok_123",
            parent_origin: "https://shop.example",
            culture: "en-US",
            amount: "10.99",
            currency: "EUR",
            description,
            merchant: "Shop",
            status: "CREATED",
            mode: "full",
            error: "",
            journey: "GUEST",
        }
    }

    #[test]
    fn the_frame_offers_cards_and_the_available_redirect_methods() {
        assert!(offer_methods(frame("x"), &[]).contains("data-methods=\"CARDS\">"));
        let html = offer_methods(frame("x"), &["PAYU"]);
        assert!(html.contains("data-error=\"\" data-methods=\"CARDS PAYU\">"), "{html}");
        assert_eq!(html.matches("data-methods=").count(), 1);
    }

    #[test]
    fn the_page_culture_wins_then_the_consumer_culture_then_the_browser_then_english() {
        assert_eq!(culture_of(Some("en-US"), Some("de-DE"), Some("de")), "en-US");
        assert_eq!(culture_of(None, Some("de-DE"), Some("en-GB")), "de-DE");
        assert_eq!(culture_of(None, Some("de-AT"), None), "de-DE");
        assert_eq!(culture_of(None, Some("en-GB"), Some("de-DE")), "en-US", "the consumer's culture decides");
        assert_eq!(culture_of(None, None, Some("de")), "de-DE");
        assert_eq!(culture_of(Some(""), Some(" "), Some("de-CH")), "de-DE", "empty values are not given");
        assert_eq!(culture_of(None, None, None), "en-US");
        assert_eq!(culture_of(Some("fr-FR"), Some("de-DE"), None), "en-US", "no French texts: English");
        assert_eq!(culture_of(None, None, Some("dessert")), "en-US");
    }

    #[test]
    fn a_read_without_origin_passes_only_when_the_browser_says_same_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_site_read(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_site_read(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_site_read(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_site_read(&headers(&[])));
        // An Origin that is sent is checked as for every other call.
        assert!(!same_site_read(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")])));
    }

    #[test]
    fn the_journey_follows_the_customer_account() {
        let html = widget::render_frame(&widget::FrameView { journey: "REGISTERED", ..frame_view("x") });
        assert!(html.contains("data-journey=\"REGISTERED\""), "{html}");
        assert!(frame("x").contains("data-journey=\"GUEST\""));
    }

    #[test]
    fn the_merchant_text_cannot_forge_or_move_the_offered_methods() {
        let hostile = "data-methods=\"CARDS\" data-methods=\"CARDS PAYU\"";
        let html = offer_methods(frame(hostile), &["PAYU"]);
        assert!(html.contains("data-methods=\"CARDS PAYU\">"), "{html}");
        assert!(
            html.contains(
                "<p class=\"smp-description\">data-methods=&#34;CARDS&#34; data-methods=&#34;CARDS PAYU&#34;</p>"
            ),
            "{html}"
        );
        assert_eq!(html.matches("data-methods=\"").count(), 1, "{html}");
        let none = offer_methods(frame(hostile), &[]);
        assert!(none.contains("data-methods=\"CARDS\">"), "{none}");
        assert_eq!(none.matches("data-methods=\"").count(), 1, "{none}");
    }
}
