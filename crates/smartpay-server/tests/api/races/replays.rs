//! One effect per `modificationId` (matrix rows B1–B4): sequential and concurrent repeats of a
//! request, the same id with another body, and the same id used by another merchant.

use super::*;

/// The modifications of the payment carrying `modification_id`.
fn with_id<'a>(view: &'a Value, modification_id: &str) -> Vec<&'a Value> {
    view["modifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["modificationData"]["modificationId"] == modification_id)
        .collect()
}

fn total(c: Calls) -> u64 {
    c.captures + c.refunds + c.cancels
}

#[tokio::test]
async fn a_repeated_modification_returns_the_first_answer_byte_for_byte_with_one_effect() {
    let app = race_app().await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    // Merchant A captures manually, B automatically (so B's payments can be refunded).
    let cases = [
        ("capture", &a, Some(5.0), Calls { captures: 1, ..NO_CALLS }),
        ("refund", &b, Some(2.0), Calls { refunds: 1, ..NO_CALLS }),
        ("cancel", &a, None, Calls { cancels: 1, ..NO_CALLS }),
        ("cancelOrRefund", &b, None, Calls { refunds: 1, ..NO_CALLS }),
    ];
    for (op, c, amount, calls) in cases {
        let id = app.pay_as(c, 10.99, CARD_OK).await;
        let modification_id = format!("once-{op}");
        let body = mod_json(c, &id, &modification_id, amount, "EUR");
        let before = app.calls();
        let first = app.send_mod(c, op, body.clone()).await;
        assert_eq!(first.status, 200, "{op}: {}", first.text());
        assert!(!first.replayed);
        assert_eq!(app.calls().since(before), calls, "{op}");
        let view = app.view(c, &id).await;
        for _ in 0..2 {
            let again = app.send_mod(c, op, body.clone()).await;
            assert_eq!(again.status, first.status, "{op}");
            assert_eq!(again.body, first.body, "{op}: another body");
            assert!(again.replayed, "{op}: no Idempotent-Replayed header");
        }
        assert_eq!(app.calls().since(before), calls, "{op}: the replay called the provider");
        assert_eq!(app.view(c, &id).await, view, "{op}: the replay changed the payment");
        assert_eq!(with_id(&view, &modification_id).len(), 1, "{view}");
        app.assert_verified().await;
    }
}

