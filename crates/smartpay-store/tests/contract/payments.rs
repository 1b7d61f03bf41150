//! Checkouts, idempotency claims, status changes, attempt counting and the expiry sweep.

use std::collections::HashSet;

use smartpay_domain::{Event, Millis, PaymentStatus};
use smartpay_store::*;

use crate::support::*;

/// A checkout is stored with its first history row; only its merchant sees it, by id or
/// by its token's digest.
async fn a_checkout_is_stored_with_its_first_history_row_and_only_its_merchant_sees_it(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    let mut c = checkout("p1", "m1", vec![]);
    c.partner_reference = Some("order-1".into());
    c.external_order_reference = Some("ext-1".into());
    c.custom_references = Some(r#"[{"k":"v"}]"#.into());
    c.culture = Some("de-DE".into());
    c.identity_subject = Some("user-7".into());
    assert_eq!(store.create_checkout(c).await.unwrap(), CreateOutcome::Created);
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!((p.id.as_str(), p.merchant_id.as_str(), p.status), ("p1", "m1", PaymentStatus::Created));
    assert_eq!((p.amount_minor, p.currency.as_str(), p.description.as_str()), (1099, "EUR", "d"));
    assert_eq!(p.partner_reference.as_deref(), Some("order-1"));
    assert_eq!(p.external_order_reference.as_deref(), Some("ext-1"));
    assert_eq!(p.custom_references.as_deref(), Some(r#"[{"k":"v"}]"#));
    assert_eq!((p.culture.as_deref(), p.identity_subject.as_deref()), (Some("de-DE"), Some("user-7")));
    assert_eq!((p.created_at, p.last_status_at, p.expires_at), (Millis(1_000), Millis(1_000), Millis(61_000)));
    assert_eq!((p.attempts, p.mit, p.provider.clone(), p.review_reason.clone()), (0, false, None, None));
    assert!(p.modifications.is_empty());
    assert_eq!(p.history, vec![StatusChange { status: PaymentStatus::Created, at: Millis(1_000), reason: None }]);
    assert!(store.payment("m2", "p1").await.unwrap().is_none(), "another merchant's payment is invisible");
    assert!(store.payment("m1", "nope").await.unwrap().is_none());
    let by_token = store.payment_by_token(b"p1").await.unwrap().unwrap();
    assert_eq!((by_token.id.as_str(), by_token.merchant_id.as_str()), ("p1", "m1"));
    assert!(store.payment_by_token(b"unknown").await.unwrap().is_none());
}
contract!(a_checkout_is_stored_with_its_first_history_row_and_only_its_merchant_sees_it);

/// An idempotency key replays the same request, refuses a different one, and belongs to
/// one merchant.
async fn an_idempotency_key_replays_the_same_request_and_refuses_a_different_one(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
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
    assert!(store.payment("m1", "p3").await.unwrap().is_none(), "a conflict stores nothing");
    // Another merchant's use of the same key is its own.
    assert_eq!(
        store.create_checkout(checkout("p4", "m2", vec![claim("k", b"f1")])).await.unwrap(),
        CreateOutcome::Created
    );
}
contract!(an_idempotency_key_replays_the_same_request_and_refuses_a_different_one);

/// An expired idempotency key executes again; pruning deletes only expired keys.
async fn expired_idempotency_keys_execute_again_and_are_pruned(store: &Shared) {
    merchant(store, "m1").await;
    store.create_checkout(checkout("p1", "m1", vec![claim("k", b"f1")])).await.unwrap();
    let mut later = checkout("p2", "m1", vec![claim("k", b"f1")]);
    later.created_at = Millis(86_401_000);
    later.expires_at = Millis(86_461_000);
    assert_eq!(store.create_checkout(later).await.unwrap(), CreateOutcome::Created);

    let mut short = claim("short", b"f");
    short.expires_at = Some(Millis(5_000));
    store.create_checkout(checkout("p3", "m1", vec![short, partner_claim("ref-3", b"f")])).await.unwrap();
    assert_eq!(store.prune_idempotency(Millis(4_999)).await.unwrap(), 0);
    assert_eq!(store.prune_idempotency(Millis(5_000)).await.unwrap(), 1, "only the expired key goes");
    assert_eq!(store.prune_idempotency(Millis(5_000)).await.unwrap(), 0);
    // The partnerReference claim (no expiry) still replays.
    assert_eq!(
        store.create_checkout(checkout("p4", "m1", vec![partner_claim("ref-3", b"f")])).await.unwrap(),
        CreateOutcome::Replay { response_enc: b"response-ref-3".to_vec(), payment_id: "p3".into() }
    );
    // The pruned header key executes again.
    let mut again = checkout("p5", "m1", vec![claim("short", b"f")]);
    again.created_at = Millis(6_000);
    assert_eq!(store.create_checkout(again).await.unwrap(), CreateOutcome::Created);
}
contract!(expired_idempotency_keys_execute_again_and_are_pruned);

/// 64 concurrent creates with one key: exactly one checkout, every other call replays it.
async fn concurrent_idempotency_claims_make_exactly_one_checkout(store: &Shared) {
    merchant(store, "m1").await;
    let outcomes = concurrently(store, 64, |s, i| async move {
        s.create_checkout(checkout(&format!("p{i}"), "m1", vec![claim("same-key", b"f")])).await
    })
    .await;
    let created: Vec<usize> =
        outcomes.iter().enumerate().filter(|(_, o)| matches!(o, Ok(CreateOutcome::Created))).map(|(i, _)| i).collect();
    assert_eq!(created.len(), 1, "exactly one Created: {outcomes:?}");
    let winner = format!("p{}", created[0]);
    for o in &outcomes {
        match o {
            Ok(CreateOutcome::Created) => {}
            Ok(CreateOutcome::Replay { payment_id, response_enc }) => {
                assert_eq!(payment_id, &winner);
                assert_eq!(response_enc, b"response-same-key");
            }
            other => panic!("expected Created or Replay, got {other:?}"),
        }
    }
    assert_eq!(store.payment_keys_after("", 1_000).await.unwrap(), vec![("m1".to_owned(), winner)]);
}
contract!(concurrent_idempotency_claims_make_exactly_one_checkout);

/// A partnerReference is unique per merchant: concurrent creates with it (each with its
/// own Idempotency-Key) make one checkout and replay it; another request with it is a
/// conflict; another merchant may use it.
async fn a_partner_reference_makes_one_checkout_even_under_concurrency(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    let outcomes = concurrently(store, 16, |s, i| async move {
        let mut c =
            checkout(&format!("p{i}"), "m1", vec![claim(&format!("key-{i}"), b"f"), partner_claim("order-9", b"f")]);
        c.partner_reference = Some("order-9".into());
        s.create_checkout(c).await
    })
    .await;
    let created: Vec<usize> =
        outcomes.iter().enumerate().filter(|(_, o)| matches!(o, Ok(CreateOutcome::Created))).map(|(i, _)| i).collect();
    assert_eq!(created.len(), 1, "exactly one Created: {outcomes:?}");
    let winner = format!("p{}", created[0]);
    for o in &outcomes {
        match o {
            Ok(CreateOutcome::Created) => {}
            Ok(CreateOutcome::Replay { payment_id, .. }) => assert_eq!(payment_id, &winner),
            other => panic!("expected Created or Replay, got {other:?}"),
        }
    }
    let mut other = checkout("px", "m1", vec![partner_claim("order-9", b"another request")]);
    other.partner_reference = Some("order-9".into());
    assert_eq!(
        store.create_checkout(other).await.unwrap(),
        CreateOutcome::Conflict { scope: IdempotencyScope::PartnerReference }
    );
    // Without a claim, the payments table itself refuses a second use.
    let mut unclaimed = checkout("py", "m1", vec![]);
    unclaimed.partner_reference = Some("order-9".into());
    assert!(matches!(store.create_checkout(unclaimed).await, Err(StoreError::Conflict(_))));
    let mut elsewhere = checkout("pz", "m2", vec![partner_claim("order-9", b"f")]);
    elsewhere.partner_reference = Some("order-9".into());
    assert_eq!(store.create_checkout(elsewhere).await.unwrap(), CreateOutcome::Created);
}
contract!(a_partner_reference_makes_one_checkout_even_under_concurrency);

/// A write that fails (a reused token digest) fails alone: concurrent writes around it
/// are stored.
async fn a_failing_write_does_not_undo_concurrent_ones(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p0").await;
    let outcomes = concurrently(store, 40, |s, i| async move {
        let mut c = checkout(&format!("q{i}"), "m1", vec![]);
        if i % 10 == 9 {
            c.token_digest = b"p0".to_vec();
        }
        s.create_checkout(c).await
    })
    .await;
    let ok = outcomes.iter().filter(|o| matches!(o, Ok(CreateOutcome::Created))).count();
    let conflicts = outcomes.iter().filter(|o| matches!(o, Err(StoreError::Conflict(_)))).count();
    assert_eq!((ok, conflicts), (36, 4), "{outcomes:?}");
    assert_eq!(store.payment_keys_after("", 1_000).await.unwrap().len(), 37);
    assert!(store.payment("m1", "q9").await.unwrap().is_none());
}
contract!(a_failing_write_does_not_undo_concurrent_ones);

/// Checkouts without claims stored at the same moment (PostgreSQL writes such checkouts
/// together, several rows per statement) each keep exactly their own fields, with and without
/// the optional ones, and their first history row.
async fn concurrent_checkouts_keep_each_their_own_fields(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    let outcomes = concurrently(store, 48, |s, i| async move { s.create_checkout(varied_checkout(i)).await }).await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(CreateOutcome::Created))), "{outcomes:?}");
    for i in 0..48 {
        let want = varied_checkout(i);
        let p =
            store.payment(&want.merchant_id, &want.id).await.unwrap().unwrap_or_else(|| panic!("{} stored", want.id));
        let got = (
            (p.amount_minor, p.currency.as_str(), p.description.as_str()),
            (p.partner_reference.as_deref(), p.external_order_reference.as_deref(), p.custom_references.as_deref()),
            (p.culture.as_deref(), p.identity_subject.as_deref(), p.customer_account_id.as_deref()),
            (p.created_at, p.last_status_at, p.expires_at, p.status),
        );
        let expected = (
            (want.amount_minor, want.currency.as_str(), want.description.as_str()),
            (
                want.partner_reference.as_deref(),
                want.external_order_reference.as_deref(),
                want.custom_references.as_deref(),
            ),
            (want.culture.as_deref(), want.identity_subject.as_deref(), None),
            (want.created_at, want.created_at, want.expires_at, PaymentStatus::Created),
        );
        assert_eq!(got, expected, "checkout {i}");
        assert_eq!(p.history, vec![StatusChange { status: PaymentStatus::Created, at: want.created_at, reason: None }]);
        let by_token = store.payment_by_token(&want.token_digest).await.unwrap().unwrap();
        assert_eq!(by_token.id, want.id);
    }
}
contract!(concurrent_checkouts_keep_each_their_own_fields);

