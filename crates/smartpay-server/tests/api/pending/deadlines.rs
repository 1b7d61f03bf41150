//! Deadlines: a 3-D Secure challenge or `PAYU` approval page the shopper never completes ends
//! the authorization as failed at `challenge_deadline_seconds` — not a millisecond before — and
//! the merchant is told (`origin: automated`); a provider that keeps a payment the shopper
//! approved pending is waited for until `pending_deadline_seconds`.

use smartpay_domain::Millis;

use super::super::notifications::Receiver;
use super::*;

const ABANDONED: &str = "payment_provider_authentication_abandoned";

/// Polls payment `id` at `at` (brought forward, as the shopper's return or a provider's notice
/// would) and returns its status afterwards.
async fn poll_at(app: &TestApp, clock: &ManualClock, c: &Creds, id: &str, at: Millis) -> String {
    clock.set(at);
    assert!(app.state().store.poll_soon(id, at).await.unwrap(), "{id} has no resolution job");
    assert!(run_due(app, 1).await >= 1);
    status_of(app, c, id).await
}

/// Moves the clock in steps of `step_ms` up to `until`, running the due jobs at each step;
/// the payment must stay pending throughout.
async fn wait_pending(app: &TestApp, clock: &ManualClock, c: &Creds, id: &str, until: Millis, step_ms: i64) {
    while clock.now().0 + step_ms <= until.0 {
        clock.advance_ms(step_ms);
        run_due(app, 1).await;
        assert_eq!(status_of(app, c, id).await, "AUTHORIZATION_PENDING", "at {:?}", clock.now());
    }
}

fn tune_deadlines(c: &mut Config) {
    c.pending_first_poll_ms = 1000;
    c.pending_poll_initial_ms = 1000;
    c.pending_poll_max_ms = 30_000;
    c.challenge_deadline_seconds = 600;
    c.pending_deadline_seconds = 1800;
}

#[tokio::test]
async fn an_abandoned_three_d_secure_challenge_fails_at_its_deadline_and_the_merchant_is_told() {
    let (app, clock) = clock_app(tune_deadlines).await;
    let b = app.other.clone();
    let receiver = Receiver::start().await;
    app.notify_to(&b, &receiver.url).await;
    let t0 = clock.now();
    let id = app.pay_as(&b, 10.99, "4000000000003220").await;
    let p = app.state().store.payment(&b.merchant_key, &id).await.unwrap().unwrap();
    assert!(p.challenge_url.is_some(), "{p:?}");
    let deadline = t0.plus_seconds(600);
    wait_pending(&app, &clock, &b, &id, Millis(deadline.0 - 10_000), 10_000).await;
    assert_eq!(poll_at(&app, &clock, &b, &id, Millis(deadline.0 - 1)).await, "AUTHORIZATION_PENDING", "failed early");
    assert_eq!(poll_at(&app, &clock, &b, &id, deadline).await, "AUTHORIZATION_FAILED");
    let p = app.state().store.payment(&b.merchant_key, &id).await.unwrap().unwrap();
    assert_eq!(p.decline_code.as_deref(), Some(ABANDONED), "{p:?}");
    assert_eq!(p.last_status_at, deadline);
    assert!(p.challenge_url.is_none(), "the challenge is over: {p:?}");
    let view = app.view(&b, &id).await;
    assert_eq!(view["declineReason"], ABANDONED, "{view}");
    assert!(resolution_job(&app, &id).await.is_none());
    assert_eq!(app.deliver_all().await, 1, "only the final status is notified");
    let body = receiver.received()[0].json();
    assert_eq!(body["metadata"]["status"], "AUTHORIZATION_FAILED", "{body}");
    assert_eq!(body["metadata"]["transactionId"], id.as_str());
    assert_eq!(body["origin"], "automated");
    app.assert_verified().await;
}

#[tokio::test]
async fn a_payu_order_the_shopper_never_approves_fails_at_the_challenge_deadline() {
    let (app, clock) = payu_app(tune_deadlines).await;
    let b = app.other.clone();
    let payu = app.payu();
    let t0 = clock.now();
    let (id, _order) = app.start_payu(&b, 10.99).await;
    let reads_before = payu.stats().await.status_reads;
    let deadline = t0.plus_seconds(600);
    wait_pending(&app, &clock, &b, &id, Millis(deadline.0 - 30_000), 30_000).await;
    assert!(payu.stats().await.status_reads > reads_before, "the order was polled meanwhile");
    assert_eq!(poll_at(&app, &clock, &b, &id, Millis(deadline.0 - 1)).await, "AUTHORIZATION_PENDING", "failed early");
    assert_eq!(poll_at(&app, &clock, &b, &id, deadline).await, "AUTHORIZATION_FAILED");
    let p = app.state().store.payment(&b.merchant_key, &id).await.unwrap().unwrap();
    assert_eq!(p.decline_code.as_deref(), Some(ABANDONED), "{p:?}");
    assert!(resolution_job(&app, &id).await.is_none());
    let reads = payu.stats().await.status_reads;
    clock.advance_ms(3_600_000);
    run_due(&app, 1).await;
    assert_eq!(payu.stats().await.status_reads, reads, "a failed payment is not polled any more");
}

#[tokio::test]
async fn a_payu_payment_the_shopper_approved_is_waited_for_until_the_pending_deadline() {
    let (app, clock) = payu_app(tune_deadlines).await;
    let b = app.other.clone();
    let payu = app.payu();
    let t0 = clock.now();
    let (id, order) = app.start_payu(&b, 10.99).await;
    payu.script(&order, json!({"approve": true, "pendingPolls": 1_000_000})).await;
    // The shopper is done at once; the provider keeps answering PENDING.
    let challenge_deadline = t0.plus_seconds(600);
    let state = poll_at(&app, &clock, &b, &id, challenge_deadline).await;
    assert_eq!(state, "AUTHORIZATION_PENDING", "an approved payment failed as abandoned at the challenge deadline");
    let deadline = t0.plus_seconds(1800);
    wait_pending(&app, &clock, &b, &id, Millis(deadline.0 - 30_000), 30_000).await;
    assert_eq!(poll_at(&app, &clock, &b, &id, Millis(deadline.0 - 1)).await, "AUTHORIZATION_PENDING");
    assert_eq!(poll_at(&app, &clock, &b, &id, deadline).await, "AUTHORIZATION_FAILED");
    let p = app.state().store.payment(&b.merchant_key, &id).await.unwrap().unwrap();
    assert_eq!(p.decline_code.as_deref(), Some("payment_provider_timeout"), "{p:?}");
}
