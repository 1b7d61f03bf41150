//! Every test card of CONTRACT §10 through the connector and the fake acquirer, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use smartpay_domain::card::{CardNumber, Cvc, Expiry};
use smartpay_providers::sandbox::acquirer::{AcquirerConfig, router};
use smartpay_providers::sandbox::{ConnectorConfig, SandboxConnector};
use smartpay_providers::*;

async fn setup() -> (SandboxConnector, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = AcquirerConfig {
        latency: Duration::from_millis(1),
        pending_delay: Duration::from_millis(300),
        slow_delay: Duration::from_millis(800),
        public_base: base.clone(),
    };
    tokio::spawn(async move { axum::serve(listener, router(config)).await });
    let connector =
        SandboxConnector::new(ConnectorConfig { base_url: base.clone(), timeout: Duration::from_millis(300) });
    (connector, base)
}

fn card(number: &str, cvc: &str) -> Card {
    let (n, brand) = CardNumber::parse(number).unwrap();
    Card { number: n, expiry: Expiry { month: 12, year: 2035 }, cvc: Cvc::parse(cvc, brand).unwrap(), holder: None }
}

fn request(id: &str, number: &str) -> AuthorizeRequest {
    let cvc = if number.starts_with("37") { "1234" } else { "737" };
    AuthorizeRequest {
        payment_id: id.into(),
        amount_minor: 1099,
        currency: "EUR".into(),
        card: card(number, cvc),
        return_url: None,
    }
}

fn modify(reference: &str, id: &str, amount: i64) -> ModifyRequest {
    ModifyRequest {
        reference: reference.into(),
        modification_id: id.into(),
        amount_minor: amount,
        currency: "EUR".into(),
    }
}

#[tokio::test]
async fn each_test_card_gives_its_documented_outcome() {
    let (p, _) = setup().await;
    for n in ["4111111111111111", "5555555555554444", "378282246310005", "4000000000000341", "4000000000005126"] {
        let o = p.authorize(request(&format!("pay-{n}"), n)).await.unwrap();
        match o {
            AuthorizeOutcome::Authorized { reference } => assert_eq!(reference.len(), 22, "{n}: realistic reference"),
            other => panic!("{n}: {other:?}"),
        }
    }
    for (n, reason) in [
        ("4000000000000002", DeclineReason::CardDeclined),
        ("4000000000009995", DeclineReason::InsufficientFunds),
        ("4000000000000069", DeclineReason::ExpiredCard),
        ("4100000000000019", DeclineReason::CardStolen),
    ] {
        match p.authorize(request(&format!("pay-{n}"), n)).await.unwrap() {
            AuthorizeOutcome::Declined { reason: r, reference } => {
                assert_eq!(r, reason, "{n}");
                assert!(reference.is_some());
            }
            other => panic!("{n}: {other:?}"),
        }
    }
    assert_eq!(DeclineReason::CardStolen.code(), "payment_provider_card_stolen");
}

#[tokio::test]
async fn pending_cards_are_decided_later_and_found_by_polling() {
    let (p, _) = setup().await;
    let AuthorizeOutcome::Pending { reference: ok } =
        p.authorize(request("pay-259", "4000000000000259")).await.unwrap()
    else {
        panic!()
    };
    let AuthorizeOutcome::Pending { reference: ko } =
        p.authorize(request("pay-267", "4000000000000267")).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(p.status(&ok).await.unwrap(), ProviderStatus::Pending);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(p.status(&ok).await.unwrap(), ProviderStatus::Authorized);
    assert_eq!(p.status(&ko).await.unwrap(), ProviderStatus::Declined(DeclineReason::CardDeclined));
}

