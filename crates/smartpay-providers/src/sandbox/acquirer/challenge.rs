//! The shopper-facing 3-D Secure challenge page (`GET/POST /v1/challenges/{id}`), the only part
//! of the acquirer a browser reaches. It is shown inside SmartPay's card frame, so only SmartPay's
//! origin may frame it (`frame-ancestors`); it runs no script; and its decision always returns
//! to the one configured return page, never to an address a client supplied.

use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use smartpay_domain::html::escape;

use super::{MAX_ID_LEN, Shared};

/// The challenge routes, with the shared acquirer state applied.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/challenges/{id}", get(challenge_page).post(challenge_decision))
        .layer(DefaultBodyLimit::max(1024))
        .with_state(state)
}

fn page(acq: &super::Acquirer, status: StatusCode, body: &str) -> Response {
    page_within(acq, status, body, &[])
}

/// A page that the authorization's `ancestors` (checked origins) may hold besides SmartPay's own
/// origin: `frame-ancestors` applies to every ancestor, and the challenge sits in SmartPay's card
/// frame inside the merchant's page.
fn page_within(acq: &super::Acquirer, status: StatusCode, body: &str, ancestors: &[String]) -> Response {
    let mut r = (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
             <title>Sandbox Bank — 3-D Secure</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}\
             button{{font-size:1rem;padding:.6rem 1.2rem;margin:.3rem}}</style></head><body>{body}</body></html>"
        )),
    )
        .into_response();
    let csp = if ancestors.is_empty() {
        acq.challenge_csp.clone()
    } else {
        let extended = format!("{} {}", acq.challenge_csp.to_str().unwrap_or_default(), ancestors.join(" "));
        HeaderValue::from_str(&extended).unwrap_or_else(|_| acq.challenge_csp.clone())
    };
    crate::service::page_headers(&mut r, csp);
    r
}

fn unknown(acq: &super::Acquirer) -> Response {
    page(acq, StatusCode::NOT_FOUND, "<h1>Sandbox Bank</h1><p>Unknown challenge.</p>")
}

async fn challenge_page(State(acq): State<Shared>, Path(id): Path<String>) -> Response {
    if id.len() > MAX_ID_LEN {
        return unknown(&acq);
    }
    let shown = acq.books.lock().ok().and_then(|mut b| {
        let a = b.get_mut(&id)?;
        Some((a.status, a.amount, a.currency.clone(), a.frame_ancestors.clone()))
    });
    match shown {
        Some(("CHALLENGE", amount, currency, ancestors)) => {
            let amount = smartpay_domain::Currency::from_code(&currency)
                .map(|c| smartpay_domain::money::format_minor(amount, c.exponent()))
                .unwrap_or_else(|| amount.to_string());
            page_within(
                &acq,
                StatusCode::OK,
                &format!(
                    "<h1>Sandbox Bank</h1><p>Confirm the payment of <strong>{} {}</strong>.</p>\
                     <p>This is the sandbox's 3-D Secure challenge: choose the outcome.</p>\
                     <form method=\"post\"><button name=\"decision\" value=\"approve\" id=\"approve\">Approve</button>\
                     <button name=\"decision\" value=\"fail\" id=\"fail\">Fail authentication</button></form>",
                    escape(&amount),
                    escape(&currency)
                ),
                &ancestors,
            )
        }
        Some(_) => page(&acq, StatusCode::OK, "<h1>Sandbox Bank</h1><p>This challenge is already complete.</p>"),
        None => unknown(&acq),
    }
}

#[derive(serde::Deserialize)]
struct Decision {
    decision: String,
}

async fn challenge_decision(
    State(acq): State<Shared>,
    Path(id): Path<String>,
    form: Result<Form<Decision>, FormRejection>,
) -> Response {
    let approve = match form.as_ref().map(|f| f.decision.as_str()) {
        Ok("approve") => true,
        Ok("fail") => false,
        _ => return page(&acq, StatusCode::BAD_REQUEST, "<h1>Sandbox Bank</h1><p>Choose an outcome.</p>"),
    };
    if id.len() > MAX_ID_LEN {
        return unknown(&acq);
    }
    let status = {
        let Ok(mut books) = acq.books.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
        let Some(a) = books.get_mut(&id) else {
            drop(books);
            return unknown(&acq);
        };
        if a.status == "CHALLENGE" {
            if approve {
                a.status = "AUTHORIZED";
            } else {
                a.status = "DECLINED";
                a.decline_code = Some("authentication_failed");
            }
        }
        a.status
    };
    let result = if status == "AUTHORIZED" { "authorized" } else { "declined" };
    let mut to = acq.return_url.clone();
    to.query_pairs_mut().append_pair("authorization", &id).append_pair("result", result);
    Redirect::to(to.as_str()).into_response()
}
