//! The merchant's notification API: where notifications go and how SmartPay authenticates
//! there, signing-secret rotation, and the deliveries (list, one with its attempts, redeliver).
//! Every route is the authenticated merchant's own: another merchant's notification is 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};
use smartpay_domain::json::Value;
use smartpay_store::{DeliveryState, Notification, NotificationAuth, NotificationFilter};
use zeroize::Zeroizing;

use super::extract::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::notifications::{self, AuthInput};

/// `PUT /notifications/settings` (documentation: the body is read field by field, so each
/// refused field is named).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NotificationSettingsRequest {
    /// Where notifications are POSTed: https (http only in sandbox mode), a public host.
    #[schema(min_length = 1, max_length = 2048, example = "https://shop.example/smartpay/notifications")]
    url: String,
    /// How SmartPay authenticates there; absent: none.
    authentication: Option<NotificationAuthentication>,
}

/// Authentication toward the merchant's endpoint.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NotificationAuthentication {
    #[schema(rename = "type")]
    kind: AuthType,
    /// BASIC: the user name (no colon) and password.
    #[schema(min_length = 1, max_length = 200)]
    username: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    password: Option<String>,
    /// OAUTH: the token endpoint (client credentials grant), client id and secret.
    #[schema(rename = "tokenUrl", min_length = 1, max_length = 2048)]
    token_url: Option<String>,
    #[schema(rename = "clientId", min_length = 1, max_length = 200)]
    client_id: Option<String>,
    #[schema(rename = "clientSecret", min_length = 1, max_length = 500)]
    client_secret: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum AuthType {
    NONE,
    BASIC,
    OAUTH,
}

fn answer(status: StatusCode, body: J) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(body: &Value, name: &str) -> Option<String> {
    body.get(name)?.as_str().map(str::to_owned)
}

fn required(body: &Value, path: &str, name: &str) -> Result<String, ApiError> {
    text(body, name).ok_or_else(|| ApiError::invalid(Problem::new(ErrorCode::MissingProperty).at(path)))
}

/// The settings as the merchant sees them: never a password or secret.
async fn settings_view(state: &AppState, merchant_id: &str) -> Result<Option<J>, ApiError> {
    let Some(s) = state.store.notification_settings(merchant_id).await? else { return Ok(None) };
    let auth = match &s.auth {
        NotificationAuth::None => json!({"type": "NONE"}),
        NotificationAuth::Basic { username, .. } => json!({"type": "BASIC", "username": username}),
        NotificationAuth::OAuth { token_url, client_id, .. } => {
            json!({"type": "OAUTH", "tokenUrl": token_url, "clientId": client_id})
        }
    };
    let secrets: Vec<J> = state
        .store
        .notification_secrets(merchant_id, state.now())
        .await?
        .iter()
        .map(|k| json!({"id": k.id, "createdAt": k.created_at.to_iso8601(), "expiresAt": k.expires_at.map(|e| e.to_iso8601())}))
        .collect();
    Ok(Some(json!({
        "url": s.url,
        "authentication": auth,
        "signingSecrets": secrets,
        "updatedAt": s.updated_at.to_iso8601(),
    })))
}

