//! The shopper-facing approval page (`GET /pay/{orderId}`, decisions POSTed to
//! `/pay/{orderId}/approve|decline`), the only part of the fake a browser reaches. It runs no
//! script; its forms carry the order's nonce, without which nothing is decided; it may be framed
//! only by itself, SmartPay's origin and the origins the order named (`frame-ancestors` checks
//! every ancestor: the page sits in SmartPay's card frame inside the merchant's page); and a
//! decision returns only to the order's own `continueUrl`.

use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use smartpay_domain::html::escape;
use subtle::ConstantTimeEq;

use super::orders::{Decision, Order};
use super::{Payu, Shared};
use crate::service::MAX_ID_LEN;

/// The page routes, with the shared state applied.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/pay/{id}", get(approval_page))
        .route("/pay/{id}/approve", post(approve))
        .route("/pay/{id}/decline", post(decline))
        .layer(DefaultBodyLimit::max(1024))
        .with_state(state)
}

/// The CSP of a page about `order`: besides the fake's own policy, the order's `continueUrl`
/// may receive the form's redirect and the order's origins may frame it.
fn order_csp(payu: &Payu, order: &Order) -> HeaderValue {
    let mut ancestors = vec!["'self'", payu.frame_ancestor.as_str()];
    ancestors.extend(order.frame_ancestors.iter().map(String::as_str));
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; base-uri 'none'; frame-ancestors {}",
        order.continue_url.origin().ascii_serialization(),
        ancestors.join(" ")
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| payu.base_csp.clone())
}

fn page(status: StatusCode, csp: HeaderValue, body: &str) -> Response {
    let mut r = (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
             <title>PayU sandbox — approve the payment</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}\
             button{{font-size:1rem;padding:.6rem 1.2rem;margin:.3rem}}form{{display:inline}}</style></head><body><main>{body}</main></body></html>"
        )),
    )
        .into_response();
    crate::service::page_headers(&mut r, csp);
    r
}

fn unknown(payu: &Payu) -> Response {
    page(StatusCode::NOT_FOUND, payu.base_csp.clone(), "<h1>PayU sandbox</h1><p>Unknown payment.</p>")
}

fn amount_text(amount: i64, currency: &str) -> String {
    smartpay_domain::Currency::from_code(currency)
        .map(|c| smartpay_domain::money::format_minor(amount, c.exponent()))
        .unwrap_or_else(|| amount.to_string())
}

/// What the page shows for an order.
fn order_page(payu: &Payu, o: &Order) -> Response {
    let csp = order_csp(payu, o);
    let amount = format!("{} {}", amount_text(o.amount, &o.currency), o.currency);
    let body = match o.decision {
        Decision::Open => format!(
            "<h1>PayU sandbox</h1><p>Pay <strong>{amount}</strong> for “{description}”?</p>\
             <p>This is the sandbox's PayU approval page: choose the outcome.</p>\
             <form method=\"post\" action=\"{id}/approve\"><input type=\"hidden\" name=\"nonce\" value=\"{nonce}\">\
             <button type=\"submit\" id=\"approve\">Approve</button></form>\
             <form method=\"post\" action=\"{id}/decline\"><input type=\"hidden\" name=\"nonce\" value=\"{nonce}\">\
             <button type=\"submit\" id=\"decline\">Decline</button></form>",
            amount = escape(&amount),
            description = escape(&o.description),
            id = escape(&o.id),
            nonce = escape(&o.nonce),
        ),
        decided => format!(
            "<h1>PayU sandbox</h1><p>This payment of <strong>{}</strong> was {}.</p><p><a href=\"{}\">Return to the shop</a></p>",
            escape(&amount),
            if decided == Decision::Declined { "declined" } else { "approved" },
            escape(o.continue_url.as_str()),
        ),
    };
    page(StatusCode::OK, csp, &body)
}

async fn approval_page(State(payu): State<Shared>, Path(id): Path<String>) -> Response {
    if id.len() > MAX_ID_LEN {
        return unknown(&payu);
    }
    let Ok(mut orders) = payu.orders.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    match orders.get_mut(&id) {
        Some(o) => order_page(&payu, o),
        None => {
            drop(orders);
            unknown(&payu)
        }
    }
}

#[derive(serde::Deserialize)]
struct NonceForm {
    nonce: String,
}

async fn approve(
    State(payu): State<Shared>,
    Path(id): Path<String>,
    form: Result<Form<NonceForm>, FormRejection>,
) -> Response {
    decide(&payu, &id, form, true)
}

async fn decline(
    State(payu): State<Shared>,
    Path(id): Path<String>,
    form: Result<Form<NonceForm>, FormRejection>,
) -> Response {
    decide(&payu, &id, form, false)
}

/// Records the shopper's decision when the form carries the order's nonce, and returns to the
/// order's `continueUrl` (deciding again changes nothing).
fn decide(payu: &Payu, id: &str, form: Result<Form<NonceForm>, FormRejection>, approve: bool) -> Response {
    if id.len() > MAX_ID_LEN {
        return unknown(payu);
    }
    let nonce_ok = {
        let Ok(mut orders) = payu.orders.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
        let Some(o) = orders.get_mut(id) else {
            drop(orders);
            return unknown(payu);
        };
        match &form {
            Ok(Form(f)) => bool::from(f.nonce.as_bytes().ct_eq(o.nonce.as_bytes())),
            Err(_) => false,
        }
    };
    if !nonce_ok {
        let body = "<h1>PayU sandbox</h1><p>This form is not valid any more. Open the payment page again.</p>";
        return page(StatusCode::FORBIDDEN, payu.base_csp.clone(), body);
    }
    match payu.decide(id, approve) {
        Some(continue_url) => Redirect::to(continue_url.as_str()).into_response(),
        None => unknown(payu),
    }
}
