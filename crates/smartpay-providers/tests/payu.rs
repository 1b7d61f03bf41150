//! The asynchronous provider PAYU through its connector and the fake PayU, over real HTTP: orders
//! approved or declined on the approval page (a browser's requests made with reqwest), statuses
//! learned by polling, signed notifications received by a real HTTP receiver, modifications,
//! test scripts, and the fake's defences.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use reqwest::Url;
use sha2::Sha256;
use smartpay_providers::payu::fake::{FakeConfig, SpawnedPayu, spawn};
use smartpay_providers::payu::wire::Stats;
use smartpay_providers::payu::{ConnectorConfig, PayuConnector};
use smartpay_providers::*;
use tokio::sync::mpsc;

const KEY: &str = "payu-test-key-0123456789";
const SECRET: &str = "payu-notify-secret-0123456789";

/// A running fake with its pages served on a "public" listener of their own as SmartPay would,
/// and a connector that holds the right key and secret.
struct Payu {
    p: PayuConnector,
    fake: SpawnedPayu,
    /// The machine API, e.g. `http://127.0.0.1:1234`.
    api: String,
    /// The public listener's origin.
    public: String,
    /// A browser that does not follow redirects.
    browser: reqwest::Client,
}

fn config(public: &str) -> FakeConfig {
    FakeConfig {
        api_key: KEY.into(),
        public_base: format!("{public}/sandbox-payu"),
        frame_ancestor: public.to_owned(),
        confirm_delay: Duration::from_millis(50),
        refund_delay: Duration::from_millis(50),
        notify_secret: SECRET.into(),
        test_controls: true,
        ..FakeConfig::default()
    }
}

async fn setup() -> Payu {
    setup_with(|_| {}).await
}

async fn setup_with(change: impl FnOnce(&mut FakeConfig)) -> Payu {
    let public_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", public_listener.local_addr().unwrap());
    let mut config = config(&public);
    change(&mut config);
    let fake = spawn(config).await.unwrap();
    let app = axum::Router::new().nest("/sandbox-payu", fake.pages_router.clone());
    tokio::spawn(async move { axum::serve(public_listener, app).await });
    let api = fake.api_base();
    let p = connector(&api, KEY, SECRET, Duration::from_secs(2));
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Payu { p, fake, api, public, browser }
}

fn connector(base_url: &str, key: &str, secret: &str, timeout: Duration) -> PayuConnector {
    PayuConnector::new(ConnectorConfig {
        base_url: base_url.into(),
        timeout,
        api_key: key.into(),
        notify_secret: secret.into(),
    })
}

impl Payu {
    fn order(&self, id: &str) -> RedirectRequest {
        RedirectRequest {
            payment_id: id.into(),
            amount_minor: 1099,
            currency: "EUR".into(),
            description: "Tea for two <b>".into(),
            return_url: format!("{}/widget/payu-return?transactionId={id}", self.public),
            notify_url: None,
            frame_ancestors: Vec::new(),
        }
    }

    /// Creates the order and answers its reference and approval URL.
    async fn start(&self, req: RedirectRequest) -> (String, String) {
        match self.p.start_redirect(req).await.unwrap() {
            AuthorizeOutcome::Redirect { reference, url } => (reference, url),
            other => panic!("{other:?}"),
        }
    }

    /// The status PayU reports for `reference`, which it must know.
    async fn status(&self, reference: &str) -> AuthorizationState {
        match self.p.status(reference).await.unwrap() {
            Lookup::Found(state) => state,
            other => panic!("{reference}: {other:?}"),
        }
    }

    /// Polls (a bounded number of times) until the order reports `want`; answers the statuses
    /// seen before it.
    async fn wait_for(&self, reference: &str, want: &ProviderStatus) -> Vec<ProviderStatus> {
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let s = self.status(reference).await.status;
            if &s == want {
                return seen;
            }
            seen.push(s);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{reference} never became {want:?}; saw {seen:?}")
    }

    /// Opens the approval page at `url` as a browser and presses `button` (`approve` or
    /// `decline`) with the page's own form.
    async fn press(&self, url: &str, button: &str) -> reqwest::Response {
        let html = self.browser.get(url).send().await.unwrap().text().await.unwrap();
        let (action, nonce) = form(&html, button);
        let target = Url::parse(url).unwrap().join(&action).unwrap();
        self.browser.post(target).form(&[("nonce", nonce.as_str())]).send().await.unwrap()
    }