/// Concurrent reads of one payment each (PostgreSQL answers reads arriving together with one
/// statement) each get their own payment: never another merchant's, nothing for an unknown id,
/// the same payment for two readers of one id, and modifications where it has them.
async fn concurrent_reads_each_get_their_own_payment(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    for i in [0, 2, 3, 4, 5, 6, 7] {
        created(store, if i < 4 { "m1" } else { "m2" }, &format!("r{i}")).await;
    }
    authorized(store, "m1", "r1").await;
    let begun = store.begin_modification(full_capture("cap-r1", "mod-cap-r1", "r1")).await.unwrap();
    assert!(matches!(begun, BeginOutcome::Started { .. }), "{begun:?}");
    // (merchant asking, id asked for): its own, another merchant's, unknown, the same id twice.
    let asks: Vec<(&str, String)> = (0..48)
        .map(|i| match i % 6 {
            0 | 1 => ("m1", format!("r{}", i % 4)),
            2 => ("m2", format!("r{}", 4 + i % 4)),
            3 => ("m2", format!("r{}", i % 4)),
            4 => ("m1", format!("unknown-{i}")),
            _ => ("m1", "r1".to_owned()),
        })
        .collect();
    let asked = asks.clone();
    let answers = concurrently(store, asks.len(), move |s, i| {
        let (merchant, id) = asked[i].clone();
        async move { s.payment(merchant, &id).await }
    })
    .await;
    for ((merchant, id), answer) in asks.iter().zip(answers) {
        let answer = answer.unwrap();
        let owner = match id.strip_prefix('r').and_then(|n| n.parse::<u32>().ok()) {
            Some(n) if n < 4 => Some("m1"),
            Some(_) => Some("m2"),
            None => None,
        };
        if owner == Some(*merchant) {
            let p = answer.unwrap_or_else(|| panic!("{merchant} reads its {id}"));
            assert_eq!((p.id.as_str(), p.merchant_id.as_str()), (id.as_str(), *merchant));
            let kinds: Vec<_> = p.modifications.iter().map(|m| m.kind).collect();
            let capture = smartpay_domain::modification::ModificationType::Capture;
            assert_eq!(kinds, if id == "r1" { vec![capture] } else { vec![] }, "{id}");
        } else {
            assert!(answer.is_none(), "{merchant} must not read {id}: {answer:?}");
        }
    }
}
contract!(concurrent_reads_each_get_their_own_payment);