#[tokio::test]
async fn a_modification_id_with_another_body_is_refused_and_a_reformatted_body_is_replayed() {
    let app = race_app().await;
    let a = app.merchant.clone();
    let id = app.pay_as(&a, 10.99, CARD_OK).await;
    let other = app.pay_as(&a, 10.99, CARD_OK).await;
    let first = app.send_mod(&a, "capture", mod_json(&a, &id, "cap", Some(5.5), "EUR")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let (view, other_view, before) = (app.view(&a, &id).await, app.view(&a, &other).await, app.calls());
    let conflicts = [
        ("capture", mod_json(&a, &id, "cap", Some(6.0), "EUR"), "another amount"),
        ("capture", mod_json(&a, &id, "cap", None, "EUR"), "no amount"),
        ("refund", mod_json(&a, &id, "cap", Some(5.5), "EUR"), "another operation"),
        ("capture", mod_json(&a, &other, "cap", Some(5.5), "EUR"), "another payment of the merchant"),
    ];
    for (op, body, what) in conflicts {
        let r = app.send_mod(&a, op, body).await;
        assert_eq!(r.status, 409, "{what}: {}", r.text());
        assert_eq!(codes(&r.json()), vec![("idempotency_conflict".to_owned(), "modificationId".to_owned())], "{what}");
    }
    assert_eq!(app.view(&a, &id).await, view, "a conflict changed the payment");
    assert_eq!(app.view(&a, &other).await, other_view, "a conflict changed the other payment");
    assert_eq!(app.calls(), before, "a conflict called the provider");
    // Same request, other member order, whitespace and `5.50` for `5.5`: the first answer.
    let reformatted = format!(
        "{{\n  \"modificationId\" : \"cap\",\"modifiedAmount\": {{ \"currencyCode\": \"EUR\", \"amount\": 5.50 }},\n\t\"merchantKey\": \"{}\",   \"transactionId\": \"{id}\"\n}}",
        a.merchant_key
    );
    let again = app.send_mod(&a, "capture", reformatted).await;
    assert_eq!((again.status, again.replayed), (200, true), "{}", again.text());
    assert_eq!(again.body, first.body);
    assert_eq!(app.calls(), before);
    // A cancel's description is part of its body.
    let cancel = |d: &str| {
        let mut v: Value = serde_json::from_str(&mod_json(&a, &other, "can", None, "EUR")).unwrap();
        v["description"] = json!(d);
        v.to_string()
    };
    assert_eq!(app.send_mod(&a, "cancel", cancel("first")).await.status, 200);
    let r = app.send_mod(&a, "cancel", cancel("second")).await;
    assert_eq!((r.status, r.code().as_str()), (409, "idempotency_conflict"), "{}", r.text());
    app.assert_verified().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_requests_with_one_modification_id_have_exactly_one_effect() {
    let app = race_app().await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    for round in 0..60 {
        let (op, c, amount, calls) = match round % 3 {
            0 => ("capture", &a, Some(4.0), Calls { captures: 1, ..NO_CALLS }),
            1 => ("refund", &b, Some(2.0), Calls { refunds: 1, ..NO_CALLS }),
            _ => ("cancel", &a, None, Calls { cancels: 1, ..NO_CALLS }),
        };
        let id = app.pay_as(c, 10.99, CARD_OK).await;
        let modification_id = format!("same-{round}");
        let body = mod_json(c, &id, &modification_id, amount, "EUR");
        let before = app.calls();
        let replies = app.race(c, (0..32).map(|_| (op, body.clone())).collect()).await;
        let ok: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
        let seen = format!("round {round} ({op}): {}", tally(&replies));
        assert!(!ok.is_empty(), "{seen}");
        for r in &ok {
            assert_eq!(r.body, ok[0].body, "{seen}: two different answers");
        }
        for r in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(r.status, 409, "{seen}: {}", r.text());
            assert_eq!(
                codes(&r.json()),
                vec![("request_in_progress".to_owned(), "modificationId".to_owned())],
                "{seen}"
            );
        }
        assert_eq!(app.calls().since(before), calls, "{seen}");
        let view = app.view(c, &id).await;
        let mods = with_id(&view, &modification_id);
        assert_eq!(mods.len(), 1, "{view}");
        assert!(!mods[0]["status"].as_str().unwrap().ends_with("_PENDING"), "{view}");
        let again = app.send_mod(c, op, body).await;
        assert_eq!((again.status, again.replayed), (200, true));
        assert_eq!(again.body, ok[0].body);
        assert_eq!(total(app.calls().since(before)), 1);
        app.assert_verified().await;
    }
}

#[tokio::test]
async fn another_merchant_reusing_a_modification_id_gets_its_own_execution_never_the_first_answer() {
    let app = race_app().await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    let a_id = app.pay_as(&a, 10.99, CARD_OK).await;
    let b_id = app.pay_as(&b, 10.99, CARD_OK).await;
    let a_body = mod_json(&a, &a_id, "shared", Some(5.0), "EUR");
    let first = app.send_mod(&a, "capture", a_body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let a_view = app.view(&a, &a_id).await;
    let before = app.calls();
    // B on A's payment: not found, with A's modificationId or another, and nothing kept.
    for modification_id in ["shared", "b-own"] {
        let r = app.send_mod(&b, "capture", mod_json(&b, &a_id, modification_id, Some(5.0), "EUR")).await;
        assert_eq!(r.status, 404, "{}", r.text());
    }
    // B's own payment, A's modificationId: B's own refund runs.
    let b_body = mod_json(&b, &b_id, "shared", Some(2.0), "EUR");
    let own = app.send_mod(&b, "refund", b_body.clone()).await;
    assert_eq!((own.status, own.replayed), (200, false), "{}", own.text());
    let v = own.json();
    assert_eq!(v["transactionId"], b_id.as_str());
    assert_eq!(v["modification"]["modificationData"]["type"], "REFUND");
    assert_eq!(cents(&v["modification"]["modificationAmount"]["amount"]), 200);
    assert_eq!(app.calls().since(before), Calls { refunds: 1, ..NO_CALLS });
    // A's body sent by B: refused, never A's answer.
    let r = app.send_mod(&b, "capture", a_body.clone()).await;
    assert_eq!((r.status, r.code().as_str()), (403, "merchant_key_mismatch"), "{}", r.text());
    assert_ne!(r.body, first.body);
    assert_eq!(app.view(&a, &a_id).await, a_view, "B changed A's payment");
    assert_eq!(app.calls().since(before), Calls { refunds: 1, ..NO_CALLS });
    // Each merchant's replay is its own first answer.
    let again = app.send_mod(&b, "refund", b_body).await;
    assert_eq!((again.status, again.replayed, &again.body), (200, true, &own.body));
    let again = app.send_mod(&a, "capture", a_body).await;
    assert_eq!((again.status, again.replayed, &again.body), (200, true, &first.body));
    app.assert_verified().await;
}
