//! Notifications to merchants (CONTRACT §12, reliability rows D6, D8, D9) against a real HTTP
//! receiver on loopback: retries on the manual clock's schedule with one event id, signatures
//! checked by the reference verifier (tampered and stale ones refused, two during a rotation),
//! redelivery, giving up at the horizon, the settings and deliveries API, the SSRF rules, and
//! no card data in any notification.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use smartpay_domain::modification::CaptureMode;
use smartpay_domain::time::{Clock, ManualClock};
use smartpay_store::DeliveryState;

use super::races::*;
use super::*;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn event_id(&self) -> &str {
        self.header("smartpay-event-id").unwrap()
    }

    pub fn signature(&self) -> &str {
        self.header("smartpay-signature").unwrap()
    }

    /// The signature's `t`.
    pub fn signed_at(&self) -> i64 {
        let t = self.signature().split(',').find_map(|p| p.strip_prefix("t=")).unwrap();
        t.parse().unwrap()
    }

    /// Checks the signature with the reference verifier, as a merchant would at `now_unix`.
    pub fn verify(&self, secrets: &[&str], now_unix: i64) -> Result<(), smartpay_notify::VerifyError> {
        let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        smartpay_notify::verify(self.signature(), &self.body, &keys, now_unix, 300)
    }
}

/// A merchant's notification endpoint: records every request, answers the planned status codes
/// first, then the default one.
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<AtomicU16>,
}

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<AtomicU16>,
}

async fn receive(
    axum::extract::State(s): axum::extract::State<ReceiverState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    s.seen.lock().unwrap().push(Received { headers, body: body.to_vec() });
    let code = s.plan.lock().unwrap().pop_front().unwrap_or_else(|| s.default.load(Ordering::SeqCst));
    axum::http::StatusCode::from_u16(code).unwrap()
}

impl Receiver {
    /// A receiver on a random loopback port answering 200.
    pub async fn start() -> Receiver {
        let state =
            ReceiverState { seen: Arc::default(), plan: Arc::default(), default: Arc::new(AtomicU16::new(200)) };
        let router = axum::Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/smartpay", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, seen: state.seen, plan: state.plan, default: state.default }
    }

    /// The next answers, in order; then the default.
    pub fn plan(&self, codes: &[u16]) {
        self.plan.lock().unwrap().extend(codes);
    }