/// Get Notification Settings.
#[utoipa::path(get, path = "/notifications/settings", tag = "Notifications",
    description = "Where this merchant's notifications go, how SmartPay authenticates there (never the password or secret), and the active signing secrets' ids.",
    responses((status = 200, description = "The settings", body = Object), (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No notification endpoint is set", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_settings(State(state): State<Arc<AppState>>, Caller(who): Caller) -> Result<Response, ApiError> {
    let view = settings_view(&state, &who.merchant_id).await?.ok_or(ApiError::NotFound)?;
    Ok(answer(StatusCode::OK, view))
}

/// Set Notification Settings.
#[utoipa::path(put, path = "/notifications/settings", tag = "Notifications",
    description = "Sets where notifications go (`url`; https in production, public addresses only) and the authentication toward it: \
        `{\"type\":\"NONE\"}`, `{\"type\":\"BASIC\",\"username\",\"password\"}` or `{\"type\":\"OAUTH\",\"tokenUrl\",\"clientId\",\"clientSecret\"}` \
        (client credentials). The first time, the answer carries `signingSecret`, shown once: notifications are signed with it \
        (`SmartPay-Signature: t=…,v1=…`).",
    request_body(content = NotificationSettingsRequest, content_type = "application/json"),
    responses((status = 200, description = "The settings", body = Object), (status = 400, description = "Invalid URL or authentication, by field", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody), (status = 415, description = "Not application/json", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let url = required(&body, "url", "url")?;
    if let Some(a) = body.get("authentication").filter(|a| !matches!(a, Value::Null)) {
        // Every field given must fit its limit, whichever type it belongs to.
        for (name, max) in
            [("username", 200), ("password", 200), ("tokenUrl", 2048), ("clientId", 200), ("clientSecret", 500)]
        {
            match a.get(name) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    let ok = v.as_str().is_some_and(|t| !t.is_empty() && t.chars().count() <= max);
                    if !ok {
                        return Err(ApiError::invalid(
                            Problem::new(ErrorCode::InvalidValue)
                                .at(format!("authentication.{name}"))
                                .with("maxLength", smartpay_domain::violation::Fact::Int(max as i64)),
                        ));
                    }
                }
            }
        }
    }
    let auth = match body.get("authentication") {
        None | Some(Value::Null) => AuthInput::None,
        Some(a) => match text(a, "type").as_deref() {
            Some("NONE") => AuthInput::None,
            Some("BASIC") => AuthInput::Basic {
                username: required(a, "authentication.username", "username")?,
                password: Zeroizing::new(required(a, "authentication.password", "password")?),
            },
            Some("OAUTH") => AuthInput::OAuth {
                token_url: required(a, "authentication.tokenUrl", "tokenUrl")?,
                client_id: required(a, "authentication.clientId", "clientId")?,
                client_secret: Zeroizing::new(required(a, "authentication.clientSecret", "clientSecret")?),
            },
            _ => {
                return Err(ApiError::invalid(
                    Problem::new(ErrorCode::InvalidValue)
                        .at("authentication.type")
                        .with("allowed", smartpay_domain::violation::Fact::Text("NONE, BASIC, OAUTH".into())),
                ));
            }
        },
    };
    let created = notifications::configure(&notifications::Ctx::of(&state), &who.merchant_id, &url, auth).await?;
    let mut view = settings_view(&state, &who.merchant_id).await?.ok_or(ApiError::NotFound)?;
    if let (Some(secret), J::Object(map)) = (created, &mut view) {
        map.insert("signingSecret".into(), J::String(secret.to_string()));
    }
    Ok(answer(StatusCode::OK, view))
}

