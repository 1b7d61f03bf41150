//! Card payments through the widget API and the sandbox acquirer (served by the same server,
//! reached over HTTP): outcomes, refusals, and the card-testing defences.

use serde_json::{Value, json};

use super::*;

impl TestApp {
    pub async fn submit(&self, token: &str, card: Value) -> reqwest::Response {
        self.client
            .post(self.url("/widget/api/payments"))
            .header("Origin", &self.base)
            .header("X-Checkout-Token", token)
            .json(&card)
            .send()
            .await
            .unwrap()
    }
}

/// `MM/YY` three years from today, so the test cards never expire.
fn valid_expiry() -> String {
    let (year, month, _) = smartpay_domain::Millis::now().date();
    format!("{month:02}/{:02}", (year + 3) % 100)
}

fn card(number: &str) -> Value {
    json!({"number": number, "expiry": valid_expiry(), "cvc": if number.starts_with("37") { "1234" } else { "737" }})
}

async fn status_of(app: &TestApp, id: &str) -> Value {
    app.status(&app.basic(&app.merchant), id).await.json().await.unwrap()
}

#[tokio::test]
async fn card_outcomes_reach_the_status_api() {
    let app = spawn_app().await;
    for (number, status, method) in [
        ("4111111111111111", "CAPTURED", "VISA"),
        ("5555555555554444", "CAPTURED", "MSTRCRD"),
        ("378282246310005", "CAPTURED", "AMEX"),
        ("4000000000000002", "AUTHORIZATION_FAILED", "VISA"),
        ("4100000000000019", "AUTHORIZATION_FAILED", "VISA"),
        ("4000000000000341", "AUTHORIZATION_COMPLETED", "VISA"),
        ("4000000000000259", "AUTHORIZATION_PENDING", "VISA"),
    ] {
        let c = app.create(&app.merchant).await;
        let r = app.submit(c["checkoutToken"].as_str().unwrap(), card(number)).await;
        assert_eq!(r.status(), 200, "{number}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["transactionStatus"], status, "{number}");
        assert!(
            answer.get("declineReason").is_none() && !answer.to_string().contains("stolen"),
            "no decline detail for the shopper"
        );
        let s = status_of(&app, c["transactionId"].as_str().unwrap()).await;
        assert_eq!(s["paymentStatus"], status, "{number}");
        assert_eq!(s["transactionOverview"]["paymentMethod"], method);
        assert_eq!(
            s["reconciliationReferenceId"].as_str().map(str::len),
            Some(22),
            "{number}: provider reference stored"
        );
        if number == "4100000000000019" {
            assert_eq!(s["declineReason"], "payment_provider_card_stolen", "the merchant's server learns why");
        }
    }
}

#[tokio::test]
async fn manual_capture_merchants_stay_authorized() {
    let app = spawn_app().await;
    app.state()
        .store
        .set_capture_policy(&app.merchant.merchant_key, smartpay_domain::modification::CaptureMode::Manual, None, None)
        .await
        .unwrap();
    let c = app.create(&app.merchant).await;
    let answer: Value =
        app.submit(c["checkoutToken"].as_str().unwrap(), card("4111111111111111")).await.json().await.unwrap();
    assert_eq!(answer["transactionStatus"], "AUTHORIZATION_COMPLETED");
}

#[tokio::test]
async fn a_three_d_secure_payment_completes_after_the_challenge() {
    let app = spawn_app().await;
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    let answer: Value = app.submit(token, card("4000000000003220")).await.json().await.unwrap();
    assert_eq!(answer["transactionStatus"], "AUTHORIZATION_PENDING");
    let url = answer["challengeUrl"].as_str().unwrap().to_owned();
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect.post(&url).form(&[("decision", "approve")]).send().await.unwrap();
    // The challenge returns only to SmartPay's own return page, with the outcome in the query.
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/widget/challenge-return?", app.base)), "{location}");
    let done: Value = app
        .client
        .post(app.url("/widget/api/payments/complete"))
        .header("Origin", &app.base)
        .header("X-Checkout-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["transactionStatus"], "CAPTURED");
}

#[tokio::test]
async fn a_checkout_is_paid_once() {
    let app = spawn_app().await;
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    assert_eq!(app.submit(token, card("4111111111111111")).await.status(), 200);
    let r = app.submit(token, card("4111111111111111")).await;
    assert_eq!(r.status(), 409);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("invalid_state".into(), String::new())]);
}