#[tokio::test]
async fn a_silent_acquirer_gives_unknown_and_the_retry_is_idempotent() {
    let (p, _) = setup().await;
    assert_eq!(p.authorize(request("pay-408", "4000000000000408")).await.unwrap(), AuthorizeOutcome::Unknown);
    // Asking again with the same payment id (the provider-side idempotency key) finds the one
    // authorization the acquirer made, at once, instead of making a second.
    let AuthorizeOutcome::Authorized { reference } = p.authorize(request("pay-408", "4000000000000408")).await.unwrap()
    else {
        panic!("the replay should answer the decided authorization")
    };
    assert_eq!(p.status(&reference).await.unwrap(), ProviderStatus::Authorized);
    let AuthorizeOutcome::Authorized { reference: a } =
        p.authorize(request("pay-x", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    let AuthorizeOutcome::Authorized { reference: b } =
        p.authorize(request("pay-x", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(a, b, "one authorization per payment id");
}

#[tokio::test]
async fn captures_refunds_and_cancellations_follow_the_card_and_the_amounts() {
    let (p, _) = setup().await;
    let AuthorizeOutcome::Authorized { reference: r } =
        p.authorize(request("pay-a", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    assert!(matches!(p.capture(modify(&r, "c1", 600)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert!(
        matches!(p.capture(modify(&r, "c2", 600)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "amount_exceeds_authorized")
    );
    assert!(matches!(p.capture(modify(&r, "c3", 499)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    let first = p.refund(modify(&r, "r1", 1000)).await.unwrap();
    assert!(matches!(first, ModifyOutcome::Succeeded { .. }));
    assert_eq!(p.refund(modify(&r, "r1", 1000)).await.unwrap(), first, "a repeated modification id has one effect");
    assert!(
        matches!(p.refund(modify(&r, "r2", 100)).await.unwrap(), ModifyOutcome::Failed { .. }),
        "refunds beyond the captured amount fail"
    );
    assert!(
        matches!(p.cancel(modify(&r, "x1", 1099)).await.unwrap(), ModifyOutcome::Failed { .. }),
        "a captured authorization cannot be cancelled"
    );

    let AuthorizeOutcome::Authorized { reference: c } =
        p.authorize(request("pay-c", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    assert!(matches!(p.cancel(modify(&c, "x2", 1099)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert!(
        matches!(p.capture(modify(&c, "c4", 100)).await.unwrap(), ModifyOutcome::Failed { .. }),
        "no capture after cancel"
    );

    let AuthorizeOutcome::Authorized { reference: f } =
        p.authorize(request("pay-f", "4000000000000341")).await.unwrap()
    else {
        panic!()
    };
    assert!(
        matches!(p.capture(modify(&f, "c5", 100)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "capture_failed")
    );
    let AuthorizeOutcome::Authorized { reference: g } =
        p.authorize(request("pay-g", "4000000000005126")).await.unwrap()
    else {
        panic!()
    };
    assert!(matches!(p.capture(modify(&g, "c6", 1099)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert!(
        matches!(p.refund(modify(&g, "r3", 100)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "refund_failed")
    );
}

#[tokio::test]
async fn the_challenge_page_approves_or_fails_the_authorization() {
    let (p, _) = setup().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (decision, expected) in [
        ("approve", ProviderStatus::Authorized),
        ("fail", ProviderStatus::Declined(DeclineReason::AuthenticationFailed)),
    ] {
        let mut req = request(&format!("pay-3ds-{decision}"), "4000000000003220");
        req.return_url = Some("http://127.0.0.1:1/back".into());
        let AuthorizeOutcome::ChallengeRequired { reference, url } = p.authorize(req).await.unwrap() else { panic!() };
        assert_eq!(p.status(&reference).await.unwrap(), ProviderStatus::ChallengePending);
        let page = http.get(&url).send().await.unwrap();
        assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
        let html = page.text().await.unwrap();
        assert!(html.contains("10.99 EUR") && html.contains("Approve"), "{html}");
        let r = http.post(&url).form(&[("decision", decision)]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "http://127.0.0.1:1/back");
        assert_eq!(p.status(&reference).await.unwrap(), expected);
    }
}

#[tokio::test]
async fn the_acquirer_refuses_malformed_requests() {
    let (_, base) = setup().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/authorizations"))
        .json(&serde_json::json!({"pan": "4111111111111112", "expiryMonth": 12, "expiryYear": 2035, "cvc": "737", "amount": 1, "currency": "EUR", "idempotencyKey": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(!text.contains("4111111111111112"), "errors never echo the card number");
}
