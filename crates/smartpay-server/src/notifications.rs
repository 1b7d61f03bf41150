//! Notifications to merchants (CONTRACT §12): settings and signing secrets (CLI and API), and
//! the delivery worker that drains the outbox the store fills with every notified status
//! change. Delivery is at least once: an attempt is recorded after it was made, so a crash in
//! between sends it again (same event id: receivers deduplicate by `SmartPay-Event-Id`).
//! Signing, the payload, the SSRF rules and HTTP live in `smartpay-notify`.

use std::sync::atomic::Ordering;

use smartpay_notify as notify;
use smartpay_store::{
    AttemptResult, DeliveryAttempt, EventOrigin, Notification, NotificationAuth, NotificationObject,
    NotificationSecret, NotificationSettings, StoreError,
};
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::config::Mode;
use crate::error::{ApiError, ErrorCode, Problem};

/// Notifications claimed per pass, and how long a claim holds.
const BATCH: u32 = 16;
/// The attempt error of a notification whose merchant removed its endpoint (given up at once).
const ENDPOINT_REMOVED: &str = "endpoint_removed";
/// Attempts made at once.
const CONCURRENCY: usize = 8;

/// The URL rules of a mode: production refuses plain http and private targets.
pub fn profile(mode: Mode) -> notify::Profile {
    match mode {
        Mode::Sandbox => notify::Profile::Sandbox,
        Mode::Production => notify::Profile::Production,
    }
}

/// What the settings commands need: the API's handlers and the CLI both have it.
pub struct Ctx<'a> {
    pub store: &'a dyn smartpay_store::Store,
    pub keys: &'a crate::secrets::ServerKeys,
    pub profile: notify::Profile,
    pub now: smartpay_domain::Millis,
}

impl<'a> Ctx<'a> {
    /// The context of a server or an operator command in `mode`, at `now`.
    pub fn new(
        store: &'a dyn smartpay_store::Store,
        keys: &'a crate::secrets::ServerKeys,
        mode: Mode,
        now: smartpay_domain::Millis,
    ) -> Self {
        Ctx { store, keys, profile: profile(mode), now }
    }

    pub fn of(state: &'a AppState) -> Self {
        Self::new(state.store.as_ref(), &state.secrets, state.config.mode, state.now())
    }
}

/// How SmartPay authenticates toward the merchant's endpoint, as the merchant gives it.
pub enum AuthInput {
    None,
    Basic { username: String, password: Zeroizing<String> },
    OAuth { token_url: String, client_id: String, client_secret: Zeroizing<String> },
}

fn refused(property: &str, rule: String) -> ApiError {
    ApiError::invalid(
        Problem::new(ErrorCode::InvalidValue).at(property).with("rule", smartpay_domain::violation::Fact::Text(rule)),
    )
}

fn aad(kind: &str, merchant_id: &str, id: &str) -> Vec<u8> {
    format!("notification-{kind}:{merchant_id}:{id}").into_bytes()
}

fn bounded(property: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(refused(property, format!("1 to {max} printable characters")));
    }
    Ok(())
}

/// Sets (or with `None` removes) a merchant's endpoint. The URLs must pass the SSRF rules of
/// this server's mode. The first configuration also creates a signing secret, returned once.
pub async fn configure(
    ctx: &Ctx<'_>,
    merchant_id: &str,
    url: &str,
    auth: AuthInput,
) -> Result<Option<Zeroizing<String>>, ApiError> {
    let profile = ctx.profile;
    bounded("url", url, 2048)?;
    notify::check_url(url, profile).map_err(|e| refused("url", e.to_string()))?;
    let auth = match auth {
        AuthInput::None => NotificationAuth::None,
        AuthInput::Basic { username, password } => {
            bounded("authentication.username", &username, 200)?;
            if username.contains(':') {
                return Err(refused("authentication.username", "no colon (HTTP Basic)".into()));
            }
            bounded("authentication.password", &password, 200)?;
            let sealed = ctx.keys.seal(&aad("password", merchant_id, ""), password.as_bytes());
            NotificationAuth::Basic {
                username,
                password_sealed: sealed.map_err(|e| ApiError::Internal(e.to_string()))?,
            }
        }
        AuthInput::OAuth { token_url, client_id, client_secret } => {
            bounded("authentication.tokenUrl", &token_url, 2048)?;
            notify::check_url(&token_url, profile).map_err(|e| refused("authentication.tokenUrl", e.to_string()))?;
            bounded("authentication.clientId", &client_id, 200)?;
            bounded("authentication.clientSecret", &client_secret, 500)?;
            let sealed = ctx.keys.seal(&aad("client-secret", merchant_id, ""), client_secret.as_bytes());
            NotificationAuth::OAuth {
                token_url,
                client_id,
                client_secret_sealed: sealed.map_err(|e| ApiError::Internal(e.to_string()))?,
            }
        }
    };
    let settings = NotificationSettings { url: url.to_owned(), auth, updated_at: ctx.now };
    ctx.store.set_notification_settings(merchant_id, Some(settings)).await?;
    if ctx.store.notification_secrets(merchant_id, ctx.now).await?.is_empty() {
        return Ok(Some(rotate_secret(ctx, merchant_id, 0).await?));
    }
    Ok(None)
}

