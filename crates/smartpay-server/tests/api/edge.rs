//! The edge under hostile traffic: lockouts that protect without punishing, trusted proxies,
//! connection and size limits, timeouts, cheap refusals, the demo's isolation, disabled
//! merchants and private data files. (The same attacks against the real binary, with a lowered
//! descriptor limit, are in `crates/smartpay/tests/e2e/adversarial.rs`.)

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smartpay_domain::Millis;
use smartpay_domain::time::ManualClock;

use super::*;

fn wrong_basic(c: &Creds) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong-secret", c.merchant_key)))
}

const SOME_ID: &str = "00000000-0000-4000-8000-000000000000";

async fn status_code(client: &reqwest::Client, app: &TestApp, auth: &str, headers: &[(&str, &str)]) -> u16 {
    let mut rb = client.get(app.url(&format!("/payment/status/{SOME_ID}"))).header("Authorization", auth);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap().status().as_u16()
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from(ip)).build().unwrap()
}

async fn token_request(client: &reqwest::Client, app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    client
        .post(app.url("/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn guessing_one_merchants_secret_locks_out_only_that_identity_from_that_address() {
    let app = spawn_app_with(|c| {
        c.auth_failures_per_minute = 5;
        c.auth_failures_per_address_per_minute = 1000;
    })
    .await;
    let (a, b) = (&app.merchant, &app.other);
    for _ in 0..5 {
        assert_eq!(status_code(&app.client, &app, &wrong_basic(a), &[]).await, 401);
    }
    // The guesser's next try, even with the right secret, waits: it cannot tell right from wrong.
    let r = app
        .client
        .get(app.url(&format!("/payment/status/{SOME_ID}")))
        .header("Authorization", app.basic(a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(codes(&r.json().await.unwrap()), vec![("rate_limited".into(), String::new())]);
    // Another merchant from the same address, and the same merchant elsewhere, are not affected.
    assert_eq!(status_code(&app.client, &app, &app.basic(b), &[]).await, 404);
    assert_eq!(status_code(&client_from([127, 0, 0, 2]), &app, &app.basic(a), &[]).await, 404);
}

#[tokio::test]
async fn credentials_verified_before_pass_a_lockout_so_a_guesser_cannot_lock_a_merchant_out() {
    let app = spawn_app_with(|c| {
        c.auth_failures_per_minute = 3;
        c.auth_failures_per_address_per_minute = 5;
    })
    .await;
    let m = &app.merchant;
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &[]).await, 404, "verified once");
    let token = app.token(m).await;
    assert_eq!(status_code(&app.client, &app, &format!("Bearer {token}"), &[]).await, 404, "used once");
    // Someone at the same address (a NAT, a proxy) guesses this merchant's and other secrets.
    for i in 0..8 {
        let victim = if i % 2 == 0 { m } else { &app.other };
        let code = status_code(&app.client, &app, &wrong_basic(victim), &[]).await;
        assert!(code == 401 || code == 429, "{code}");
    }
    assert_eq!(status_code(&app.client, &app, &wrong_basic(m), &[]).await, 429);
    // The merchant's own, already verified credentials keep working.
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &[]).await, 404);
    assert_eq!(status_code(&app.client, &app, &format!("Bearer {token}"), &[]).await, 404);
    let r = token_request(&app.client, &app, &m.client_id, &m.client_secret).await;
    assert_eq!(r.status(), 200, "a client secret verified before still gets tokens");
    // Unverified credentials from the address past its ceiling wait, whoever they claim to be.
    assert_eq!(status_code(&app.client, &app, &app.basic(&app.other), &[]).await, 429);
    let counted = app.state().metrics.counters.auth_lockouts.load(std::sync::atomic::Ordering::Relaxed);
    assert!(counted >= 2, "{counted}");
}

#[tokio::test]
async fn the_token_endpoint_locks_out_per_client_id_and_answers_in_the_oauth_shape() {
    let app = spawn_app_with(|c| {
        c.auth_failures_per_minute = 3;
        c.auth_failures_per_address_per_minute = 1000;
    })
    .await;
    let (a, b) = (&app.merchant, &app.other);
    for _ in 0..3 {
        assert_eq!(token_request(&app.client, &app, &a.client_id, "wrong").await.status(), 401);
    }
    let r = token_request(&app.client, &app, &a.client_id, &a.client_secret).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(token_request(&app.client, &app, &b.client_id, &b.client_secret).await.status(), 200);
}

