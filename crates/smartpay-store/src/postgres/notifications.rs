//! Notifications to merchants on PostgreSQL: settings, signing secrets, and the outbox that
//! status changes fill ([`super::outbox`]) and the delivery workers drain — the PostgreSQL
//! mirror of `sqlite/notifications.rs`. Several nodes drain one outbox: a claim locks the rows
//! it takes with `FOR UPDATE SKIP LOCKED` and leases them under a fresh token, and an attempt
//! is recorded only while that token still holds the notification.

use deadpool_postgres::{GenericClient, Pool};
use smartpay_domain::Millis;
use tokio_postgres::Row;

use super::jobs::{count_u32, execute, limit, query, query_opt};
use super::payments::col as get;
use super::{client, map_err};
use crate::*;

fn internal(what: &str) -> StoreError {
    StoreError::Internal(what.to_owned())
}

pub(crate) async fn notification_settings(
    pool: &Pool,
    merchant_id: &str,
) -> Result<Option<NotificationSettings>, StoreError> {
    let c = client(pool).await?;
    let row = query_opt(
        &c,
        "SELECT url, auth_kind, username, password_sealed, token_url, client_id, client_secret_sealed, updated_at_ms
         FROM notification_settings WHERE merchant_id = $1",
        &[&merchant_id],
    )
    .await?;
    let Some(r) = row else { return Ok(None) };
    let kind: &str = get(&r, 1)?;
    let (username, password): (Option<String>, Option<Vec<u8>>) = (get(&r, 2)?, get(&r, 3)?);
    let (token_url, client_id): (Option<String>, Option<String>) = (get(&r, 4)?, get(&r, 5)?);
    let client_secret: Option<Vec<u8>> = get(&r, 6)?;
    let auth = match (kind, username, password, token_url, client_id, client_secret) {
        ("NONE", ..) => NotificationAuth::None,
        ("BASIC", Some(username), Some(password_sealed), ..) => NotificationAuth::Basic { username, password_sealed },
        ("OAUTH", _, _, Some(token_url), Some(client_id), Some(client_secret_sealed)) => {
            NotificationAuth::OAuth { token_url, client_id, client_secret_sealed }
        }
        _ => return Err(internal("incomplete notification authentication")),
    };
    Ok(Some(NotificationSettings { url: get(&r, 0)?, auth, updated_at: Millis(get(&r, 7)?) }))
}

/// Whether the merchant exists; `lock` also holds its row until the transaction ends, so that
/// the merchant's secret changes happen one after the other.
async fn merchant_exists(c: &impl GenericClient, merchant_id: &str, lock: bool) -> Result<bool, StoreError> {
    let sql = if lock {
        "SELECT 1 FROM merchants WHERE id = $1 FOR NO KEY UPDATE"
    } else {
        "SELECT 1 FROM merchants WHERE id = $1"
    };
    Ok(query_opt(c, sql, &[&merchant_id]).await?.is_some())
}

pub(crate) async fn set_notification_settings(
    pool: &Pool,
    merchant_id: &str,
    settings: Option<NotificationSettings>,
) -> Result<(), StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    if !merchant_exists(&tx, merchant_id, false).await? {
        return Err(StoreError::NotFound);
    }
    let Some(s) = settings else {
        execute(&tx, "DELETE FROM notification_settings WHERE merchant_id = $1", &[&merchant_id]).await?;
        return tx.commit().await.map_err(map_err);
    };
    let (username, password, token_url, client_id, client_secret) = match &s.auth {
        NotificationAuth::None => (None, None, None, None, None),
        NotificationAuth::Basic { username, password_sealed } => {
            (Some(username), Some(password_sealed), None, None, None)
        }
        NotificationAuth::OAuth { token_url, client_id, client_secret_sealed } => {
            (None, None, Some(token_url), Some(client_id), Some(client_secret_sealed))
        }
    };
    execute(
        &tx,
        "INSERT INTO notification_settings (merchant_id, url, auth_kind, username, password_sealed, token_url,
             client_id, client_secret_sealed, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (merchant_id) DO UPDATE SET url = excluded.url, auth_kind = excluded.auth_kind,
             username = excluded.username, password_sealed = excluded.password_sealed,
             token_url = excluded.token_url, client_id = excluded.client_id,
             client_secret_sealed = excluded.client_secret_sealed, updated_at_ms = excluded.updated_at_ms",
        &[
            &merchant_id,
            &s.url,
            &s.auth.kind(),
            &username,
            &password,
            &token_url,
            &client_id,
            &client_secret,
            &s.updated_at.0,
        ],
    )
    .await?;
    tx.commit().await.map_err(map_err)
}

