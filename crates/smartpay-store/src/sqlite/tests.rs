use std::sync::Arc;

use smartpay_domain::{Millis, PaymentStatus};

use super::*;
use crate::*;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(dir.path().join("smartpay.db"))).unwrap()
}

async fn merchant(store: &SqliteStore, id: &str) {
    store
        .create_merchant(Merchant {
            id: id.into(),
            name: "Shop".into(),
            status: MerchantStatus::Active,
            capture_mode: smartpay_domain::modification::CaptureMode::Auto,
            capture_delay_seconds: None,
            auto_cancel_seconds: None,
            identity_jwks: None,
            created_at: Millis(1),
        })
        .await
        .unwrap();
}

fn checkout(id: &str, merchant: &str, claims: Vec<IdempotencyClaim>) -> NewCheckout {
    NewCheckout {
        id: id.into(),
        merchant_id: merchant.into(),
        amount_minor: 1099,
        currency: "EUR".into(),
        description: "d".into(),
        partner_reference: None,
        customer_account_id: None,
        external_order_reference: None,
        custom_references: None,
        culture: None,
        request_json: "{}".into(),
        token_digest: id.as_bytes().to_vec(),
        identity_subject: None,
        created_at: Millis(1_000),
        expires_at: Millis(61_000),
        claims,
    }
}

fn claim(key: &str, fingerprint: &[u8]) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: IdempotencyScope::Header,
        key: key.into(),
        route: "POST /payment/creation".into(),
        fingerprint: fingerprint.to_vec(),
        response_enc: format!("response-{key}").into_bytes(),
        expires_at: Some(Millis(86_401_000)),
    }
}

#[tokio::test]
async fn a_checkout_is_stored_with_its_first_history_row_and_only_its_merchant_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    merchant(&store, "m2").await;
    assert_eq!(store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap(), CreateOutcome::Created);
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Created);
    assert_eq!(p.amount_minor, 1099);
    assert_eq!(p.history, vec![StatusChange { status: PaymentStatus::Created, at: Millis(1_000), reason: None }]);
    assert!(store.payment("m2", "p1").await.unwrap().is_none());
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_request_and_refuses_a_different_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    merchant(&store, "m2").await;
    assert_eq!(
        store.create_checkout(checkout("p1", "m1", vec![claim("k", b"f1")])).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.create_checkout(checkout("p2", "m1", vec![claim("k", b"f1")])).await.unwrap(),
        CreateOutcome::Replay { response_enc: b"response-k".to_vec(), payment_id: "p1".into() }
    );
    assert_eq!(
        store.create_checkout(checkout("p3", "m1", vec![claim("k", b"f2")])).await.unwrap(),
        CreateOutcome::Conflict { scope: IdempotencyScope::Header }
    );
    assert!(store.payment("m1", "p2").await.unwrap().is_none(), "a replay stores nothing");
    // Another merchant's use of the same key is its own.
    assert_eq!(
        store.create_checkout(checkout("p4", "m2", vec![claim("k", b"f1")])).await.unwrap(),
        CreateOutcome::Created
    );
}

#[tokio::test]
async fn an_expired_idempotency_key_executes_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![claim("k", b"f1")])).await.unwrap();
    let mut later = checkout("p2", "m1", vec![claim("k", b"f1")]);
    later.created_at = Millis(86_401_000);
    assert_eq!(store.create_checkout(later).await.unwrap(), CreateOutcome::Created);
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
    let stats = store.stats();
    assert!(
        stats.batches.load(Ordering::Relaxed) < stats.jobs.load(Ordering::Relaxed),
        "writes were grouped into batches"
    );
}

