//! Schema migrations: numbered SQL files embedded in the binary, each applied once, in order,
//! in its own transaction, and recorded in `schema_migrations`.

use rusqlite::Connection;

use super::map_err;
use crate::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, "card_payments", include_str!("../../migrations/sqlite/0002_card_payments.sql")),
    (3, "identity_issuer", include_str!("../../migrations/sqlite/0003_identity_issuer.sql")),
    (4, "modifications", include_str!("../../migrations/sqlite/0004_modifications.sql")),
    (5, "pending_and_notifications", include_str!("../../migrations/sqlite/0005_pending_and_notifications.sql")),
    (6, "vault", include_str!("../../migrations/sqlite/0006_vault.sql")),
    (7, "hot_path", include_str!("../../migrations/sqlite/0007_hot_path.sql")),
];

/// Applies every migration the database has not seen yet.
pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
    )
    .map_err(map_err)?;
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(map_err)?;
        let done: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| r.get(0))
            .map_err(map_err)?;
        if !done {
            tx.execute_batch(sql).map_err(map_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, smartpay_domain::Millis::now().0],
            )
            .map_err(map_err)?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit().map_err(map_err)?;
    }
    let latest: i64 =
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0)).map_err(map_err)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if latest > known {
        return Err(StoreError::Internal(format!(
            "database schema version {latest} is newer than this binary's {known}"
        )));
    }
    Ok(())
}