pub(crate) async fn add_notification_secret(
    pool: &Pool,
    secret: NotificationSecret,
    retire_others_at: Millis,
) -> Result<(), StoreError> {
    let s = &secret;
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    // The merchant's row lock orders concurrent additions: the later one retires the earlier.
    if !merchant_exists(&tx, &s.merchant_id, true).await? {
        return Err(StoreError::NotFound);
    }
    execute(
        &tx,
        "UPDATE notification_secrets SET expires_at_ms = $1
         WHERE merchant_id = $2 AND (expires_at_ms IS NULL OR expires_at_ms > $1)",
        &[&retire_others_at.0, &s.merchant_id],
    )
    .await?;
    execute(
        &tx,
        "INSERT INTO notification_secrets (id, merchant_id, secret_sealed, created_at_ms, expires_at_ms)
         VALUES ($1, $2, $3, $4, $5)",
        &[&s.id, &s.merchant_id, &s.secret_sealed, &s.created_at.0, &s.expires_at.map(|m| m.0)],
    )
    .await?;
    tx.commit().await.map_err(map_err)
}

pub(crate) async fn notification_secrets(
    pool: &Pool,
    merchant_id: &str,
    now: Millis,
) -> Result<Vec<NotificationSecret>, StoreError> {
    let c = client(pool).await?;
    let rows = query(
        &c,
        "SELECT id, merchant_id, secret_sealed, created_at_ms, expires_at_ms FROM notification_secrets
         WHERE merchant_id = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)
         ORDER BY created_at_ms DESC, id DESC",
        &[&merchant_id, &now.0],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(NotificationSecret {
                id: get(r, 0)?,
                merchant_id: get(r, 1)?,
                secret_sealed: get(r, 2)?,
                created_at: Millis(get(r, 3)?),
                expires_at: get::<Option<i64>>(r, 4)?.map(Millis),
            })
        })
        .collect()
}

/// The columns [`notification_from`] reads, of the table aliased `n`.
const COLUMNS: &str = "n.id, n.merchant_id, n.payment_id, n.object_type, n.object_id, n.modification_id, n.origin,
    n.status, n.reconciliation_reference_id, n.created_at_ms, n.state, n.attempts, n.next_attempt_at_ms,
    n.retry_from_ms, n.delivered_at_ms, n.lease_token";

fn notification_from(r: &Row) -> Result<Notification, StoreError> {
    let (Some(object_type), Some(origin), Some(state)) =
        (NotificationObject::parse(get(r, 3)?), EventOrigin::parse(get(r, 6)?), DeliveryState::parse(get(r, 10)?))
    else {
        return Err(internal("unknown notification enum value"));
    };
    Ok(Notification {
        id: get(r, 0)?,
        merchant_id: get(r, 1)?,
        payment_id: get(r, 2)?,
        object_type,
        object_id: get(r, 4)?,
        modification_id: get(r, 5)?,
        origin,
        status: get(r, 7)?,
        reconciliation_reference_id: get(r, 8)?,
        created_at: Millis(get(r, 9)?),
        state,
        attempts: count_u32(get(r, 11)?),
        next_attempt_at: Millis(get(r, 12)?),
        retry_from: Millis(get(r, 13)?),
        delivered_at: get::<Option<i64>>(r, 14)?.map(Millis),
        lease_token: get::<Option<String>>(r, 15)?.unwrap_or_default(),
    })
}

pub(crate) async fn claim_notifications(
    pool: &Pool,
    now: Millis,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    // One statement: the rows picked are locked (rows another claim holds are skipped, not
    // waited for) and leased under this claim's token.
    let sql = format!(
        "WITH picked AS MATERIALIZED (
             SELECT id FROM notifications WHERE state = 'PENDING' AND next_attempt_at_ms <= $2 AND lease_until_ms <= $2
             ORDER BY next_attempt_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED)
         UPDATE notifications n SET lease_until_ms = $1, lease_token = $4
         FROM picked WHERE n.id = picked.id
         RETURNING {COLUMNS}"
    );
    let token = uuid::Uuid::new_v4().to_string();
    let c = client(pool).await?;
    let rows = query(&c, &sql, &[&now.0.saturating_add(lease_ms), &now.0, &self::limit(limit), &token]).await?;
    let mut out = rows.iter().map(notification_from).collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
    Ok(out)
}

