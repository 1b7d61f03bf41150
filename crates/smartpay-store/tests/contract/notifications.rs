//! Notifications to merchants: settings and signing secrets, the outbox written by status
//! changes themselves (only for merchants with an endpoint), leased claims, attempts and
//! redelivery.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use smartpay_domain::modification::{ModificationType, Request};
use smartpay_domain::{Event, Millis, PaymentStatus};
use smartpay_store::*;

use crate::support::*;

fn settings(auth: NotificationAuth) -> NotificationSettings {
    NotificationSettings { url: "https://shop.example/hooks".into(), auth, updated_at: Millis(1) }
}

fn secret(id: &str, merchant: &str, at: i64) -> NotificationSecret {
    NotificationSecret {
        id: id.into(),
        merchant_id: merchant.into(),
        secret_sealed: format!("sealed-{id}").into_bytes(),
        created_at: Millis(at),
        expires_at: None,
    }
}

fn attempt(at: i64, status_code: Option<u16>, error: Option<&str>) -> DeliveryAttempt {
    DeliveryAttempt { at: Millis(at), status_code, error: error.map(str::to_owned), duration_ms: 12 }
}

fn of_merchant(merchant: &str) -> NotificationFilter {
    NotificationFilter { merchant_id: Some(merchant.into()), limit: 100, ..Default::default() }
}

/// Settings of every authentication kind are stored, replaced and removed; a merchant
/// that does not exist is `NotFound`.
async fn notification_settings_are_stored_replaced_and_removed(store: &Shared) {
    merchant(store, "m1").await;
    assert_eq!(store.notification_settings("m1").await.unwrap(), None);
    for auth in [
        NotificationAuth::None,
        NotificationAuth::Basic { username: "shop".into(), password_sealed: b"sealed-pw".to_vec() },
        NotificationAuth::OAuth {
            token_url: "https://id.shop.example/token".into(),
            client_id: "smartpay".into(),
            client_secret_sealed: b"sealed-secret".to_vec(),
        },
    ] {
        let s = settings(auth);
        store.set_notification_settings("m1", Some(s.clone())).await.unwrap();
        assert_eq!(store.notification_settings("m1").await.unwrap(), Some(s));
    }
    store.set_notification_settings("m1", None).await.unwrap();
    assert_eq!(store.notification_settings("m1").await.unwrap(), None);
    assert!(matches!(
        store.set_notification_settings("nobody", Some(settings(NotificationAuth::None))).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.set_notification_settings("nobody", None).await, Err(StoreError::NotFound)));
}
contract!(notification_settings_are_stored_replaced_and_removed);

/// A new signing secret retires the older ones at the given time; active secrets are
/// listed newest first.
async fn signing_secrets_rotate_with_an_overlap(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    store.add_notification_secret(secret("s1", "m1", 100), Millis(100)).await.unwrap();
    store.add_notification_secret(secret("s2", "m1", 200), Millis(5_000)).await.unwrap();
    store.add_notification_secret(secret("x1", "m2", 150), Millis(150)).await.unwrap();
    let ids = |v: Vec<NotificationSecret>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.notification_secrets("m1", Millis(4_999)).await.unwrap()), ["s2", "s1"]);
    assert_eq!(ids(store.notification_secrets("m1", Millis(5_000)).await.unwrap()), ["s2"]);
    let s2 = store.notification_secrets("m1", Millis(5_000)).await.unwrap().pop().unwrap();
    assert_eq!(s2, secret("s2", "m1", 200));
    let s1 = store.notification_secrets("m1", Millis(0)).await.unwrap().pop().unwrap();
    assert_eq!(s1.expires_at, Some(Millis(5_000)));
    assert_eq!(ids(store.notification_secrets("m2", Millis(5_000)).await.unwrap()), ["x1"]);
    assert!(matches!(
        store.add_notification_secret(secret("s9", "nobody", 1), Millis(1)).await,
        Err(StoreError::NotFound)
    ));
}
contract!(signing_secrets_rotate_with_an_overlap);

