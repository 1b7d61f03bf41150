//! SQLite-only behaviour: group commit batches and their statistics, reopening the file, and the
//! store's threads. Everything both stores must do is in the contract suite
//! (`crates/smartpay-store/tests/contract.rs`), which runs on SQLite and PostgreSQL.

use std::sync::Arc;

use super::*;
use crate::testing::checkout;
use crate::*;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(dir.path().join("smartpay.db"))).unwrap()
}

async fn merchant(store: &SqliteStore, id: &str) {
    store.create_merchant(crate::testing::merchant_record(id)).await.unwrap();
}

#[tokio::test]
async fn a_failing_write_does_not_undo_the_others_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    merchant(&store, "m1").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        // Every tenth checkout reuses a token digest and must fail alone.
        let mut c = checkout(&format!("p{i}"), "m1", vec![]);
        if i % 10 == 9 {
            c.token_digest = b"p0".to_vec();
        }
        tasks.push(tokio::spawn(async move { store.create_checkout(c).await }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(CreateOutcome::Created) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (180, 20));
    let commits = store.group_commits();
    assert!(
        commits.batches.load(Ordering::Relaxed) < commits.writes.load(Ordering::Relaxed),
        "writes were grouped into batches"
    );
}

#[tokio::test]
async fn data_and_schema_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        merchant(&store, "m1").await;
        store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    }
    let store = open(&dir);
    assert!(store.payment("m1", "p1").await.unwrap().is_some());
}

/// Threads of this process whose name starts with `prefix` (Linux: /proc/self/task/*/comm,
/// names cut at 15 bytes).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix)))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_dropped_store_stops_its_threads_and_closes_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let before = threads_named("smartpay-store");
    let store = open(&dir);
    merchant(&store, "m1").await;
    assert_eq!(threads_named("smartpay-store"), before + 2, "a writer and a checkpointer");
    drop(store);
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = threads_named("smartpay-store");
        if left == before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, before, "the store's threads outlive it");
}
