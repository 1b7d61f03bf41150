//! What the provider says and how far it is believed: a contradicting amount or currency flags
//! the payment instead of advancing it (D5), inbound PayU notifications are verified,
//! deduplicated and only bring the next poll forward (D7), and a refund PayU confirms later is
//! resolved by the job queue and notified twice (`objectType: refund`).

use smartpay_domain::Millis;
use smartpay_providers::payu::signature;

use super::super::notifications::Receiver;
use super::*;

#[tokio::test]
async fn a_provider_reporting_another_amount_or_currency_flags_the_payment_and_does_not_advance_it() {
    let (app, clock) = payu_app(|_| {}).await;
    let b = app.other.clone();
    let receiver = Receiver::start().await;
    app.notify_to(&b, &receiver.url).await;
    let payu = app.payu();
    let (other_amount, amount_order) = app.start_payu(&b, 10.99).await;
    let (other_currency, currency_order) = app.start_payu(&b, 10.99).await;
    let (honest, honest_order) = app.start_payu(&b, 10.99).await;
    payu.script(&amount_order, json!({"approve": true, "amountOverride": 1})).await;
    payu.script(&currency_order, json!({"approve": true, "currencyOverride": "USD"})).await;
    payu.script(&honest_order, json!({"approve": true})).await;
    let mismatched = metric(&app, "smartpay_pending_polls_mismatched_total").await;
    clock.advance_ms(app.state().config.pending_first_poll_ms as i64);
    run_due(&app, 1).await;
    assert_eq!(status_of(&app, &b, &honest).await, "CAPTURED", "the honest answer is believed");
    assert_eq!(metric(&app, "smartpay_pending_polls_mismatched_total").await - mismatched, 2.0);
    let flagged = app.state().store.flagged_payments(100).await.unwrap();
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    for (id, reported) in [(&other_amount, "1 EUR"), (&other_currency, "1099 USD")] {
        let (merchant, _, reason) = flagged.iter().find(|(_, f, _)| f == id).unwrap();
        assert_eq!(merchant, &b.merchant_key);
        assert!(reason.contains(reported) && reason.contains("1099 EUR"), "{reason}");
        assert_eq!(app.view(&b, id).await["paymentStatus"], "AUTHORIZATION_PENDING");
        assert!(resolution_job(&app, id).await.is_none(), "a flagged payment is not polled again");
    }
    let reads = payu.stats().await.status_reads;
    clock.advance_ms(24 * 3_600_000);
    run_due(&app, 1).await;
    assert_eq!(payu.stats().await.status_reads, reads);
    for id in [&other_amount, &other_currency] {
        assert_eq!(status_of(&app, &b, id).await, "AUTHORIZATION_PENDING", "left for an operator, not failed");
        assert!(app.notifications_of(&b, id).await.is_empty(), "nothing to tell the merchant yet");
    }
    app.deliver_all().await;
    assert!(receiver.received().iter().all(|r| r.json()["metadata"]["transactionId"] == honest.as_str()));
}

/// A PayU notification body about `order`, signed at `t` (unix seconds) with `secret`.
fn notice(event_id: &str, order: &str, id: &str, secret: &str, t: i64) -> (String, String) {
    let body = json!({"eventId": event_id, "orderId": order, "extOrderId": id, "status": "WAITING_FOR_CONFIRMATION"})
        .to_string();
    let header = signature::header(secret, t, body.as_bytes());
    (body, header)
}

impl TestApp {
    async fn post_notice(&self, provider: &str, body: &str, signature: Option<&str>) -> u16 {
        let mut rb = self
            .client
            .post(self.url(&format!("/providers/{provider}/notifications")))
            .header("Content-Type", "application/json");
        if let Some(s) = signature {
            rb = rb.header(signature::HEADER, s);
        }
        rb.body(body.to_owned()).send().await.unwrap().status().as_u16()
    }
}

