//! The money invariants under real concurrency (reliability matrix rows A1–A5, A9, B1–B4): many
//! HTTP requests on loopback released together by a barrier against one payment, then the
//! answers, the payment as Get Payment Status shows it, the provider calls counted by the server
//! and the invariant verifier must all agree. Also the scheduled jobs (delayed capture, automatic
//! cancellation, sandbox settlement), driven by a manual clock instead of sleeps.

mod illegal;
mod jobs;
mod replays;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use smartpay_domain::modification::CaptureMode;
use smartpay_domain::time::{Clock, ManualClock};
use tokio::sync::Barrier;

use super::*;

pub const CARD_OK: &str = "4111111111111111";

/// One HTTP answer, read completely.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub replayed: bool,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first error's code.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// Provider calls the server made so far: captures, refunds, cancellations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub captures: u64,
    pub refunds: u64,
    pub cancels: u64,
}

impl Calls {
    pub fn since(self, before: Calls) -> Calls {
        Calls {
            captures: self.captures - before.captures,
            refunds: self.refunds - before.refunds,
            cancels: self.cancels - before.cancels,
        }
    }
}

pub const NO_CALLS: Calls = Calls { captures: 0, refunds: 0, cancels: 0 };

/// Settings for these tests: jobs and the expiry sweep run only when a test runs them, card
/// submissions are not rate limited (each round pays anew), and the client keeps enough
/// connections for every request of a round to be in flight at once.
fn tune(config: &mut Config) {
    config.sweep_interval_ms = 24 * 3_600_000;
    config.ip_submits_per_minute = 1_000_000;
    config.merchant_submits_per_minute = 1_000_000;
}

/// A server for races: merchant A captures manually, merchant B automatically.
pub async fn race_app() -> TestApp {
    let mut app = spawn_app_with(tune).await;
    app.client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
    app.set_mode(&app.merchant.clone(), CaptureMode::Manual, None, None).await;
    app
}

/// A server whose time is `clock`, configured by `tweak` after [`tune`].
pub async fn clock_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(smartpay_domain::Millis::now()));
    let app = spawn_app_with_clock(
        |c| {
            tune(c);
            tweak(c);
        },
        clock.clone() as Arc<dyn Clock>,
    )
    .await;
    (app, clock)
}

/// A modification request body; `amount` in major units of `currency`.
pub fn mod_json(c: &Creds, id: &str, modification_id: &str, amount: Option<f64>, currency: &str) -> String {
    let mut b = json!({"transactionId": id, "merchantKey": c.merchant_key, "modificationId": modification_id});
    if let Some(a) = amount {
        b["modifiedAmount"] = json!({"amount": a, "currencyCode": currency});
    }
    b.to_string()
}

/// An amount of the API (a JSON number, or its text in an error's context) in minor units.
pub fn cents(v: &Value) -> i64 {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not an amount: {other}"),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    assert!(frac.len() <= 2, "more than 2 decimals: {text}");
    whole.parse::<i64>().unwrap() * 100 + format!("{frac:0<2}").parse::<i64>().unwrap()
}

impl TestApp {
    pub async fn set_mode(&self, c: &Creds, mode: CaptureMode, delay: Option<u64>, auto_cancel: Option<u64>) {
        self.state().store.set_capture_policy(&c.merchant_key, mode, delay, auto_cancel).await.unwrap();
    }

    /// A checkout of `c` for `amount` EUR, not paid: its transactionId and checkout token.
    pub async fn checkout_as(&self, c: &Creds, amount: f64) -> (String, String) {
        let mut body = self.body(c);
        body["payment"]["amount"] = json!(amount);
        let r = self.create_raw(&self.basic(c), &body.to_string(), &[]).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        (v["transactionId"].as_str().unwrap().to_owned(), v["checkoutToken"].as_str().unwrap().to_owned())
    }