/// Delete Notification Settings.
#[utoipa::path(delete, path = "/notifications/settings", tag = "Notifications",
    description = "Stops notifications: no further ones are written; pending deliveries are given up.",
    responses((status = 200, description = "`{\"status\":\"OK\"}`", body = Object), (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete_settings(State(state): State<Arc<AppState>>, Caller(who): Caller) -> Result<Response, ApiError> {
    notifications::remove(&notifications::Ctx::of(&state), &who.merchant_id).await?;
    Ok(answer(StatusCode::OK, json!({"status": "OK"})))
}

/// Rotate Signing Secret.
#[utoipa::path(post, path = "/notifications/signing-secrets", tag = "Notifications",
    description = "Creates a new signing secret, shown once. The previous ones keep signing for the configured overlap \
        (every notification then carries one `v1` per active secret), so receivers can switch without losing any.",
    responses((status = 201, description = "`{\"signingSecret\", \"previousSecretsExpireAt\"}`", body = Object),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No notification endpoint is set", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn rotate_secret(State(state): State<Arc<AppState>>, Caller(who): Caller) -> Result<Response, ApiError> {
    if state.store.notification_settings(&who.merchant_id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let overlap = state.config.notification_secret_overlap_seconds;
    let secret = notifications::rotate_secret(&notifications::Ctx::of(&state), &who.merchant_id, overlap).await?;
    let until = state.now().plus_seconds(i64::try_from(overlap).unwrap_or(0));
    Ok(answer(
        StatusCode::CREATED,
        json!({"signingSecret": secret.as_str(), "previousSecretsExpireAt": until.to_iso8601()}),
    ))
}

/// A notification as operators and merchants see it, with the exact payload sent.
pub fn notification_view(n: &Notification) -> J {
    let payload = smartpay_notify::payload(&notifications::event_of(n));
    json!({
        "eventId": n.id,
        "objectType": n.object_type.as_str(),
        "objectId": n.object_id,
        "transactionId": n.payment_id,
        "modificationId": n.modification_id,
        "origin": n.origin.as_str(),
        "status": n.status,
        "state": n.state.as_str(),
        "attempts": n.attempts,
        "createdAt": n.created_at.to_iso8601(),
        "nextAttemptAt": (n.state == DeliveryState::Pending).then(|| n.next_attempt_at.to_iso8601()),
        "deliveredAt": n.delivered_at.map(|d| d.to_iso8601()),
        "payload": serde_json::from_slice::<J>(&payload).unwrap_or(J::Null),
    })
}

/// A notification's delivery state (query parameter).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum DeliveryStateParam {
    PENDING,
    DELIVERED,
    FAILED,
}

/// List Notifications.
#[utoipa::path(get, path = "/notifications", tag = "Notifications",
    description = "This merchant's notifications, newest first: state (`PENDING`, `DELIVERED`, `FAILED`), attempts and the payload sent.",
    params(("transactionId" = Option<String>, Query, description = "Only this payment's", max_length = 64),
        ("state" = Option<DeliveryStateParam>, Query, description = "Only notifications in this state"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 50)", minimum = 1, maximum = 500)),
    responses((status = 200, description = "`{\"notifications\": [...]}`", body = Object), (status = 400, description = "Invalid filter", body = smartpay_api_types::ErrorBody),
        (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let delivery = match q.get("state").map(String::as_str) {
        None => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            ApiError::invalid(
                Problem::new(ErrorCode::InvalidValue)
                    .at("state")
                    .with("allowed", smartpay_domain::violation::Fact::Text("PENDING, DELIVERED, FAILED".into())),
            )
        })?),
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l.parse::<u32>().ok().filter(|l| (1..=500).contains(l)).ok_or_else(|| {
            ApiError::invalid(
                Problem::new(ErrorCode::InvalidValue)
                    .at("limit")
                    .with("rule", smartpay_domain::violation::Fact::Text("a whole number from 1 to 500".into())),
            )
        })?,
    };
    let transaction_id = q.get("transactionId").cloned();
    // Characters, not bytes: the schema's `maxLength` counts characters (a
    // 43-character id of 4-byte characters is valid and simply matches nothing).
    if transaction_id.as_ref().is_some_and(|t| t.chars().count() > 64) {
        return Err(ApiError::invalid(
            Problem::new(ErrorCode::InvalidValue)
                .at("transactionId")
                .with("rule", smartpay_domain::violation::Fact::Text("at most 64 characters".into())),
        ));
    }
    let found = state
        .store
        .notifications(NotificationFilter {
            merchant_id: Some(who.merchant_id.clone()),
            payment_id: transaction_id,
            state: delivery,
            limit,
        })
        .await?;
    Ok(answer(StatusCode::OK, json!({"notifications": found.iter().map(notification_view).collect::<Vec<_>>()})))
}

/// Get Notification.
#[utoipa::path(get, path = "/notifications/{eventId}", tag = "Notifications",
    description = "One notification with every delivery attempt (time, HTTP status or error code, duration).",
    params(("eventId" = String, Path, description = "The event id (`SmartPay-Event-Id`)")),
    responses((status = 200, description = "The notification and its attempts", body = Object), (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such notification for this merchant", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (n, attempts) = state.store.notification(&id, Some(&who.merchant_id)).await?.ok_or(ApiError::NotFound)?;
    let mut view = notification_view(&n);
    if let J::Object(map) = &mut view {
        let list: Vec<J> = attempts
            .iter()
            .map(|a| json!({"at": a.at.to_iso8601(), "statusCode": a.status_code, "error": a.error, "durationMs": a.duration_ms}))
            .collect();
        map.insert("deliveryAttempts".into(), J::Array(list));
    }
    Ok(answer(StatusCode::OK, view))
}

/// Redeliver Notification.
#[utoipa::path(post, path = "/notifications/{eventId}/redeliver", tag = "Notifications",
    description = "Sends a notification again (same event id), whatever its state; its retry schedule starts over.",
    params(("eventId" = String, Path, description = "The event id")),
    responses((status = 200, description = "`{\"status\":\"OK\"}`", body = Object), (status = 401, description = "Not authenticated", body = smartpay_api_types::ErrorBody),
        (status = 404, description = "No such notification for this merchant", body = smartpay_api_types::ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn redeliver(
    State(state): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !state.store.redeliver_notification(&id, Some(&who.merchant_id), state.now()).await? {
        return Err(ApiError::NotFound);
    }
    Ok(answer(StatusCode::OK, json!({"status": "OK"})))
}