    /// The test controls' script for an order.
    async fn script(&self, reference: &str, script: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/test/orders/{reference}/script", self.api))
            .bearer_auth(KEY)
            .json(&script)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }

    async fn stats(&self) -> Stats {
        let r = reqwest::Client::new().get(format!("{}/test/stats", self.api)).bearer_auth(KEY).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// An order approved by the shopper (through the script) and confirmed.
    async fn authorized(&self, id: &str) -> String {
        let (reference, _) = self.start(self.order(id)).await;
        self.script(&reference, serde_json::json!({"approve": true})).await;
        self.wait_for(&reference, &ProviderStatus::Authorized).await;
        reference
    }
}

/// The action and nonce of the form holding the button with id `button`.
fn form(html: &str, button: &str) -> (String, String) {
    let end = html.find(&format!("id=\"{button}\"")).unwrap_or_else(|| panic!("no {button} in {html}"));
    let start = html[..end].rfind("<form").unwrap();
    let f = &html[start..end];
    let attr = |name: &str| {
        let from = f.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        f[from..from + f[from..].find('"').unwrap()].to_owned()
    };
    (attr("action"), attr("value"))
}

fn modify(reference: &str, id: &str, amount: i64) -> ModifyRequest {
    ModifyRequest {
        reference: reference.into(),
        modification_id: id.into(),
        amount_minor: amount,
        currency: "EUR".into(),
    }
}

fn cancelled() -> ProviderStatus {
    ProviderStatus::Declined(DeclineReason::Other("payment_provider_payment_cancelled".into()))
}

#[tokio::test]
async fn an_approved_order_is_pending_then_authorized_after_the_confirmation_delay() {
    let sb = setup_with(|c| c.confirm_delay = Duration::from_millis(500)).await;
    let mut req = sb.order("pay-approve");
    // The merchant's shop holds SmartPay's frame, which holds the approval page.
    req.frame_ancestors = vec!["https://shop.example".into()];
    let return_url = req.return_url.clone();
    let (reference, url) = sb.start(req).await;
    assert_eq!(url, format!("{}/sandbox-payu/pay/{reference}", sb.public), "reached by a browser");
    let before = sb.status(&reference).await;
    assert_eq!(before.status, ProviderStatus::ChallengePending, "NEW: the shopper has not approved");
    assert_eq!((before.amount_minor, before.currency.as_str()), (1099, "EUR"));

    let page = sb.browser.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains(&format!("form-action 'self' {};", sb.public)), "returns only to the continueUrl: {csp}");
    assert!(
        csp.ends_with(&format!("frame-ancestors 'self' {} https://shop.example", sb.public)),
        "only SmartPay inside the merchant's page may frame it: {csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("10.99 EUR") && html.contains("Tea for two &lt;b&gt;"), "{html}");
    assert!(html.contains(">Approve</button>") && html.contains(">Decline</button>"), "labelled buttons: {html}");

    let r = sb.press(&url, "approve").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], return_url.as_str(), "back to the widget");
    let seen = sb.wait_for(&reference, &ProviderStatus::Authorized).await;
    assert!(
        !seen.is_empty() && seen.iter().all(|s| *s == ProviderStatus::Pending),
        "PENDING until confirmed: {seen:?}"
    );

    // The page now tells what happened; deciding again changes nothing and still returns.
    let html = sb.browser.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("was approved") && !html.contains("<form"), "{html}");
    assert!(matches!(sb.p.capture(modify(&reference, "c1", 1099)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Authorized, "COMPLETED is authorized too");
}

#[tokio::test]
async fn a_declined_order_is_declined_as_cancelled() {
    let sb = setup().await;
    let req = sb.order("pay-decline");
    let return_url = req.return_url.clone();
    let (reference, url) = sb.start(req.clone()).await;
    let html = sb.browser.get(&url).send().await.unwrap().text().await.unwrap();
    let (_, nonce) = form(&html, "approve");
    let r = sb.press(&url, "decline").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], return_url.as_str());
    assert_eq!(sb.status(&reference).await.status, cancelled());
    // The order stays declined: approving afterwards only returns to the shop.
    let again = sb.browser.post(format!("{url}/approve")).form(&[("nonce", nonce)]).send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert_eq!(again.headers()["location"], return_url.as_str());
    assert_eq!(sb.status(&reference).await.status, cancelled());
    let html = sb.browser.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("was declined") && !html.contains("<form"), "{html}");
    match sb.p.start_redirect(req).await.unwrap() {
        AuthorizeOutcome::Declined { reference: r, reason } => {
            assert_eq!(r.as_deref(), Some(reference.as_str()));
            assert_eq!(reason.code(), "payment_provider_payment_cancelled");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn creating_an_order_twice_answers_the_same_order_and_find_uses_the_payment_id() {
    let sb = setup().await;
    let first = sb.start(sb.order("pay-twice")).await;
    let second = sb.start(sb.order("pay-twice")).await;
    assert_eq!(first, second, "one order per payment id");
    assert_eq!(sb.fake.stored(), 1);
    assert_eq!(sb.stats().await.order_creates, 2);
    let Lookup::Found(found) = sb.p.find("pay-twice").await.unwrap() else { panic!() };
    assert_eq!(found.reference, first.0);
    assert_eq!(found.status, ProviderStatus::ChallengePending);
    assert_eq!(sb.p.find("pay-never-sent").await.unwrap(), Lookup::NotFound);
    assert_eq!(sb.p.status(&"x".repeat(22)).await.unwrap(), Lookup::NotFound);
    assert_eq!(sb.p.status(&"x".repeat(300)).await.unwrap(), Lookup::NotFound);
}

#[tokio::test]
async fn an_order_whose_answer_was_lost_is_found_by_the_payment_id() {
    // PayU answers after the connector gave up; the order exists nonetheless.
    let sb = setup_with(|c| c.latency = Duration::from_millis(400)).await;
    let impatient = connector(&sb.api, KEY, SECRET, Duration::from_millis(100));
    assert_eq!(impatient.start_redirect(sb.order("pay-lost")).await.unwrap(), AuthorizeOutcome::Unknown);
    let Lookup::Found(found) = sb.p.find("pay-lost").await.unwrap() else { panic!("the order was made") };
    assert_eq!(found.status, ProviderStatus::ChallengePending);
    assert_eq!(impatient.status(&found.reference).await.unwrap(), Lookup::Unknown, "no answer in time");
}

#[tokio::test]
async fn the_page_decides_nothing_without_the_orders_nonce() {
    let sb = setup().await;
    let (reference, url) = sb.start(sb.order("pay-nonce")).await;
    let (_, other_url) = sb.start(sb.order("pay-other")).await;
    let other_html = sb.browser.get(&other_url).send().await.unwrap().text().await.unwrap();
    let (_, other_nonce) = form(&other_html, "approve");
    for body in [vec![], vec![("nonce", "x".repeat(22))], vec![("nonce", other_nonce)]] {
        let r = sb.browser.post(format!("{url}/approve")).form(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "{body:?}");
        assert!(r.headers().get("location").is_none());
    }
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::ChallengePending, "still NEW");
    let unknown = format!("{}/sandbox-payu/pay/{}", sb.public, "x".repeat(22));
    assert_eq!(sb.browser.get(&unknown).send().await.unwrap().status(), 404);
    let r = sb.browser.post(format!("{unknown}/approve")).form(&[("nonce", "x")]).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// A notification receiver answering the statuses in `answers` in turn, then 200; every request
/// it gets (signature header and body) comes out of the channel.
async fn receiver(answers: Vec<u16>) -> (String, mpsc::UnboundedReceiver<(Option<String>, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/payu-notify", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let app = axum::Router::new().route(
        "/payu-notify",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, answers) = (tx.clone(), answers.clone());
            async move {
                let signature = headers.get("openpayu-signature").map(|v| v.to_str().unwrap().to_owned());
                tx.send((signature, body.to_vec())).unwrap();
                let status = answers.lock().unwrap().pop_front().unwrap_or(200);
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// The next notification, waiting at most 10 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<(Option<String>, Vec<u8>)>) -> (Option<String>, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a notification").unwrap()
}

/// A signature header made here, independently of the crate's signer.
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t};signature={hex};algorithm=HMAC-SHA256")
}

fn now_secs() -> i64 {
    smartpay_domain::Millis::now().0 / 1000
}

#[tokio::test]
async fn notifications_are_signed_and_only_genuine_fresh_ones_verify() {
    let sb = setup().await;
    let (notify_url, mut rx) = receiver(Vec::new()).await;
    let mut req = sb.order("pay-notify");
    req.notify_url = Some(notify_url.clone());
    let (reference, url) = sb.start(req).await;
    sb.press(&url, "approve").await;
    let (signature, body) = next(&mut rx).await;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "WAITING_FOR_CONFIRMATION", "sent once final: {json}");
    assert_eq!((json["orderId"].as_str(), json["extOrderId"].as_str()), (Some(reference.as_str()), Some("pay-notify")));
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Authorized, "it was final when sent");

    let notice = sb.p.verify_notification(signature.as_deref(), &body).unwrap();
    assert_eq!(notice.reference, reference);
    assert_eq!(notice.event_id, json["eventId"].as_str().unwrap());

    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'W').unwrap();
    tampered[at] = b'X';
    assert_eq!(sb.p.verify_notification(signature.as_deref(), &tampered), Err(NoticeError::BadSignature));
    let stranger = connector(&sb.api, KEY, "another-secret-0123456789", Duration::from_secs(1));
    assert_eq!(stranger.verify_notification(signature.as_deref(), &body), Err(NoticeError::BadSignature));
    assert_eq!(sb.p.verify_notification(None, &body), Err(NoticeError::Unsigned));
    assert_eq!(sb.p.verify_notification(Some("t=1;sig"), &body), Err(NoticeError::Malformed));
    // The format is the documented one: a signature made here verifies while it is fresh.
    assert!(sb.p.verify_notification(Some(&sign(SECRET, now_secs(), &body)), &body).is_ok());
    let stale = sign(SECRET, now_secs() - 301, &body);
    assert_eq!(sb.p.verify_notification(Some(&stale), &body), Err(NoticeError::BadSignature), "no replays");
    let future = sign(SECRET, now_secs() + 301, &body);
    assert_eq!(sb.p.verify_notification(Some(&future), &body), Err(NoticeError::BadSignature));
    let not_json = b"not json";
    assert_eq!(
        sb.p.verify_notification(Some(&sign(SECRET, now_secs(), not_json)), not_json),
        Err(NoticeError::Malformed),
        "signed but unreadable"
    );

    // A declined order is notified at once.
    let mut req = sb.order("pay-notify-decline");
    req.notify_url = Some(notify_url);
    let (declined, url) = sb.start(req).await;
    sb.press(&url, "decline").await;
    let (signature, body) = next(&mut rx).await;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "CANCELED");
    assert_eq!(sb.p.verify_notification(signature.as_deref(), &body).unwrap().reference, declined);
}