pub(crate) async fn record_delivery_attempt(
    pool: &Pool,
    id: &str,
    lease_token: &str,
    attempt: DeliveryAttempt,
    result: AttemptResult,
) -> Result<bool, StoreError> {
    let a = &attempt;
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    // Locks the notification while this claim still holds it: attempts of one notification
    // are numbered one after the other, and a claim cannot take it over meanwhile.
    let held = query_opt(
        &tx,
        "SELECT 1 FROM notifications WHERE id = $1 AND lease_token = $2 FOR UPDATE",
        &[&id, &lease_token],
    )
    .await?;
    if held.is_none() {
        return Ok(false);
    }
    let status_code = a.status_code.map(i64::from);
    let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    execute(
        &tx,
        "INSERT INTO notification_attempts (notification_id, seq, at_ms, status_code, error, duration_ms)
         SELECT $1::TEXT, COALESCE(MAX(seq), 0) + 1, $2::BIGINT, $3::BIGINT, $4::TEXT, $5::BIGINT
         FROM notification_attempts WHERE notification_id = $1::TEXT",
        &[&id, &a.at.0, &status_code, &a.error, &duration],
    )
    .await?;
    let (state, next, delivered) = match result {
        AttemptResult::Delivered => (DeliveryState::Delivered, a.at, Some(a.at.0)),
        AttemptResult::RetryAt(next) => (DeliveryState::Pending, next, None),
        AttemptResult::GiveUp => (DeliveryState::Failed, a.at, None),
    };
    execute(
        &tx,
        "UPDATE notifications SET state = $1, attempts = attempts + 1, next_attempt_at_ms = $2, lease_until_ms = 0,
             lease_token = NULL, delivered_at_ms = COALESCE($3, delivered_at_ms)
         WHERE id = $4",
        &[&state.as_str(), &next.0, &delivered, &id],
    )
    .await?;
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}

pub(crate) async fn notifications(pool: &Pool, filter: NotificationFilter) -> Result<Vec<Notification>, StoreError> {
    let f = &filter;
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications n
         WHERE ($1::TEXT IS NULL OR n.merchant_id = $1) AND ($2::TEXT IS NULL OR n.payment_id = $2)
             AND ($3::TEXT IS NULL OR n.state = $3)
         ORDER BY n.created_at_ms DESC, n.id DESC LIMIT $4"
    );
    let state = f.state.map(DeliveryState::as_str);
    let c = client(pool).await?;
    let rows = query(&c, &sql, &[&f.merchant_id, &f.payment_id, &state, &limit(f.limit)]).await?;
    rows.iter().map(notification_from).collect()
}

pub(crate) async fn notification(
    pool: &Pool,
    id: &str,
    merchant_id: Option<&str>,
) -> Result<Option<(Notification, Vec<DeliveryAttempt>)>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM notifications n WHERE n.id = $1 AND ($2::TEXT IS NULL OR n.merchant_id = $2)");
    let c = client(pool).await?;
    let Some(row) = query_opt(&c, &sql, &[&id, &merchant_id]).await? else { return Ok(None) };
    let n = notification_from(&row)?;
    let rows = query(
        &c,
        "SELECT at_ms, status_code, error, duration_ms FROM notification_attempts WHERE notification_id = $1 ORDER BY seq",
        &[&id],
    )
    .await?;
    let attempts = rows
        .iter()
        .map(|r| {
            Ok(DeliveryAttempt {
                at: Millis(get(r, 0)?),
                status_code: get::<Option<i64>>(r, 1)?.and_then(|v| u16::try_from(v).ok()),
                error: get(r, 2)?,
                duration_ms: u64::try_from(get::<i64>(r, 3)?).unwrap_or(0),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some((n, attempts)))
}

pub(crate) async fn redeliver_notification(
    pool: &Pool,
    id: &str,
    merchant_id: Option<&str>,
    at: Millis,
) -> Result<bool, StoreError> {
    let c = client(pool).await?;
    let n = execute(
        &c,
        "UPDATE notifications SET state = 'PENDING', next_attempt_at_ms = $1, retry_from_ms = $1
         WHERE id = $2 AND ($3::TEXT IS NULL OR merchant_id = $3)",
        &[&at.0, &id, &merchant_id],
    )
    .await?;
    Ok(n > 0)
}