#[tokio::test]
async fn inbound_payu_notifications_are_verified_deduplicated_and_only_bring_the_next_poll_forward() {
    let (app, clock) = payu_app(|c| c.pending_first_poll_ms = 60_000).await;
    let b = app.other.clone();
    let payu = app.payu();
    let (id, order) = app.start_payu(&b, 10.99).await;
    let scheduled = resolution_job(&app, &id).await.unwrap().job.due_at;
    assert_eq!(scheduled, clock.now().plus_millis(60_000));
    let real_now = Millis::now().0 / 1000;
    const ACCEPTED: &str = "smartpay_provider_notices_total";
    const REFUSED: &str = "smartpay_provider_notices_refused_total";
    let (accepted_before, refused_before) = (metric(&app, ACCEPTED).await, metric(&app, REFUSED).await);
    let (body, good) = notice("evt-1", &order, &id, &payu.notify_secret, real_now);
    assert_eq!(app.post_notice("payu", &body, None).await, 401, "unsigned");
    let (_, forged) = notice("evt-1", &order, &id, "not-the-notify-secret-0123456789", real_now);
    assert_eq!(app.post_notice("payu", &body, Some(&forged)).await, 401, "wrong secret");
    let tampered = body.replace("evt-1", "evt-2");
    assert_eq!(app.post_notice("payu", &tampered, Some(&good)).await, 401, "tampered body");
    let (_, stale) = notice("evt-1", &order, &id, &payu.notify_secret, real_now - 3600);
    assert_eq!(app.post_notice("payu", &body, Some(&stale)).await, 401, "replayed an hour later");
    assert_eq!(metric(&app, REFUSED).await - refused_before, 4.0);
    assert_eq!(resolution_job(&app, &id).await.unwrap().job.due_at, scheduled, "refused notices changed nothing");
    // A valid notice: the job is due now; the payment is not advanced on its word.
    assert_eq!(app.post_notice("payu", &body, Some(&good)).await, 200);
    assert_eq!(metric(&app, ACCEPTED).await - accepted_before, 1.0);
    assert_eq!(resolution_job(&app, &id).await.unwrap().job.due_at, clock.now());
    assert_eq!(status_of(&app, &b, &id).await, "AUTHORIZATION_PENDING");
    let reads = payu.stats().await.status_reads;
    assert_eq!(run_due(&app, 1).await, 1);
    assert_eq!(payu.stats().await.status_reads, reads + 1, "the notice made the gateway ask");
    assert_eq!(status_of(&app, &b, &id).await, "AUTHORIZATION_PENDING", "the order is still NEW at PayU");
    let next = resolution_job(&app, &id).await.unwrap().job.due_at;
    assert!(next > clock.now());
    // The same event again: accepted, no second effect.
    assert_eq!(app.post_notice("payu", &body, Some(&good)).await, 200);
    assert_eq!(metric(&app, ACCEPTED).await - accepted_before, 1.0);
    assert_eq!(resolution_job(&app, &id).await.unwrap().job.due_at, next, "a duplicate brought the poll forward");
    assert_eq!(run_due(&app, 1).await, 0);
    // Unknown provider, oversized body.
    assert_eq!(app.post_notice("nopay", &body, Some(&good)).await, 404);
    let big = format!("{{\"eventId\":\"{}\"}}", "x".repeat(17 * 1024));
    let big_sig = signature::header(&payu.notify_secret, real_now, big.as_bytes());
    assert_eq!(app.post_notice("payu", &big, Some(&big_sig)).await, 413);
}

#[tokio::test]
async fn a_payu_refund_answered_pending_is_confirmed_by_the_job_queue_and_notified_twice() {
    let (app, clock) = payu_app(|c| {
        c.sandbox_payu_refund_delay_ms = 200;
        c.sandbox_settlement_delay_ms = 24 * 3_600_000;
        c.pending_poll_initial_ms = 1000;
        c.pending_poll_max_ms = 2000;
    })
    .await;
    let b = app.other.clone(); // automatic capture
    let receiver = Receiver::start().await;
    let secret = app.notify_to(&b, &receiver.url).await;
    let payu = app.payu();
    let (id, order) = app.start_payu(&b, 10.99).await;
    payu.script(&order, json!({"approve": true})).await;
    clock.advance_ms(app.state().config.pending_first_poll_ms as i64);
    run_due(&app, 1).await;
    assert_eq!(status_of(&app, &b, &id).await, "CAPTURED");
    let r = app.send_mod(&b, "refund", mod_json(&b, &id, "refund-1", Some(4.0), "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["paymentStatus"], "CAPTURED", "{answer}");
    assert_eq!(answer["modification"]["status"], "REFUND_PENDING", "{answer}");
    assert!(resolution_job(&app, &id).await.is_some_and(|j| j.job.kind == JobKind::ResolveModification));
    // PayU settles the refund in real time: poll until it does, at most ~5 s.
    let mut refunded = false;
    for _ in 0..100 {
        clock.advance_ms(2000);
        run_due(&app, 1).await;
        let view = app.view(&b, &id).await;
        if mods_of(&view, "REFUND")[0]["status"] == "REFUNDED" {
            refunded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refunded, "the refund was never confirmed");
    let view = app.view(&b, &id).await;
    assert_eq!(view["paymentStatus"], "CAPTURED", "a partial refund leaves the payment captured");
    assert_eq!(cents(&view["amounts"]["refunded"]), 400, "{view}");
    assert!(resolution_job(&app, &id).await.is_none());
    app.deliver_all().await;
    let refunds: Vec<Value> = receiver
        .received()
        .iter()
        .inspect(|r| assert_eq!(r.verify(&[&secret], super::super::notifications::unix(&clock)), Ok(())))
        .map(|r| r.json())
        .filter(|b| b["objectType"] == "refund")
        .collect();
    let statuses: Vec<&str> = refunds.iter().map(|r| r["metadata"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.len(), 2, "{refunds:?}");
    assert!(statuses.contains(&"REFUND_PENDING") && statuses.contains(&"REFUNDED"), "{statuses:?}");
    for r in &refunds {
        assert_eq!(r["metadata"]["transactionId"], id.as_str(), "{r}");
        assert_eq!(r["objectId"], refunds[0]["objectId"], "both about the same refund");
        assert_ne!(r["objectId"], id.as_str(), "objectId is the refund's, not the payment's");
        let origin = if r["metadata"]["status"] == "REFUNDED" { "automated" } else { "api" };
        assert_eq!(r["origin"], origin, "{r}");
    }
    app.assert_verified().await;
}
