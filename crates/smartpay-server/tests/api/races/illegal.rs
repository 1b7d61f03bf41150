//! Requests the payment's state or currency forbids (matrix rows A5, A9): each is refused with
//! the documented code, and the payment, its modifications and amounts stay exactly as they
//! were, with no provider call.

use super::*;

/// Where a payment is when the illegal request arrives.
#[derive(Debug, Clone, Copy)]
enum Start {
    Created,
    Expired,
    Authorized,
    Cancelled,
    Captured,
    Refunded,
}

/// The refusal a row expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 409 `invalid_state` with this `context.paymentStatus`.
    State(&'static str),
    /// 422 with this code and `context.remaining` (minor units).
    Exceeds(&'static str, i64),
}

/// A payment of merchant A (manual capture) or B (automatic capture) in state `start`.
async fn prepare(app: &TestApp, clock: &ManualClock, start: Start) -> (Creds, String) {
    let (a, b) = (app.merchant.clone(), app.other.clone());
    let id = match start {
        Start::Created => app.checkout_as(&a, 10.99).await.0,
        Start::Expired => {
            let (id, _) = app.checkout_as(&a, 10.99).await;
            clock.advance_ms(3_601_000);
            smartpay_server::workers::sweep_once(app.state(), app.state().now()).await.unwrap();
            id
        }
        Start::Authorized | Start::Cancelled => app.pay_as(&a, 10.99, CARD_OK).await,
        Start::Captured | Start::Refunded => app.pay_as(&b, 10.99, CARD_OK).await,
    };
    let (c, op) = match start {
        Start::Cancelled => (a, "cancel"),
        Start::Refunded => (b, "refund"),
        Start::Captured => return (b, id),
        _ => return (a, id),
    };
    let r = app.send_mod(&c, op, mod_json(&c, &id, &format!("setup-{id}"), None, "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (c, id)
}

#[tokio::test]
async fn every_illegal_transition_is_refused_with_its_code_and_changes_nothing() {
    let (app, clock) = clock_app(|_| {}).await;
    app.set_mode(&app.merchant.clone(), CaptureMode::Manual, None, None).await;
    use Start as S;
    use Want as W;
    let rows: &[(&str, Start, &str, Option<f64>, Want)] = &[
        ("refund before capture", S::Authorized, "refund", Some(1.0), W::State("AUTHORIZATION_COMPLETED")),
        ("capture after cancel", S::Cancelled, "capture", None, W::State("CANCELLED")),
        ("cancel after cancel", S::Cancelled, "cancel", None, W::State("CANCELLED")),
        ("refund after cancel", S::Cancelled, "refund", Some(1.0), W::State("CANCELLED")),
        ("capture after expiry", S::Expired, "capture", None, W::State("EXPIRED")),
        ("cancel after expiry", S::Expired, "cancel", None, W::State("EXPIRED")),
        ("capture of a created checkout", S::Created, "capture", Some(1.0), W::State("CREATED")),
        ("cancelOrRefund of a created checkout", S::Created, "cancelOrRefund", None, W::State("CREATED")),
        ("refund after full refund", S::Refunded, "refund", Some(1.0), W::State("REFUNDED")),
        ("cancelOrRefund after full refund", S::Refunded, "cancelOrRefund", None, W::State("REFUNDED")),
        ("cancel after capture", S::Captured, "cancel", None, W::State("CAPTURED")),
        ("capture after full capture", S::Captured, "capture", Some(1.0), W::Exceeds("amount_exceeds_capturable", 0)),
        ("refund beyond the capture", S::Captured, "refund", Some(11.0), W::Exceeds("amount_exceeds_refundable", 1099)),
        (
            "capture beyond the authorization",
            S::Authorized,
            "capture",
            Some(11.0),
            W::Exceeds("amount_exceeds_capturable", 1099),
        ),
    ];
    for (n, (name, start, op, amount, want)) in rows.iter().enumerate() {
        let (c, id) = prepare(&app, &clock, *start).await;
        let view = app.view(&c, &id).await;
        let before = app.calls();
        let r = app.send_mod(&c, op, mod_json(&c, &id, &format!("illegal-{n}"), *amount, "EUR")).await;
        match want {
            Want::State(status) => {
                assert_eq!((r.status, r.code().as_str()), (409, "invalid_state"), "{name}: {}", r.text());
                assert_eq!(r.json()["errors"][0]["context"]["paymentStatus"], *status, "{name}: {}", r.text());
            }
            Want::Exceeds(code, remaining) => {
                assert_eq!((r.status, r.code().as_str()), (422, *code), "{name}: {}", r.text());
                assert_eq!(cents(&r.json()["errors"][0]["context"]["remaining"]), *remaining, "{name}");
            }
        }
        assert_eq!(app.view(&c, &id).await, view, "{name}: the payment changed");
        assert_eq!(app.calls(), before, "{name}: the provider was called");
        app.assert_verified().await;
    }
}

#[tokio::test]
async fn a_capture_or_refund_in_another_currency_is_refused_and_leaves_no_trace() {
    let app = race_app().await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    for (c, op) in [(&a, "capture"), (&b, "refund")] {
        let id = app.pay_as(c, 10.99, CARD_OK).await;
        let view = app.view(c, &id).await;
        let before = app.calls();
        let r = app.send_mod(c, op, mod_json(c, &id, "in-dollars", Some(1.0), "USD")).await;
        assert_eq!(r.status, 400, "{op}: {}", r.text());
        let v = r.json();
        assert_eq!(codes(&v), vec![("currency_mismatch".to_owned(), "modifiedAmount.currencyCode".to_owned())]);
        assert_eq!(v["errors"][0]["context"]["expected"], "EUR", "{v}");
        assert_eq!(app.view(c, &id).await, view, "{op}: the payment changed");
        assert_eq!(app.calls(), before, "{op}: the provider was called");
        // Not even the modificationId was kept: the corrected request runs under it.
        let r = app.send_mod(c, op, mod_json(c, &id, "in-dollars", Some(1.0), "EUR")).await;
        assert_eq!(r.status, 200, "{op}: {}", r.text());
        assert!(!r.replayed);
        app.assert_verified().await;
    }
}
