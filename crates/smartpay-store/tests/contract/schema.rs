//! PostgreSQL's schema and statements, where a mistake costs speed or resources rather than
//! correctness, so no behaviour test would notice: reads must find their rows through indexes,
//! the hot inserts must lock no shared row, concurrent checkouts must share statements, and a
//! dropped store must let go of its connections; and the one migration that reshapes data (0007).

use std::sync::Arc;
use std::time::{Duration, Instant};

use smartpay_store::{CreateOutcome, PgStore, Store};

use crate::support::{Harness, PgDatabase, checkout, concurrently, merchant, pg_connect};

/// Every foreign key joins columns of one collation. `payments.id` is `COLLATE "C"` (byte
/// order, as SQLite); a referencing column left in the database's default collation still
/// joins correctly, but a join across two collations cannot use the referencing side's index,
/// so every Get Payment Status scanned the whole status history (and, past JIT's cost
/// threshold, compiled the query too): 768 reads/s against pgbench's 23,000 select-only
/// (docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_foreign_keys_join_columns_of_one_collation() {
    let harness = Harness::postgres().await;
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    let rows = c
        .query(
            "SELECT con.conrelid::regclass::text, a.attname::text, fa.attcollation = a.attcollation
             FROM pg_constraint con
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(col, fcol)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.col
             JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fcol
             WHERE con.contype = 'f' AND con.connamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 12, "the schema's foreign keys were read: {}", rows.len());
    let mismatched: Vec<String> = rows
        .iter()
        .filter(|r| !r.get::<_, bool>(2))
        .map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    assert!(mismatched.is_empty(), "collation differs from the referenced column: {mismatched:?}");
}

/// The hot read — a payment by id with its history (kept in its row), and whether it has
/// modifications — uses indexes only (sequential scans are priced out, so any plan that still
/// has one has no index to use): the payment's primary key and the modifications' index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_payment_and_its_history_are_read_through_indexes() {
    let harness = Harness::postgres().await;
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    c.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: String = c
        .query(
            "EXPLAIN SELECT p.id, p.history_statuses, p.history_ats, p.history_reasons,
                 EXISTS (SELECT 1 FROM modifications m WHERE m.payment_id = p.id)
             FROM payments p WHERE p.id = $1 AND p.merchant_id = $2",
            &[&"a-payment", &"a-merchant"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(plan.contains("payments_pkey") && plan.contains("modifications_payment"), "{plan}");
}

/// The tables written on every checkout, modification and notification do not reference
/// `merchants` by foreign key: each such insert would lock the merchant's one row, and with all
/// of a merchant's requests locking the same row at once PostgreSQL builds a MultiXact per
/// insert (migration 0007, decision 0009).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_hot_tables_take_no_lock_on_the_merchant_row() {
    let harness = Harness::postgres().await;
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    let referencing: Vec<String> = c
        .query(
            "SELECT conrelid::regclass::text FROM pg_constraint
             WHERE contype = 'f' AND confrelid = 'merchants'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!referencing.is_empty(), "the rarely written tables keep theirs");
    for hot in ["payments", "idempotency_keys", "modifications", "notifications"] {
        assert!(!referencing.iter().any(|t| t == hot), "{hot} references merchants: {referencing:?}");
    }
}

/// Migration 0007 moves each payment's status history from `payment_status_history` into the
/// payment's row: in `seq` order, with times and reasons, for every payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_7_moves_every_history_into_its_payment_in_order() {
    let db = PgDatabase::create().await;
    let c = pg_connect(&db.url).await;
    c.batch_execute(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    let before_7 = [
        include_str!("../../migrations/postgres/0001_initial.sql"),
        include_str!("../../migrations/postgres/0002_card_payments.sql"),
        include_str!("../../migrations/postgres/0003_identity_issuer.sql"),
        include_str!("../../migrations/postgres/0004_modifications.sql"),
        include_str!("../../migrations/postgres/0005_pending_and_notifications.sql"),
        include_str!("../../migrations/postgres/0006_vault.sql"),
    ];
    for (version, sql) in (1i64..).zip(before_7) {
        c.batch_execute(sql).await.unwrap();
        c.execute("INSERT INTO schema_migrations VALUES ($1, 'before 7', 0)", &[&version]).await.unwrap();
    }
    c.batch_execute(
        "INSERT INTO merchants (id, name, status, created_at_ms) VALUES ('m1', 'M', 'ACTIVE', 0);
         INSERT INTO payments (id, merchant_id, status, amount_minor, currency, description, request_json,
             token_digest, created_at_ms, last_status_at_ms, expires_at_ms)
         VALUES ('p-paid', 'm1', 'CAPTURED', 1099, 'EUR', 'd', '{}', '\\x01', 10, 30, 99),
                ('p-new', 'm1', 'CREATED', 500, 'EUR', 'd', '{}', '\\x02', 40, 40, 99),
                ('p-bare', 'm1', 'CREATED', 700, 'EUR', 'd', '{}', '\\x03', 50, 50, 99);
         -- p-bare has no history row at all (a hand edit, a partial restore).
         -- Inserted out of order: the arrays follow seq, not insertion.
         INSERT INTO payment_status_history (payment_id, seq, status, at_ms, reason) VALUES
             ('p-paid', 3, 'CAPTURED', 30, NULL),
             ('p-paid', 1, 'CREATED', 10, NULL),
             ('p-paid', 2, 'AUTHORIZATION_COMPLETED', 20, 'approved'),
             ('p-new', 1, 'CREATED', 40, NULL);",
    )
    .await
    .unwrap();
    let store = PgStore::connect(&db.url, 2).await.expect("the store migrates to version 7");
    let paid = store.payment("m1", "p-paid").await.unwrap().unwrap();
    let history: Vec<_> = paid.history.iter().map(|h| (h.status.as_str(), h.at.0, h.reason.as_deref())).collect();
    assert_eq!(
        history,
        [("CREATED", 10, None), ("AUTHORIZATION_COMPLETED", 20, Some("approved")), ("CAPTURED", 30, None)]
    );
    let new = store.payment("m1", "p-new").await.unwrap().unwrap();
    assert_eq!(new.history.iter().map(|h| (h.status.as_str(), h.at.0)).collect::<Vec<_>>(), [("CREATED", 40)]);
    let bare = store.payment("m1", "p-bare").await.unwrap().unwrap();
    let bare_history: Vec<_> = bare.history.iter().map(|h| (h.status.as_str(), h.at.0, h.reason.clone())).collect();
    assert_eq!(bare_history, [("CREATED", 50, None)], "the entry its creation implies");
    let gone: bool = c.query_one("SELECT to_regclass('payment_status_history') IS NULL", &[]).await.unwrap().get(0);
    assert!(gone, "the old table is dropped");
    // A history without its CREATED entry first, or with arrays out of step, is refused.
    for bad in [
        "UPDATE payments SET history_statuses = '{}', history_ats = '{}', history_reasons = '{}' WHERE id = 'p-new'",
        "UPDATE payments SET history_statuses = '{CAPTURED}' WHERE id = 'p-new'",
        "UPDATE payments SET history_ats = '{40,41}' WHERE id = 'p-new'",
    ] {
        assert!(c.batch_execute(bad).await.is_err(), "accepted: {bad}");
    }
}

