//! PostgreSQL migrations: the same versions as SQLite's, in `migrations/postgres/`, each applied
//! once in its own transaction under a transaction-scoped advisory lock (nodes starting at the
//! same time wait for each other instead of racing), and recorded in `schema_migrations`.

use deadpool_postgres::Pool;

use super::{client, map_err};
use crate::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    (2, "card_payments", include_str!("../../migrations/postgres/0002_card_payments.sql")),
    (3, "identity_issuer", include_str!("../../migrations/postgres/0003_identity_issuer.sql")),
    (4, "modifications", include_str!("../../migrations/postgres/0004_modifications.sql")),
    (5, "pending_and_notifications", include_str!("../../migrations/postgres/0005_pending_and_notifications.sql")),
    (6, "vault", include_str!("../../migrations/postgres/0006_vault.sql")),
    (7, "hot_path", include_str!("../../migrations/postgres/0007_hot_path.sql")),
];

/// An arbitrary constant naming SmartPay's migration lock.
const LOCK: i64 = 0x5348_5041_594d_4947;

/// Applies every migration the database has not seen yet.
pub(crate) async fn run(pool: &Pool) -> Result<(), StoreError> {
    let mut c = client(pool).await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
    )
    .await
    .map_err(map_err)?;
    for (version, name, sql) in MIGRATIONS {
        let tx = c.transaction().await.map_err(map_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(map_err)?;
        let done: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", &[version])
            .await
            .map_err(map_err)?
            .get(0);
        if !done {
            tx.batch_execute(sql).await.map_err(map_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                &[version, name, &smartpay_domain::Millis::now().0],
            )
            .await
            .map_err(map_err)?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit().await.map_err(map_err)?;
    }
    let latest: i64 =
        c.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(map_err)?.get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if latest > known {
        return Err(StoreError::Internal(format!(
            "database schema version {latest} is newer than this binary's {known}"
        )));
    }
    Ok(())
}