    /// A checkout of `c` for `amount` EUR paid with `card`, under `c`'s capture mode.
    pub async fn pay_as(&self, c: &Creds, amount: f64, card: &str) -> String {
        let (id, token) = self.checkout_as(c, amount).await;
        let (year, month, _) = smartpay_domain::Millis::now().date();
        let card = json!({"number": card, "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737"});
        let r = self.submit(&token, card).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        id
    }

    /// POSTs a raw modification body as `c`.
    pub async fn send_mod(&self, c: &Creds, op: &str, body: String) -> Reply {
        let r = self
            .client
            .post(self.url(&format!("/payment/{op}")))
            .header("Authorization", self.basic(c))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// The payment as Get Payment Status shows it to `c`.
    pub async fn view(&self, c: &Creds, id: &str) -> Value {
        let r = self.status(&self.basic(c), id).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub fn calls(&self) -> Calls {
        let c = &self.state().metrics.counters;
        Calls {
            captures: c.provider_captures.load(Ordering::SeqCst),
            refunds: c.provider_refunds.load(Ordering::SeqCst),
            cancels: c.provider_cancels.load(Ordering::SeqCst),
        }
    }

    /// The invariant verifier finds nothing wrong with any payment of the store.
    pub async fn assert_verified(&self) {
        let report = smartpay_server::verify::verify_store(self.state().store.as_ref()).await.unwrap();
        assert!(report.checked > 0);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    /// Sends every `(operation, body)` as `c` at once: each request is built first, then all
    /// are released together by a barrier. Answers in the order of `requests`.
    pub async fn race(&self, c: &Creds, requests: Vec<(&'static str, String)>) -> Vec<Reply> {
        let barrier = Arc::new(Barrier::new(requests.len()));
        let auth = self.basic(c);
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(op, body)| {
                let request = self
                    .client
                    .post(self.url(&format!("/payment/{op}")))
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .body(body);
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    // A server that stops answering fails the test instead of hanging it.
                    let answer = tokio::time::timeout(Duration::from_secs(30), async {
                        read(request.send().await.unwrap()).await
                    });
                    answer.await.unwrap_or_else(|_| panic!("no answer in 30 s to {op}"))
                })
            })
            .collect();
        let _watchdog = watchdog();
        let mut replies = Vec::with_capacity(tasks.len());
        for t in tasks {
            replies.push(t.await.unwrap());
        }
        replies
    }
}

/// Ends the test process when a race is not over within 60 s. A server deadlocked on a lock
/// blocks the runtime's threads (the test's too), so no timeout inside the runtime could fire
/// and the test would hang instead of failing. Disarmed when dropped.
fn watchdog() -> std::sync::mpsc::Sender<()> {
    let (armed, disarm) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = disarm.recv_timeout(Duration::from_secs(60)) {
            eprintln!("a race got no answers within 60 s: the server is deadlocked");
            std::process::exit(101);
        }
    });
    armed
}

async fn read(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    Reply { status, replayed, body: r.bytes().await.unwrap().to_vec() }
}

/// How many answers had each status and error code, for failure messages.
pub fn tally(replies: &[Reply]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in replies {
        let code = if r.status == 200 { String::new() } else { format!(" {}", r.code()) };
        *counts.entry(format!("{}{code}", r.status)).or_default() += 1;
    }
    format!("{counts:?}")
}

/// The payment's modifications of `kind` (`CAPTURE`, `REFUND`, …).
pub fn mods_of<'a>(view: &'a Value, kind: &str) -> Vec<&'a Value> {
    view["modifications"].as_array().unwrap().iter().filter(|m| m["modificationData"]["type"] == kind).collect()
}

/// Asserts a 422 refusal of kind `code` whose `context.remaining` is `remaining` (minor units).
fn assert_exceeds(r: &Reply, code: &str, remaining: i64) {
    assert_eq!(r.status, 422, "{}", r.text());
    let e = &r.json()["errors"][0];
    assert_eq!(e["code"], code, "{}", r.text());
    assert_eq!(cents(&e["context"]["remaining"]), remaining, "{}", r.text());
    assert_eq!(e["context"]["currencyCode"], "EUR", "{}", r.text());
}

