//! `Idempotency-Key` and `partnerReference`: replay, conflict, concurrency, expiry.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

/// The checkouts stored in `app`'s database, counted as rows through a read-only connection of
/// the test's own (what a client was told proves nothing about what was written). Works after
/// the server has shut down.
pub fn stored_checkouts(app: &TestApp) -> i64 {
    if let Some(db) = &app.db {
        return db.count("payments");
    }
    let config = Config { data_dir: app._dir.path().to_path_buf(), ..Config::default() };
    let db = rusqlite::Connection::open_with_flags(config.database_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    db.query_row("SELECT COUNT(*) FROM payments", [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_response_byte_for_byte() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let body = app.body(m).to_string();
    let first = app.create_raw(&app.basic(m), &body, &[("Idempotency-Key", "order-1")]).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    // Same meaning, different formatting and member order.
    let reformatted = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap())
        .unwrap()
        .replace("10.99", "10.990");
    let second = app
        .create_raw(&format!("Bearer {}", app.token(m).await), &reformatted, &[("Idempotency-Key", "order-1")])
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.bytes().await.unwrap(), first);
    assert_eq!(stored_checkouts(&app), 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_conflict() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let auth = app.basic(m);
    assert_eq!(app.create_raw(&auth, &app.body(m).to_string(), &[("Idempotency-Key", "k")]).await.status(), 200);
    let changed = app.body(m).to_string().replace("10.99", "11.99");
    let r = app.create_raw(&auth, &changed, &[("Idempotency-Key", "k")]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("idempotency_conflict".into(), "Idempotency-Key".into())]);
    assert_eq!(stored_checkouts(&app), 1);
}

#[tokio::test]
async fn thirty_two_concurrent_requests_with_one_key_make_one_checkout() {
    let app = Arc::new(spawn_app().await);
    for round in 0..5 {
        let key = format!("concurrent-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let app = app.clone();
            let key = key.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let body = app.body(&app.merchant).to_string();
                barrier.wait().await;
                let r = app.create_raw(&app.basic(&app.merchant), &body, &[("Idempotency-Key", &key)]).await;
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let (status, v) = t.await.unwrap();
            match status {
                200 => {
                    ids.insert(v["transactionId"].as_str().unwrap().to_owned());
                }
                409 => assert_eq!(v["errors"][0]["code"], "request_in_progress"),
                other => panic!("unexpected {other}: {v}"),
            }
        }
        assert_eq!(ids.len(), 1, "round {round}: one checkout for one key");
    }
    assert_eq!(stored_checkouts(&app), 5);
}

#[tokio::test]
async fn partner_reference_is_unique_per_merchant() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let mut body = app.body(m);
    body["partnerReference"] = json!("ORDER-2024-0001");
    let first = app.create_raw(&app.basic(m), &body.to_string(), &[]).await.bytes().await.unwrap();
    let again = app.create_raw(&app.basic(m), &body.to_string(), &[]).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.unwrap(), first, "same reference and body: the first response");
    body["payment"]["amount"] = json!(12);
    let r = app.create_raw(&app.basic(m), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("idempotency_conflict".into(), "partnerReference".into())]);
    // Another merchant may use the same reference.
    let mut other = app.body(&app.other);
    other["partnerReference"] = json!("ORDER-2024-0001");
    assert_eq!(app.create_raw(&app.basic(&app.other), &other.to_string(), &[]).await.status(), 200);
    assert_eq!(stored_checkouts(&app), 2);
}

#[tokio::test]
async fn another_merchants_key_is_an_independent_execution() {
    let app = spawn_app().await;
    let a: Value = app
        .create_raw(&app.basic(&app.merchant), &app.body(&app.merchant).to_string(), &[("Idempotency-Key", "shared")])
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .create_raw(&app.basic(&app.other), &app.body(&app.other).to_string(), &[("Idempotency-Key", "shared")])
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(a["transactionId"], b["transactionId"]);
    assert_ne!(a["checkoutToken"], b["checkoutToken"]);
    assert_eq!(stored_checkouts(&app), 2);
}

#[tokio::test]
async fn invalid_keys_are_refused_and_a_failed_validation_is_not_remembered() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let auth = app.basic(m);
    for bad in ["x".repeat(256), "has space".to_owned()] {
        let r = app.create_raw(&auth, &app.body(m).to_string(), &[("Idempotency-Key", &bad)]).await;
        assert_eq!(r.status(), 400);
        assert_eq!(codes(&r.json().await.unwrap()), vec![("invalid_header".into(), "Idempotency-Key".into())]);
    }
    let mut broken = app.body(m);
    broken["payment"]["amount"] = json!(-1);
    assert_eq!(app.create_raw(&auth, &broken.to_string(), &[("Idempotency-Key", "retry-me")]).await.status(), 400);
    assert_eq!(app.create_raw(&auth, &app.body(m).to_string(), &[("Idempotency-Key", "retry-me")]).await.status(), 200);
    assert_eq!(stored_checkouts(&app), 1);
}

#[tokio::test]
async fn an_expired_key_executes_again() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let state = app.state();
    let before = smartpay_domain::Millis::now();
    let first: Value = app
        .create_raw(&app.basic(m), &app.body(m).to_string(), &[("Idempotency-Key", "old")])
        .await
        .json()
        .await
        .unwrap();
    // The record outlives 24 h by design; prune as the worker would a day later.
    let removed = state.store.prune_idempotency(before.plus_seconds(86_400 + 5)).await.unwrap();
    assert_eq!(removed, 1);
    let second: Value = app
        .create_raw(&app.basic(m), &app.body(m).to_string(), &[("Idempotency-Key", "old")])
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["transactionId"], second["transactionId"]);
}
