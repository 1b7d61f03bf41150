//! Merchants, API credentials, token-signing keys, widget origins and the identity issuer on
//! PostgreSQL — the PostgreSQL mirror of the authentication half of `sqlite/imp.rs`.
//!
//! Every change to merchants, credentials, keys or origins bumps the auth epoch in the same
//! transaction (as SQLite does), so every node polling the epoch drops its cached
//! authentication results within its polling interval.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use smartpay_domain::Millis;
use smartpay_domain::modification::CaptureMode;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::payments::col;
use super::{client, map_err};
use crate::*;

/// Whether a write changes what authentication caches hold.
enum Epoch {
    Bump,
    Keep,
}

/// Bumps the auth epoch; the row stays locked until the transaction ends, so changes that
/// bump it are serialized.
async fn bump_epoch(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached("UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1").await.map_err(map_err)?;
    tx.execute(&stmt, &[]).await.map_err(map_err)?;
    Ok(())
}

/// One statement that must touch a row (else `NotFound`, nothing written), bumping the auth
/// epoch in the same transaction when `epoch` says so.
async fn write_one(pool: &Pool, sql: &str, args: &[&(dyn ToSql + Sync)], epoch: Epoch) -> Result<(), StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    if tx.execute(&stmt, args).await.map_err(map_err)? == 0 {
        tx.rollback().await.map_err(map_err)?;
        return Err(StoreError::NotFound);
    }
    if let Epoch::Bump = epoch {
        bump_epoch(&tx).await?;
    }
    tx.commit().await.map_err(map_err)
}

/// A merchant status as stored.
fn merchant_status_text(status: &MerchantStatus) -> &'static str {
    match status {
        MerchantStatus::Active => "ACTIVE",
        MerchantStatus::Disabled => "DISABLED",
    }
}

/// Seconds as stored: a value beyond BIGINT is refused rather than truncated.
fn seconds(v: Option<u64>) -> Result<Option<i64>, StoreError> {
    v.map(|s| i64::try_from(s).map_err(|_| StoreError::Internal(format!("{s} seconds is out of range")))).transpose()
}

/// Seconds as read: a negative value (never written by SmartPay) reads as unset.
fn seconds_from(v: Option<i64>) -> Option<u64> {
    v.and_then(|s| u64::try_from(s).ok())
}

const MERCHANT_COLUMNS: &str =
    "id, name, status, capture_mode, created_at_ms, identity_jwks, capture_delay_seconds, auto_cancel_seconds";

/// A row of [`MERCHANT_COLUMNS`].
fn merchant_from(r: &Row) -> Result<Merchant, StoreError> {
    let status: &str = col(r, 2)?;
    let mode: &str = col(r, 3)?;
    Ok(Merchant {
        id: col(r, 0)?,
        name: col(r, 1)?,
        status: if status == "ACTIVE" { MerchantStatus::Active } else { MerchantStatus::Disabled },
        capture_mode: CaptureMode::parse(mode).unwrap_or(CaptureMode::Auto),
        created_at: Millis(col(r, 4)?),
        identity_jwks: col(r, 5)?,
        capture_delay_seconds: seconds_from(col(r, 6)?),
        auto_cancel_seconds: seconds_from(col(r, 7)?),
    })
}

const CREDENTIAL_COLUMNS: &str =
    "c.id, c.merchant_id, c.kind, c.client_id, c.secret_digest, c.label, c.created_at_ms, c.revoked_at_ms";

/// A row of [`CREDENTIAL_COLUMNS`].
fn credential_from(r: &Row) -> Result<Credential, StoreError> {
    let kind: &str = col(r, 2)?;
    Ok(Credential {
        id: col(r, 0)?,
        merchant_id: col(r, 1)?,
        kind: if kind == "BASIC" { CredentialKind::Basic } else { CredentialKind::OAuth },
        client_id: col(r, 3)?,
        secret_digest: col(r, 4)?,
        label: col(r, 5)?,
        created_at: Millis(col(r, 6)?),
        revoked_at: col::<Option<i64>>(r, 7)?.map(Millis),
    })
}

/// A row of `kid, alg, public_jwk, private_enc, created_at_ms, retired_at_ms`.
fn signing_key_from(r: &Row) -> Result<SigningKey, StoreError> {
    Ok(SigningKey {
        kid: col(r, 0)?,
        alg: col(r, 1)?,
        public_jwk: col(r, 2)?,
        private_enc: col(r, 3)?,
        created_at: Millis(col(r, 4)?),
        retired_at: col::<Option<i64>>(r, 5)?.map(Millis),
    })
}