#[tokio::test]
async fn a_refused_notification_is_sent_again_at_most_twice() {
    let sb = setup().await;
    let (notify_url, mut rx) = receiver(vec![500, 503]).await;
    let mut req = sb.order("pay-retry");
    req.notify_url = Some(notify_url.clone());
    let (reference, _) = sb.start(req).await;
    sb.script(&reference, serde_json::json!({"approve": true})).await;
    let mut events = Vec::new();
    for _ in 0..3 {
        let (signature, body) = next(&mut rx).await;
        events.push(sb.p.verify_notification(signature.as_deref(), &body).unwrap().event_id);
    }
    assert!(events.iter().all(|e| *e == events[0]), "one event, sent three times: {events:?}");
    for _ in 0..1000 {
        if sb.stats().await.notifications_delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sb.stats().await.notifications_delivered, 1);

    // A receiver that always refuses gets the first attempt and two retries, no more.
    let (refusing, mut rx) = receiver(vec![500; 10]).await;
    let mut req = sb.order("pay-refused");
    req.notify_url = Some(refusing);
    let (refused, _) = sb.start(req).await;
    sb.script(&refused, serde_json::json!({"approve": false})).await;
    for attempt in 0..3 {
        next(&mut rx).await;
        if attempt < 2 {
            // Refused, with a retry still to come (the last attempt may already be over).
            assert_eq!(sb.stats().await.notifications_in_flight, 1, "a notification being retried is in flight");
        }
    }
    // The last retry comes 0.5 s after the first attempt; nothing may follow it.
    assert!(tokio::time::timeout(Duration::from_millis(800), rx.recv()).await.is_err(), "a fourth attempt was sent");
    assert_eq!(sb.stats().await.notifications_in_flight, 0, "the retries are spent");
}

