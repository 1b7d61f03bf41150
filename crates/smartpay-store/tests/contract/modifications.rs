//! Captures, refunds, cancellations, settlements and chargebacks: the money rules checked in
//! the writing transaction (so concurrent requests cannot both pass them), replays of a
//! `modificationId`, and a provider's answer recorded once.

use smartpay_domain::modification::{ModificationStatus, ModificationType, Refusal, Request, verify};
use smartpay_domain::{Millis, PaymentStatus};
use smartpay_store::*;

use crate::support::*;

/// A merchant's request on `payment`, its fingerprint derived from the request.
fn request(pk: &str, payment: &str, modification_id: &str, request: ModificationRequest) -> NewModification {
    NewModification {
        pk: pk.into(),
        merchant_id: "m1".into(),
        payment_id: payment.into(),
        modification_id: modification_id.into(),
        request,
        currency: Some("EUR".into()),
        description: Some(format!("{request:?}")),
        custom_references: None,
        fingerprint: format!("{request:?}").into_bytes(),
        at: Millis(10_000),
        origin: EventOrigin::Api,
        resolve_at: Some(Millis(20_000)),
        authorize_first: None,
    }
}

fn capture(pk: &str, payment: &str, amount: Option<i64>) -> NewModification {
    request(pk, payment, &format!("mod-{pk}"), ModificationRequest::Merchant(Request::Capture(amount)))
}

fn refund(pk: &str, payment: &str, amount: Option<i64>) -> NewModification {
    request(pk, payment, &format!("mod-{pk}"), ModificationRequest::Merchant(Request::Refund(amount)))
}

/// The provider's answer (`succeeded` or not) to a modification of `kind`.
fn answer(kind: ModificationType, succeeded: bool, at: i64) -> ModificationAnswer {
    ModificationAnswer {
        status: kind.final_status(succeeded),
        reconciliation_reference_id: Some(format!("psp-{}", kind.as_str())),
        failure_code: (!succeeded).then(|| "MOD1".to_owned()),
        at: Millis(at),
        schedule: Vec::new(),
        origin: EventOrigin::Automated,
    }
}

fn started(outcome: BeginOutcome) -> Payment {
    match outcome {
        BeginOutcome::Started { payment, .. } => payment,
        other => panic!("expected Started, got {other:?}"),
    }
}

/// A payment captured in full (1 099) by modification `cap`.
async fn captured(store: &Shared, id: &str) {
    authorized(store, "m1", id).await;
    started(store.begin_modification(capture(&format!("cap-{id}"), id, None)).await.unwrap());
    let p =
        store.finish_modification(&format!("cap-{id}"), answer(ModificationType::Capture, true, 11_000)).await.unwrap();
    assert_eq!(p.unwrap().status, PaymentStatus::Captured);
}