    pub fn answer_by_default(&self, code: u16) {
        self.default.store(code, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

impl TestApp {
    pub async fn put_settings(&self, c: &Creds, body: Value) -> reqwest::Response {
        self.client
            .put(self.url("/notifications/settings"))
            .header("Authorization", self.basic(c))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Sends `c`'s notifications to `url` without authentication: the signing secret.
    pub async fn notify_to(&self, c: &Creds, url: &str) -> String {
        let r = self.put_settings(c, json!({"url": url, "authentication": {"type": "NONE"}})).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["signingSecret"].as_str().unwrap().to_owned()
    }

    /// A notification API call as `c`: its status and body.
    pub async fn notifications_api(&self, c: &Creds, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r =
            self.client.request(method, self.url(path)).header("Authorization", self.basic(c)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `c`'s notifications of payment `id`, newest first.
    pub async fn notifications_of(&self, c: &Creds, id: &str) -> Vec<Value> {
        let (status, v) =
            self.notifications_api(c, reqwest::Method::GET, &format!("/notifications?transactionId={id}")).await;
        assert_eq!(status, 200, "{v}");
        v["notifications"].as_array().unwrap().clone()
    }

    /// Attempts every due notification, pass after pass, until none is due.
    pub async fn deliver_all(&self) -> usize {
        let mut total = 0;
        loop {
            let n = smartpay_server::notifications::deliver_due(self.state()).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// The notification `id` as the store has it.
    pub async fn stored_notification(&self, id: &str) -> smartpay_store::Notification {
        self.state().store.notification(id, None).await.unwrap().unwrap().0
    }
}

/// Unix seconds of the manual clock (what signatures carry).
pub fn unix(clock: &ManualClock) -> i64 {
    clock.now().0.div_euclid(1000)
}

/// `amount` in minor units as the API's major-unit JSON number.
fn major(amount: i64) -> f64 {
    amount as f64 / 100.0
}

#[tokio::test]
async fn a_notification_refused_five_times_is_delivered_on_the_sixth_attempt_with_the_same_event_id() {
    let (app, clock) = clock_app(|_| {}).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    receiver.plan(&[500, 500, 500, 500, 500]);
    let secret = app.notify_to(&a, &receiver.url).await;
    let id = app.pay_as(&a, 10.99, CARD_OK).await;
    let listed = app.notifications_of(&a, &id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "PENDING");
    let event = listed[0]["eventId"].as_str().unwrap().to_owned();
    let mut last_attempt = clock.now();
    for attempt in 1..=6usize {
        if attempt > 1 {
            let next = app.stored_notification(&event).await.next_attempt_at;
            let base = smartpay_notify::SCHEDULE_MS[attempt - 2];
            let gap = next.0 - last_attempt.0;
            assert!(gap >= base * 8 / 10 && gap <= base * 12 / 10, "attempt {attempt} after {gap} ms, not ~{base}");
            clock.set(smartpay_domain::Millis(next.0 - 1));
            assert_eq!(app.deliver_all().await, 0, "attempt {attempt} made a millisecond early");
            clock.set(next);
        }
        last_attempt = clock.now();
        assert_eq!(app.deliver_all().await, 1, "attempt {attempt}");
        let received = receiver.received();
        assert_eq!(received.len(), attempt);
        let r = received.last().unwrap();
        assert_eq!(r.event_id(), event);
        assert_eq!(r.signed_at(), unix(&clock), "signed when sent");
        assert_eq!(r.verify(&[&secret], unix(&clock)), Ok(()), "attempt {attempt}");
        let state = if attempt < 6 { DeliveryState::Pending } else { DeliveryState::Delivered };
        assert_eq!(app.stored_notification(&event).await.state, state, "after attempt {attempt}");
    }
    let received = receiver.received();
    assert!(received.iter().all(|r| r.body == received[0].body), "every attempt carries the same bytes");
    let body = received[0].json();
    assert_eq!(body["id"], event.as_str());
    assert_eq!(body["merchantKey"], a.merchant_key.as_str());
    assert_eq!(body["eventType"], "updated");
    assert_eq!(body["objectType"], "payment");
    assert_eq!(body["objectId"], id.as_str());
    assert_eq!(body["origin"], "widget");
    assert_eq!(body["metadata"]["transactionId"], id.as_str());
    assert_eq!(body["metadata"]["status"], "AUTHORIZATION_COMPLETED");
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    let (status, shown) = app.notifications_api(&a, reqwest::Method::GET, &format!("/notifications/{event}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["state"], "DELIVERED");
    assert_eq!(shown["attempts"], 6);
    let codes: Vec<Value> =
        shown["deliveryAttempts"].as_array().unwrap().iter().map(|a| a["statusCode"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(500), json!(500), json!(500), json!(500), json!(200)]);
    assert_eq!(shown["payload"], body, "operators see the exact payload sent");
    // The reference verifier refuses a tampered body and a stale or future timestamp.
    let r = &received[5];
    let t = r.signed_at();
    for i in [0, r.body.len() / 2, r.body.len() - 1] {
        let mut tampered = r.clone();
        tampered.body[i] ^= 0x01;
        assert_eq!(tampered.verify(&[&secret], t), Err(smartpay_notify::VerifyError::NoMatch), "byte {i}");
    }
    assert_eq!(r.verify(&[&secret], t + 300), Ok(()));
    assert_eq!(r.verify(&[&secret], t + 301), Err(smartpay_notify::VerifyError::Stale));
    assert_eq!(r.verify(&[&secret], t - 301), Err(smartpay_notify::VerifyError::Stale));
    assert_eq!(r.verify(&["whsec_someone-elses-secret"], t), Err(smartpay_notify::VerifyError::NoMatch));
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_and_a_redelivery_repeats_the_event() {
    let (app, clock) = clock_app(|_| {}).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    let old = app.notify_to(&a, &receiver.url).await;
    let id = app.pay_as(&a, 10.99, CARD_OK).await;
    assert_eq!(app.deliver_all().await, 1);
    let first = receiver.received()[0].clone();
    assert_eq!(first.signature().matches("v1=").count(), 1);
    let r = app
        .client
        .post(app.url("/notifications/signing-secrets"))
        .header("Authorization", app.basic(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rotated: Value = r.json().await.unwrap();
    let new = rotated["signingSecret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    let (_, settings) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(settings["signingSecrets"].as_array().unwrap().len(), 2, "{settings}");
    assert!(!settings.to_string().contains(&new) && !settings.to_string().contains(&old), "secrets shown once");
    // The next notification (a capture through the API) is signed with both secrets.
    let r = app.send_mod(&a, "capture", mod_json(&a, &id, "cap-1", None, "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.deliver_all().await, 1);
    let captured = receiver.received()[1].clone();
    assert_eq!(captured.json()["metadata"]["status"], "CAPTURED");
    assert_eq!(captured.json()["origin"], "api");
    assert_eq!(captured.signature().matches("v1=").count(), 2, "{}", captured.signature());
    let now = unix(&clock);
    assert_eq!(captured.verify(&[&old], now), Ok(()), "the old secret alone verifies it");
    assert_eq!(captured.verify(&[&new], now), Ok(()), "the new secret alone verifies it");
    assert_eq!(captured.verify(&["whsec_neither"], now), Err(smartpay_notify::VerifyError::NoMatch));
    // A delivered notification sent again by hand: same event id and bytes.
    let event = first.event_id().to_owned();
    let (status, _) =
        app.notifications_api(&a, reqwest::Method::POST, &format!("/notifications/{event}/redeliver")).await;
    assert_eq!(status, 200);
    assert_eq!(app.deliver_all().await, 1);
    let again = receiver.received()[2].clone();
    assert_eq!(again.event_id(), event);
    assert_eq!(again.body, first.body);
    let (_, shown) = app.notifications_api(&a, reqwest::Method::GET, &format!("/notifications/{event}")).await;
    assert_eq!(shown["state"], "DELIVERED");
    assert_eq!(shown["deliveryAttempts"].as_array().unwrap().len(), 2);
    // After the overlap only the new secret signs.
    clock.advance_ms(app.state().config.notification_secret_overlap_seconds as i64 * 1000 + 1);
    let (status, _) =
        app.notifications_api(&a, reqwest::Method::POST, &format!("/notifications/{event}/redeliver")).await;
    assert_eq!(status, 200);
    assert_eq!(app.deliver_all().await, 1);
    let late = receiver.received()[3].clone();
    assert_eq!(late.signature().matches("v1=").count(), 1, "{}", late.signature());
    assert_eq!(late.verify(&[&new], unix(&clock)), Ok(()));
    assert_eq!(late.verify(&[&old], unix(&clock)), Err(smartpay_notify::VerifyError::NoMatch));
}

#[tokio::test]
async fn a_notification_nobody_accepts_is_given_up_at_the_retry_horizon_and_can_be_redelivered() {
    let horizon_ms = 86_400_000;
    let (app, clock) = clock_app(|c| c.notification_retry_horizon_seconds = 86_400).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    receiver.answer_by_default(503);
    app.notify_to(&a, &receiver.url).await;
    let id = app.pay_as(&a, 10.99, CARD_OK).await;
    let event = app.notifications_of(&a, &id).await[0]["eventId"].as_str().unwrap().to_owned();
    let created = clock.now();
    let mut attempts = 0;
    loop {
        assert_eq!(app.deliver_all().await, 1);
        attempts += 1;
        let n = app.stored_notification(&event).await;
        let since = clock.now().0 - created.0;
        if n.state == DeliveryState::Failed {
            assert_eq!(since, horizon_ms, "given up exactly at the horizon, after {attempts} attempts");
            break;
        }
        assert_eq!(n.state, DeliveryState::Pending, "attempt {attempts}");
        assert!(since < horizon_ms, "still retried past the horizon");
        assert!(n.next_attempt_at.0 - created.0 <= horizon_ms, "an attempt planned past the horizon");
        clock.set(n.next_attempt_at);
    }
    assert!(attempts >= 10, "retried on the whole schedule: {attempts}");
    assert_eq!(receiver.received().len(), attempts);
    assert!(receiver.received().iter().all(|r| r.event_id() == event));
    clock.advance_ms(3_600_000);
    assert_eq!(app.deliver_all().await, 0, "a failed notification is not attempted again by itself");
    let (status, failed) = app
        .notifications_api(&a, reqwest::Method::GET, &format!("/notifications?transactionId={id}&state=FAILED"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(failed["notifications"].as_array().unwrap().len(), 1);
    // The receiver is back; an operator redelivers it.
    receiver.answer_by_default(204);
    let (status, _) =
        app.notifications_api(&a, reqwest::Method::POST, &format!("/notifications/{event}/redeliver")).await;
    assert_eq!(status, 200);
    assert_eq!(app.deliver_all().await, 1);
    assert_eq!(app.stored_notification(&event).await.state, DeliveryState::Delivered);
    assert_eq!(receiver.received().last().unwrap().event_id(), event);
}

#[tokio::test]
async fn notification_urls_inside_the_network_are_refused_in_the_sandbox() {
    let app = spawn_app().await;
    let a = app.merchant.clone();
    for url in [
        "http://169.254.169.254/x",
        "http://10.0.0.1/",
        "http://192.168.1.20/hook",
        "http://172.16.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "ftp://x",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/",
        "not a url",
    ] {
        let r = app.put_settings(&a, json!({"url": url})).await;
        assert_eq!(r.status(), 400, "{url}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(codes(&v), [("invalid_value".to_owned(), "url".to_owned())], "{url}: {v}");
    }
    let oauth = json!({"url": "http://127.0.0.1:9/hook", "authentication":
        {"type": "OAUTH", "tokenUrl": "http://169.254.169.254/token", "clientId": "c", "clientSecret": "s"}});
    let r = app.put_settings(&a, oauth).await;
    assert_eq!(r.status(), 400);
    assert_eq!(codes(&r.json().await.unwrap()), [("invalid_value".to_owned(), "authentication.tokenUrl".to_owned())]);
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(status, 404, "nothing refused was stored");
    // The sandbox lets the demo receive them on loopback.
    assert_eq!(app.put_settings(&a, json!({"url": "http://127.0.0.1:9/hook"})).await.status(), 200);
}

/// A production-mode server (with the sandbox acquirer allowed, to make payments), and the
/// directory of its master key.
async fn production_app() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    smartpay_server::secrets::ServerKeys::load_or_create(&key, true).unwrap();
    let app = spawn_app_with(|c| {
        c.mode = smartpay_server::Mode::Production;
        c.master_key_file = Some(key.clone());
        c.sandbox_acquirer = Some(true);
        c.allow_sandbox_in_production = true;
        c.sweep_interval_ms = 24 * 3_600_000;
    })
    .await;
    (app, dir)
}

#[tokio::test]
async fn production_refuses_plain_http_and_private_targets_even_behind_a_name() {
    let (app, _key_dir) = production_app().await;
    let a = app.merchant.clone();
    for url in [
        "http://hooks.example.com/smartpay",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://0x7f000001/",
        "https://2130706433/",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/",
        "https://93.184.216.34/",
    ] {
        let r = app.put_settings(&a, json!({"url": url})).await;
        assert_eq!(r.status(), 400, "{url}");
        assert_eq!(codes(&r.json().await.unwrap()), [("invalid_value".to_owned(), "url".to_owned())], "{url}");
    }
    // A name is resolved when a notification is sent: one pointing at loopback is refused then.
    let receiver = Receiver::start().await;
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    let r = app.put_settings(&a, json!({"url": format!("https://localhost:{port}/hooks")})).await;
    assert_eq!(r.status(), 200);
    let created = app.create(&a).await;
    let (year, month, _) = smartpay_domain::Millis::now().date();
    let card = json!({"number": CARD_OK, "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737"});
    let r = app.submit(created["checkoutToken"].as_str().unwrap(), card).await;
    assert_eq!(r.status(), 200);
    // Merchant A captures automatically: authorized, then captured.
    assert_eq!(app.deliver_all().await, 2);
    let id = created["transactionId"].as_str().unwrap();
    let listed = app.notifications_of(&a, id).await;
    assert_eq!(listed.len(), 2);
    for n in &listed {
        let event = n["eventId"].as_str().unwrap();
        let (_, shown) = app.notifications_api(&a, reqwest::Method::GET, &format!("/notifications/{event}")).await;
        let attempts = shown["deliveryAttempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{shown}");
        assert_eq!(attempts[0]["error"], "refused", "{shown}");
        assert!(attempts[0]["statusCode"].is_null());
        assert_eq!(shown["state"], "PENDING", "refused attempts are retried like any failure");
    }
    assert!(receiver.received().is_empty(), "nothing reached the loopback address");
}

#[tokio::test]
async fn notification_settings_belong_to_their_merchant_and_never_show_a_password_or_secret() {
    let (app, _clock) = clock_app(|_| {}).await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(status, 404, "none set yet");
    let anonymous = app.client.get(app.url("/notifications/settings")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let receiver = Receiver::start().await;
    let basic = json!({"url": receiver.url, "authentication":
        {"type": "BASIC", "username": "shop-a", "password": "pw-Zq81-never-shown"}});
    let r = app.put_settings(&a, basic).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let text = r.text().await.unwrap();
    assert!(!text.contains("pw-Zq81-never-shown"), "{text}");
    let first: Value = serde_json::from_str(&text).unwrap();
    let secret = first["signingSecret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{first}");
    assert_eq!(first["authentication"], json!({"type": "BASIC", "username": "shop-a"}));
    let (_, shown) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(shown["url"], receiver.url.as_str());
    assert_eq!(shown["authentication"], json!({"type": "BASIC", "username": "shop-a"}));
    assert!(shown.get("signingSecret").is_none() && !shown.to_string().contains(&secret), "{shown}");
    assert!(!shown.to_string().contains("pw-Zq81"), "{shown}");
    let (status, _) = app.notifications_api(&b, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(status, 404, "another merchant's settings are not the caller's");
    // The receiver gets HTTP Basic with the merchant's credentials.
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    app.pay_as(&a, 10.99, CARD_OK).await;
    assert_eq!(app.deliver_all().await, 1);
    use base64::Engine;
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("shop-a:pw-Zq81-never-shown"));
    assert_eq!(receiver.received()[0].header("authorization"), Some(expected.as_str()));
    // OAuth: the client secret is never shown either; a second PUT makes no new secret.
    let oauth = json!({"url": receiver.url, "authentication": {"type": "OAUTH",
        "tokenUrl": "http://127.0.0.1:9/token", "clientId": "client-a", "clientSecret": "cs-Ty77-never-shown"}});
    let r = app.put_settings(&a, oauth).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("signingSecret").is_none(), "{v}");
    assert!(!v.to_string().contains("cs-Ty77"), "{v}");
    let (_, shown) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(
        shown["authentication"],
        json!({"type": "OAUTH", "tokenUrl": "http://127.0.0.1:9/token", "clientId": "client-a"})
    );
    assert!(!shown.to_string().contains("cs-Ty77"), "{shown}");
    let r = app.put_settings(&a, json!({"url": receiver.url, "authentication": {"type": "DIGEST"}})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(codes(&r.json().await.unwrap()), [("invalid_value".to_owned(), "authentication.type".to_owned())]);
    // Deleted: a notification still queued is given up, and no further ones are written.
    let queued = app.pay_as(&a, 10.99, CARD_OK).await;
    let (status, v) = app.notifications_api(&a, reqwest::Method::DELETE, "/notifications/settings").await;
    assert_eq!((status, v), (200, json!({"status": "OK"})));
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/settings").await;
    assert_eq!(status, 404);
    assert_eq!(app.deliver_all().await, 1);
    let event = app.notifications_of(&a, &queued).await[0]["eventId"].as_str().unwrap().to_owned();
    let (_, shown) = app.notifications_api(&a, reqwest::Method::GET, &format!("/notifications/{event}")).await;
    assert_eq!(shown["state"], "FAILED", "{shown}");
    assert_eq!(shown["deliveryAttempts"][0]["error"], "endpoint_removed", "{shown}");
    assert_eq!(receiver.received().len(), 1, "nothing sent after the removal");
    let id = app.pay_as(&a, 10.99, CARD_OK).await;
    assert!(app.notifications_of(&a, &id).await.is_empty(), "written after the endpoint was removed");
}

#[tokio::test]
async fn a_merchant_lists_its_own_notifications_by_payment_and_state_and_no_one_elses() {
    let (app, clock) = clock_app(|_| {}).await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    app.notify_to(&a, &receiver.url).await;
    app.notify_to(&b, &receiver.url).await;
    let first = app.pay_as(&a, 10.99, CARD_OK).await;
    let second = app.pay_as(&a, 12.00, CARD_OK).await;
    let theirs = app.pay_as(&b, 10.99, CARD_OK).await;
    // Deliver what exists now (B captures automatically); the capture below stays pending.
    assert_eq!(app.deliver_all().await, 4);
    // Events of the same millisecond have no order: the capture comes later.
    clock.advance_ms(1);
    let r = app.send_mod(&a, "capture", mod_json(&a, &second, "cap", None, "EUR")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, all) = app.notifications_api(&a, reqwest::Method::GET, "/notifications").await;
    assert_eq!(status, 200);
    let all = all["notifications"].as_array().unwrap().clone();
    assert_eq!(all.len(), 3, "only A's own: {all:?}");
    assert!(all.iter().all(|n| n["transactionId"] != theirs.as_str()));
    let of_second = app.notifications_of(&a, &second).await;
    let statuses: Vec<&str> = of_second.iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["CAPTURED", "AUTHORIZATION_COMPLETED"], "newest first");
    let (_, pending) = app.notifications_api(&a, reqwest::Method::GET, "/notifications?state=PENDING").await;
    let pending = pending["notifications"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["transactionId"], second.as_str());
    assert_eq!(pending[0]["origin"], "api");
    let (_, delivered) = app
        .notifications_api(&a, reqwest::Method::GET, &format!("/notifications?state=DELIVERED&transactionId={first}"))
        .await;
    let delivered = delivered["notifications"].as_array().unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["status"], "AUTHORIZATION_COMPLETED");
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, "/notifications?state=LOST").await;
    assert_eq!(status, 400);
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, "/notifications?limit=0").await;
    assert_eq!(status, 400);
    // The 64-character limit counts characters: 64 four-byte characters are a
    // valid filter that matches nothing; the 65th is refused, naming the field.
    let wide = "%F0%9D%91%BB".repeat(64);
    let (status, none) =
        app.notifications_api(&a, reqwest::Method::GET, &format!("/notifications?transactionId={wide}")).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["notifications"].as_array().unwrap().len(), 0);
    let (status, refused) = app
        .notifications_api(&a, reqwest::Method::GET, &format!("/notifications?transactionId={wide}%F0%9D%91%BB"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused["errors"][0]["property"], "transactionId");
    // Another merchant's notification does not exist for the caller.
    let their_event = app.notifications_of(&b, &theirs).await[0]["eventId"].as_str().unwrap().to_owned();
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, &format!("/notifications/{their_event}")).await;
    assert_eq!(status, 404);
    let path = format!("/notifications/{their_event}/redeliver");
    let (status, _) = app.notifications_api(&a, reqwest::Method::POST, &path).await;
    assert_eq!(status, 404);
    assert_eq!(app.stored_notification(&their_event).await.state, DeliveryState::Delivered, "not queued again");
    let (status, _) = app.notifications_api(&b, reqwest::Method::GET, &format!("/notifications/{their_event}")).await;
    assert_eq!(status, 200);
    let (status, _) = app.notifications_api(&a, reqwest::Method::GET, "/notifications/no-such-event").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_expired_checkout_is_notified_by_the_sweep_and_a_created_one_never_is() {
    let (app, clock) = clock_app(|_| {}).await;
    let a = app.merchant.clone();
    let receiver = Receiver::start().await;
    let secret = app.notify_to(&a, &receiver.url).await;
    let created = app.create(&a).await;
    let id = created["transactionId"].as_str().unwrap().to_owned();
    assert!(app.notifications_of(&a, &id).await.is_empty(), "CREATED is never notified");
    assert_eq!(app.deliver_all().await, 0);
    clock.advance_ms(app.state().config.checkout_ttl_seconds as i64 * 1000 - 1);
    assert_eq!(smartpay_server::workers::sweep_once(app.state(), clock.now()).await.unwrap(), 0);
    clock.advance_ms(1);
    assert_eq!(smartpay_server::workers::sweep_once(app.state(), clock.now()).await.unwrap(), 1);
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "EXPIRED");
    assert_eq!(app.deliver_all().await, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let body = received[0].json();
    assert_eq!(body["metadata"]["status"], "EXPIRED");
    assert_eq!(body["metadata"]["transactionId"], id.as_str());
    assert_eq!(body["origin"], "automated");
    assert!(body["metadata"]["reconciliationReferenceId"].is_null());
    assert_eq!(received[0].verify(&[&secret], unix(&clock)), Ok(()));
}

/// `prefix` completed with its Luhn check digit.
fn luhn(prefix: &str) -> String {
    let sum: u32 = prefix
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap();
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

#[tokio::test]
async fn canary_card_data_never_reaches_a_notification() {
    let (app, _clock) = clock_app(|_| {}).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    app.notify_to(&a, &receiver.url).await;
    let pan = luhn("400000718293645");
    let holder = "Canary Qx Holderman";
    let (id, token) = app.checkout_as(&a, 10.99).await;
    let (year, month, _) = smartpay_domain::Millis::now().date();
    let card = json!({"number": pan, "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737",
        "holderName": holder});
    let r = app.submit(&token, card).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["transactionStatus"], "AUTHORIZATION_COMPLETED");
    // A careless merchant also puts the card into its capture and refund requests.
    let mut capture: Value = serde_json::from_str(&mod_json(&a, &id, "cap", Some(major(1099)), "EUR")).unwrap();
    capture["description"] = json!(format!("card {pan} of {holder}"));
    let r = app.send_mod(&a, "capture", capture.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut refund: Value = serde_json::from_str(&mod_json(&a, &id, "ref", Some(major(500)), "EUR")).unwrap();
    refund["description"] = json!(format!("refund to {pan}"));
    let r = app.send_mod(&a, "refund", refund.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    app.deliver_all().await;
    let received = receiver.received();
    let kinds: Vec<String> = received
        .iter()
        .map(|r| format!("{} {}", r.json()["objectType"].as_str().unwrap(), r.json()["metadata"]["status"]))
        .collect();
    for kind in ["payment \"AUTHORIZATION_COMPLETED\"", "payment \"CAPTURED\"", "refund \"REFUNDED\""] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
    }
    let canaries = [pan.clone(), pan[6..12].to_owned(), format!("{} {}", &pan[..4], &pan[4..8]), holder.to_owned()];
    let listed = app.notifications_of(&a, &id).await;
    let mut texts: Vec<String> = received
        .iter()
        .map(|r| {
            let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{}\n{}", headers.join("\n"), String::from_utf8_lossy(&r.body))
        })
        .collect();
    texts.push(Value::Array(listed).to_string());
    for text in &texts {
        for canary in &canaries {
            assert!(!text.to_lowercase().contains(&canary.to_lowercase()), "{canary} in {text}");
        }
    }
}