#[tokio::test]
async fn bad_card_data_is_named_by_field_and_never_echoed() {
    let app = spawn_app().await;
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    let r = app.submit(token, json!({"number": "4111111111111112", "expiry": "13/30", "cvc": "7x7"})).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(!text.contains("4111111111111112") && !text.contains("7x7"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let props: Vec<String> = codes(&v).into_iter().map(|(_, p)| p).collect();
    assert_eq!(props, ["card.number", "card.expiry"]);
    let r = app.submit(token, json!({"number": "4111111111111111", "expiry": "01/20", "cvc": "737"})).await;
    assert_eq!(codes(&r.json().await.unwrap()), vec![("card_expired".into(), "card.expiry".into())]);
    let s = status_of(&app, c["transactionId"].as_str().unwrap()).await;
    assert_eq!(s["paymentStatus"], "CREATED", "refused card data changes nothing");
}

#[tokio::test]
async fn tokens_origins_and_expiry_are_checked() {
    let app = spawn_app_with(|c| c.checkout_ttl_seconds = 1).await;
    let r = app.submit(&"A".repeat(64), card("4111111111111111")).await;
    assert_eq!(r.status(), 404);
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/widget/api/payments"))
        .header("Origin", "https://evil.example")
        .header("X-Checkout-Token", token)
        .json(&card("4111111111111111"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "only the card frame's own origin may submit");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = app.submit(token, card("4111111111111111")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("checkout_expired".into(), "checkoutToken".into())]);
}

#[tokio::test]
async fn card_testing_is_capped_per_checkout_and_per_client() {
    let app = spawn_app_with(|c| {
        c.max_card_attempts = 5;
        c.ip_submits_per_minute = 12;
    })
    .await;
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    // Different (invalid) numbers on one checkout: the sixth attempt finds it locked.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = app.submit(token, card(&format!("411111111111111{}", 2 + i))).await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..5], [400, 400, 400, 400, 400]);
    assert!(statuses[5..].iter().all(|s| *s == 409), "{statuses:?}");
    // The client's velocity limit: further submissions from this IP get 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let other = app.create(&app.merchant).await;
        let r = app.submit(other["checkoutToken"].as_str().unwrap(), card("4111111111111112")).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the per-client limit was reached");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(codes(&r.json().await.unwrap()), vec![("rate_limited".into(), String::new())]);
}

#[tokio::test]
async fn the_loader_is_served_with_its_published_integrity_hash() {
    use base64::Engine;
    use sha2::Digest;
    let app = spawn_app().await;
    let r = app.client.get(app.url("/sdk/smp-bundle.js")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let script = r.bytes().await.unwrap();
    let published: Value = app.client.get(app.url("/sdk/integrity.json")).send().await.unwrap().json().await.unwrap();
    let expected =
        format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&script)));
    assert_eq!(published["smp-bundle.js"], expected);
    // The BIN table the frame uses is the server's own.
    let bins: Value = app.client.get(app.url("/sdk/bins.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(bins.as_array().unwrap().len(), smartpay_domain::card::BIN_TABLE.len());
}

#[tokio::test]
async fn the_frame_is_embeddable_only_by_registered_origins() {
    let app = spawn_app().await;
    app.state()
        .store
        .add_origin(&app.merchant.merchant_key, "https://shop.example", smartpay_domain::Millis::now())
        .await
        .unwrap();
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    let r =
        app.client.get(app.url(&format!("/widget/frame?t={token}&origin=https://shop.example"))).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors ") && csp.contains("https://shop.example"), "{csp}");
    assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("data-error=\"\""), "a registered origin gets a working frame");
    let other =
        app.client.get(app.url(&format!("/widget/frame?t={token}&origin=https://evil.example"))).send().await.unwrap();
    let csp = other.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(!csp.contains("evil.example"));
    let html = other.text().await.unwrap();
    assert!(
        html.contains("data-error=\"ERR_CONFIG\"") && !html.contains(token),
        "an unregistered origin gets no token"
    );
    // Another merchant's origins do not count.
    let theirs = app.create(&app.other).await;
    let t2 = theirs["checkoutToken"].as_str().unwrap();
    let html = app
        .client
        .get(app.url(&format!("/widget/frame?t={t2}&origin=https://shop.example")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-error=\"ERR_CONFIG\""));
}

#[tokio::test]
async fn the_hosted_checkout_returns_only_to_the_merchants_own_origins() {
    let app = spawn_app().await;
    app.state()
        .store
        .add_origin(&app.merchant.merchant_key, "https://shop.example", smartpay_domain::Millis::now())
        .await
        .unwrap();
    let c = app.create(&app.merchant).await;
    let token = c["checkoutToken"].as_str().unwrap();
    let page = |return_url: &str| {
        let url =
            app.url(&format!("/checkout/{token}?returnUrl={}", return_url.replace(':', "%3A").replace('/', "%2F")));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(page("https://shop.example/done").await.contains("data-return-url=\"https://shop.example/done\""));
    for evil in ["https://evil.example/phish", "https://shop.example.evil.example/", "javascript:alert(1)"] {
        let html = page(evil).await;
        assert!(html.contains("data-return-url=\"\""), "{evil} was kept");
    }
    let r = app.client.get(app.url(&format!("/checkout/{}", "A".repeat(64)))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
}