/// Rows of a cached query, each read by `from`.
async fn query_all<T>(
    c: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    from: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(map_err)?;
    let rows = c.query(&stmt, args).await.map_err(map_err)?;
    rows.iter().map(from).collect()
}

/// At most one row of a cached query, read by `from`.
async fn query_opt<T>(
    c: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    from: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(map_err)?;
    c.query_opt(&stmt, args).await.map_err(map_err)?.as_ref().map(from).transpose()
}

/// Succeeds when the database answers and accepts writes (a standby in recovery does not).
pub(crate) async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let stmt = c.prepare_cached("SELECT pg_is_in_recovery()").await.map_err(map_err)?;
    let row = c.query_one(&stmt, &[]).await.map_err(map_err)?;
    if col::<bool>(&row, 0)? {
        return Err(StoreError::Unavailable("the database is a read-only standby".into()));
    }
    Ok(())
}

/// Adds a merchant; `Conflict` when its id is taken.
pub(crate) async fn create_merchant(pool: &Pool, merchant: Merchant) -> Result<(), StoreError> {
    let m = merchant;
    let delay = seconds(m.capture_delay_seconds)?;
    let auto_cancel = seconds(m.auto_cancel_seconds)?;
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO merchants (id, name, status, capture_mode, created_at_ms, identity_jwks,
                 capture_delay_seconds, auto_cancel_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(map_err)?;
    tx.execute(
        &stmt,
        &[
            &m.id,
            &m.name,
            &merchant_status_text(&m.status),
            &m.capture_mode.as_str(),
            &m.created_at.0,
            &m.identity_jwks,
            &delay,
            &auto_cancel,
        ],
    )
    .await
    .map_err(map_err)?;
    bump_epoch(&tx).await?;
    tx.commit().await.map_err(map_err)
}

/// A merchant by id.
pub(crate) async fn merchant(pool: &Pool, id: &str) -> Result<Option<Merchant>, StoreError> {
    let c = client(pool).await?;
    let sql = format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1");
    query_opt(&c, &sql, &[&id], merchant_from).await
}

/// Every merchant, oldest first.
pub(crate) async fn merchants(pool: &Pool) -> Result<Vec<Merchant>, StoreError> {
    let c = client(pool).await?;
    let sql = format!("SELECT {MERCHANT_COLUMNS} FROM merchants ORDER BY created_at_ms, id");
    query_all(&c, &sql, &[], merchant_from).await
}

/// Enables or disables a merchant; `NotFound` without one.
pub(crate) async fn set_merchant_status(pool: &Pool, id: &str, status: MerchantStatus) -> Result<(), StoreError> {
    let status = merchant_status_text(&status);
    write_one(pool, "UPDATE merchants SET status = $1 WHERE id = $2", &[&status, &id], Epoch::Bump).await
}

/// Sets (or clears) the JWK Set verifying a merchant's `X-Access-Token`s.
pub(crate) async fn set_identity_jwks(pool: &Pool, id: &str, jwks: Option<String>) -> Result<(), StoreError> {
    write_one(pool, "UPDATE merchants SET identity_jwks = $1 WHERE id = $2", &[&jwks, &id], Epoch::Bump).await
}

/// A merchant's identity issuer settings; `None` without such a merchant.
pub(crate) async fn identity_issuer(pool: &Pool, id: &str) -> Result<Option<IdentityIssuer>, StoreError> {
    let c = client(pool).await?;
    query_opt(
        &c,
        "SELECT identity_jwks, identity_issuer, identity_audience FROM merchants WHERE id = $1",
        &[&id],
        |r| Ok(IdentityIssuer { jwks: col(r, 0)?, issuer: col(r, 1)?, audience: col(r, 2)? }),
    )
    .await
}

/// Replaces all of a merchant's identity issuer settings at once.
pub(crate) async fn set_identity_issuer(pool: &Pool, id: &str, issuer: IdentityIssuer) -> Result<(), StoreError> {
    write_one(
        pool,
        "UPDATE merchants SET identity_jwks = $1, identity_issuer = $2, identity_audience = $3 WHERE id = $4",
        &[&issuer.jwks, &issuer.issuer, &issuer.audience, &id],
        Epoch::Bump,
    )
    .await
}

/// Adds an API credential (only its secret's digest is stored).
pub(crate) async fn add_credential(pool: &Pool, credential: Credential) -> Result<(), StoreError> {
    let cr = credential;
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO api_credentials (id, merchant_id, kind, client_id, secret_digest, label, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(map_err)?;
    tx.execute(
        &stmt,
        &[&cr.id, &cr.merchant_id, &cr.kind.as_str(), &cr.client_id, &cr.secret_digest, &cr.label, &cr.created_at.0],
    )
    .await
    .map_err(map_err)?;
    bump_epoch(&tx).await?;
    tx.commit().await.map_err(map_err)
}

/// Revokes a credential; `NotFound` when there is no such unrevoked credential.
pub(crate) async fn revoke_credential(pool: &Pool, id: &str, at: Millis) -> Result<(), StoreError> {
    write_one(
        pool,
        "UPDATE api_credentials SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        &[&at.0, &id],
        Epoch::Bump,
    )
    .await
}

/// A merchant's credentials, revoked ones included, oldest first.
pub(crate) async fn credentials(pool: &Pool, merchant_id: &str) -> Result<Vec<Credential>, StoreError> {
    let c = client(pool).await?;
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials c WHERE c.merchant_id = $1 ORDER BY c.created_at_ms, c.id"
    );
    query_all(&c, &sql, &[&merchant_id], credential_from).await
}

/// The unrevoked Basic credentials of an active merchant.
pub(crate) async fn active_basic_credentials(pool: &Pool, merchant_id: &str) -> Result<Vec<Credential>, StoreError> {
    let c = client(pool).await?;
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials c JOIN merchants m ON m.id = c.merchant_id
         WHERE c.merchant_id = $1 AND c.kind = 'BASIC' AND c.revoked_at_ms IS NULL AND m.status = 'ACTIVE'"
    );
    query_all(&c, &sql, &[&merchant_id], credential_from).await
}

