//! Every test card of CONTRACT §10 through the connector and the fake acquirer, over real HTTP,
//! and the acquirer's defences: its API answers only the connector's key, its memory is capped,
//! its challenge page may be framed only by SmartPay and returns only to SmartPay's page; stored
//! cards pay with the acquirer's tokens, never with the card number.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use smartpay_domain::card::{CardNumber, Cvc, Expiry};
use smartpay_providers::sandbox::acquirer::{AcquirerConfig, SpawnedAcquirer, spawn};
use smartpay_providers::sandbox::{ConnectorConfig, SandboxConnector};
use smartpay_providers::*;

const KEY: &str = "test-key-0123456789abcdef";

/// A running acquirer, its challenge router served on a "public" listener of its own as
/// SmartPay would, and a connector that holds the right key.
struct Sandbox {
    p: SandboxConnector,
    acq: SpawnedAcquirer,
    /// The machine API, e.g. `http://127.0.0.1:1234`.
    api: String,
    /// The public listener's origin.
    public: String,
}

impl Sandbox {
    fn return_url(&self) -> String {
        format!("{}/widget/challenge-return", self.public)
    }

    fn connector(&self, key: &str) -> SandboxConnector {
        SandboxConnector::new(ConnectorConfig {
            base_url: self.api.clone(),
            timeout: Duration::from_millis(300),
            api_key: key.into(),
        })
    }
}

async fn setup() -> Sandbox {
    setup_with(100_000).await
}

async fn setup_with(max_authorizations: usize) -> Sandbox {
    setup_keyed(max_authorizations, TOKEN_KEY).await
}

/// The token key of most tests' acquirers.
const TOKEN_KEY: [u8; 32] = [42; 32];

async fn setup_keyed(max_authorizations: usize, token_key: [u8; 32]) -> Sandbox {
    let public_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", public_listener.local_addr().unwrap());
    let config = AcquirerConfig {
        latency: Duration::from_millis(1),
        pending_delay: Duration::from_millis(300),
        slow_delay: Duration::from_millis(800),
        public_base: format!("{public}/sandbox-acquirer"),
        return_url: format!("{public}/widget/challenge-return"),
        frame_ancestor: public.clone(),
        api_key: KEY.into(),
        max_authorizations,
        token_key,
        ..AcquirerConfig::default()
    };
    let acq = spawn(config).await.unwrap();
    let app = axum::Router::new().nest("/sandbox-acquirer", acq.challenge_router.clone());
    tokio::spawn(async move { axum::serve(public_listener, app).await });
    let api = format!("http://{}", acq.api_addr);
    let p = SandboxConnector::new(ConnectorConfig {
        base_url: api.clone(),
        timeout: Duration::from_millis(300),
        api_key: KEY.into(),
    });
    Sandbox { p, acq, api, public }
}

fn card(number: &str, cvc: &str) -> Card {
    let (n, brand) = CardNumber::parse(number).unwrap();
    let (year, _, _) = smartpay_domain::Millis::now().date();
    let expiry = Expiry { month: 12, year: u16::try_from(year + 5).unwrap() };
    Card { number: n, expiry, cvc: Cvc::parse(cvc, brand).unwrap(), holder: None }
}

fn request(id: &str, number: &str) -> AuthorizeRequest {
    let cvc = if number.starts_with("37") { "1234" } else { "737" };
    AuthorizeRequest {
        payment_id: id.into(),
        amount_minor: 1099,
        currency: "EUR".into(),
        source: PaymentSource::Card(card(number, cvc)),
        return_url: None,
        frame_ancestors: Vec::new(),
    }
}

/// The status the acquirer reports for `reference`, which it must know.
async fn status(p: &SandboxConnector, reference: &str) -> ProviderStatus {
    match p.status(reference).await.unwrap() {
        Lookup::Found(state) => {
            assert_eq!(state.reference, reference);
            state.status
        }
        other => panic!("{reference}: {other:?}"),
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
    let Sandbox { p, .. } = &setup().await;
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
    let Sandbox { p, .. } = &setup().await;
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
    assert_eq!(status(p, &ok).await, ProviderStatus::Pending);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status(p, &ok).await, ProviderStatus::Authorized);
    assert_eq!(status(p, &ko).await, ProviderStatus::Declined(DeclineReason::CardDeclined));
}