/// A1: 64 refunds of `each` (minor units) at once against 100.00 captured, in 20 rounds (a
/// fresh payment each); `winners` of them fit.
async fn over_refund_rounds(each: i64, winners: usize) {
    let app = race_app().await;
    let b = app.other.clone();
    for round in 0..20 {
        let id = app.pay_as(&b, 100.0, CARD_OK).await;
        let before = app.calls();
        let requests = (0..64)
            .map(|i| ("refund", mod_json(&b, &id, &format!("r{round}-{i}"), Some(each as f64 / 100.0), "EUR")))
            .collect();
        let replies = app.race(&b, requests).await;
        assert!(replies.iter().all(|r| r.status < 500), "round {round}: server errors: {}", tally(&replies));
        let succeeded = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(succeeded, winners, "round {round}: {}", tally(&replies));
        for r in replies.iter().filter(|r| r.status != 200) {
            // Refused while refunds were in flight: nothing left to refund. After the last one
            // finished the payment is REFUNDED, and a refund of it is an illegal transition.
            if r.status == 409 {
                assert_eq!(r.code(), "invalid_state", "{}", r.text());
                assert_eq!(r.json()["errors"][0]["context"]["paymentStatus"], "REFUNDED", "{}", r.text());
            } else {
                assert_exceeds(r, "amount_exceeds_refundable", 10_000 - each * winners as i64);
            }
        }
        let view = app.view(&b, &id).await;
        let refunded = winners as i64 * each;
        assert_eq!(cents(&view["amounts"]["refunded"]), refunded, "{view}");
        assert_eq!(cents(&view["amounts"]["refundable"]), 10_000 - refunded, "{view}");
        let refunds = mods_of(&view, "REFUND");
        assert_eq!(refunds.len(), winners);
        assert!(refunds.iter().all(|m| m["status"] == "REFUNDED"), "{view}");
        assert_eq!(view["paymentStatus"], if refunded == 10_000 { "REFUNDED" } else { "CAPTURED" });
        assert_eq!(app.calls().since(before), Calls { refunds: winners as u64, ..NO_CALLS });
        app.assert_verified().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_refunds_of_two_euros_refund_exactly_the_hundred_captured() {
    over_refund_rounds(200, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_refunds_of_sixty_euros_against_a_hundred_let_exactly_one_through() {
    over_refund_rounds(6_000, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_full_captures_capture_once_with_one_provider_call() {
    let app = race_app().await;
    let a = app.merchant.clone();
    for round in 0..20 {
        let id = app.pay_as(&a, 10.99, CARD_OK).await;
        let before = app.calls();
        // Half name the full amount, half leave it out ("everything that is left").
        let requests = (0..32)
            .map(|i| {
                let amount = (i % 2 == 0).then_some(10.99);
                ("capture", mod_json(&a, &id, &format!("c{round}-{i}"), amount, "EUR"))
            })
            .collect();
        let replies = app.race(&a, requests).await;
        let ok: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 1, "round {round}: {}", tally(&replies));
        assert_eq!(ok[0].json()["paymentStatus"], "CAPTURED");
        assert_eq!(ok[0].json()["modification"]["status"], "CAPTURED");
        for r in replies.iter().filter(|r| r.status != 200) {
            match r.status {
                422 => assert_exceeds(r, "amount_exceeds_capturable", 0),
                409 => assert_eq!(r.code(), "invalid_state", "{}", r.text()),
                _ => panic!("unexpected {}", r.text()),
            }
        }
        let view = app.view(&a, &id).await;
        assert_eq!(view["paymentStatus"], "CAPTURED");
        assert_eq!(mods_of(&view, "CAPTURE").len(), 1, "{view}");
        assert_eq!(cents(&view["amounts"]["captured"]), 1099);
        assert_eq!(app.calls().since(before), Calls { captures: 1, ..NO_CALLS });
        app.assert_verified().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn captures_racing_cancels_end_captured_or_cancelled_never_both() {
    let app = race_app().await;
    let a = app.merchant.clone();
    for round in 0..20 {
        let id = app.pay_as(&a, 10.99, CARD_OK).await;
        let before = app.calls();
        // 16 partial captures of 0.50 (all fit in 10.99) interleaved with 16 cancels.
        let requests = (0..32)
            .map(|i| {
                let m = format!("x{round}-{i}");
                if i % 2 == 0 {
                    ("capture", mod_json(&a, &id, &m, Some(0.5), "EUR"))
                } else {
                    ("cancel", mod_json(&a, &id, &m, None, "EUR"))
                }
            })
            .collect();
        let replies = app.race(&a, requests).await;
        let (captures, cancels): (Vec<_>, Vec<_>) = replies.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let captured = captures.iter().filter(|(_, r)| r.status == 200).count();
        let cancelled = cancels.iter().filter(|(_, r)| r.status == 200).count();
        for (_, r) in replies.iter().enumerate().filter(|(_, r)| r.status != 200) {
            assert_eq!(r.status, 409, "{}", r.text());
            assert_eq!(r.code(), "invalid_state", "{}", r.text());
        }
        let view = app.view(&a, &id).await;
        let calls = app.calls().since(before);
        if view["paymentStatus"] == "CAPTURED" {
            assert_eq!((captured, cancelled), (16, 0), "round {round}: {}", tally(&replies));
            assert_eq!(calls, Calls { captures: 16, ..NO_CALLS });
            assert!(mods_of(&view, "CANCELLATION").is_empty(), "{view}");
            assert_eq!(cents(&view["amounts"]["captured"]), 800);
        } else {
            assert_eq!(view["paymentStatus"], "CANCELLED", "{view}");
            assert_eq!((captured, cancelled), (0, 1), "round {round}: {}", tally(&replies));
            assert_eq!(calls, Calls { cancels: 1, ..NO_CALLS });
            assert!(mods_of(&view, "CAPTURE").is_empty(), "{view}");
            assert_eq!(mods_of(&view, "CANCELLATION").len(), 1);
        }
        app.assert_verified().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_partial_captures_beyond_the_authorization_never_capture_more_than_authorized() {
    let app = race_app().await;
    let a = app.merchant.clone();
    for round in 0..20i64 {
        let id = app.pay_as(&a, 10.99, CARD_OK).await;
        let before = app.calls();
        // 16 amounts between 1.00 and 2.99: about three times the authorization.
        let amounts: Vec<i64> = (0..16).map(|i| 100 + (i * 37 + round * 11) % 200).collect();
        let requests = amounts
            .iter()
            .enumerate()
            .map(|(i, c)| ("capture", mod_json(&a, &id, &format!("p{round}-{i}"), Some(*c as f64 / 100.0), "EUR")))
            .collect();
        let replies = app.race(&a, requests).await;
        let view = app.view(&a, &id).await;
        let captured = cents(&view["amounts"]["captured"]);
        let capturable = cents(&view["amounts"]["capturable"]);
        let mut sum = 0;
        for (r, amount) in replies.iter().zip(&amounts) {
            if r.status == 200 {
                sum += amount;
                continue;
            }
            assert_eq!((r.status, r.code().as_str()), (422, "amount_exceeds_capturable"), "{}", r.text());
            let remaining = cents(&r.json()["errors"][0]["context"]["remaining"]);
            assert!(remaining < *amount, "refused {amount} with {remaining} left");
            // What was left then is never less than what is left at the end.
            assert!(*amount > capturable && remaining >= capturable, "refused {amount}; {capturable} left: {view}");
        }
        assert!(captured <= 1099, "{view}");
        assert_eq!(captured, sum, "{view}");
        assert_eq!(capturable, 1099 - captured);
        let ok = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(mods_of(&view, "CAPTURE").len(), ok);
        assert_eq!(app.calls().since(before), Calls { captures: ok as u64, ..NO_CALLS });
        app.assert_verified().await;
    }
}