/// An unrevoked OAuth client of an active merchant.
pub(crate) async fn active_oauth_client(pool: &Pool, client_id: &str) -> Result<Option<Credential>, StoreError> {
    let c = client(pool).await?;
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials c JOIN merchants m ON m.id = c.merchant_id
         WHERE c.client_id = $1 AND c.kind = 'OAUTH' AND c.revoked_at_ms IS NULL AND m.status = 'ACTIVE'"
    );
    query_opt(&c, &sql, &[&client_id], credential_from).await
}

/// The counter every change to merchants, credentials, keys and origins bumps.
pub(crate) async fn auth_epoch(pool: &Pool) -> Result<i64, StoreError> {
    let c = client(pool).await?;
    let epoch = query_opt(&c, "SELECT epoch FROM auth_epoch WHERE id = 1", &[], |r| col::<i64>(r, 0)).await?;
    epoch.ok_or_else(|| StoreError::Internal("the auth epoch row is missing".into()))
}

/// Adds a key that signs from now on and retires every other active one. The epoch is bumped
/// first: its row lock serializes rotations from several nodes, so the later rotation sees
/// (and retires) the earlier one's key and one key stays active.
pub(crate) async fn rotate_signing_key(pool: &Pool, key: SigningKey) -> Result<(), StoreError> {
    let k = key;
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    bump_epoch(&tx).await?;
    let retire = tx
        .prepare_cached("UPDATE signing_keys SET retired_at_ms = $1 WHERE retired_at_ms IS NULL")
        .await
        .map_err(map_err)?;
    tx.execute(&retire, &[&k.created_at.0]).await.map_err(map_err)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&insert, &[&k.kid, &k.alg, &k.public_jwk, &k.private_enc, &k.created_at.0]).await.map_err(map_err)?;
    tx.commit().await.map_err(map_err)
}

/// Every token-signing key, oldest first.
pub(crate) async fn signing_keys(pool: &Pool) -> Result<Vec<SigningKey>, StoreError> {
    let c = client(pool).await?;
    query_all(
        &c,
        "SELECT kid, alg, public_jwk, private_enc, created_at_ms, retired_at_ms FROM signing_keys
         ORDER BY created_at_ms, kid",
        &[],
        signing_key_from,
    )
    .await
}

/// Deletes keys retired before `before`, bumping the epoch when any went.
pub(crate) async fn delete_retired_signing_keys(pool: &Pool, before: Millis) -> Result<u64, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached("DELETE FROM signing_keys WHERE retired_at_ms IS NOT NULL AND retired_at_ms < $1")
        .await
        .map_err(map_err)?;
    let n = tx.execute(&stmt, &[&before.0]).await.map_err(map_err)?;
    if n > 0 {
        bump_epoch(&tx).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(n)
}