#[tokio::test]
async fn a_lockout_ends_when_its_minute_is_over_by_the_servers_clock() {
    let clock = Arc::new(ManualClock::new(Millis(1_800_000_000_000)));
    let app = spawn_app_with_clock(
        |c| {
            c.auth_failures_per_minute = 2;
            c.auth_failures_per_address_per_minute = 1000;
        },
        clock.clone(),
    )
    .await;
    let m = &app.merchant;
    for _ in 0..2 {
        assert_eq!(status_code(&app.client, &app, &wrong_basic(m), &[]).await, 401);
    }
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &[]).await, 429);
    clock.advance_ms(30_000);
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &[]).await, 429, "still the same minute");
    clock.advance_ms(30_000);
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &[]).await, 404, "a new minute");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_locked_out_not_the_proxy() {
    let app = spawn_app_with(|c| {
        c.auth_failures_per_minute = 3;
        c.auth_failures_per_address_per_minute = 1000;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let m = &app.merchant;
    let attacker = [("X-Forwarded-For", "203.0.113.66")];
    for _ in 0..3 {
        assert_eq!(status_code(&app.client, &app, &wrong_basic(m), &attacker).await, 401);
    }
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &attacker).await, 429);
    let customer = [("Forwarded", "for=198.51.100.7;proto=https")];
    assert_eq!(status_code(&app.client, &app, &app.basic(m), &customer).await, 404, "another client of the proxy");
    // An untrusted peer's forwarding headers are its own claim and change nothing.
    let direct = client_from([127, 0, 0, 3]);
    for _ in 0..3 {
        assert_eq!(status_code(&direct, &app, &wrong_basic(m), &[("X-Forwarded-For", "192.0.2.1")]).await, 401);
    }
    let escaped = status_code(&direct, &app, &wrong_basic(m), &[("X-Forwarded-For", "192.0.2.99")]).await;
    assert_eq!(escaped, 429, "a spoofed X-Forwarded-For does not escape the lockout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_limit_gets_431() {
    let app = spawn_app().await;
    let big = format!(
        "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let small = format!(
        "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let (big, small) = tokio::task::spawn_blocking({
        let app_base = app.base.clone();
        move || {
            let app = TestAppAddr(app_base);
            (app.raw(big.as_bytes()), app.raw(small.as_bytes()))
        }
    })
    .await
    .unwrap();
    assert!(big.starts_with("HTTP/1.1 431"), "{big:.60}");
    assert!(small.starts_with("HTTP/1.1 200"), "{small:.60}");
}

/// A server address for blocking raw-socket helpers.
struct TestAppAddr(String);