#[tokio::test]
async fn a_silent_acquirer_gives_unknown_and_the_retry_is_idempotent() {
    let Sandbox { p, .. } = &setup().await;
    assert_eq!(p.authorize(request("pay-408", "4000000000000408")).await.unwrap(), AuthorizeOutcome::Unknown);
    // Asking again with the same payment id (the provider-side idempotency key) finds the one
    // authorization the acquirer made, at once, instead of making a second.
    let AuthorizeOutcome::Authorized { reference } = p.authorize(request("pay-408", "4000000000000408")).await.unwrap()
    else {
        panic!("the replay should answer the decided authorization")
    };
    assert_eq!(status(p, &reference).await, ProviderStatus::Authorized);
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
    let Sandbox { p, .. } = &setup().await;
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

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn the_challenge_page_approves_or_fails_and_returns_only_to_smartpays_page() {
    let sb = setup().await;
    let http = no_redirects();
    for (decision, expected, result) in [
        ("approve", ProviderStatus::Authorized, "authorized"),
        ("fail", ProviderStatus::Declined(DeclineReason::AuthenticationFailed), "declined"),
    ] {
        let mut req = request(&format!("pay-3ds-{decision}"), "4000000000003220");
        // An attacker's return address is neither stored nor followed.
        req.return_url = Some("https://evil.example/steal".into());
        // The merchant's shop holds SmartPay's frame, which holds the challenge.
        req.frame_ancestors = vec!["https://shop.example".into()];
        let AuthorizeOutcome::ChallengeRequired { reference, url } = sb.p.authorize(req).await.unwrap() else {
            panic!()
        };
        assert_eq!(url, format!("{}/sandbox-acquirer/v1/challenges/{reference}", sb.public), "reached by a browser");
        assert_eq!(status(&sb.p, &reference).await, ProviderStatus::ChallengePending);
        let page = http.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(
            csp.ends_with(&format!("frame-ancestors {} https://shop.example", sb.public)),
            "only SmartPay inside the merchant's page may frame it: {csp}"
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("10.99 EUR") && html.contains("Approve"), "{html}");
        let r = http
            .post(&url)
            .form(&[("decision", decision), ("returnUrl", "https://evil.example/"), ("return_url", "//evil.example")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let expected_location = format!("{}?authorization={reference}&result={result}", sb.return_url());
        assert_eq!(r.headers()["location"], expected_location.as_str());
        assert_eq!(status(&sb.p, &reference).await, expected);
        // Deciding again changes nothing and still returns only to SmartPay.
        let again = http.post(&url).form(&[("decision", "approve")]).send().await.unwrap();
        assert_eq!(again.headers()["location"], expected_location.as_str());
        assert_eq!(status(&sb.p, &reference).await, expected);
    }
}

#[tokio::test]
async fn the_challenge_page_refuses_unknown_challenges_and_decisions() {
    let sb = setup().await;
    let http = no_redirects();
    let unknown = format!("{}/sandbox-acquirer/v1/challenges/{}", sb.public, "x".repeat(22));
    assert_eq!(http.get(&unknown).send().await.unwrap().status(), 404);
    let r = http.post(&unknown).form(&[("decision", "approve")]).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("location").is_none());
    let AuthorizeOutcome::ChallengeRequired { reference, url } =
        sb.p.authorize(request("pay-3ds-odd", "4000000000003220")).await.unwrap()
    else {
        panic!()
    };
    let r = http.post(&url).form(&[("decision", "maybe")]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(status(&sb.p, &reference).await, ProviderStatus::ChallengePending);
}

#[tokio::test]
async fn the_public_listener_does_not_serve_the_acquirers_api() {
    let sb = setup().await;
    let AuthorizeOutcome::Authorized { reference } =
        sb.p.authorize(request("pay-pub", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/sandbox-acquirer/v1/authorizations/{reference}", sb.public))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_api_answers_only_requests_with_the_connectors_key() {
    let sb = setup().await;
    let AuthorizeOutcome::Authorized { reference } =
        sb.p.authorize(request("pay-k", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    let http = reqwest::Client::new();
    let lookup = format!("{}/v1/authorizations/{reference}", sb.api);
    assert_eq!(http.get(&lookup).bearer_auth(KEY).send().await.unwrap().status(), 200, "the right key is let in");
    let refused = [
        http.get(&lookup),
        http.get(&lookup).bearer_auth("wrong-key-0123456789abcdef"),
        http.get(&lookup).bearer_auth(format!("{KEY}x")),
        http.get(&lookup).bearer_auth(&KEY[..KEY.len() - 1]),
        http.get(&lookup).header("authorization", KEY),
        http.get(&lookup).basic_auth(KEY, Some(KEY)),
        http.get(format!("{}/nowhere", sb.api)),
    ];
    for req in refused {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert!(!r.text().await.unwrap().contains(&reference));
    }
    // Without the key, an idempotency key finds nothing either, and nothing is stored.
    let before = sb.acq.stored();
    let r = http
        .post(format!("{}/v1/authorizations", sb.api))
        .json(&serde_json::json!({"pan": "4111111111111111", "expiryMonth": 12, "expiryYear": 2040, "cvc": "737", "amount": 1, "currency": "EUR", "idempotencyKey": "pay-k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains(&reference));
    let r = http
        .post(format!("{}/v1/authorizations", sb.api))
        .bearer_auth("wrong-key-0123456789abcdef")
        .json(&serde_json::json!({"pan": "4111111111111111", "expiryMonth": 12, "expiryYear": 2040, "cvc": "737", "amount": 1, "currency": "EUR", "idempotencyKey": "pay-new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(sb.acq.stored(), before, "a refused request stores nothing");
    // A connector with the wrong key is refused, with only the status and code as its error.
    let intruder = sb.connector("wrong-key-0123456789abcdef");
    match intruder.status(&reference).await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "401 unauthorized"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn memory_holds_at_most_max_authorizations() {
    let sb = setup_with(10).await;
    let mut references = Vec::new();
    for i in 0..50 {
        let AuthorizeOutcome::Authorized { reference } =
            sb.p.authorize(request(&format!("pay-cap-{i}"), "4111111111111111")).await.unwrap()
        else {
            panic!()
        };
        assert!(sb.acq.stored() <= 10, "after {i}: {}", sb.acq.stored());
        references.push(reference);
    }
    assert_eq!(sb.acq.stored(), 10);
    assert_eq!(status(&sb.p, &references[49]).await, ProviderStatus::Authorized, "the newest are kept");
    assert_eq!(sb.p.status(&references[0]).await.unwrap(), Lookup::NotFound, "the oldest finished ones were forgotten");
    assert_eq!(sb.p.find("pay-cap-0").await.unwrap(), Lookup::NotFound, "with their idempotency keys");
}

#[tokio::test]
async fn a_memory_full_of_undecided_challenges_refuses_new_authorizations() {
    let sb = setup_with(3).await;
    for i in 0..3 {
        let o = sb.p.authorize(request(&format!("pay-open-{i}"), "4000000000003220")).await.unwrap();
        assert!(matches!(o, AuthorizeOutcome::ChallengeRequired { .. }));
    }
    // 503 is "no usable answer": the engine polls later instead of guessing.
    assert_eq!(sb.p.authorize(request("pay-more", "4111111111111111")).await.unwrap(), AuthorizeOutcome::Unknown);
    assert_eq!(sb.acq.stored(), 3);
}

#[tokio::test]
async fn the_acquirer_refuses_malformed_and_oversized_requests() {
    let sb = setup().await;
    let http = reqwest::Client::new();
    let valid = serde_json::json!({"pan": "4111111111111111", "expiryMonth": 12, "expiryYear": 2040, "cvc": "737", "amount": 1, "currency": "EUR", "idempotencyKey": "k"});
    let with = |field: &str, value: serde_json::Value| {
        let mut v = valid.clone();
        v[field] = value;
        v
    };
    let cases = [
        (with("pan", "4111111111111112".into()), "invalid_pan"),
        (with("idempotencyKey", "k".repeat(256).into()), "invalid_idempotency_key"),
        (with("idempotencyKey", "".into()), "invalid_idempotency_key"),
        (with("currency", "EURO".into()), "invalid_currency"),
        (with("currency", "E€".into()), "invalid_currency"),
        (with("holder", "h".repeat(256).into()), "invalid_holder"),
        (with("cvc", "73".into()), "invalid_cvc"),
        (with("amount", 0.into()), "invalid_amount"),
        (with("expiryMonth", "4111111111111111".into()), "malformed_request"),
    ];
    for (body, code) in cases {
        let r = http.post(format!("{}/v1/authorizations", sb.api)).bearer_auth(KEY).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{code}");
        let text = r.text().await.unwrap();
        assert_eq!(text, format!("{{\"error\":\"{code}\"}}"));
        assert!(!text.contains("411111111111111"), "errors never echo the card number");
    }
    let huge = with("returnUrl", "u".repeat(5 * 1024).into());
    let r = http.post(format!("{}/v1/authorizations", sb.api)).bearer_auth(KEY).json(&huge).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(sb.acq.stored(), 0, "nothing refused was stored");
    let AuthorizeOutcome::Authorized { reference } =
        sb.p.authorize(request("pay-m", "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    let mut m = modify(&reference, &"m".repeat(256), 100);
    assert!(
        matches!(sb.p.capture(m.clone()).await, Err(ProviderError::Rejected(e)) if e == "400 invalid_idempotency_key")
    );
    m.modification_id = "m1".into();
    m.currency = "EURO".into();
    assert!(matches!(sb.p.capture(m).await, Err(ProviderError::Rejected(e)) if e == "400 invalid_currency"));
    let long_id = "r".repeat(300);
    assert_eq!(sb.p.status(&long_id).await.unwrap(), Lookup::NotFound);
    assert!(
        matches!(sb.p.find(&"k".repeat(256)).await, Err(ProviderError::Rejected(e)) if e == "400 invalid_idempotency_key")
    );
}

#[tokio::test]
async fn huge_amounts_cannot_overflow_captures_or_refunds() {
    let Sandbox { p, .. } = &setup().await;
    let mut req = request("pay-big", "4111111111111111");
    req.amount_minor = i64::MAX;
    let AuthorizeOutcome::Authorized { reference: r } = p.authorize(req).await.unwrap() else { panic!() };
    assert!(matches!(p.capture(modify(&r, "c1", i64::MAX)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert!(matches!(p.capture(modify(&r, "c2", i64::MAX)).await.unwrap(), ModifyOutcome::Failed { .. }));
    assert!(matches!(p.refund(modify(&r, "r1", i64::MAX)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert!(matches!(p.refund(modify(&r, "r2", i64::MAX)).await.unwrap(), ModifyOutcome::Failed { .. }));
}

#[tokio::test]
async fn a_providers_error_body_never_reaches_the_error_message() {
    // A provider that answers 400 with card data and markup in its body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let canary = r#"{"error":"4111111111111111 <script>alert(1)</script>"}"#;
    let app = axum::Router::new()
        .route(
            "/v1/authorizations",
            axum::routing::post(move || async move { (axum::http::StatusCode::BAD_REQUEST, canary) }),
        )
        .route(
            "/v1/authorizations/{id}",
            axum::routing::get(|| async { (axum::http::StatusCode::CONFLICT, r#"{"error":"made_up_code"}"#) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let p =
        SandboxConnector::new(ConnectorConfig { base_url: base, timeout: Duration::from_secs(2), api_key: KEY.into() });
    match p.authorize(request("pay-e", "4111111111111111")).await {
        Err(e @ ProviderError::Rejected(_)) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("4111") && !shown.contains("script"), "{shown}");
            assert!(shown.contains("400 unreadable"), "{shown}");
        }
        other => panic!("{other:?}"),
    }
    match p.status("abc").await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "409 other", "an unknown code is not repeated"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let config = AcquirerConfig {
        api_key: "acquirer-secret-canary-1234".into(),
        token_key: [0xAB; 32],
        ..AcquirerConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("acquirer-secret-canary") && !shown.contains("171"), "{shown}");
    assert_ne!(
        AcquirerConfig::default().token_key,
        AcquirerConfig::default().token_key,
        "a random token key by default"
    );
    let connector = ConnectorConfig {
        base_url: "http://127.0.0.1:1".into(),
        timeout: Duration::from_secs(1),
        api_key: "connector-secret-canary-1234".into(),
    };
    assert!(!format!("{connector:?}").contains("connector-secret-canary"));
    assert!(AcquirerConfig::default().api_key.len() >= 32, "a fresh random key by default");
    assert_ne!(AcquirerConfig::default().api_key, AcquirerConfig::default().api_key);
}

#[tokio::test]
async fn spawn_refuses_an_unsafe_configuration() {
    let public = AcquirerConfig { listen: "0.0.0.0:0".parse().unwrap(), ..AcquirerConfig::default() };
    assert_eq!(spawn(public).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let weak = AcquirerConfig { api_key: "short".into(), ..AcquirerConfig::default() };
    assert_eq!(spawn(weak).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let relative = AcquirerConfig { return_url: "/widget/challenge-return".into(), ..AcquirerConfig::default() };
    assert_eq!(spawn(relative).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let injected =
        AcquirerConfig { frame_ancestor: "https://a.example; script-src *".into(), ..AcquirerConfig::default() };
    assert_eq!(spawn(injected).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let empty = AcquirerConfig { max_authorizations: 0, ..AcquirerConfig::default() };
    assert_eq!(spawn(empty).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    let zero_key = AcquirerConfig { token_key: [0; 32], ..AcquirerConfig::default() };
    assert_eq!(spawn(zero_key).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn shutdown_closes_the_api_listener() {
    let sb = setup().await;
    let addr = sb.acq.api_addr;
    sb.acq.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn an_authorization_naming_anything_but_origins_as_frame_ancestors_is_refused() {
    let sb = setup().await;
    for bad in [
        "https://shop.example/path",
        "javascript:alert(1)",
        "https://a.example 'unsafe-inline'",
        "https://a.example;script-src *",
    ] {
        let mut req = request(&format!("pay-anc-{}", bad.len()), "4000000000003220");
        req.frame_ancestors = vec![bad.into()];
        let outcome = sb.p.authorize(req).await;
        assert!(!matches!(outcome, Ok(AuthorizeOutcome::ChallengeRequired { .. })), "{bad}: {outcome:?}");
    }
}

#[tokio::test]
async fn a_lookup_reports_the_amount_and_currency_the_acquirer_holds() {
    let Sandbox { p, .. } = &setup().await;
    let mut req = request("pay-usd", "4111111111111111");
    req.amount_minor = 4200;
    req.currency = "USD".into();
    let AuthorizeOutcome::Authorized { reference } = p.authorize(req).await.unwrap() else { panic!() };
    let expected = Lookup::Found(AuthorizationState {
        reference: reference.clone(),
        status: ProviderStatus::Authorized,
        amount_minor: 4200,
        currency: "USD".into(),
    });
    assert_eq!(p.status(&reference).await.unwrap(), expected);
    assert_eq!(p.find("pay-usd").await.unwrap(), expected, "found by the payment id too");
}

#[tokio::test]
async fn an_authorization_whose_answer_was_lost_is_found_by_its_idempotency_key() {
    let Sandbox { p, .. } = &setup().await;
    // The …0408 card: the acquirer decides at once but answers after the connector gave up.
    assert_eq!(p.authorize(request("pay-lost", "4000000000000408")).await.unwrap(), AuthorizeOutcome::Unknown);
    let Lookup::Found(state) = p.find("pay-lost").await.unwrap() else { panic!("the acquirer made it") };
    assert_eq!(state.status, ProviderStatus::Authorized);
    assert_eq!((state.amount_minor, state.currency.as_str()), (1099, "EUR"));
    assert_eq!(status(p, &state.reference).await, ProviderStatus::Authorized, "its reference works for polling");
    // A request that never arrived is not found, so the gateway knows nothing was authorized.
    assert_eq!(p.find("pay-never-sent").await.unwrap(), Lookup::NotFound);
    assert_eq!(p.status(&"x".repeat(22)).await.unwrap(), Lookup::NotFound);
}

#[tokio::test]
async fn keys_and_references_are_sent_as_one_encoded_segment_or_parameter() {
    let Sandbox { p, .. } = &setup().await;
    let key = "pay&idempotencyKey=other#/?%";
    let AuthorizeOutcome::Authorized { reference } = p.authorize(request(key, "4111111111111111")).await.unwrap()
    else {
        panic!()
    };
    let AuthorizeOutcome::Authorized { .. } = p.authorize(request("other", "4111111111111111")).await.unwrap() else {
        panic!()
    };
    let Lookup::Found(found) = p.find(key).await.unwrap() else { panic!() };
    assert_eq!(found.reference, reference, "the whole key was looked up, not a part of it");
    // A reference cannot reach another route (here: the captures of an authorization).
    assert_eq!(p.status(&format!("{reference}/captures")).await.unwrap(), Lookup::NotFound);
    for odd in ["..", ".", ""] {
        assert!(matches!(p.status(odd).await, Err(ProviderError::Rejected(_))), "{odd:?}");
    }
}

/// A provider that answers lookups as `answer` says, and 404 with an unknown code for one path.
async fn odd_provider(status: u16, body: &'static str) -> SandboxConnector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    let app = axum::Router::new()
        .route("/v1/authorizations/{id}", axum::routing::get(move || async move { (code, body) }))
        .route("/v1/authorizations", axum::routing::get(move || async move { (code, body) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    SandboxConnector::new(ConnectorConfig { base_url: base, timeout: Duration::from_secs(2), api_key: KEY.into() })
}

#[tokio::test]
async fn lookups_without_a_usable_answer_are_unknown_and_only_the_providers_not_found_is_not_found() {
    for (status, body) in [
        (500, r#"{"error":"internal"}"#),
        (503, ""),
        (429, r#"{"error":"slow_down"}"#),
        (200, "not json"),
        (200, r#"{"id":"a","status":"SOMETHING_NEW","amount":1,"currency":"EUR"}"#),
    ] {
        let p = odd_provider(status, body).await;
        assert_eq!(p.status("abc").await.unwrap(), Lookup::Unknown, "{status} {body}");
        assert_eq!(p.find("pay-1").await.unwrap(), Lookup::Unknown, "{status} {body}");
    }
    let p = odd_provider(404, r#"{"error":"not_found"}"#).await;
    assert_eq!(p.status("abc").await.unwrap(), Lookup::NotFound);
    // A 404 that is not the acquirer's answer (a wrong base URL, a proxy) must not be taken for
    // "never authorized".
    for body in ["<html>Not Found</html>", r#"{"error":"no_such_route"}"#] {
        let p = odd_provider(404, body).await;
        assert!(matches!(p.status("abc").await, Err(ProviderError::Rejected(_))), "{body}");
    }
    let silent = SandboxConnector::new(ConnectorConfig {
        base_url: "http://127.0.0.1:1".into(),
        timeout: Duration::from_millis(300),
        api_key: KEY.into(),
    });
    assert_eq!(silent.status("abc").await.unwrap(), Lookup::Unknown, "nobody listening");
}

// ---- Stored cards: tokens ----

/// The expiry every test card is given (five years ahead).
fn expiry() -> Expiry {
    let (year, _, _) = smartpay_domain::Millis::now().date();
    Expiry { month: 12, year: u16::try_from(year + 5).unwrap() }
}

async fn tokenize(p: &SandboxConnector, number: &str) -> String {
    let (n, _) = CardNumber::parse(number).unwrap();
    match p.tokenize(TokenizeRequest { number: n, expiry: expiry(), holder: Some("Jane Canary".into()) }).await.unwrap()
    {
        TokenizeOutcome::Tokenized { token } => token,
        other => panic!("{number}: {other:?}"),
    }
}

fn token_request(id: &str, token: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        payment_id: id.into(),
        amount_minor: 1099,
        currency: "EUR".into(),
        source: PaymentSource::Token { token: token.into(), expiry: expiry() },
        return_url: None,
        frame_ancestors: Vec::new(),
    }
}

/// `POST path` at the acquirer's API with the right key: status and body.
async fn post_raw(sb: &Sandbox, path: &str, body: &serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{}{path}", sb.api)).bearer_auth(KEY).json(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_stored_card_pays_with_its_token_exactly_as_with_its_number() {
    let sb = setup().await;
    let p = &sb.p;
    let approve = tokenize(p, "4111111111111111").await;
    let AuthorizeOutcome::Authorized { reference } = p.authorize(token_request("pay-t1", &approve)).await.unwrap()
    else {
        panic!()
    };
    assert!(matches!(p.capture(modify(&reference, "c1", 1099)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    let AuthorizeOutcome::Authorized { reference: again } =
        p.authorize(token_request("pay-t1", &approve)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(again, reference, "one authorization per payment id, with a token too");
    for (n, reason) in
        [("4000000000000002", DeclineReason::CardDeclined), ("4000000000009995", DeclineReason::InsufficientFunds)]
    {
        let token = tokenize(p, n).await;
        match p.authorize(token_request(&format!("pay-t-{n}"), &token)).await.unwrap() {
            AuthorizeOutcome::Declined { reason: r, .. } => assert_eq!(r, reason, "{n}"),
            other => panic!("{n}: {other:?}"),
        }
    }
    let three_ds = tokenize(p, "4000000000003220").await;
    let AuthorizeOutcome::ChallengeRequired { reference, url } =
        p.authorize(token_request("pay-t-3ds", &three_ds)).await.unwrap()
    else {
        panic!("the 3-D Secure card challenges with a token too")
    };
    assert!(url.starts_with(&format!("{}/sandbox-acquirer/v1/challenges/", sb.public)), "{url}");
    assert_eq!(status(p, &reference).await, ProviderStatus::ChallengePending);
    let pending = tokenize(p, "4000000000000259").await;
    let AuthorizeOutcome::Pending { reference } = p.authorize(token_request("pay-t-259", &pending)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(status(p, &reference).await, ProviderStatus::Pending);
}

#[tokio::test]
async fn an_expired_stored_card_is_declined_as_expired() {
    let sb = setup().await;
    // A token the acquirer made for a card that has expired since.
    let (n, _) = CardNumber::parse("4111111111111111").unwrap();
    let old = Expiry { month: 1, year: 2020 };
    let token = smartpay_providers::sandbox::acquirer::tokens::TokenKey::new(&TOKEN_KEY).seal(&n, old).unwrap();
    let mut req = token_request("pay-old", &token);
    req.source = PaymentSource::Token { token, expiry: old };
    match sb.p.authorize(req).await.unwrap() {
        AuthorizeOutcome::Declined { reason, .. } => assert_eq!(reason, DeclineReason::ExpiredCard),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_token_outlives_a_restart_with_the_same_key_and_works_under_no_other() {
    let first = setup().await;
    let token = tokenize(&first.p, "4111111111111111").await;
    first.acq.shutdown().await;
    let restarted = setup_keyed(100_000, TOKEN_KEY).await;
    assert!(matches!(
        restarted.p.authorize(token_request("pay-r", &token)).await.unwrap(),
        AuthorizeOutcome::Authorized { .. }
    ));
    let rekeyed = setup_keyed(100_000, [7; 32]).await;
    match rekeyed.p.authorize(token_request("pay-r", &token)).await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "400 invalid_token"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rekeyed.acq.stored(), 0);
}

#[tokio::test]
async fn forged_and_altered_tokens_are_refused() {
    use base64::Engine;
    let sb = setup().await;
    let token = tokenize(&sb.p, "4111111111111111").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut flipped = token.clone().into_bytes();
    flipped[20] = if flipped[20] == b'x' { b'y' } else { b'x' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut forged = vec![
        flipped.clone(),
        // Right length, random content.
        format!("tok_{}", b64.encode([0x5a; 51])),
        // The card in clear, padded to the right length.
        format!("tok_{}", b64.encode(format!("{:0<51}", "4111111111111111"))),
        token[4..].to_owned(),
        format!("{token}AAAA"),
        "tok_".into(),
        String::new(),
        format!("tok_{}", "A".repeat(3000)),
    ];
    // A token of another acquirer (another key).
    let (n, _) = CardNumber::parse("4111111111111111").unwrap();
    let other = smartpay_providers::sandbox::acquirer::tokens::TokenKey::new(&[9; 32]);
    forged.push(other.seal(&n, expiry()).unwrap());
    for (i, t) in forged.iter().enumerate() {
        let body = serde_json::json!({"token": t, "expiryMonth": 12, "expiryYear": expiry().year, "amount": 1, "currency": "EUR", "idempotencyKey": format!("f{i}")});
        assert_eq!(
            post_raw(&sb, "/v1/authorizations", &body).await,
            (400, r#"{"error":"invalid_token"}"#.into()),
            "{i}"
        );
    }
    match sb.p.authorize(token_request("pay-f", &flipped)).await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "400 invalid_token"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.acq.stored(), 0, "nothing refused was stored");
}

#[tokio::test]
async fn an_authorization_names_exactly_one_of_card_number_and_token() {
    let sb = setup().await;
    let token = tokenize(&sb.p, "4111111111111111").await;
    let year = expiry().year;
    let base = serde_json::json!({"expiryMonth": 12, "expiryYear": year, "amount": 1, "currency": "EUR", "idempotencyKey": "k1"});
    let with = |pairs: &[(&str, serde_json::Value)]| {
        let mut v = base.clone();
        for (k, value) in pairs {
            v[*k] = value.clone();
        }
        v
    };
    let refused = [
        (
            with(&[("pan", "4111111111111111".into()), ("token", token.clone().into()), ("cvc", "737".into())]),
            "malformed_request",
        ),
        (with(&[("cvc", "737".into())]), "malformed_request"),
        (with(&[("pan", "4111111111111111".into())]), "invalid_cvc"),
        (with(&[("token", token.clone().into()), ("cvc", "73".into())]), "invalid_cvc"),
        (with(&[("token", token.clone().into()), ("expiryMonth", 11.into())]), "invalid_expiry"),
        (with(&[("token", token.clone().into()), ("expiryYear", (year + 1).into())]), "invalid_expiry"),
    ];
    for (body, code) in refused {
        assert_eq!(
            post_raw(&sb, "/v1/authorizations", &body).await,
            (400, format!(r#"{{"error":"{code}"}}"#)),
            "{body}"
        );
    }
    assert_eq!(sb.acq.stored(), 0);
    // Card on file: the token alone, without the CVC; and with it.
    for (key, cvc) in [("k-no-cvc", None), ("k-cvc", Some("737"))] {
        let mut body =
            with(&[("token", token.clone().into()), ("idempotencyKey", key.into()), ("storedCredential", true.into())]);
        if let Some(c) = cvc {
            body["cvc"] = c.into();
        }
        let (status, text) = post_raw(&sb, "/v1/authorizations", &body).await;
        assert_eq!(status, 200, "{text}");
        let a: smartpay_providers::sandbox::wire::Authorization = serde_json::from_str(&text).unwrap();
        assert_eq!(a.status, "AUTHORIZED");
    }
}

#[tokio::test]
async fn the_connector_sends_a_token_and_never_the_card_number_or_a_cvc() {
    // A provider that records the authorization requests it gets.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/v1/authorizations",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| async move {
            record.lock().unwrap().push(body);
            axum::Json(serde_json::json!({"id": "a", "status": "AUTHORIZED", "amount": 1099, "currency": "EUR"}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let p =
        SandboxConnector::new(ConnectorConfig { base_url: base, timeout: Duration::from_secs(2), api_key: KEY.into() });
    let token = "tok_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
    assert_eq!(
        p.authorize(token_request("pay-s", token)).await.unwrap(),
        AuthorizeOutcome::Authorized { reference: "a".into() }
    );
    let body = seen.lock().unwrap().pop().unwrap();
    assert_eq!(body["token"], token);
    assert_eq!(body["storedCredential"], true);
    assert_eq!((body["expiryMonth"].as_u64(), body["expiryYear"].as_u64()), (Some(12), Some(u64::from(expiry().year))));
    assert!(body.get("pan").is_none() && body.get("cvc").is_none(), "{body}");
    p.authorize(request("pay-c", "4111111111111111")).await.unwrap();
    let body = seen.lock().unwrap().pop().unwrap();
    assert_eq!((body["pan"].as_str(), body["cvc"].as_str()), (Some("4111111111111111"), Some("737")));
    assert!(body.get("token").is_none() && body["storedCredential"] == false, "{body}");
}

#[tokio::test]
async fn storing_a_card_checks_it_and_answers_what_may_be_shown() {
    let sb = setup().await;
    let year = expiry().year;
    let valid = serde_json::json!({"pan": "4111 1111 1111 1111", "expiryMonth": 12, "expiryYear": year, "holder": "Jane Canary"});
    let (status, text) = post_raw(&sb, "/v1/tokens", &valid).await;
    assert_eq!(status, 201, "{text}");
    let t: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((t["brand"].as_str(), t["last4"].as_str()), (Some("VISA"), Some("1111")));
    assert_eq!((t["expiryMonth"].as_u64(), t["expiryYear"].as_u64()), (Some(12), Some(u64::from(year))));
    assert!(t["token"].as_str().unwrap().starts_with("tok_"));
    let with = |field: &str, value: serde_json::Value| {
        let mut v = valid.clone();
        v[field] = value;
        v
    };
    for (body, code) in [
        (with("pan", "4111111111111112".into()), "invalid_pan"),
        (with("pan", "4".repeat(40).into()), "invalid_pan"),
        (with("expiryYear", 2020.into()), "invalid_expiry"),
        (with("expiryYear", (year % 100).into()), "invalid_expiry"),
        (with("expiryMonth", 13.into()), "invalid_expiry"),
        (with("expiryMonth", 0.into()), "invalid_expiry"),
        (with("holder", "h".repeat(256).into()), "invalid_holder"),
        (with("expiryMonth", "4111111111111111".into()), "malformed_request"),
    ] {
        let (status, text) = post_raw(&sb, "/v1/tokens", &body).await;
        assert_eq!((status, text.as_str()), (400, format!(r#"{{"error":"{code}"}}"#).as_str()), "{body}");
        assert!(!text.contains("41111111"), "errors never echo the card number");
    }
    let r = reqwest::Client::new().post(format!("{}/v1/tokens", sb.api)).json(&valid).send().await.unwrap();
    assert_eq!(r.status(), 401, "the bearer key guards tokens too");
    // Through the connector, refused card data is an answer, not an error.
    let (n, _) = CardNumber::parse("4111111111111111").unwrap();
    let expired = TokenizeRequest { number: n.clone(), expiry: Expiry { month: 1, year: 2020 }, holder: None };
    assert_eq!(sb.p.tokenize(expired).await.unwrap(), TokenizeOutcome::Refused { code: "invalid_expiry".into() });
    let long_holder = TokenizeRequest { number: n.clone(), expiry: expiry(), holder: Some("h".repeat(256)) };
    assert_eq!(sb.p.tokenize(long_holder).await.unwrap(), TokenizeOutcome::Refused { code: "invalid_holder".into() });
    let intruder = sb.connector("wrong-key-0123456789abcdef");
    match intruder.tokenize(TokenizeRequest { number: n.clone(), expiry: expiry(), holder: None }).await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "401 unauthorized"),
        other => panic!("{other:?}"),
    }
    let silent = SandboxConnector::new(ConnectorConfig {
        base_url: "http://127.0.0.1:1".into(),
        timeout: Duration::from_millis(300),
        api_key: KEY.into(),
    });
    assert_eq!(
        silent.tokenize(TokenizeRequest { number: n, expiry: expiry(), holder: None }).await.unwrap(),
        TokenizeOutcome::Unknown
    );
    assert_eq!(sb.acq.stored(), 0, "storing a card keeps nothing at the acquirer");
}

#[tokio::test]
async fn neither_a_token_nor_debug_output_shows_the_card_number() {
    use base64::Engine;
    let sb = setup().await;
    let pan = "4000056655665556";
    let a = tokenize(&sb.p, pan).await;
    let b = tokenize(&sb.p, pan).await;
    assert_ne!(a, b, "a fresh nonce every time");
    for token in [&a, &b] {
        for part in [pan, &pan[..6], &pan[6..12], &pan[12..]] {
            assert!(!token.contains(part), "{token} shows {part}");
        }
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token[4..]).unwrap();
        for part in [pan, &pan[..6], &pan[6..12]] {
            assert!(!sealed.windows(part.len()).any(|w| w == part.as_bytes()), "encrypted, not encoded: {part}");
        }
    }
    let (number, brand) = CardNumber::parse(pan).unwrap();
    let card = Card {
        number: number.clone(),
        expiry: expiry(),
        cvc: Cvc::parse("918", brand).unwrap(),
        holder: Some("Jane Canary".into()),
    };
    let shown = [
        format!("{:?}", token_request("pay-d", &a)),
        format!("{:#?}", PaymentSource::Token { token: a.clone(), expiry: expiry() }),
        format!("{:?}", TokenizeOutcome::Tokenized { token: a.clone() }),
        format!("{:?}", TokenizeRequest { number, expiry: expiry(), holder: Some("Jane Canary".into()) }),
        format!("{:?}", PaymentSource::Card(card)),
    ]
    .join("\n");
    assert!(!shown.contains(pan) && !shown.contains("918") && !shown.contains("Jane"), "{shown}");
    assert!(shown.contains(&format!("tok_…{}", &a[a.len() - 4..])), "{shown}");
    // No more than the last 4 characters of the token: no 5 of them in a row.
    let chars: Vec<char> = a.chars().collect();
    for w in chars.windows(5) {
        let w: String = w.iter().collect();
        assert!(!shown.contains(&w), "{w} in {shown}");
    }
}