/// Sets a merchant's capture policy. Like SQLite, this does not bump the auth epoch: the
/// policy is read per payment, not cached with authentication.
pub(crate) async fn set_capture_policy(
    pool: &Pool,
    id: &str,
    mode: CaptureMode,
    delay_seconds: Option<u64>,
    auto_cancel_seconds: Option<u64>,
) -> Result<(), StoreError> {
    let (delay, auto_cancel) = (seconds(delay_seconds)?, seconds(auto_cancel_seconds)?);
    write_one(
        pool,
        "UPDATE merchants SET capture_mode = $1, capture_delay_seconds = $2, auto_cancel_seconds = $3 WHERE id = $4",
        &[&mode.as_str(), &delay, &auto_cancel, &id],
        Epoch::Keep,
    )
    .await
}

/// A merchant's widget origins in byte order (as SQLite sorts them, whatever the database's
/// collation).
pub(crate) async fn origins(pool: &Pool, merchant_id: &str) -> Result<Vec<String>, StoreError> {
    let c = client(pool).await?;
    query_all(
        &c,
        "SELECT origin FROM merchant_origins WHERE merchant_id = $1 ORDER BY origin COLLATE \"C\"",
        &[&merchant_id],
        |r| col(r, 0),
    )
    .await
}

/// Registers an origin (no change when it is registered), bumping the epoch as SQLite does.
pub(crate) async fn add_origin(pool: &Pool, merchant_id: &str, origin: &str, at: Millis) -> Result<(), StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO merchant_origins (merchant_id, origin, created_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (merchant_id, origin) DO NOTHING",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&stmt, &[&merchant_id, &origin, &at.0]).await.map_err(map_err)?;
    bump_epoch(&tx).await?;
    tx.commit().await.map_err(map_err)
}

/// Unregisters an origin; `NotFound` when it was not registered.
pub(crate) async fn remove_origin(pool: &Pool, merchant_id: &str, origin: &str) -> Result<(), StoreError> {
    write_one(
        pool,
        "DELETE FROM merchant_origins WHERE merchant_id = $1 AND origin = $2",
        &[&merchant_id, &origin],
        Epoch::Bump,
    )
    .await
}

#[cfg(test)]
mod tests {
    use smartpay_domain::Millis;
    use smartpay_domain::modification::CaptureMode;

    use super::super::payments::tests::{TestDb, merchant};
    use crate::*;

    fn credential(id: &str, merchant: &str, kind: CredentialKind, client_id: Option<&str>) -> Credential {
        Credential {
            id: id.into(),
            merchant_id: merchant.into(),
            kind,
            client_id: client_id.map(str::to_owned),
            secret_digest: vec![1, 2, 3],
            label: "l".into(),
            created_at: Millis(10),
            revoked_at: None,
        }
    }