/// Checkout `i` of [`concurrent_checkouts_keep_each_their_own_fields`]: two merchants, and
/// every optional field set on some and absent on others.
fn varied_checkout(i: usize) -> NewCheckout {
    let n = i64::try_from(i).unwrap();
    let mut c = checkout(&format!("v{i:02}"), if i.is_multiple_of(2) { "m1" } else { "m2" }, vec![]);
    c.amount_minor = 100 + n;
    c.currency = ["EUR", "USD", "CHF"][i % 3].into();
    c.description = format!("order {i} — ünïcode");
    c.partner_reference = (i % 4 == 1).then(|| format!("ref-{i}"));
    c.external_order_reference = (i.is_multiple_of(3)).then(|| format!("ext-{i}"));
    c.custom_references = (i.is_multiple_of(5)).then(|| format!(r#"[{{"k":"{i}"}}]"#));
    c.culture = (i % 2 == 1).then(|| "de-DE".into());
    c.identity_subject = (i.is_multiple_of(7)).then(|| format!("user-{i}"));
    c.request_json = format!(r#"{{"i":{i}}}"#);
    c.token_digest = format!("digest-{i}").into_bytes();
    c.created_at = Millis(1_000 + n);
    c.expires_at = Millis(61_000 + 2 * n);
    c
}

/// The first checkout naming a customer account opens the account's vault; later ones
/// leave it as it is.
async fn a_checkout_with_a_customer_account_opens_its_vault(store: &Shared) {
    merchant(store, "m1").await;
    let mut c = checkout("p1", "m1", vec![]);
    c.customer_account_id = Some("cust-1".into());
    store.create_checkout(c).await.unwrap();
    let account = store.account("m1", "cust-1").await.unwrap().unwrap();
    assert_eq!((account.created_at, account.updated_at, account.billing_address), (Millis(1_000), Millis(1_000), None));
    let mut c = checkout("p2", "m1", vec![]);
    c.customer_account_id = Some("cust-1".into());
    c.created_at = Millis(9_000);
    store.create_checkout(c).await.unwrap();
    assert_eq!(store.account("m1", "cust-1").await.unwrap().unwrap().created_at, Millis(1_000));
    assert_eq!(store.payment("m1", "p2").await.unwrap().unwrap().customer_account_id.as_deref(), Some("cust-1"));
}
contract!(a_checkout_with_a_customer_account_opens_its_vault);

/// Events move a payment only from the expected status, with the facts they bring; the
/// model's forbidden transitions are errors that write nothing.
async fn events_move_a_payment_only_from_the_expected_status(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    let at = Millis(2_000);
    let to = store
        .apply_event(
            "p1",
            PaymentStatus::Created,
            Event::AuthorizationRequested,
            at,
            PaymentUpdate {
                provider: Some("sandbox".into()),
                stored_option_reference: Some("opt-1".into()),
                new_option_reference: Some("opt-2".into()),
                challenge_url: Some(Some("https://acs.example".into())),
                ..Default::default()
            },
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
    assert_eq!(
        store
            .apply_event("nope", PaymentStatus::Created, Event::AuthorizationRequested, at, PaymentUpdate::default())
            .await
            .unwrap(),
        None,
        "an unknown payment moves nowhere"
    );
    let update = PaymentUpdate {
        reconciliation_reference_id: Some("ref".into()),
        payment_method: Some("VISA".into()),
        challenge_url: Some(None),
        reason: Some("authorized".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .apply_event("p1", PaymentStatus::AuthorizationPending, Event::Authorized, Millis(3_000), update)
            .await
            .unwrap(),
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
    assert_eq!((p.status, p.last_status_at), (PaymentStatus::AuthorizationCompleted, Millis(3_000)));
    assert_eq!(
        (p.payment_method.as_str(), p.reconciliation_reference_id.as_deref(), p.provider.as_deref()),
        ("VISA", Some("ref"), Some("sandbox"))
    );
    assert_eq!(p.challenge_url, None, "Some(None) clears the challenge");
    assert_eq!(
        (p.stored_option_reference.as_deref(), p.new_option_reference.as_deref()),
        (Some("opt-1"), Some("opt-2"))
    );
    assert_eq!(
        p.history,
        vec![
            StatusChange { status: PaymentStatus::Created, at: Millis(1_000), reason: None },
            StatusChange { status: PaymentStatus::AuthorizationPending, at: Millis(2_000), reason: None },
            StatusChange {
                status: PaymentStatus::AuthorizationCompleted,
                at: Millis(3_000),
                reason: Some("authorized".into())
            },
        ]
    );
}
contract!(events_move_a_payment_only_from_the_expected_status);

/// Many concurrent moves from the same status: exactly one wins, with one history row.
async fn concurrent_status_changes_from_one_status_have_exactly_one_winner(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    let outcomes = concurrently(store, 24, |s, i| async move {
        let update = PaymentUpdate { provider: Some(format!("provider-{i}")), ..Default::default() };
        s.apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, Millis(2_000), update).await
    })
    .await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Ok(Some(PaymentStatus::AuthorizationPending))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Some(_) | None))), "losers are told, not failed: {outcomes:?}");
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.provider, Some(format!("provider-{}", winners[0])), "only the winner's facts are written");
    assert_eq!(history(store, "m1", "p1").await, [PaymentStatus::Created, PaymentStatus::AuthorizationPending]);
    // Then two outcomes race (authorized vs failed): one of them, never both.
    let outcomes = concurrently(store, 12, |s, i| async move {
        let event = if i % 2 == 0 { Event::Authorized } else { Event::AuthorizationFailed };
        s.apply_event("p1", PaymentStatus::AuthorizationPending, event, Millis(3_000), PaymentUpdate::default()).await
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Ok(Some(_)))).count(), 1, "{outcomes:?}");
    assert_eq!(history(store, "m1", "p1").await.len(), 3);
}
contract!(concurrent_status_changes_from_one_status_have_exactly_one_winner);

