//! The scheduled jobs — delayed capture, automatic cancellation, sandbox settlement — run by
//! `run_jobs_once` against a manual clock: nothing happens a millisecond early, the right
//! modification appears when due, and payments the job no longer applies to are left alone.

use super::*;

async fn run_jobs(app: &TestApp) -> usize {
    smartpay_server::workers::run_jobs_once(app.state()).await.unwrap()
}

#[tokio::test]
async fn a_delayed_capture_captures_the_authorization_when_its_delay_has_passed() {
    let (app, clock) = clock_app(|_| {}).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Delayed, Some(600), None).await;
    let id = app.pay_as(&a, 10.99, CARD_OK).await;
    let authorized = app.view(&a, &id).await;
    assert_eq!(authorized["paymentStatus"], "AUTHORIZATION_COMPLETED", "{authorized}");
    assert!(authorized["modifications"].as_array().unwrap().is_empty());
    let before = app.calls();
    clock.advance_ms(599_999);
    run_jobs(&app).await;
    assert_eq!(app.view(&a, &id).await, authorized, "captured early");
    clock.advance_ms(1);
    assert_eq!(run_jobs(&app).await, 1);
    let v = app.view(&a, &id).await;
    assert_eq!(v["paymentStatus"], "CAPTURED", "{v}");
    let captures = mods_of(&v, "CAPTURE");
    assert_eq!(captures.len(), 1, "{v}");
    assert_eq!(captures[0]["modificationData"]["modificationId"], format!("delayed-capture-{id}"));
    assert_eq!(captures[0]["status"], "CAPTURED");
    assert_eq!(cents(&captures[0]["modificationAmount"]["amount"]), 1099);
    assert_eq!(app.calls().since(before), Calls { captures: 1, ..NO_CALLS });
    // The job is done: running the jobs again captures nothing more.
    run_jobs(&app).await;
    assert_eq!(mods_of(&app.view(&a, &id).await, "CAPTURE").len(), 1);
    assert_eq!(app.calls().since(before), Calls { captures: 1, ..NO_CALLS });
    app.assert_verified().await;
}

#[tokio::test]
async fn an_uncaptured_authorization_is_cancelled_automatically_and_a_captured_one_is_untouched() {
    // No settlement during the half hour, so the captured payment has no reason to change.
    let (app, clock) = clock_app(|c| c.sandbox_settlement_delay_ms = 30 * 86_400_000).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, Some(1800)).await;
    let left = app.pay_as(&a, 10.99, CARD_OK).await;
    let captured = app.pay_as(&a, 10.99, CARD_OK).await;
    let r = app.send_mod(&a, "capture", mod_json(&a, &captured, "cap", Some(4.0), "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (left_view, captured_view) = (app.view(&a, &left).await, app.view(&a, &captured).await);
    let before = app.calls();
    clock.advance_ms(1_799_999);
    run_jobs(&app).await;
    assert_eq!(app.view(&a, &left).await, left_view, "cancelled early");
    clock.advance_ms(1);
    run_jobs(&app).await;
    let v = app.view(&a, &left).await;
    assert_eq!(v["paymentStatus"], "CANCELLED", "{v}");
    let cancels = mods_of(&v, "CANCELLATION");
    assert_eq!(cancels.len(), 1, "{v}");
    assert_eq!(cancels[0]["modificationData"]["modificationId"], format!("auto-cancel-{left}"));
    assert_eq!(cancels[0]["status"], "CANCELLED");
    assert_eq!(app.view(&a, &captured).await, captured_view, "the captured payment changed");
    assert_eq!(app.calls().since(before), Calls { cancels: 1, ..NO_CALLS });
    app.assert_verified().await;
}

#[tokio::test]
async fn captured_payments_settle_after_the_sandbox_delay_unless_fully_refunded() {
    let (app, clock) = clock_app(|c| c.sandbox_settlement_delay_ms = 60_000).await;
    let b = app.other.clone(); // automatic capture
    let whole = app.pay_as(&b, 10.99, CARD_OK).await;
    let part = app.pay_as(&b, 10.99, CARD_OK).await;
    let gone = app.pay_as(&b, 10.99, CARD_OK).await;
    let r = app.send_mod(&b, "refund", mod_json(&b, &part, "part", Some(3.0), "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.send_mod(&b, "refund", mod_json(&b, &gone, "gone", None, "EUR")).await;
    assert_eq!(r.json()["paymentStatus"], "REFUNDED", "{}", r.text());
    let gone_view = app.view(&b, &gone).await;
    clock.advance_ms(59_999);
    run_jobs(&app).await;
    assert_eq!(app.view(&b, &whole).await["paymentStatus"], "CAPTURED", "settled early");
    clock.advance_ms(1);
    run_jobs(&app).await;
    for (id, refunded) in [(&whole, 0), (&part, 300)] {
        let v = app.view(&b, id).await;
        assert_eq!(v["paymentStatus"], "SETTLED", "{v}");
        let settlements = mods_of(&v, "SETTLEMENT");
        assert_eq!(settlements.len(), 1, "{v}");
        assert_eq!(settlements[0]["modificationData"]["modificationId"], format!("settlement-{id}"));
        assert_eq!(cents(&v["amounts"]["refunded"]), refunded);
    }
    assert_eq!(app.view(&b, &gone).await, gone_view, "a fully refunded payment settled");
    // A settled payment can still be refunded: what is left of the partly refunded one.
    let r = app.send_mod(&b, "refund", mod_json(&b, &part, "rest", None, "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(cents(&v["modification"]["modificationAmount"]["amount"]), 799);
    assert_eq!(v["paymentStatus"], "REFUNDED", "{v}");
    app.assert_verified().await;
}