/// A capture opens pending with its history and resolution job; its `modificationId`
/// replays (unanswered, then the first saved answer) or conflicts; the provider's answer
/// is recorded once and moves the payment.
async fn a_capture_is_opened_replayed_and_answered_once(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p1").await;
    let p = started(store.begin_modification(capture("k1", "p1", Some(500))).await.unwrap());
    assert_eq!(p.status, PaymentStatus::CapturePending);
    let m = &p.modifications[0];
    assert_eq!(
        (m.pk.as_str(), m.modification_id.as_str(), m.kind, m.status),
        ("k1", "mod-k1", ModificationType::Capture, ModificationStatus::CapturePending)
    );
    assert_eq!((m.amount_minor, m.currency.as_str(), m.created_at), (500, "EUR", Millis(10_000)));
    let stored = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(stored.status, PaymentStatus::CapturePending);
    assert_eq!(stored.modifications, p.modifications, "what begin returns is what is stored");
    let jobs = store.jobs(&[JobKind::ResolveModification], 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].job.target.as_str(), jobs[0].job.due_at, jobs[0].job.payment_id.as_str()),
        ("k1", Millis(20_000), "p1")
    );

    // The same modificationId: the same request is unanswered, another is a conflict.
    let mut same = capture("k1-again", "p1", Some(500));
    same.modification_id = "mod-k1".into();
    match store.begin_modification(same.clone()).await.unwrap() {
        BeginOutcome::Unanswered { pk, payment } => assert_eq!((pk.as_str(), payment.modifications.len()), ("k1", 1)),
        other => panic!("expected Unanswered, got {other:?}"),
    }
    let mut different = capture("k1-other", "p1", Some(400));
    different.modification_id = "mod-k1".into();
    assert!(matches!(store.begin_modification(different).await.unwrap(), BeginOutcome::Conflict));
    store.save_modification_response("k1", b"first".to_vec()).await.unwrap();
    store.save_modification_response("k1", b"second".to_vec()).await.unwrap();
    match store.begin_modification(same).await.unwrap() {
        BeginOutcome::Replay { response } => assert_eq!(response, b"first", "the first answer stays"),
        other => panic!("expected Replay, got {other:?}"),
    }
    store.note_modification_reference("k1", "psp-ref-1").await.unwrap();
    assert!(matches!(store.note_modification_reference("nope", "x").await, Err(StoreError::NotFound)));

    // An answer the kind cannot end in is refused and writes nothing.
    assert!(store.finish_modification("k1", answer(ModificationType::Refund, true, 11_000)).await.is_err());
    assert!(matches!(
        store.finish_modification("nope", answer(ModificationType::Capture, true, 11_000)).await,
        Err(StoreError::NotFound)
    ));
    let mut ok = answer(ModificationType::Capture, true, 11_000);
    ok.reconciliation_reference_id = None;
    let p = store.finish_modification("k1", ok).await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Captured);
    let m = &store.payment("m1", "p1").await.unwrap().unwrap().modifications[0];
    assert_eq!((m.status, m.last_status_at), (ModificationStatus::Captured, Millis(11_000)));
    assert_eq!(
        m.reconciliation_reference_id.as_deref(),
        Some("psp-ref-1"),
        "an answer without a reference keeps the noted one"
    );
    assert_eq!(
        m.history,
        vec![
            ModificationChange { status: ModificationStatus::CapturePending, at: Millis(10_000) },
            ModificationChange { status: ModificationStatus::Captured, at: Millis(11_000) },
        ]
    );
    assert!(
        store.jobs(&[JobKind::ResolveModification], 10).await.unwrap().is_empty(),
        "a final answer ends its resolution"
    );
    assert_eq!(history(store, "m1", "p1").await.last(), Some(&PaymentStatus::Captured));

    // Answered once: a second answer (a late poll, a duplicate notice) writes nothing.
    assert!(store.finish_modification("k1", answer(ModificationType::Capture, false, 12_000)).await.unwrap().is_none());
    let m = &store.payment("m1", "p1").await.unwrap().unwrap().modifications[0];
    assert_eq!((m.status, m.failure_code.clone(), m.history.len()), (ModificationStatus::Captured, None, 2));
}
contract!(a_capture_is_opened_replayed_and_answered_once);

/// Racing answers to one pending modification: exactly one is recorded.
async fn concurrent_answers_finish_a_modification_once(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p1").await;
    started(store.begin_modification(capture("k1", "p1", None)).await.unwrap());
    let outcomes = concurrently(store, 12, |s, i| async move {
        s.finish_modification("k1", answer(ModificationType::Capture, i % 2 == 0, 11_000 + i as i64)).await
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Ok(Some(_)))).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.modifications[0].history.len(), 2);
    assert!(verify(p.status, p.amount_minor, &p.entries()).is_empty());
}
contract!(concurrent_answers_finish_a_modification_once);

/// Concurrent partial captures never capture more than was authorized.
async fn concurrent_captures_never_exceed_the_authorized_amount(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p1").await;
    let outcomes = concurrently(store, 12, |s, i| async move {
        s.begin_modification(capture(&format!("k{i}"), "p1", Some(200))).await.unwrap()
    })
    .await;
    let opened = outcomes.iter().filter(|o| matches!(o, BeginOutcome::Started { .. })).count();
    assert_eq!(opened, 5, "5 × 200 fit in 1 099, a sixth does not: {outcomes:?}");
    for o in &outcomes {
        match o {
            BeginOutcome::Started { .. } => {}
            BeginOutcome::Refused { refusal: Refusal::ExceedsCapturable { remaining }, currency } => {
                assert!(*remaining < 200, "refused with {remaining} left");
                assert_eq!(currency, "EUR");
            }
            other => panic!("expected Started or ExceedsCapturable, got {other:?}"),
        }
    }
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.modifications.len(), 5);
    assert_eq!(p.ledger().capture_pending, 1_000);
    assert!(
        verify(p.status, p.amount_minor, &p.entries()).is_empty(),
        "{:?}",
        verify(p.status, p.amount_minor, &p.entries())
    );
    assert_eq!(history(store, "m1", "p1").await.iter().filter(|s| **s == PaymentStatus::CapturePending).count(), 1);
}
contract!(concurrent_captures_never_exceed_the_authorized_amount);