impl TestAppAddr {
    fn raw(&self, request: &[u8]) -> String {
        let mut s = TcpStream::connect(self.0.trim_start_matches("http://")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(request);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let app = spawn_app_with(|c| c.header_read_timeout_ms = 300).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(&addr).unwrap();
        slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").unwrap();
        let idle = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        for mut s in [slow, idle] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // hyper answers a timed-out head with nothing (or a 408) and closes.
            while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
        }
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(closed_after < Duration::from_secs(3), "closed after {closed_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = spawn_app_with(|c| c.body_read_timeout_ms = 300).await;
    let auth = app.basic(&app.merchant);
    let addr = app.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = format!(
            "POST /payment/creation HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"merchantKey\":"
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_at_once_and_others_are_served_again_later() {
    let app = spawn_app_with(|c| {
        c.max_connections = 4;
        c.header_read_timeout_ms = 500;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let (refused, later) = tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let app = TestAppAddr(format!("http://{addr}"));
        let started = Instant::now();
        let refused = app.raw(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(started.elapsed() < Duration::from_secs(1), "refused at once");
        // The idle sockets are closed by the header timeout; then requests are served.
        std::thread::sleep(Duration::from_millis(900));
        let later = app.raw(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        drop(idle);
        (refused, later)
    })
    .await
    .unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:.80}");
    assert!(refused.contains("too_many_connections"));
    assert!(later.starts_with("HTTP/1.1 200"), "{later:.80}");
    assert!(app.state().metrics.counters.connections_refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_large_token_form_is_refused_by_its_size_before_any_parsing() {
    let app = spawn_app().await;
    let form = format!("grant_type=client_credentials&{}", "a=b&".repeat(150_000));
    let started = Instant::now();
    let r = app
        .client
        .post(app.url("/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(started.elapsed() < Duration::from_secs(2));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    // Within the limit, a form of many parameters is refused after a few.
    let form = "p=1&".repeat(500);
    let r = app
        .client
        .post(app.url("/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_widget_api_checks_origin_and_token_before_reading_the_body() {
    let app = spawn_app().await;
    let garbage = "{".repeat(60 * 1024);
    let send = |origin: &str, token: &str| {
        app.client
            .post(app.url("/widget/api/payments"))
            .header("Origin", origin.to_owned())
            .header("X-Checkout-Token", token.to_owned())
            .header("Content-Type", "application/json")
            .body(garbage.clone())
            .send()
    };
    // A malformed body would be 400 if it were read: the refusals come first.
    assert_eq!(send("https://evil.example", "x").await.unwrap().status(), 403);
    assert_eq!(send(&app.base, &"a".repeat(64)).await.unwrap().status(), 404);
    let created = app.create(&app.merchant).await;
    let token = created["checkoutToken"].as_str().unwrap();
    assert_eq!(send(&app.base, token).await.unwrap().status(), 400, "a live checkout's body is read");
}

async fn demo_checkout(app: &TestApp, body: Value) -> reqwest::Response {
    app.client.post(app.url("/demo/api/checkouts")).header("Origin", &app.base).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn the_demo_cannot_inject_into_a_checkout_nor_read_payments_it_did_not_create() {
    let app = spawn_app().await;
    let injected = r#"10.99,"currencyCode":"EUR","description":"x"},"partnerReference":"VICTIM-42","zz":{"a":1"#;
    let r = demo_checkout(&app, json!({"amount": injected})).await;
    assert_eq!(r.status(), 400);
    // The merchant's real order with that reference is still free.
    let mut body = app.body(&app.merchant);
    body["partnerReference"] = json!("VICTIM-42");
    let r = app.create_raw(&app.basic(&app.merchant), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 200);
    let merchants_own = r.json::<Value>().await.unwrap()["transactionId"].as_str().unwrap().to_owned();

    let r = demo_checkout(&app, json!({"amount": "12.50", "currency": "EUR"})).await;
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let (id, session) = (created["transactionId"].as_str().unwrap(), created["demoSession"].as_str().unwrap());
    let status = |id: String, session: Option<String>| {
        let mut rb = app.client.get(app.url(&format!("/demo/api/status/{id}")));
        if let Some(s) = session {
            rb = rb.header("X-Demo-Session", s);
        }
        rb.send()
    };
    let r = status(id.to_owned(), Some(session.to_owned())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["transactionId"], json!(id));
    assert_eq!(status(id.to_owned(), None).await.unwrap().status(), 404);
    assert_eq!(status(merchants_own.clone(), Some(session.to_owned())).await.unwrap().status(), 404);
    assert_eq!(status(merchants_own, None).await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_demo_does_not_exist_in_production_mode() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    smartpay_server::secrets::ServerKeys::load_or_create(&key, true).unwrap();
    let app = spawn_app_with(|c| {
        c.mode = smartpay_server::Mode::Production;
        c.master_key_file = Some(key.clone());
        c.sandbox_acquirer = Some(true);
        c.allow_sandbox_in_production = true;
    })
    .await;
    assert_eq!(app.client.get(app.url("/demo")).send().await.unwrap().status(), 404);
    assert_eq!(demo_checkout(&app, json!({})).await.status(), 404);
}

#[tokio::test]
async fn a_disabled_merchants_open_checkouts_cannot_be_paid() {
    let app = spawn_app().await;
    let created = app.create(&app.merchant).await;
    let token = created["checkoutToken"].as_str().unwrap();
    app.state()
        .store
        .set_merchant_status(&app.merchant.merchant_key, smartpay_store::MerchantStatus::Disabled)
        .await
        .unwrap();
    let (year, month, _) = Millis::now().date();
    let card =
        json!({"number": "4111111111111111", "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737"});
    let r = app.submit(token, card).await;
    assert_eq!(r.status(), 404);
    let id = created["transactionId"].as_str().unwrap();
    let p = app.state().store.payment(&app.merchant.merchant_key, id).await.unwrap().unwrap();
    assert_eq!(p.status, smartpay_domain::PaymentStatus::Created, "nothing was authorized or captured");
    let frame = app.client.get(app.url(&format!("/widget/frame?t={token}&origin={}", app.base))).send().await.unwrap();
    assert!(frame.text().await.unwrap().contains("ERR_CONFIG"));
}

#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.create(&app.merchant).await;
    let dir = app._dir.path();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
        seen += 1;
    }
    assert!(seen >= 3, "database, WAL and key at least: {seen}");
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener() {
    let app = spawn_app().await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
    let text = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("smartpay_connections_refused_total 0"), "{text:.200}");
}

#[tokio::test]
async fn access_tokens_and_checkouts_expire_by_the_servers_clock_without_waiting() {
    let clock = Arc::new(ManualClock::new(Millis::now()));
    let app = spawn_app_with_clock(
        |c| {
            c.token_ttl_seconds = 600;
            c.checkout_ttl_seconds = 900;
        },
        clock.clone(),
    )
    .await;
    let token = format!("Bearer {}", app.token(&app.merchant).await);
    let created = app.create(&app.merchant).await;
    let id = created["transactionId"].as_str().unwrap().to_owned();
    assert_eq!(app.status(&token, &id).await.status(), 200);
    // Past the token's lifetime and its 30 s leeway; the checkout is still open.
    clock.advance_ms((600 + 31) * 1000);
    assert_eq!(app.status(&token, &id).await.status(), 401);
    let basic = app.basic(&app.merchant);
    assert_eq!(payment_status(&app, &basic, &id).await, "CREATED");
    clock.advance_ms(300 * 1000);
    // The sweep (every 50 ms here) reads the same clock.
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = payment_status(&app, &basic, &id).await;
        if seen == "EXPIRED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "EXPIRED");
}

async fn payment_status(app: &TestApp, auth: &str, id: &str) -> Value {
    app.status(auth, id).await.json::<Value>().await.unwrap()["paymentStatus"].clone()
}

async fn demo_paid(app: &TestApp) -> (String, String) {
    let c: Value = demo_checkout(app, json!({"amount": "10.00"})).await.json().await.unwrap();
    let (year, month, _) = smartpay_domain::Millis::now().date();
    let card =
        json!({"number": "4111111111111111", "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737"});
    assert_eq!(app.submit(c["checkoutToken"].as_str().unwrap(), card).await.status(), 200);
    (c["transactionId"].as_str().unwrap().to_owned(), c["demoSession"].as_str().unwrap().to_owned())
}

async fn demo_modify(app: &TestApp, op: &str, id: &str, session: &str, body: Option<Value>) -> reqwest::Response {
    let mut rb = app
        .client
        .post(app.url(&format!("/demo/api/{op}/{id}")))
        .header("Origin", &app.base)
        .header("X-Demo-Session", session);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn the_demo_captures_refunds_and_cancels_only_the_payments_it_created() {
    let app = spawn_app().await;
    app.state()
        .store
        .set_capture_policy(&app.merchant.merchant_key, smartpay_domain::modification::CaptureMode::Manual, None, None)
        .await
        .unwrap();
    let (id, session) = demo_paid(&app).await;
    assert_eq!(demo_modify(&app, "capture", &id, &"0".repeat(64), None).await.status(), 404);
    let r = app
        .client
        .post(app.url(&format!("/demo/api/capture/{id}")))
        .header("X-Demo-Session", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "same origin only");
    let v: Value =
        demo_modify(&app, "capture", &id, &session, Some(json!({"amount": "3.00"}))).await.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "CAPTURED");
    assert_eq!(v["amounts"]["captured"].as_f64(), Some(3.0));
    assert_eq!(demo_modify(&app, "capture", &id, &session, Some(json!({"amount": "8.00"}))).await.status(), 422);
    assert_eq!(demo_modify(&app, "cancel", &id, &session, None).await.status(), 409);
    let v: Value = demo_modify(&app, "refund", &id, &session, None).await.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "REFUNDED");
    let (other, other_session) = demo_paid(&app).await;
    assert_eq!(demo_modify(&app, "cancel", &other, &session, None).await.status(), 404, "another checkout's session");
    let v: Value = demo_modify(&app, "cancel", &other, &other_session, None).await.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "CANCELLED");
}