#[tokio::test]
async fn only_http_notify_urls_are_accepted() {
    let sb = setup().await;
    for bad in ["ftp://127.0.0.1/x", "javascript:alert(1)", "/relative", "file:///etc/passwd"] {
        let mut req = sb.order("pay-bad-notify");
        req.notify_url = Some(bad.into());
        match sb.p.start_redirect(req).await {
            Err(ProviderError::Rejected(e)) => assert_eq!(e, "400 invalid_notify_url", "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(sb.fake.stored(), 0);
}

#[tokio::test]
async fn a_refund_is_pending_then_succeeds_when_asked_again_with_the_same_key() {
    let sb = setup().await;
    let reference = sb.authorized("pay-refund").await;
    assert!(matches!(sb.p.capture(modify(&reference, "c1", 1000)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    let ModifyOutcome::Pending { reference: refund } = sb.p.refund(modify(&reference, "r1", 600)).await.unwrap() else {
        panic!("a refund settles later")
    };
    let mut polls = 0;
    loop {
        polls += 1;
        match sb.p.refund(modify(&reference, "r1", 600)).await.unwrap() {
            ModifyOutcome::Pending { reference: r } => assert_eq!(r, refund),
            ModifyOutcome::Succeeded { reference: r } => {
                assert_eq!(r, refund, "the same refund, not a second one");
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(polls < 1000, "the refund never settled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let order: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v2_1/orders/{reference}", sb.api))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((order["captured"].as_i64(), order["refunded"].as_i64()), (Some(1000), Some(600)), "{order}");
    assert_eq!(order["status"], "COMPLETED");
    assert!(
        matches!(sb.p.refund(modify(&reference, "r2", 401)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "amount_exceeds_captured")
    );
    assert!(
        matches!(sb.p.capture(modify(&reference, "c2", 100)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "amount_exceeds_authorized")
    );
    assert!(
        matches!(sb.p.cancel(modify(&reference, "x1", 1099)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "not_cancellable")
    );
}

#[tokio::test]
async fn only_a_confirmed_uncaptured_order_can_be_captured_or_cancelled() {
    let sb = setup_with(|c| c.confirm_delay = Duration::from_secs(3600)).await;
    let (reference, _) = sb.start(sb.order("pay-early")).await;
    assert!(
        matches!(sb.p.capture(modify(&reference, "c0", 100)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "not_authorized"),
        "NEW"
    );
    sb.script(&reference, serde_json::json!({"approve": true})).await;
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Pending);
    assert!(
        matches!(sb.p.capture(modify(&reference, "c1", 100)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "not_authorized"),
        "PENDING"
    );

    let sb = setup().await;
    let reference = sb.authorized("pay-cancel").await;
    assert!(matches!(sb.p.cancel(modify(&reference, "x1", 1099)).await.unwrap(), ModifyOutcome::Succeeded { .. }));
    assert!(
        matches!(sb.p.capture(modify(&reference, "c1", 100)).await.unwrap(), ModifyOutcome::Failed { reason } if reason == "not_authorized"),
        "no capture after cancel"
    );
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Authorized, "the authorization's outcome stands");
    let mut other = modify(&reference, "c2", 100);
    other.currency = "USD".into();
    assert!(matches!(sb.p.capture(other).await, Err(ProviderError::Rejected(e)) if e == "400 currency_mismatch"));
    assert!(
        matches!(sb.p.capture(modify("nope", "c3", 1)).await, Err(ProviderError::Rejected(e)) if e == "404 not_found")
    );
}

#[tokio::test]
async fn scripts_control_what_status_reads_say() {
    let sb = setup().await;
    let reference = sb.authorized("pay-script").await;
    sb.script(&reference, serde_json::json!({"pendingPolls": 2})).await;
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Pending);
    let Lookup::Found(by_key) = sb.p.find("pay-script").await.unwrap() else { panic!() };
    assert_eq!(by_key.status, ProviderStatus::Pending, "reads by extOrderId count too");
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Authorized);

    sb.script(&reference, serde_json::json!({"failPolls": 2})).await;
    let reads = sb.stats().await.status_reads;
    assert_eq!(sb.p.status(&reference).await.unwrap(), Lookup::Unknown, "HTTP 500 is no answer");
    assert_eq!(sb.p.find("pay-script").await.unwrap(), Lookup::Unknown);
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::Authorized);
    assert_eq!(sb.stats().await.status_reads, reads + 3);

    sb.script(&reference, serde_json::json!({"amountOverride": 1, "currencyOverride": "USD"})).await;
    let state = sb.status(&reference).await;
    assert_eq!((state.amount_minor, state.currency.as_str()), (1, "USD"), "the gateway sees what PayU claims");
    assert_eq!(state.status, ProviderStatus::Authorized);

    let r = reqwest::Client::new()
        .post(format!("{}/test/orders/{reference}/script", sb.api))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"currencyOverride": "usd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_script"}"#);
    let r = reqwest::Client::new()
        .post(format!("{}/test/orders/{}/script", sb.api, "x".repeat(22)))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"approve": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_api_refuses_bad_orders_and_modifications_with_codes() {
    let sb = setup().await;
    let http = reqwest::Client::new();
    let public = sb.public.clone();
    let valid = serde_json::json!({"extOrderId": "k", "totalAmount": 1, "currencyCode": "EUR", "description": "d",
        "continueUrl": format!("{public}/back")});
    let with = |field: &str, value: serde_json::Value| {
        let mut v = valid.clone();
        v[field] = value;
        v
    };
    let cases = [
        (with("extOrderId", "".into()), "invalid_ext_order_id"),
        (with("extOrderId", "k".repeat(256).into()), "invalid_ext_order_id"),
        (with("extOrderId", "a b".into()), "invalid_ext_order_id"),
        (with("totalAmount", 0.into()), "invalid_amount"),
        (with("totalAmount", (-5).into()), "invalid_amount"),
        (with("currencyCode", "eur".into()), "invalid_currency"),
        (with("currencyCode", "EURO".into()), "invalid_currency"),
        (with("description", "".into()), "invalid_description"),
        (with("description", "d".repeat(256).into()), "invalid_description"),
        (with("description", "a\u{0}b".into()), "invalid_description"),
        (with("continueUrl", "javascript:alert(1)".into()), "invalid_continue_url"),
        (with("continueUrl", "/back".into()), "invalid_continue_url"),
        (with("continueUrl", format!("{public}/{}", "u".repeat(2100)).into()), "invalid_continue_url"),
        (with("notifyUrl", "ftp://x.example/".into()), "invalid_notify_url"),
        (with("frameAncestors", serde_json::json!(["https://shop.example/path"])), "invalid_frame_ancestors"),
        (with("frameAncestors", serde_json::json!(["https://a.example; script-src *"])), "invalid_frame_ancestors"),
        (with("frameAncestors", serde_json::json!(vec!["https://a.example"; 17])), "invalid_frame_ancestors"),
        (with("totalAmount", "ten".into()), "malformed_request"),
    ];
    for (body, code) in cases {
        let r = http.post(format!("{}/api/v2_1/orders", sb.api)).bearer_auth(KEY).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{code}");
        assert_eq!(r.text().await.unwrap(), format!("{{\"error\":\"{code}\"}}"));
    }
    let huge = with("description", "d".repeat(20 * 1024).into());
    let r = http.post(format!("{}/api/v2_1/orders", sb.api)).bearer_auth(KEY).json(&huge).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(sb.fake.stored(), 0, "nothing refused was stored");
    let r = http.get(format!("{}/api/v2_1/orders", sb.api)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 400, "a lookup needs an extOrderId");

    let reference = sb.authorized("pay-codes").await;
    let mut m = modify(&reference, &"m".repeat(256), 100);
    assert!(
        matches!(sb.p.capture(m.clone()).await, Err(ProviderError::Rejected(e)) if e == "400 invalid_idempotency_key")
    );
    m.modification_id = "m1".into();
    m.amount_minor = 0;
    assert!(matches!(sb.p.capture(m.clone()).await, Err(ProviderError::Rejected(e)) if e == "400 invalid_amount"));
    m.amount_minor = 1;
    m.currency = "EURO".into();
    assert!(matches!(sb.p.refund(m).await, Err(ProviderError::Rejected(e)) if e == "400 invalid_currency"));
    let r = http
        .post(format!("{}/api/v2_1/orders/{reference}/chargebacks", sb.api))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"amount": 1, "currency": "EUR", "idempotencyKey": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_order_keeps_at_most_128_modifications() {
    let sb = setup().await;
    let reference = sb.authorized("pay-many").await;
    for i in 0..128 {
        let o = sb.p.capture(modify(&reference, &format!("c{i}"), 1)).await.unwrap();
        assert!(matches!(o, ModifyOutcome::Succeeded { .. }), "{i}: {o:?}");
    }
    let more = sb.p.capture(modify(&reference, "c128", 1)).await;
    assert!(matches!(more, Err(ProviderError::Rejected(e)) if e == "409 too_many_modifications"));
    assert!(
        matches!(sb.p.capture(modify(&reference, "c0", 1)).await.unwrap(), ModifyOutcome::Succeeded { .. }),
        "known keys still answer"
    );
}

#[tokio::test]
async fn the_api_answers_only_requests_with_the_connectors_key() {
    let sb = setup().await;
    let (reference, _) = sb.start(sb.order("pay-key")).await;
    let http = reqwest::Client::new();
    let lookup = format!("{}/api/v2_1/orders/{reference}", sb.api);
    assert_eq!(http.get(&lookup).bearer_auth(KEY).send().await.unwrap().status(), 200);
    for req in [
        http.get(&lookup),
        http.get(&lookup).bearer_auth("wrong-key-0123456789abcdef"),
        http.get(&lookup).header("authorization", KEY),
        http.get(format!("{}/test/stats", sb.api)),
        http.post(format!("{}/test/orders/{reference}/script", sb.api)).json(&serde_json::json!({"approve": true})),
        http.post(format!("{}/api/v2_1/orders", sb.api)).json(&serde_json::json!({})),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert!(!r.text().await.unwrap().contains(&reference));
    }
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::ChallengePending, "the script was not run");
    let intruder = connector(&sb.api, "wrong-key-0123456789abcdef", SECRET, Duration::from_secs(1));
    assert!(matches!(intruder.status(&reference).await, Err(ProviderError::Rejected(e)) if e == "401 unauthorized"));
    // The public listener serves the pages only.
    let r = http.get(format!("{}/sandbox-payu/api/v2_1/orders/{reference}", sb.public)).bearer_auth(KEY).send().await;
    assert_eq!(r.unwrap().status(), 404);
}

#[tokio::test]
async fn test_controls_are_not_served_unless_enabled() {
    let sb = setup_with(|c| c.test_controls = false).await;
    let (reference, _) = sb.start(sb.order("pay-no-controls")).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/test/stats", sb.api)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{}/test/orders/{reference}/script", sb.api))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"approve": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(sb.status(&reference).await.status, ProviderStatus::ChallengePending);
    assert_eq!(sb.fake.stats().order_creates, 1, "counted all the same");
}

#[tokio::test]
async fn memory_holds_at_most_max_orders() {
    let sb = setup_with(|c| c.max_orders = 3).await;
    let mut references = Vec::new();
    for i in 0..3 {
        references.push(sb.start(sb.order(&format!("pay-cap-{i}"))).await.0);
    }
    // Three orders nobody has decided yet: no room, and 503 is no usable answer.
    assert_eq!(sb.p.start_redirect(sb.order("pay-cap-3")).await.unwrap(), AuthorizeOutcome::Unknown);
    assert_eq!(sb.fake.stored(), 3);
    sb.script(&references[1], serde_json::json!({"approve": false})).await;
    sb.start(sb.order("pay-cap-3")).await;
    assert_eq!(sb.fake.stored(), 3);
    assert_eq!(sb.p.status(&references[1]).await.unwrap(), Lookup::NotFound, "the finished one made room");
    assert_eq!(sb.p.find("pay-cap-1").await.unwrap(), Lookup::NotFound);
    assert!(matches!(sb.p.status(&references[0]).await.unwrap(), Lookup::Found(_)));
}

/// A provider answering every order creation with `body`.
async fn odd_payu(status: u16, body: serde_json::Value) -> PayuConnector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    let app = axum::Router::new().route(
        "/api/v2_1/orders",
        axum::routing::post(move || {
            let body = body.clone();
            async move { (code, axum::Json(body)) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    connector(&base, KEY, SECRET, Duration::from_secs(2))
}

#[tokio::test]
async fn an_odd_answer_to_an_order_creation_is_no_answer() {
    let sb = setup().await;
    let req = sb.order("pay-odd");
    let good = serde_json::json!({"orderId": "o1", "extOrderId": "pay-odd", "redirectUri": "https://payu.example/pay/o1",
        "status": "NEW", "totalAmount": 1099, "currencyCode": "EUR"});
    let with = |field: &str, value: serde_json::Value| {
        let mut v = good.clone();
        v[field] = value;
        v
    };
    let p = odd_payu(201, good.clone()).await;
    assert!(matches!(p.start_redirect(req.clone()).await.unwrap(), AuthorizeOutcome::Redirect { .. }));
    for (status, body) in [
        (201, with("redirectUri", "javascript:alert(1)".into())),
        (201, with("extOrderId", "another-payment".into())),
        (201, with("totalAmount", 1.into())),
        (201, with("status", "SOMETHING_NEW".into())),
        (500, serde_json::json!({"error": "internal"})),
    ] {
        let p = odd_payu(status, body.clone()).await;
        assert_eq!(p.start_redirect(req.clone()).await.unwrap(), AuthorizeOutcome::Unknown, "{status} {body}");
    }
    let p = odd_payu(400, serde_json::json!({"error": "4111111111111111 <script>"})).await;
    match p.start_redirect(req).await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "400 unreadable", "nothing of the body is repeated"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn payu_takes_no_cards_and_is_registered_by_the_config() {
    let sb = setup().await;
    let (number, brand) = smartpay_domain::card::CardNumber::parse("4111111111111111").unwrap();
    let card = Card {
        number,
        expiry: smartpay_domain::card::Expiry { month: 12, year: 2040 },
        cvc: smartpay_domain::card::Cvc::parse("737", brand).unwrap(),
        holder: None,
    };
    let req = AuthorizeRequest {
        payment_id: "pay-card".into(),
        amount_minor: 1,
        currency: "EUR".into(),
        source: PaymentSource::Card(card),
        return_url: None,
        frame_ancestors: Vec::new(),
    };
    assert!(matches!(sb.p.authorize(req).await, Err(ProviderError::Rejected(_))));
    let (number, _) = smartpay_domain::card::CardNumber::parse("4111111111111111").unwrap();
    let store =
        TokenizeRequest { number, expiry: smartpay_domain::card::Expiry { month: 12, year: 2040 }, holder: None };
    match sb.p.tokenize(store).await {
        Err(ProviderError::Rejected(e)) => assert_eq!(e, "payu cannot store cards"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.fake.stats().order_creates, 0);
    let caps = sb.p.capabilities();
    assert!(
        caps.asynchronous && caps.separate_capture && caps.partial_capture && caps.partial_refund && !caps.three_ds
    );
    let registry = Registry::new(&ProvidersConfig {
        sandbox: None,
        payu: Some(ConnectorConfig {
            base_url: sb.api.clone(),
            timeout: Duration::from_secs(1),
            api_key: KEY.into(),
            notify_secret: SECRET.into(),
        }),
    });
    assert_eq!(registry.names(), vec!["payu"]);
    let p = registry.get("payu").unwrap();
    assert!(matches!(p.start_redirect(sb.order("pay-registry")).await.unwrap(), AuthorizeOutcome::Redirect { .. }));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let config = FakeConfig {
        api_key: "payu-key-canary-123456789".into(),
        notify_secret: "payu-notify-canary-123456789".into(),
        ..FakeConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("payu-key-canary") && !shown.contains("payu-notify-canary"), "{shown}");
    let c = ConnectorConfig {
        base_url: "http://127.0.0.1:1".into(),
        timeout: Duration::from_secs(1),
        api_key: "connector-key-canary-1234".into(),
        notify_secret: "connector-notify-canary-1234".into(),
    };
    let shown = format!("{c:?}");
    assert!(!shown.contains("connector-key-canary") && !shown.contains("connector-notify-canary"), "{shown}");
    let (a, b) = (FakeConfig::default(), FakeConfig::default());
    assert!(a.api_key.len() >= 32 && a.notify_secret.len() >= 32, "fresh random secrets by default");
    assert_ne!(a.api_key, b.api_key);
    assert_ne!(a.notify_secret, b.notify_secret);
    assert!(!a.test_controls, "test controls are opt-in");
}

#[tokio::test]
async fn spawn_refuses_an_unsafe_configuration() {
    let cases = [
        FakeConfig { listen: "0.0.0.0:0".parse().unwrap(), ..FakeConfig::default() },
        FakeConfig { api_key: "short".into(), ..FakeConfig::default() },
        FakeConfig { notify_secret: "short".into(), ..FakeConfig::default() },
        FakeConfig { public_base: "/sandbox-payu".into(), ..FakeConfig::default() },
        FakeConfig { frame_ancestor: "https://a.example; script-src *".into(), ..FakeConfig::default() },
        FakeConfig { max_orders: 0, ..FakeConfig::default() },
    ];
    for config in cases {
        let shown = format!("{config:?}");
        assert_eq!(spawn(config).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput, "{shown}");
    }
}

#[tokio::test]
async fn shutdown_closes_the_api_listener() {
    let sb = setup().await;
    let addr = sb.fake.api_addr;
    sb.fake.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
