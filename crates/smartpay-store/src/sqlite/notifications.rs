//! Notifications to merchants in SQLite: settings, signing secrets, and the outbox that
//! status changes fill ([`super::outbox`]) and the delivery worker drains.

use rusqlite::{Connection, OptionalExtension, Row, params};
use smartpay_domain::Millis;

use super::map_err;
use crate::*;

fn internal(what: &str) -> StoreError {
    StoreError::Internal(what.to_owned())
}

pub(crate) fn settings(conn: &Connection, merchant_id: &str) -> Result<Option<NotificationSettings>, StoreError> {
    type Row8 = (String, String, Option<String>, Option<Vec<u8>>, Option<String>, Option<String>, Option<Vec<u8>>, i64);
    let row: Option<Row8> = conn
        .prepare_cached(
            "SELECT url, auth_kind, username, password_sealed, token_url, client_id, client_secret_sealed, updated_at_ms
             FROM notification_settings WHERE merchant_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([merchant_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })
            .optional()
        })
        .map_err(map_err)?;
    let Some((url, kind, username, password, token_url, client_id, client_secret, updated)) = row else {
        return Ok(None);
    };
    let auth = match (kind.as_str(), username, password, token_url, client_id, client_secret) {
        ("NONE", ..) => NotificationAuth::None,
        ("BASIC", Some(username), Some(password_sealed), ..) => NotificationAuth::Basic { username, password_sealed },
        ("OAUTH", _, _, Some(token_url), Some(client_id), Some(client_secret_sealed)) => {
            NotificationAuth::OAuth { token_url, client_id, client_secret_sealed }
        }
        _ => return Err(internal("incomplete notification authentication")),
    };
    Ok(Some(NotificationSettings { url, auth, updated_at: Millis(updated) }))
}

pub(crate) fn set_settings(
    conn: &Connection,
    merchant_id: &str,
    settings: Option<&NotificationSettings>,
) -> Result<(), StoreError> {
    let exists: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM merchants WHERE id = ?1)", [merchant_id], |r| r.get(0))
        .map_err(map_err)?;
    if !exists {
        return Err(StoreError::NotFound);
    }
    let Some(s) = settings else {
        conn.execute("DELETE FROM notification_settings WHERE merchant_id = ?1", [merchant_id]).map_err(map_err)?;
        return Ok(());
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
    conn.execute(
        "INSERT INTO notification_settings (merchant_id, url, auth_kind, username, password_sealed, token_url,
             client_id, client_secret_sealed, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (merchant_id) DO UPDATE SET url = excluded.url, auth_kind = excluded.auth_kind,
             username = excluded.username, password_sealed = excluded.password_sealed,
             token_url = excluded.token_url, client_id = excluded.client_id,
             client_secret_sealed = excluded.client_secret_sealed, updated_at_ms = excluded.updated_at_ms",
        params![
            merchant_id,
            s.url,
            s.auth.kind(),
            username,
            password,
            token_url,
            client_id,
            client_secret,
            s.updated_at.0
        ],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn add_secret(conn: &Connection, s: &NotificationSecret, retire_at: Millis) -> Result<(), StoreError> {
    let exists: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM merchants WHERE id = ?1)", [&s.merchant_id], |r| r.get(0))
        .map_err(map_err)?;
    if !exists {
        return Err(StoreError::NotFound);
    }
    conn.execute(
        "UPDATE notification_secrets SET expires_at_ms = ?1
         WHERE merchant_id = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?1)",
        params![retire_at.0, s.merchant_id],
    )
    .map_err(map_err)?;
    conn.execute(
        "INSERT INTO notification_secrets (id, merchant_id, secret_sealed, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![s.id, s.merchant_id, s.secret_sealed, s.created_at.0, s.expires_at.map(|m| m.0)],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn secrets(
    conn: &Connection,
    merchant_id: &str,
    now: Millis,
) -> Result<Vec<NotificationSecret>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, merchant_id, secret_sealed, created_at_ms, expires_at_ms FROM notification_secrets
             WHERE merchant_id = ?1 AND (expires_at_ms IS NULL OR expires_at_ms > ?2)
             ORDER BY created_at_ms DESC, id DESC",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![merchant_id, now.0], |r| {
            Ok(NotificationSecret {
                id: r.get(0)?,
                merchant_id: r.get(1)?,
                secret_sealed: r.get(2)?,
                created_at: Millis(r.get(3)?),
                expires_at: r.get::<_, Option<i64>>(4)?.map(Millis),
            })
        })
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

const COLUMNS: &str = "id, merchant_id, payment_id, object_type, object_id, modification_id, origin, status,
    reconciliation_reference_id, created_at_ms, state, attempts, next_attempt_at_ms, retry_from_ms, delivered_at_ms,
    lease_token";