/// Card submissions are counted up to a cap, also when they race.
async fn card_submissions_are_capped_per_checkout_even_under_concurrency(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    for n in 1..=3 {
        assert_eq!(store.count_attempt("p1", 3).await.unwrap(), Some(n));
    }
    assert_eq!(store.count_attempt("p1", 3).await.unwrap(), None);
    assert_eq!(store.count_attempt("nope", 3).await.unwrap(), None);

    created(store, "m1", "p2").await;
    let counts = concurrently(store, 30, |s, _| async move { s.count_attempt("p2", 5).await.unwrap() }).await;
    let mut granted: Vec<u32> = counts.iter().flatten().copied().collect();
    granted.sort_unstable();
    assert_eq!(granted, [1, 2, 3, 4, 5], "each count handed out once: {counts:?}");
    assert_eq!(store.payment("m1", "p2").await.unwrap().unwrap().attempts, 5);
}
contract!(card_submissions_are_capped_per_checkout_even_under_concurrency);

/// Several events are one write with a history row each and respect the attempt cap; a
/// sequence with a forbidden step writes nothing.
async fn several_events_are_one_write_and_respect_the_attempt_cap(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    let capped = PaymentUpdate { attempt_cap: Some(1), ..Default::default() };
    store.count_attempt("p1", 5).await.unwrap();
    assert_eq!(
        store
            .apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, Millis(2), capped)
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
        history(store, "m1", "p1").await,
        [
            PaymentStatus::Created,
            PaymentStatus::AuthorizationPending,
            PaymentStatus::AuthorizationCompleted,
            PaymentStatus::CapturePending
        ]
    );
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
    assert_eq!(history(store, "m1", "p1").await.len(), 4);
    // A self-transition (a further capture on CAPTURED) changes facts but adds no row.
    store
        .apply_event("p1", PaymentStatus::CapturePending, Event::CaptureSucceeded, Millis(5), PaymentUpdate::default())
        .await
        .unwrap();
    let to = store
        .apply_event(
            "p1",
            PaymentStatus::Captured,
            Event::CaptureRequested,
            Millis(6),
            PaymentUpdate { decline_code: Some("none".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(to, Some(PaymentStatus::Captured));
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!((p.history.len(), p.decline_code.as_deref(), p.last_status_at), (5, Some("none"), Millis(6)));
}
contract!(several_events_are_one_write_and_respect_the_attempt_cap);

/// Racing submissions with an attempt cap: no more status changes succeed than the cap
/// allows, and the counter never passes it.
async fn the_attempt_cap_holds_under_concurrent_submissions(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    // Facts-only writes (no events) that each count a submission, capped at 3.
    let outcomes = concurrently(store, 20, |s, i| async move {
        let update = PaymentUpdate { attempt_cap: Some(3), decline_code: Some(format!("d{i}")), ..Default::default() };
        s.record_facts("p1", PaymentStatus::Created, update).await.unwrap()
    })
    .await;
    assert_eq!(outcomes.iter().filter(|done| **done).count(), 3, "{outcomes:?}");
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!((p.attempts, p.status, p.history.len()), (3, PaymentStatus::Created, 1));
}
contract!(the_attempt_cap_holds_under_concurrent_submissions);

/// Facts are recorded on a payment still in the given status, without a status change.
async fn facts_are_recorded_without_a_status_change(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    submit(store, "p1", PaymentUpdate::default()).await;
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
contract!(facts_are_recorded_without_a_status_change);

/// Due checkouts expire once, with a history row, within the sweep's limit; only CREATED
/// ones do.
async fn due_checkouts_expire_once_with_a_history_row(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    created(store, "m1", "p1").await;
    let mut later = checkout("p2", "m2", vec![]);
    later.expires_at = Millis(62_000);
    store.create_checkout(later).await.unwrap();
    authorized(store, "m1", "p3").await;
    assert!(store.expire_due(Millis(60_999), 100).await.unwrap().is_empty());
    assert_eq!(
        store.expire_due(Millis(70_000), 1).await.unwrap(),
        vec![Expired { payment_id: "p1".into(), merchant_id: "m1".into() }],
        "the oldest first, at most `limit`"
    );
    assert_eq!(
        store.expire_due(Millis(70_000), 100).await.unwrap(),
        vec![Expired { payment_id: "p2".into(), merchant_id: "m2".into() }]
    );
    assert!(store.expire_due(Millis(99_000), 100).await.unwrap().is_empty());
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!((p.status, p.last_status_at), (PaymentStatus::Expired, Millis(70_000)));
    assert_eq!(p.history.last().unwrap().reason.as_deref(), Some("checkout lifetime ended"));
    assert_eq!(history(store, "m1", "p1").await, [PaymentStatus::Created, PaymentStatus::Expired]);
    assert_eq!(store.payment("m1", "p3").await.unwrap().unwrap().status, PaymentStatus::AuthorizationCompleted);
}
contract!(due_checkouts_expire_once_with_a_history_row);

/// Concurrent expiry sweeps (several nodes) expire each checkout exactly once.
async fn concurrent_expiry_sweeps_expire_each_checkout_once(store: &Shared) {
    merchant(store, "m1").await;
    for i in 0..30 {
        created(store, "m1", &format!("p{i:02}")).await;
    }
    let swept = concurrently(store, 4, |s, _| async move {
        let mut mine = Vec::new();
        loop {
            let batch = s.expire_due(Millis(61_000), 4).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            mine.extend(batch.into_iter().map(|e| e.payment_id));
        }
    })
    .await;
    let all: Vec<String> = swept.into_iter().flatten().collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (30, 30), "each checkout reported once: {all:?}");
    for i in 0..30 {
        assert_eq!(history(store, "m1", &format!("p{i:02}")).await, [PaymentStatus::Created, PaymentStatus::Expired]);
    }
}
contract!(concurrent_expiry_sweeps_expire_each_checkout_once);

/// The verifier pages through every payment in id order.
async fn payment_keys_page_in_id_order(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    for (m, id) in [("m2", "p3"), ("m1", "p1"), ("m1", "p4"), ("m2", "p2"), ("m1", "p5")] {
        created(store, m, id).await;
    }
    let first = store.payment_keys_after("", 2).await.unwrap();
    assert_eq!(first, [("m1".to_owned(), "p1".to_owned()), ("m2".to_owned(), "p2".to_owned())]);
    let second = store.payment_keys_after("p2", 2).await.unwrap();
    assert_eq!(second, [("m2".to_owned(), "p3".to_owned()), ("m1".to_owned(), "p4".to_owned())]);
    assert_eq!(store.payment_keys_after("p4", 2).await.unwrap(), [("m1".to_owned(), "p5".to_owned())]);
    assert!(store.payment_keys_after("p5", 2).await.unwrap().is_empty());
}
contract!(payment_keys_page_in_id_order);

/// A provider's reference finds its payment; flagged payments are listed for review.
async fn provider_references_find_payments_and_flags_are_listed(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p1").await;
    authorized(store, "m1", "p2").await;
    assert_eq!(
        store.payment_by_provider_reference("sandbox", "psp-p1").await.unwrap(),
        Some(("m1".to_owned(), "p1".to_owned()))
    );
    assert_eq!(store.payment_by_provider_reference("payu", "psp-p1").await.unwrap(), None, "per provider");
    assert_eq!(store.payment_by_provider_reference("sandbox", "nope").await.unwrap(), None);
    assert!(store.flagged_payments(10).await.unwrap().is_empty());
    store.flag_payment("p2", "amount differs").await.unwrap();
    assert_eq!(
        store.flagged_payments(10).await.unwrap(),
        [("m1".to_owned(), "p2".to_owned(), "amount differs".to_owned())]
    );
    assert_eq!(store.payment("m1", "p2").await.unwrap().unwrap().review_reason.as_deref(), Some("amount differs"));
    assert!(matches!(store.flag_payment("nope", "x").await, Err(StoreError::NotFound)));
}
contract!(provider_references_find_payments_and_flags_are_listed);

/// Behaviour that needs the database behind the store, per backend: the database itself
/// refuses a status outside the model (a check constraint), and a second store on the same
/// database (a restart, or another node) sees and changes the same data.
mod behind_the_store {
    use super::*;
    use crate::support::Harness;

    async fn refuses_unknown_statuses(h: Harness) {
        merchant(&h.store, "m1").await;
        created(&h.store, "m1", "p1").await;
        let r = h.execute_raw("UPDATE payments SET status = 'PAID' WHERE id = 'p1'").await;
        assert!(r.is_err(), "a status outside the model was stored");
        assert_eq!(h.store.payment("m1", "p1").await.unwrap().unwrap().status, PaymentStatus::Created);
    }

    async fn another_store_sees_the_data(h: Harness) {
        merchant(&h.store, "m1").await;
        created(&h.store, "m1", "p1").await;
        let other = h.another_store().await;
        assert!(other.payment("m1", "p1").await.unwrap().is_some(), "data and schema survive a reopen");
        // The second store writes, the first reads it: one database, two processes' view.
        other
            .apply_event(
                "p1",
                PaymentStatus::Created,
                Event::AuthorizationRequested,
                Millis(2_000),
                PaymentUpdate::default(),
            )
            .await
            .unwrap();
        assert_eq!(h.store.payment("m1", "p1").await.unwrap().unwrap().status, PaymentStatus::AuthorizationPending);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_refuses_unknown_statuses() {
        refuses_unknown_statuses(Harness::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_refuses_unknown_statuses() {
        refuses_unknown_statuses(Harness::postgres().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_another_store_sees_the_data() {
        another_store_sees_the_data(Harness::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_another_store_sees_the_data() {
        another_store_sees_the_data(Harness::postgres().await).await;
    }
}