/// Concurrent refunds never refund more than was captured; a full refund moves the payment.
async fn concurrent_refunds_never_exceed_the_captured_amount(store: &Shared) {
    merchant(store, "m1").await;
    captured(store, "p1").await;
    let outcomes = concurrently(store, 10, |s, i| async move {
        s.begin_modification(refund(&format!("r{i}"), "p1", Some(300))).await.unwrap()
    })
    .await;
    let opened: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            BeginOutcome::Started { pk, .. } => Some(pk.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), 3, "3 × 300 fit in 1 099: {outcomes:?}");
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert!(verify(p.status, p.amount_minor, &p.entries()).is_empty());
    for pk in &opened {
        store.finish_modification(pk, answer(ModificationType::Refund, true, 12_000)).await.unwrap().unwrap();
    }
    let rest = started(store.begin_modification(refund("r-rest", "p1", None)).await.unwrap());
    assert_eq!(rest.modifications.last().unwrap().amount_minor, 199, "the remainder");
    let p = store.finish_modification("r-rest", answer(ModificationType::Refund, true, 13_000)).await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Refunded);
    assert!(matches!(
        store.begin_modification(refund("r-more", "p1", Some(1))).await.unwrap(),
        BeginOutcome::Refused { .. }
    ));
}
contract!(concurrent_refunds_never_exceed_the_captured_amount);

/// Requests the payment cannot take are answered without writing: another currency,
/// another merchant's payment, a state the money rules refuse.
async fn refused_requests_write_nothing(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    created(store, "m1", "p0").await;
    authorized(store, "m1", "p1").await;
    let mut usd = capture("k1", "p1", Some(100));
    usd.currency = Some("USD".into());
    match store.begin_modification(usd).await.unwrap() {
        BeginOutcome::CurrencyMismatch { expected } => assert_eq!(expected, "EUR"),
        other => panic!("expected CurrencyMismatch, got {other:?}"),
    }
    let mut lower = capture("k2", "p1", Some(100));
    lower.currency = Some("eur".into());
    started(store.begin_modification(lower).await.unwrap());
    let mut elsewhere = capture("k3", "p1", Some(100));
    elsewhere.merchant_id = "m2".into();
    assert!(matches!(store.begin_modification(elsewhere).await.unwrap(), BeginOutcome::NotFound));
    assert!(matches!(
        store.begin_modification(capture("k4", "nope", Some(100))).await.unwrap(),
        BeginOutcome::NotFound
    ));
    match store.begin_modification(capture("k5", "p0", Some(100))).await.unwrap() {
        BeginOutcome::Refused { refusal, .. } => assert_eq!(refusal, Refusal::InvalidState(PaymentStatus::Created)),
        other => panic!("expected Refused, got {other:?}"),
    }
    match store.begin_modification(capture("k6", "p1", Some(5_000))).await.unwrap() {
        BeginOutcome::Refused { refusal, .. } => assert_eq!(refusal, Refusal::ExceedsCapturable { remaining: 999 }),
        other => panic!("expected Refused, got {other:?}"),
    }
    let p = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(p.modifications.iter().map(|m| m.pk.as_str()).collect::<Vec<_>>(), ["k2"]);
    // A refused modificationId was not used up.
    started(store.begin_modification(capture("k6", "p1", Some(999))).await.unwrap());
}
contract!(refused_requests_write_nothing);

/// A failed capture sends the payment back to authorized; a cancellation then ends it.
async fn a_failed_capture_then_a_cancellation(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p1").await;
    started(store.begin_modification(capture("k1", "p1", None)).await.unwrap());
    let p = store.finish_modification("k1", answer(ModificationType::Capture, false, 11_000)).await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::AuthorizationCompleted);
    let m = &store.payment("m1", "p1").await.unwrap().unwrap().modifications[0];
    assert_eq!((m.status, m.failure_code.as_deref()), (ModificationStatus::CaptureFailed, Some("MOD1")));
    let cancel = request("c1", "p1", "cancel-1", ModificationRequest::Merchant(Request::Cancel));
    let p = started(store.begin_modification(cancel).await.unwrap());
    assert_eq!(p.modifications.last().unwrap().status, ModificationStatus::CancellationPending);
    let p =
        store.finish_modification("c1", answer(ModificationType::Cancellation, true, 12_000)).await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Cancelled);
    assert_eq!(
        history(store, "m1", "p1").await,
        [
            PaymentStatus::Created,
            PaymentStatus::AuthorizationPending,
            PaymentStatus::AuthorizationCompleted,
            PaymentStatus::CapturePending,
            PaymentStatus::AuthorizationCompleted,
            PaymentStatus::Cancelled
        ]
    );
}
contract!(a_failed_capture_then_a_cancellation);