fn notification_from(r: &Row<'_>) -> rusqlite::Result<Result<Notification, StoreError>> {
    let object: String = r.get(3)?;
    let origin: String = r.get(6)?;
    let state: String = r.get(10)?;
    let (Some(object_type), Some(origin), Some(state)) =
        (NotificationObject::parse(&object), EventOrigin::parse(&origin), DeliveryState::parse(&state))
    else {
        return Ok(Err(internal("unknown notification enum value")));
    };
    Ok(Ok(Notification {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        payment_id: r.get(2)?,
        object_type,
        object_id: r.get(4)?,
        modification_id: r.get(5)?,
        origin,
        status: r.get(7)?,
        reconciliation_reference_id: r.get(8)?,
        created_at: Millis(r.get(9)?),
        state,
        attempts: r.get(11)?,
        next_attempt_at: Millis(r.get(12)?),
        retry_from: Millis(r.get(13)?),
        delivered_at: r.get::<_, Option<i64>>(14)?.map(Millis),
        lease_token: r.get::<_, Option<String>>(15)?.unwrap_or_default(),
    }))
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<Result<Notification, StoreError>>>,
) -> Result<Vec<Notification>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(map_err)??);
    }
    Ok(out)
}

pub(crate) fn claim(
    conn: &Connection,
    now: Millis,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "UPDATE notifications SET lease_until_ms = ?1, lease_token = ?4
             WHERE id IN (SELECT id FROM notifications WHERE state = 'PENDING' AND next_attempt_at_ms <= ?2
                          AND lease_until_ms <= ?2 ORDER BY next_attempt_at_ms LIMIT ?3)
             RETURNING {COLUMNS}"
        ))
        .map_err(map_err)?;
    let token = uuid::Uuid::new_v4().to_string();
    let rows = stmt
        .query_map(params![now.0.saturating_add(lease_ms), now.0, limit, token], notification_from)
        .map_err(map_err)?;
    let mut out = collect(rows)?;
    out.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
    Ok(out)
}

pub(crate) fn record_attempt(
    conn: &Connection,
    id: &str,
    token: &str,
    a: &DeliveryAttempt,
    result: AttemptResult,
) -> Result<bool, StoreError> {
    let held: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM notifications WHERE id = ?1 AND lease_token = ?2)")
        .and_then(|mut s| s.query_row(params![id, token], |r| r.get(0)))
        .map_err(map_err)?;
    if !held {
        return Ok(false);
    }
    let n = conn
        .prepare_cached(
            "INSERT INTO notification_attempts (notification_id, seq, at_ms, status_code, error, duration_ms)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM notification_attempts WHERE notification_id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![id, a.at.0, a.status_code, a.error, i64::try_from(a.duration_ms).unwrap_or(i64::MAX)])
        })
        .map_err(map_err)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    let (state, next, delivered) = match result {
        AttemptResult::Delivered => (DeliveryState::Delivered, a.at, Some(a.at.0)),
        AttemptResult::RetryAt(next) => (DeliveryState::Pending, next, None),
        AttemptResult::GiveUp => (DeliveryState::Failed, a.at, None),
    };
    conn.prepare_cached(
        "UPDATE notifications SET state = ?1, attempts = attempts + 1, next_attempt_at_ms = ?2, lease_until_ms = 0,
             lease_token = NULL, delivered_at_ms = COALESCE(?3, delivered_at_ms)
         WHERE id = ?4",
    )
    .and_then(|mut s| s.execute(params![state.as_str(), next.0, delivered, id]))
    .map_err(map_err)?;
    Ok(true)
}

pub(crate) fn list(conn: &Connection, f: &NotificationFilter) -> Result<Vec<Notification>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications
             WHERE (?1 IS NULL OR merchant_id = ?1) AND (?2 IS NULL OR payment_id = ?2) AND (?3 IS NULL OR state = ?3)
             ORDER BY created_at_ms DESC, id DESC LIMIT ?4"
        ))
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![f.merchant_id, f.payment_id, f.state.map(DeliveryState::as_str), f.limit], notification_from)
        .map_err(map_err)?;
    collect(rows)
}

pub(crate) fn one(
    conn: &Connection,
    id: &str,
    merchant_id: Option<&str>,
) -> Result<Option<(Notification, Vec<DeliveryAttempt>)>, StoreError> {
    let n = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE id = ?1 AND (?2 IS NULL OR merchant_id = ?2)"
        ))
        .and_then(|mut s| s.query_row(params![id, merchant_id], notification_from).optional())
        .map_err(map_err)?;
    let Some(n) = n else { return Ok(None) };
    let n = n?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT at_ms, status_code, error, duration_ms FROM notification_attempts WHERE notification_id = ?1 ORDER BY seq",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(DeliveryAttempt {
                at: Millis(r.get(0)?),
                status_code: r.get(1)?,
                error: r.get(2)?,
                duration_ms: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            })
        })
        .map_err(map_err)?;
    let attempts = rows.collect::<Result<_, _>>().map_err(map_err)?;
    Ok(Some((n, attempts)))
}

pub(crate) fn redeliver(
    conn: &Connection,
    id: &str,
    merchant_id: Option<&str>,
    at: Millis,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE notifications SET state = 'PENDING', next_attempt_at_ms = ?1, retry_from_ms = ?1
             WHERE id = ?2 AND (?3 IS NULL OR merchant_id = ?3)",
        )
        .and_then(|mut s| s.execute(params![at.0, id, merchant_id]))
        .map_err(map_err)?;
    Ok(n > 0)
}