    fn key(kid: &str, at: i64) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            alg: "ES256".into(),
            public_jwk: "{}".into(),
            private_enc: vec![9],
            created_at: Millis(at),
            retired_at: None,
        }
    }

    #[tokio::test]
    async fn merchants_and_their_settings_round_trip_and_bump_the_epoch() {
        let db = TestDb::new().await;
        let s = &db.store;
        s.ping().await.unwrap();
        assert_eq!(s.auth_epoch().await.unwrap(), 0);
        merchant(s, "m1").await;
        assert_eq!(s.auth_epoch().await.unwrap(), 1);
        let dup = s.merchant("m1").await.unwrap().unwrap();
        assert!(matches!(s.create_merchant(dup).await, Err(StoreError::Conflict(_))));
        assert_eq!(s.auth_epoch().await.unwrap(), 1, "a refused write bumps nothing");

        s.set_capture_policy("m1", CaptureMode::Delayed, Some(60), Some(3_600)).await.unwrap();
        assert_eq!(s.auth_epoch().await.unwrap(), 1, "the capture policy is not cached with authentication");
        let m = s.merchant("m1").await.unwrap().unwrap();
        assert_eq!(
            (m.capture_mode, m.capture_delay_seconds, m.auto_cancel_seconds),
            (CaptureMode::Delayed, Some(60), Some(3_600))
        );
        assert!(matches!(s.set_capture_policy("nope", CaptureMode::Auto, None, None).await, Err(StoreError::NotFound)));
        assert!(s.set_capture_policy("m1", CaptureMode::Auto, Some(u64::MAX), None).await.is_err());

        s.set_merchant_status("m1", MerchantStatus::Disabled).await.unwrap();
        assert_eq!(s.merchant("m1").await.unwrap().unwrap().status, MerchantStatus::Disabled);
        assert!(matches!(s.set_merchant_status("nope", MerchantStatus::Active).await, Err(StoreError::NotFound)));
        let issuer = IdentityIssuer { jwks: Some("{\"keys\":[]}".into()), issuer: Some("iss".into()), audience: None };
        s.set_identity_issuer("m1", issuer.clone()).await.unwrap();
        assert_eq!(s.identity_issuer("m1").await.unwrap(), Some(issuer));
        s.set_identity_jwks("m1", None).await.unwrap();
        assert_eq!(s.identity_issuer("m1").await.unwrap().unwrap().jwks, None);
        assert_eq!(s.identity_issuer("nope").await.unwrap(), None);
        assert_eq!(s.auth_epoch().await.unwrap(), 4);
        merchant(s, "m0").await;
        let ids: Vec<_> = s.merchants().await.unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, vec!["m0", "m1"], "by creation time, then id");
    }

    #[tokio::test]
    async fn credentials_are_active_until_revoked_or_their_merchant_is_disabled() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        s.add_credential(credential("c1", "m1", CredentialKind::Basic, None)).await.unwrap();
        s.add_credential(credential("c2", "m1", CredentialKind::OAuth, Some("client"))).await.unwrap();
        let taken = s.add_credential(credential("c3", "m1", CredentialKind::OAuth, Some("client"))).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))));
        assert_eq!(s.auth_epoch().await.unwrap(), 3);
        let basic = s.active_basic_credentials("m1").await.unwrap();
        assert_eq!((basic.len(), basic[0].secret_digest.as_slice()), (1, &[1u8, 2, 3][..]));
        assert_eq!(s.active_oauth_client("client").await.unwrap().unwrap().id, "c2");

        s.revoke_credential("c1", Millis(20)).await.unwrap();
        assert!(matches!(s.revoke_credential("c1", Millis(21)).await, Err(StoreError::NotFound)));
        assert_eq!(s.auth_epoch().await.unwrap(), 4);
        assert!(s.active_basic_credentials("m1").await.unwrap().is_empty());
        let all = s.credentials("m1").await.unwrap();
        assert_eq!(
            all.iter().map(|c| (c.id.as_str(), c.revoked_at)).collect::<Vec<_>>(),
            vec![("c1", Some(Millis(20))), ("c2", None)]
        );

        s.set_merchant_status("m1", MerchantStatus::Disabled).await.unwrap();
        assert!(s.active_oauth_client("client").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn signing_keys_rotate_to_one_active_key_even_concurrently() {
        let db = TestDb::new().await;
        let s = &db.store;
        s.rotate_signing_key(key("k1", 100)).await.unwrap();
        s.rotate_signing_key(key("k2", 200)).await.unwrap();
        let keys = s.signing_keys().await.unwrap();
        assert_eq!(
            keys.iter().map(|k| (k.kid.as_str(), k.retired_at)).collect::<Vec<_>>(),
            vec![("k1", Some(Millis(200))), ("k2", None)]
        );
        let rotations: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.rotate_signing_key(key(&format!("r{i}"), 300)).await })
            })
            .collect();
        for r in rotations {
            r.await.unwrap().unwrap();
        }
        let active = s.signing_keys().await.unwrap().into_iter().filter(|k| k.retired_at.is_none()).count();
        assert_eq!(active, 1, "concurrent rotations leave one signing key");
        let epoch = s.auth_epoch().await.unwrap();
        assert_eq!(s.delete_retired_signing_keys(Millis(250)).await.unwrap(), 1);
        assert_eq!(s.auth_epoch().await.unwrap(), epoch + 1);
        assert_eq!(s.delete_retired_signing_keys(Millis(250)).await.unwrap(), 0);
        assert_eq!(s.auth_epoch().await.unwrap(), epoch + 1, "deleting nothing bumps nothing");
    }

    #[tokio::test]
    async fn origins_are_registered_once_and_removed() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        s.add_origin("m1", "https://b.example", Millis(1)).await.unwrap();
        s.add_origin("m1", "https://a.example", Millis(2)).await.unwrap();
        s.add_origin("m1", "https://a.example", Millis(3)).await.unwrap();
        assert_eq!(s.origins("m1").await.unwrap(), vec!["https://a.example", "https://b.example"]);
        s.remove_origin("m1", "https://a.example").await.unwrap();
        assert!(matches!(s.remove_origin("m1", "https://a.example").await, Err(StoreError::NotFound)));
        assert_eq!(s.origins("m1").await.unwrap(), vec!["https://b.example"]);
        assert_eq!(s.auth_epoch().await.unwrap(), 5);
    }
}