/// Removes a merchant's endpoint: no further notifications are written for it.
pub async fn remove(ctx: &Ctx<'_>, merchant_id: &str) -> Result<(), ApiError> {
    ctx.store.set_notification_settings(merchant_id, None).await?;
    Ok(())
}

/// A new signing secret, returned once. The older ones keep signing for `overlap_seconds`
/// (receivers accept any of the `v1` signatures while they switch).
pub async fn rotate_secret(
    ctx: &Ctx<'_>,
    merchant_id: &str,
    overlap_seconds: u64,
) -> Result<Zeroizing<String>, ApiError> {
    let secret = Zeroizing::new(format!(
        "whsec_{}",
        crate::secrets::random_alphanumeric(40).map_err(|e| ApiError::Internal(e.to_string()))?
    ));
    let id = uuid::Uuid::now_v7().to_string();
    let now = ctx.now;
    let sealed = ctx
        .keys
        .seal(&aad("secret", merchant_id, &id), secret.as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = NotificationSecret {
        id,
        merchant_id: merchant_id.to_owned(),
        secret_sealed: sealed,
        created_at: now,
        expires_at: None,
    };
    ctx.store.add_notification_secret(row, now.plus_seconds(i64::try_from(overlap_seconds).unwrap_or(0))).await?;
    Ok(secret)
}

/// What a notification says, for `smartpay-notify`.
pub fn event_of(n: &Notification) -> notify::Event {
    notify::Event {
        id: n.id.clone(),
        merchant_key: n.merchant_id.clone(),
        created_at_ms: n.created_at.0,
        origin: match n.origin {
            EventOrigin::Api => notify::Origin::Api,
            EventOrigin::Widget => notify::Origin::Widget,
            EventOrigin::Automated => notify::Origin::Automated,
        },
        object_type: match n.object_type {
            NotificationObject::Payment => notify::ObjectType::Payment,
            NotificationObject::Refund => notify::ObjectType::Refund,
        },
        object_id: n.object_id.clone(),
        modification_id: n.modification_id.clone(),
        transaction_id: n.payment_id.clone(),
        status: n.status.clone(),
        reconciliation_reference_id: n.reconciliation_reference_id.clone(),
    }
}

/// The delivery target of a merchant's settings, secrets unsealed.
fn target(state: &AppState, merchant_id: &str, s: &NotificationSettings) -> Result<notify::Target, String> {
    let unseal = |kind: &str, sealed: &[u8]| {
        state
            .secrets
            .unseal(&aad(kind, merchant_id, ""), sealed)
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .ok_or_else(|| "unsealable_credentials".to_owned())
    };
    let auth = match &s.auth {
        NotificationAuth::None => notify::Auth::None,
        NotificationAuth::Basic { username, password_sealed } => {
            notify::Auth::Basic { username: username.clone(), password: unseal("password", password_sealed)? }
        }
        NotificationAuth::OAuth { token_url, client_id, client_secret_sealed } => notify::Auth::OAuth {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: unseal("client-secret", client_secret_sealed)?,
        },
    };
    Ok(notify::Target { url: s.url.clone(), auth })
}

/// The merchant's active signing secrets, newest first.
async fn secrets(state: &AppState, merchant_id: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, StoreError> {
    let rows = state.store.notification_secrets(merchant_id, state.now()).await?;
    Ok(rows
        .iter()
        .filter_map(|r| state.secrets.unseal(&aad("secret", merchant_id, &r.id), &r.secret_sealed).ok())
        .collect())
}

/// One pass: attempts every due notification once. Returns how many were attempted.
pub async fn deliver_due(state: &AppState) -> Result<usize, StoreError> {
    use futures_util::StreamExt;
    // Two rounds of attempts, each bounded by three timeouts, with room to spare.
    let lease = i64::try_from(state.config.notification_timeout_ms.saturating_mul(8).max(30_000)).unwrap_or(300_000);
    let due = state.store.claim_notifications(state.now(), lease, BATCH).await?;
    let n = due.len();
    let results: Vec<Result<(), StoreError>> =
        futures_util::stream::iter(due).map(|n| attempt(state, n)).buffer_unordered(CONCURRENCY).collect().await;
    for r in results {
        r?;
    }
    Ok(n)
}

/// One delivery attempt of `n`, recorded with what follows it.
async fn attempt(state: &AppState, n: Notification) -> Result<(), StoreError> {
    let counters = &state.metrics.counters;
    let started = state.now();
    let outcome: Result<notify::Attempt, String> = async {
        let settings = state
            .store
            .notification_settings(&n.merchant_id)
            .await
            .map_err(|e| store_code(&e))?
            .ok_or_else(|| ENDPOINT_REMOVED.to_owned())?;
        let target = target(state, &n.merchant_id, &settings)?;
        let secrets = secrets(state, &n.merchant_id).await.map_err(|e| store_code(&e))?;
        if secrets.is_empty() {
            return Err("no_signing_secret".to_owned());
        }
        let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_slice()).collect();
        let body = notify::payload(&event_of(&n));
        // The whole attempt (DNS, OAuth token, POST) is bounded: one slow merchant cannot hold
        // the others' deliveries.
        let limit = std::time::Duration::from_millis(state.config.notification_timeout_ms.saturating_mul(3));
        tokio::time::timeout(limit, state.notifier.deliver(&target, &n.id, &body, &keys, started.0.div_euclid(1000)))
            .await
            .map_err(|_| "timeout".to_owned())
    }
    .await;
    let (status_code, error, duration_ms, delivered) = match &outcome {
        Ok(a) => (a.status_code, a.error.as_ref().map(|e| e.as_str().to_owned()), a.duration_ms, a.delivered()),
        Err(e) => (None, Some(e.clone()), 0, false),
    };
    let now = state.now();
    let removed = matches!(&outcome, Err(e) if e == ENDPOINT_REMOVED);
    let result = if delivered {
        counters.notifications_delivered.fetch_add(1, Ordering::Relaxed);
        AttemptResult::Delivered
    } else if removed {
        // The merchant stopped notifications: nothing to retry toward.
        counters.notifications_given_up.fetch_add(1, Ordering::Relaxed);
        AttemptResult::GiveUp
    } else {
        counters.notification_failures.fetch_add(1, Ordering::Relaxed);
        let horizon =
            i64::try_from(state.config.notification_retry_horizon_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        match notify::next_attempt_delay_ms(n.attempts.saturating_add(1), now.0 - n.retry_from.0, horizon) {
            Some(delay) => AttemptResult::RetryAt(now.plus_millis(u64::try_from(delay).unwrap_or(0))),
            None => {
                counters.notifications_given_up.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event_id = %n.id, merchant = %n.merchant_id, "notification given up after its retry horizon");
                AttemptResult::GiveUp
            }
        }
    };
    state.failpoint("notification.sent");
    let attempt = DeliveryAttempt { at: started, status_code, error, duration_ms };
    if !state.store.record_delivery_attempt(&n.id, &n.lease_token, attempt, result).await? {
        tracing::warn!(event_id = %n.id, "a notification's lease ran out before its attempt was recorded");
    }
    Ok(())
}

/// A store failure as an attempt's error code.
fn store_code(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(_) => "store_unavailable".into(),
        _ => "store_error".into(),
    }
}