/// Status changes merchants care about write a notification in the same write — only for
/// merchants with an endpoint, never for CREATED or pending statuses.
async fn the_outbox_is_written_with_status_changes_only_for_merchants_with_settings(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    store.set_notification_settings("m1", Some(settings(NotificationAuth::None))).await.unwrap();
    for m in ["m1", "m2"] {
        authorized(store, m, &format!("{m}-p1")).await;
        created(store, m, &format!("{m}-p2")).await;
    }
    assert!(store.notifications(of_merchant("m2")).await.unwrap().is_empty(), "no endpoint, no outbox");
    let listed = store.notifications(of_merchant("m1")).await.unwrap();
    assert_eq!(listed.len(), 1, "CREATED and AUTHORIZATION_PENDING are not notified: {listed:?}");
    let n = &listed[0];
    assert_eq!((n.merchant_id.as_str(), n.payment_id.as_str(), n.object_id.as_str()), ("m1", "m1-p1", "m1-p1"));
    assert_eq!(
        (n.object_type, n.status.as_str(), n.origin),
        (NotificationObject::Payment, "AUTHORIZATION_COMPLETED", EventOrigin::Automated)
    );
    assert_eq!(n.reconciliation_reference_id.as_deref(), Some("psp-m1-p1"));
    assert_eq!(
        (n.state, n.attempts, n.created_at, n.next_attempt_at, n.retry_from),
        (DeliveryState::Pending, 0, Millis(3_000), Millis(3_000), Millis(3_000))
    );
    assert_eq!((n.delivered_at, n.lease_token.as_str(), n.modification_id.clone()), (None, "", None));
    assert!(!n.id.is_empty());

    // The expiry sweep and a shopper's action notify too, with their origin.
    store.expire_due(Millis(61_000), 10).await.unwrap();
    created(store, "m1", "m1-p3").await;
    store
        .apply_event(
            "m1-p3",
            PaymentStatus::Created,
            Event::AuthorizationRequested,
            Millis(2_000),
            PaymentUpdate { origin: EventOrigin::Widget, ..Default::default() },
        )
        .await
        .unwrap();
    store
        .apply_event(
            "m1-p3",
            PaymentStatus::AuthorizationPending,
            Event::AuthorizationFailed,
            Millis(2_500),
            PaymentUpdate { origin: EventOrigin::Widget, ..Default::default() },
        )
        .await
        .unwrap();
    let mut seen: Vec<(String, String, EventOrigin)> = store
        .notifications(of_merchant("m1"))
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.payment_id, n.status, n.origin))
        .collect();
    seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        seen,
        [
            ("m1-p1".to_owned(), "AUTHORIZATION_COMPLETED".to_owned(), EventOrigin::Automated),
            ("m1-p2".to_owned(), "EXPIRED".to_owned(), EventOrigin::Automated),
            ("m1-p3".to_owned(), "AUTHORIZATION_FAILED".to_owned(), EventOrigin::Widget),
        ]
    );
    let by_payment = store
        .notifications(NotificationFilter { payment_id: Some("m1-p2".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_payment.len(), 1);
    assert_eq!(
        store.notifications(NotificationFilter { limit: 2, ..Default::default() }).await.unwrap().len(),
        2,
        "the limit holds"
    );
}
contract!(the_outbox_is_written_with_status_changes_only_for_merchants_with_settings);

/// A refund's status changes are notified as `objectType: refund`.
async fn refunds_are_notified_as_refunds(store: &Shared) {
    merchant(store, "m1").await;
    store.set_notification_settings("m1", Some(settings(NotificationAuth::None))).await.unwrap();
    authorized(store, "m1", "p1").await;
    let capture = full_capture("cap", "capture-1", "p1");
    store.begin_modification(capture.clone()).await.unwrap();
    let done = |kind: ModificationType, at: i64| ModificationAnswer {
        status: kind.final_status(true),
        reconciliation_reference_id: None,
        failure_code: None,
        at: Millis(at),
        schedule: Vec::new(),
        origin: EventOrigin::Automated,
    };
    store.finish_modification("cap", done(ModificationType::Capture, 11_000)).await.unwrap();
    let refund = NewModification {
        pk: "ref".into(),
        modification_id: "refund-1".into(),
        request: ModificationRequest::Merchant(Request::Refund(Some(100))),
        fingerprint: b"refund".to_vec(),
        at: Millis(12_000),
        ..capture
    };
    store.begin_modification(refund).await.unwrap();
    store.finish_modification("ref", done(ModificationType::Refund, 13_000)).await.unwrap();
    let refunds: Vec<(String, Option<String>, String, EventOrigin)> = store
        .notifications(of_merchant("m1"))
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.object_type == NotificationObject::Refund)
        .map(|n| (n.object_id, n.modification_id, n.status, n.origin))
        .collect();
    let mut refunds = refunds;
    refunds.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(
        refunds,
        [
            ("refund-1".to_owned(), Some("refund-1".to_owned()), "REFUNDED".to_owned(), EventOrigin::Automated),
            ("refund-1".to_owned(), Some("refund-1".to_owned()), "REFUND_PENDING".to_owned(), EventOrigin::Api),
        ]
    );
    let payments: Vec<String> = store
        .notifications(of_merchant("m1"))
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.object_type == NotificationObject::Payment)
        .map(|n| n.status)
        .collect();
    assert!(payments.contains(&"CAPTURED".to_owned()), "{payments:?}");
}
contract!(refunds_are_notified_as_refunds);