#[tokio::test]
async fn due_checkouts_expire_once_with_a_history_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    assert!(store.expire_due(Millis(60_999), 100).await.unwrap().is_empty());
    assert_eq!(
        store.expire_due(Millis(61_000), 100).await.unwrap(),
        vec![Expired { payment_id: "p1".into(), merchant_id: "m1".into() }]
    );
    assert!(store.expire_due(Millis(99_000), 100).await.unwrap().is_empty());
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Expired);
    assert_eq!(
        p.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        [PaymentStatus::Created, PaymentStatus::Expired]
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

#[tokio::test]
async fn revoking_bumps_the_auth_epoch_and_hides_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    let cred = Credential {
        id: "c1".into(),
        merchant_id: "m1".into(),
        kind: CredentialKind::OAuth,
        client_id: Some("client".into()),
        secret_digest: vec![1; 32],
        label: String::new(),
        created_at: Millis(1),
        revoked_at: None,
    };
    store.add_credential(cred).await.unwrap();
    let before = store.auth_epoch().await.unwrap();
    assert!(store.active_oauth_client("client").await.unwrap().is_some());
    store.revoke_credential("c1", Millis(2)).await.unwrap();
    assert!(store.auth_epoch().await.unwrap() > before);
    assert!(store.active_oauth_client("client").await.unwrap().is_none());
    assert!(matches!(store.revoke_credential("c1", Millis(3)).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn identity_issuer_settings_are_replaced_together_and_bump_the_auth_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    assert_eq!(store.identity_issuer("m1").await.unwrap(), Some(IdentityIssuer::default()));
    assert_eq!(store.identity_issuer("nobody").await.unwrap(), None);
    let before = store.auth_epoch().await.unwrap();
    let registered = IdentityIssuer {
        jwks: Some(r#"{"keys":[]}"#.into()),
        issuer: Some("https://id.shop.example".into()),
        audience: Some("smartpay".into()),
    };
    store.set_identity_issuer("m1", registered.clone()).await.unwrap();
    assert!(store.auth_epoch().await.unwrap() > before);
    assert_eq!(store.identity_issuer("m1").await.unwrap(), Some(registered));
    assert_eq!(store.merchant("m1").await.unwrap().unwrap().identity_jwks.as_deref(), Some(r#"{"keys":[]}"#));
    store.set_identity_issuer("m1", IdentityIssuer::default()).await.unwrap();
    assert_eq!(store.identity_issuer("m1").await.unwrap(), Some(IdentityIssuer::default()));
    assert!(matches!(store.set_identity_issuer("nobody", IdentityIssuer::default()).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn the_database_refuses_statuses_outside_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    let r =
        store.write(|c| c.execute("UPDATE payments SET status = 'PAID' WHERE id = 'p1'", []).map_err(map_err)).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
}

#[tokio::test]
async fn events_move_a_payment_only_from_the_expected_status() {
    use smartpay_domain::Event;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    let found = store.payment_by_token(b"p1").await.unwrap().unwrap();
    assert_eq!(found.id, "p1");
    let at = Millis(2_000);
    let to = store
        .apply_event(
            "p1",
            PaymentStatus::Created,
            Event::AuthorizationRequested,
            at,
            PaymentUpdate { provider: Some("sandbox".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(to, Some(PaymentStatus::AuthorizationPending));
    // A second, racing submit expected CREATED: nothing happens.
    assert_eq!(
        store
            .apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, at, PaymentUpdate::default())
            .await
            .unwrap(),
        None
    );
    let update = PaymentUpdate {
        reconciliation_reference_id: Some("ref".into()),
        payment_method: Some("VISA".into()),
        challenge_url: Some(None),
        reason: Some("authorized".into()),
        ..Default::default()
    };
    assert_eq!(
        store.apply_event("p1", PaymentStatus::AuthorizationPending, Event::Authorized, at, update).await.unwrap(),
        Some(PaymentStatus::AuthorizationCompleted)
    );
    // Transitions the model forbids are refused by the domain function, not written.
    assert!(
        store
            .apply_event("p1", PaymentStatus::AuthorizationCompleted, Event::Expired, at, PaymentUpdate::default())
            .await
            .is_err()
    );
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::AuthorizationCompleted);
    assert_eq!(
        (p.payment_method.as_str(), p.reconciliation_reference_id.as_deref(), p.provider.as_deref()),
        ("VISA", Some("ref"), Some("sandbox"))
    );
    assert_eq!(
        p.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        [PaymentStatus::Created, PaymentStatus::AuthorizationPending, PaymentStatus::AuthorizationCompleted]
    );
}

#[tokio::test]
async fn card_submissions_are_capped_per_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    for n in 1..=3 {
        assert_eq!(store.count_attempt("p1", 3).await.unwrap(), Some(n));
    }
    assert_eq!(store.count_attempt("p1", 3).await.unwrap(), None);
}

#[tokio::test]
async fn embedding_origins_are_kept_per_merchant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    merchant(&store, "m2").await;
    store.add_origin("m1", "https://shop.example", Millis(1)).await.unwrap();
    store.add_origin("m1", "https://shop.example", Millis(2)).await.unwrap();
    assert_eq!(store.origins("m1").await.unwrap(), ["https://shop.example"]);
    assert!(store.origins("m2").await.unwrap().is_empty());
    store.remove_origin("m1", "https://shop.example").await.unwrap();
    assert!(matches!(store.remove_origin("m1", "https://shop.example").await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn several_events_are_one_write_with_a_history_row_each_and_respect_the_attempt_cap() {
    use smartpay_domain::Event;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    let capped = PaymentUpdate { attempt_cap: Some(1), ..Default::default() };
    store.count_attempt("p1", 5).await.unwrap();
    assert_eq!(
        store
            .apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, Millis(2), capped.clone())
            .await
            .unwrap(),
        None,
        "the cap was already reached: nothing moves"
    );
    let with_room = PaymentUpdate { attempt_cap: Some(2), ..Default::default() };
    assert!(
        store
            .apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, Millis(2), with_room)
            .await
            .unwrap()
            .is_some()
    );
    let to = store
        .apply_events(
            "p1",
            PaymentStatus::AuthorizationPending,
            vec![Event::Authorized, Event::CaptureRequested],
            Millis(3),
            PaymentUpdate::default(),
        )
        .await
        .unwrap();
    assert_eq!(to, Some(PaymentStatus::CapturePending));
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.attempts, 2);
    assert_eq!(
        p.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        [
            PaymentStatus::Created,
            PaymentStatus::AuthorizationPending,
            PaymentStatus::AuthorizationCompleted,
            PaymentStatus::CapturePending
        ]
    );
    // A sequence with a forbidden step writes nothing at all.
    assert!(
        store
            .apply_events(
                "p1",
                PaymentStatus::CapturePending,
                vec![Event::CaptureSucceeded, Event::Expired],
                Millis(4),
                PaymentUpdate::default()
            )
            .await
            .is_err()
    );
    assert_eq!(store.payment("m1", "p1").await.unwrap().unwrap().status, PaymentStatus::CapturePending);
}

#[tokio::test]
async fn facts_are_recorded_without_a_status_change() {
    use smartpay_domain::Event;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    merchant(&store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
    store
        .apply_event(
            "p1",
            PaymentStatus::Created,
            Event::AuthorizationRequested,
            Millis(2_000),
            PaymentUpdate::default(),
        )
        .await
        .unwrap();
    let facts = PaymentUpdate {
        reconciliation_reference_id: Some("ref".into()),
        challenge_url: Some(Some("https://acs".into())),
        ..Default::default()
    };
    assert!(store.record_facts("p1", PaymentStatus::AuthorizationPending, facts.clone()).await.unwrap());
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!((p.status, p.last_status_at, p.history.len()), (PaymentStatus::AuthorizationPending, Millis(2_000), 2));
    assert_eq!(
        (p.reconciliation_reference_id.as_deref(), p.challenge_url.as_deref()),
        (Some("ref"), Some("https://acs"))
    );
    assert!(
        !store.record_facts("p1", PaymentStatus::Created, facts).await.unwrap(),
        "a payment that moved on is left alone"
    );
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
