//! `/accounts/…`: a merchant's vault accounts and stored payment options (reference §3.10–§3.14).
//! Thin: the use cases are in `crate::accounts`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::extract::{Caller, JsonBody};
use crate::accounts::{self, OptionList};
use crate::app::AppState;
use crate::error::ApiError;

fn answer(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Get All Payment Options.
#[utoipa::path(get, path = "/accounts/{customerAccountId}/paymentOptions", tag = "Vault",
    description = "The payment options stored under the account (masked numbers only). Accounts are created by the first Create Checkout that names them.",
    params(("customerAccountId" = String, Path, description = "The merchant's account id (≤255)", max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]+$")),
    responses((status = 200, description = "`{\"result\": [...]}`", body = OptionList),
        (status = 400, description = "Invalid account id", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such account for this merchant", body = smartpay_api_types::ErrorBody),
        (status = 503, description = "The vault is unavailable (`vault_unavailable`)", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    let result = accounts::list(&state, &who.merchant_id, &account).await?;
    Ok(answer(StatusCode::OK, OptionList { result }))
}

/// Get Payment Option.
#[utoipa::path(get, path = "/accounts/{customerAccountId}/paymentOptions/{storedPaymentOptionReference}", tag = "Vault",
    description = "One stored payment option.",
    params(("customerAccountId" = String, Path, description = "The merchant's account id", max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]+$"),
        ("storedPaymentOptionReference" = String, Path, description = "The option's reference", max_length = 64, pattern = "^[A-Za-z0-9]+$")),
    responses((status = 200, description = "`{\"result\": [option]}`", body = OptionList),
        (status = 400, description = "Invalid account id", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such option for this merchant's account", body = smartpay_api_types::ErrorBody),
        (status = 503, description = "The vault is unavailable", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((account, reference)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let option = accounts::get(&state, &who.merchant_id, &account, &reference).await?;
    Ok(answer(StatusCode::OK, OptionList { result: vec![option] }))
}

/// Delete Payment Option.
#[utoipa::path(delete, path = "/accounts/{customerAccountId}/paymentOptions/{storedPaymentOptionReference}", tag = "Vault",
    description = "Deletes a stored option and its encrypted card data. Cannot be undone.",
    params(("customerAccountId" = String, Path, description = "The merchant's account id", max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]+$"),
        ("storedPaymentOptionReference" = String, Path, description = "The option's reference", max_length = 64, pattern = "^[A-Za-z0-9]+$")),
    responses((status = 200, description = "`{\"status\":\"OK\"}`", body = Object),
        (status = 400, description = "Invalid account id", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such option for this merchant's account", body = smartpay_api_types::ErrorBody),
        (status = 503, description = "The vault is unavailable", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((account, reference)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    accounts::delete(&state, &who.merchant_id, &account, &reference).await?;
    Ok(answer(StatusCode::OK, json!({"status": "OK"})))
}

/// Store Payment Option.
#[utoipa::path(post, path = "/accounts/{customerAccountId}/paymentOptions", tag = "Vault",
    description = "Stores a card already authenticated with 3-D Secure (transactionStatus Y or A) under the account. \
        SmartPay is its own PCI vault: `cardDetails.cardNumber` is the number itself (the reference's forwarding proxy \
        replaced it by a proxy token). Storing a card the account already holds returns that option.",
    params(("customerAccountId" = String, Path, description = "The merchant's account id", max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]+$")),
    request_body(content = inline(Object), description = "The schema is `StorePaymentOptionRequest`.", content_type = "application/json"),
    responses((status = 201, description = "`{\"storedPaymentOptionReference\", \"result\": [option]}`", body = Object),
        (status = 400, description = "Invalid request, by field", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such account for this merchant", body = smartpay_api_types::ErrorBody),
        (status = 413, description = "Body too large", body = smartpay_api_types::ErrorBody),
        (status = 415, description = "Not application/json", body = smartpay_api_types::ErrorBody),
        (status = 503, description = "The vault or the card provider is unavailable", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn store(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(account): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (view, ignored) = accounts::store_from_api(&state, &who.merchant_id, &account, &body).await?;
    let mut out = json!({"storedPaymentOptionReference": view.reference, "result": [view]});
    if !ignored.is_empty() {
        out["ignoredProperties"] = json!(ignored);
    }
    Ok(answer(StatusCode::CREATED, out))
}

/// Update Account.
#[utoipa::path(patch, path = "/accounts/{customerAccountId}", tag = "Vault",
    description = "Updates the account's billing address and consumer.",
    params(("customerAccountId" = String, Path, description = "The merchant's account id", max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]+$")),
    request_body(content = inline(Object), description = "The schema is `UpdateAccountRequest`.", content_type = "application/json"),
    responses((status = 200, description = "`{\"status\":\"OK\"}`", body = Object),
        (status = 400, description = "Invalid request, by field", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such account for this merchant", body = smartpay_api_types::ErrorBody),
        (status = 413, description = "Body too large", body = smartpay_api_types::ErrorBody),
        (status = 415, description = "Not application/json", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(account): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let ignored = accounts::update(&state, &who.merchant_id, &account, &body).await?;
    let mut out = json!({"status": "OK"});
    if !ignored.is_empty() {
        out["ignoredProperties"] = json!(ignored);
    }
    Ok(answer(StatusCode::OK, out))
}