/// A notification is claimed under a lease, its attempts recorded only by the holder of
/// the claim, retried, given up, redelivered by an operator, and delivered.
async fn a_notification_is_claimed_attempted_given_up_and_redelivered(store: &Shared) {
    merchant(store, "m1").await;
    store.set_notification_settings("m1", Some(settings(NotificationAuth::None))).await.unwrap();
    authorized(store, "m1", "p1").await;
    let id = store.notifications(of_merchant("m1")).await.unwrap()[0].id.clone();
    assert!(store.claim_notifications(Millis(2_999), 30_000, 10).await.unwrap().is_empty(), "not due yet");
    let claimed = store.claim_notifications(Millis(3_000), 30_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let token = claimed[0].lease_token.clone();
    assert!(!token.is_empty());
    assert!(store.claim_notifications(Millis(3_000), 30_000, 10).await.unwrap().is_empty(), "leased");
    assert!(
        !store
            .record_delivery_attempt(
                &id,
                "not-the-token",
                attempt(3_100, Some(500), None),
                AttemptResult::RetryAt(Millis(8_000))
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .record_delivery_attempt(
                &id,
                &token,
                attempt(3_100, Some(500), None),
                AttemptResult::RetryAt(Millis(8_000))
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_delivery_attempt(&id, &token, attempt(3_200, None, None), AttemptResult::Delivered)
            .await
            .unwrap(),
        "the claim ended with its attempt"
    );
    let (n, attempts) = store.notification(&id, Some("m1")).await.unwrap().unwrap();
    assert_eq!(
        (n.state, n.attempts, n.next_attempt_at, n.lease_token.as_str()),
        (DeliveryState::Pending, 1, Millis(8_000), "")
    );
    assert_eq!(attempts, [attempt(3_100, Some(500), None)]);
    assert!(store.notification(&id, Some("m2")).await.unwrap().is_none(), "another merchant's notification");
    assert!(store.notification("nope", None).await.unwrap().is_none());

    assert!(store.claim_notifications(Millis(7_999), 30_000, 10).await.unwrap().is_empty());
    let token = store.claim_notifications(Millis(8_000), 30_000, 10).await.unwrap()[0].lease_token.clone();
    assert!(
        store
            .record_delivery_attempt(&id, &token, attempt(8_100, None, Some("timeout")), AttemptResult::GiveUp)
            .await
            .unwrap()
    );
    let (n, attempts) = store.notification(&id, None).await.unwrap().unwrap();
    assert_eq!((n.state, n.attempts), (DeliveryState::Failed, 2));
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1], attempt(8_100, None, Some("timeout")));
    assert!(store.claim_notifications(Millis(99_000), 30_000, 10).await.unwrap().is_empty(), "given up");
    let failed = store
        .notifications(NotificationFilter { state: Some(DeliveryState::Failed), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);

    assert!(!store.redeliver_notification(&id, Some("m2"), Millis(100_000)).await.unwrap());
    assert!(!store.redeliver_notification("nope", None, Millis(100_000)).await.unwrap());
    assert!(store.redeliver_notification(&id, Some("m1"), Millis(100_000)).await.unwrap());
    let (n, _) = store.notification(&id, None).await.unwrap().unwrap();
    assert_eq!((n.state, n.next_attempt_at, n.retry_from), (DeliveryState::Pending, Millis(100_000), Millis(100_000)));
    let token = store.claim_notifications(Millis(100_000), 30_000, 10).await.unwrap()[0].lease_token.clone();
    assert!(
        store
            .record_delivery_attempt(&id, &token, attempt(100_050, Some(204), None), AttemptResult::Delivered)
            .await
            .unwrap()
    );
    let (n, attempts) = store.notification(&id, None).await.unwrap().unwrap();
    assert_eq!(
        (n.state, n.attempts, n.delivered_at, attempts.len()),
        (DeliveryState::Delivered, 3, Some(Millis(100_050)), 3)
    );
    assert!(store.claim_notifications(Millis(999_000), 30_000, 10).await.unwrap().is_empty(), "delivered");
}
contract!(a_notification_is_claimed_attempted_given_up_and_redelivered);

/// A claim whose lease ran out is handed to the next claimer; the first can no longer
/// record an attempt.
async fn an_expired_notification_lease_fences_the_old_claim(store: &Shared) {
    merchant(store, "m1").await;
    store.set_notification_settings("m1", Some(settings(NotificationAuth::None))).await.unwrap();
    authorized(store, "m1", "p1").await;
    let first = store.claim_notifications(Millis(3_000), 1_000, 10).await.unwrap().pop().unwrap();
    assert!(store.claim_notifications(Millis(3_999), 1_000, 10).await.unwrap().is_empty());
    let second = store.claim_notifications(Millis(4_000), 1_000, 10).await.unwrap().pop().unwrap();
    assert_eq!(first.id, second.id);
    assert_ne!(first.lease_token, second.lease_token);
    assert!(
        !store
            .record_delivery_attempt(
                &first.id,
                &first.lease_token,
                attempt(4_100, Some(200), None),
                AttemptResult::Delivered
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .record_delivery_attempt(
                &second.id,
                &second.lease_token,
                attempt(4_100, Some(200), None),
                AttemptResult::Delivered
            )
            .await
            .unwrap()
    );
    let (n, attempts) = store.notification(&first.id, None).await.unwrap().unwrap();
    assert_eq!((n.state, attempts.len()), (DeliveryState::Delivered, 1));
}
contract!(an_expired_notification_lease_fences_the_old_claim);

/// Several delivery workers claiming at once deliver every notification exactly once.
async fn concurrent_notification_claimers_deliver_each_once(store: &Shared) {
    merchant(store, "m1").await;
    store.set_notification_settings("m1", Some(settings(NotificationAuth::None))).await.unwrap();
    for i in 0..24 {
        authorized(store, "m1", &format!("p{i:02}")).await;
    }
    let delivered: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = delivered.clone();
    concurrently(store, 4, move |s, _| {
        let delivered = seen.clone();
        async move {
            loop {
                let batch = s.claim_notifications(Millis(5_000), 600_000, 2).await.unwrap();
                if batch.is_empty() {
                    return;
                }
                for n in batch {
                    delivered.lock().unwrap().push(n.id.clone());
                    let ok = s
                        .record_delivery_attempt(
                            &n.id,
                            &n.lease_token,
                            attempt(5_001, Some(200), None),
                            AttemptResult::Delivered,
                        )
                        .await
                        .unwrap();
                    assert!(ok, "a claimed notification was taken over");
                }
            }
        }
    })
    .await;
    let delivered = delivered.lock().unwrap().clone();
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!((delivered.len(), unique.len()), (24, 24), "{delivered:?}");
    let all = store
        .notifications(NotificationFilter { state: Some(DeliveryState::Delivered), limit: 100, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(all.len(), 24);
    assert!(all.iter().all(|n| n.attempts == 1));
}
contract!(concurrent_notification_claimers_deliver_each_once);