/// Settlement and chargebacks are final at once; a settlement only of a captured payment.
async fn settlements_and_chargebacks_are_final_at_once(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p0").await;
    assert!(matches!(
        store.begin_modification(request("s0", "p0", "settle-0", ModificationRequest::Settlement)).await.unwrap(),
        BeginOutcome::Refused { refusal: Refusal::InvalidState(PaymentStatus::AuthorizationCompleted), .. }
    ));
    captured(store, "p1").await;
    let p = started(
        store.begin_modification(request("s1", "p1", "settle-1", ModificationRequest::Settlement)).await.unwrap(),
    );
    assert_eq!(p.status, PaymentStatus::Settled);
    let m = p.modifications.last().unwrap();
    assert_eq!((m.kind, m.status, m.amount_minor), (ModificationType::Settlement, ModificationStatus::Settled, 1_099));
    assert!(store.jobs(&[JobKind::ResolveModification], 10).await.unwrap().is_empty(), "nothing pending to resolve");
    let p = started(
        store.begin_modification(request("b1", "p1", "cb-1", ModificationRequest::Chargeback(500))).await.unwrap(),
    );
    assert_eq!(p.status, PaymentStatus::Settled, "a chargeback leaves the status");
    assert_eq!(p.modifications.last().unwrap().status, ModificationStatus::Chargeback);
    assert!(matches!(
        store.begin_modification(request("b2", "p1", "cb-2", ModificationRequest::Chargeback(5_000))).await.unwrap(),
        BeginOutcome::Refused { .. }
    ));
    assert_eq!(store.payment("m1", "p1").await.unwrap().unwrap().modifications.len(), 3);
}
contract!(settlements_and_chargebacks_are_final_at_once);

/// Automatic capture on authorization: the authorization and the capture are one write;
/// when the payment is no longer pending, nothing is written.
async fn authorize_first_is_one_write_with_the_capture(store: &Shared) {
    merchant(store, "m1").await;
    created(store, "m1", "p1").await;
    submit(store, "p1", PaymentUpdate::default()).await;
    let mut auto = capture("k1", "p1", None);
    auto.authorize_first =
        Some(PaymentUpdate { reconciliation_reference_id: Some("psp-auth".into()), ..Default::default() });
    let p = started(store.begin_modification(auto.clone()).await.unwrap());
    assert_eq!(p.status, PaymentStatus::CapturePending);
    assert_eq!(p.modifications[0].amount_minor, 1_099);
    let stored = store.payment("m1", "p1").await.unwrap().unwrap();
    assert_eq!(stored.reconciliation_reference_id.as_deref(), Some("psp-auth"));
    assert_eq!(
        history(store, "m1", "p1").await,
        [
            PaymentStatus::Created,
            PaymentStatus::AuthorizationPending,
            PaymentStatus::AuthorizationCompleted,
            PaymentStatus::CapturePending
        ]
    );
    let mut again = auto;
    again.pk = "k2".into();
    again.modification_id = "mod-k2".into();
    match store.begin_modification(again).await.unwrap() {
        BeginOutcome::Refused { refusal, .. } => {
            assert_eq!(refusal, Refusal::InvalidState(PaymentStatus::CapturePending))
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(store.payment("m1", "p1").await.unwrap().unwrap().modifications.len(), 1);
}
contract!(authorize_first_is_one_write_with_the_capture);

/// An answer schedules the jobs it carries, with the payment change, in one write.
async fn an_answer_schedules_its_jobs(store: &Shared) {
    merchant(store, "m1").await;
    authorized(store, "m1", "p1").await;
    started(store.begin_modification(capture("k1", "p1", None)).await.unwrap());
    let mut ok = answer(ModificationType::Capture, true, 11_000);
    ok.schedule = vec![(JobKind::Settlement, Millis(50_000))];
    store.finish_modification("k1", ok).await.unwrap().unwrap();
    let jobs = store.jobs(&[JobKind::Settlement], 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].job.payment_id.as_str(), jobs[0].job.due_at, jobs[0].job.created_at),
        ("p1", Millis(50_000), Millis(11_000))
    );
    assert_eq!(jobs[0].payment_status, PaymentStatus::Captured);
}
contract!(an_answer_schedules_its_jobs);