/// Checkouts without claims that arrive together are inserted together: 64 released at once
/// are stored by fewer transactions than checkouts (rows one statement inserted share its
/// transaction id, `xmin`), and each is stored (decision 0010, `postgres/batched.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_checkouts_share_statements() {
    let harness = Harness::postgres().await;
    let store = &harness.store;
    merchant(store, "m1").await;
    let outcomes =
        concurrently(
            store,
            64,
            |s, i| async move { s.create_checkout(checkout(&format!("b{i:02}"), "m1", vec![])).await },
        )
        .await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(CreateOutcome::Created))), "{outcomes:?}");
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    let row =
        c.query_one("SELECT COUNT(*), COUNT(DISTINCT xmin::text) FROM payments WHERE id LIKE 'b%'", &[]).await.unwrap();
    let (rows, transactions): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, 64);
    assert!(transactions < 64, "64 checkouts took {transactions} transactions: none was written with another");
    eprintln!("64 concurrent checkouts: {transactions} insert statements");
}

/// Reads arriving together share statements: with `payments` locked by another transaction,
/// 40 concurrent reads wait in two statements (the batches' slots; read one by one, all 12 of
/// the pool's connections would wait), and once the lock is gone each gets its payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_reads_share_statements() {
    let harness = Harness::postgres().await;
    let store = harness.store.clone();
    merchant(&store, "m1").await;
    for i in 0..40 {
        crate::support::created(&store, "m1", &format!("r{i:02}")).await;
    }
    let locker = harness.pg_client().await.expect("a PostgreSQL harness");
    locker.batch_execute("BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let reads: Vec<_> = (0..40)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move { s.payment("m1", &format!("r{i:02}")).await })
        })
        .collect();
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    let waiting = || {
        count(
            &c,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    };
    let start = Instant::now();
    while waiting().await < 2 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Time for any read that would take a statement of its own to reach the lock too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let blocked = waiting().await;
    locker.batch_execute("COMMIT").await.unwrap();
    for (i, read) in reads.into_iter().enumerate() {
        let p = read.await.unwrap().unwrap().unwrap_or_else(|| panic!("r{i:02} is read"));
        assert_eq!(p.id, format!("r{i:02}"));
    }
    assert_eq!(blocked, 2, "statements waiting for the lock with 40 reads queued");
}

/// A dropped store stops its checkout writer and closes every connection it opened: nothing of
/// it stays behind on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_dropped_store_closes_its_connections() {
    let harness = Harness::postgres().await;
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    let others = || {
        count(
            &c,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend' AND application_name = 'smartpay'",
        )
    };
    let before = others().await;
    let store: Arc<dyn Store> = harness.another_store().await;
    merchant(&store, "m1").await;
    let outcomes =
        concurrently(
            &store,
            16,
            |s, i| async move { s.create_checkout(checkout(&format!("d{i}"), "m1", vec![])).await },
        )
        .await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(CreateOutcome::Created))), "{outcomes:?}");
    let during = others().await;
    assert!(during > before, "the second store holds connections ({during} against {before})");
    drop(store);
    let dropped = Instant::now();
    let mut now = during;
    while now != before && dropped.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = others().await;
    }
    assert_eq!(now, before, "connections left open {:?} after the store was dropped", dropped.elapsed());
}

/// The one number `sql` selects.
async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
}
