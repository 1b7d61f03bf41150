//! PostgreSQL's schema itself, where a mistake costs speed rather than correctness, so no
//! behaviour test would notice: reads must find their rows through indexes.

use crate::support::Harness;

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
    assert!(rows.len() >= 15, "the schema's foreign keys were read: {}", rows.len());
    let mismatched: Vec<String> = rows
        .iter()
        .filter(|r| !r.get::<_, bool>(2))
        .map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    assert!(mismatched.is_empty(), "collation differs from the referenced column: {mismatched:?}");
}

/// The hot read — a payment by id with its history, and whether it has modifications — uses
/// indexes only (sequential scans are priced out, so any plan that still has one has no index
/// to use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_payment_and_its_history_are_read_through_indexes() {
    let harness = Harness::postgres().await;
    let c = harness.pg_client().await.expect("a PostgreSQL harness");
    c.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: String = c
        .query(
            "EXPLAIN SELECT p.id, h.statuses, EXISTS (SELECT 1 FROM modifications m WHERE m.payment_id = p.id)
             FROM payments p
             LEFT JOIN LATERAL (
                 SELECT array_agg(status ORDER BY seq) AS statuses FROM payment_status_history WHERE payment_id = p.id
             ) h ON TRUE
             WHERE p.id = $1 AND p.merchant_id = $2",
            &[&"a-payment", &"a-merchant"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(plan.contains("payment_status_history_pkey"), "{plan}");
}
