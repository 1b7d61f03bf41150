//! The payment credential vault over HTTP (issue 9, CONTRACT §8, reference §3.10–§3.14): the
//! `/accounts/…` API, the widget's stored-card journeys, failing closed without keys, tenant
//! isolation (matrix row E1) and what reaches the database files (rows G1, G3, G8).
//!
//! Tests that compare times (defaults, "expires soon") run on a manual clock pinned to the 15th
//! of the current month: inside the month the sandbox acquirer (which reads the real clock) also
//! sees, and far enough from its end for "expires soon" to be decided by the card alone.

mod api;
mod canary;
mod fail_closed;
mod isolation;
mod widget;

use std::sync::Arc;

use serde_json::{Value, json};
use smartpay_domain::Millis;
use smartpay_domain::time::{Clock, ManualClock};

use super::races::Reply;
use super::*;

/// The customer account most tests use.
pub const ACCOUNT: &str = "customer-4711";
/// A Visa card the sandbox acquirer approves.
pub const VISA: &str = "4111111111111111";
/// Another approved Visa card, and a Mastercard.
pub const VISA_2: &str = "4012888888881881";
pub const MASTERCARD: &str = "5555555555554444";
/// The sandbox acquirer declines it.
pub const DECLINED: &str = "4000000000000002";

/// Settings for these tests: scheduled work runs only when a test runs it, and card
/// submissions are not rate limited.
fn tune(config: &mut Config) {
    config.sweep_interval_ms = 24 * 3_600_000;
    config.ip_submits_per_minute = 1_000_000;
    config.merchant_submits_per_minute = 1_000_000;
}

/// Noon on the 15th of the current month (UTC).
fn mid_month() -> Millis {
    let (y, m, _) = Millis::now().date();
    Millis(smartpay_domain::time::days_from_civil(y, m, 15) * 86_400_000 + 12 * 3_600_000)
}

/// A sandbox server with its own vault key file, on a manual clock pinned to [`mid_month`].
pub async fn vault_app() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(mid_month()));
    let app = spawn_app_with_clock(tune, clock.clone() as Arc<dyn Clock>).await;
    (app, clock)
}

/// A server configured by `tweak` (after [`tune`]) on the system clock.
pub async fn vault_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(|c| {
        tune(c);
        tweak(c);
    })
    .await
}

/// Stops `app`'s server and starts another process on the same data directory with the same
/// configuration changed by `tweak`; the merchants stay as they were.
pub async fn restart(app: &mut TestApp, tweak: impl FnOnce(&mut Config)) {
    let running = app.running.take().unwrap();
    let mut config = running.state.config.clone();
    running.shutdown().await.unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    tweak(&mut config);
    let (store, secrets) = smartpay_server::connect_store(&config).await.unwrap();
    let state = AppState::new(config, store, secrets).await.unwrap();
    let running = smartpay_server::start(state).await.unwrap();
    app.base = format!("http://{}", running.local_addr);
    app.running = Some(running);
}

/// A new key file (owner-only) in `dir`.
pub fn key_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    smartpay_vault::write_key_file(&path, &smartpay_vault::generate_key().unwrap()).unwrap();
    path
}

/// `prefix` completed with its Luhn check digit.
pub fn luhn(prefix: &str) -> String {
    let sum: u32 = prefix
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
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

/// `(year, month)` of the state's clock, `months` from now.
pub fn month_from_now(app: &TestApp, months: i64) -> (i64, u32) {
    let (y, m, _) = app.state().now().date();
    let total = y * 12 + i64::from(m) - 1 + months;
    (total.div_euclid(12), u32::try_from(total.rem_euclid(12)).unwrap() + 1)
}

/// A valid Store Payment Option body for `number`, valid through `month`/`year`.
pub fn store_body(number: &str, (year, month): (i64, u32)) -> Value {
    json!({
        "paymentOption": {"card": {
            "3DS": {"3DS2": {
                "acsEci": "05",
                "authenticationToken": "AAABBBCCCDDDEEEFFF000111222=",
                "dsTransactionId": "f25084f0-5b16-4c0a-ae5d-b24808a95e4b",
                "protocolVersion": "2.2.0",
                "transactionStatus": "Y"
            }},
            "cardDetails": {
                "cardNumber": number,
                "cardExpiryMonth": format!("{month:02}"),
                "cardExpiryYear": format!("{year}"),
                "cardHolderName": "Hells Butcher"
            }
        }},
        "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DEU"}
    })
}

/// A valid Update Account body.
pub fn update_body() -> Value {
    json!({
        "billingAddress": {"addressLine1": "Neue Strasse", "number": "7", "city": "Wolfsburg", "postCode": "38440", "countryCode": "DEU"},
        "consumer": {"culture": "de-DE", "dateOfBirth": "1990-01-31", "emailAddress": "hells.butcher_001@mail.com"}
    })
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    Reply { status, replayed: false, body: r.bytes().await.unwrap().to_vec() }
}

/// `Retry-After` of an answer, and the answer.
pub async fn with_retry_after(r: reqwest::Response) -> (Option<String>, Reply) {
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (retry, reply(r).await)
}

impl TestApp {
    /// A checkout of `c` for 10.99 EUR, with `customerAccountId` `account` when given: its
    /// transactionId and checkout token.
    pub async fn checkout_for(&self, c: &Creds, account: Option<&str>) -> (String, String) {
        let mut body = self.body(c);
        if let Some(a) = account {
            body["customerAccountId"] = json!(a);
        }
        let r = self.create_raw(&self.basic(c), &body.to_string(), &[]).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        (v["transactionId"].as_str().unwrap().to_owned(), v["checkoutToken"].as_str().unwrap().to_owned())
    }

    /// Sends an `/accounts/…` request as `c`; `path` starts after `/accounts/`.
    pub async fn accounts(&self, c: &Creds, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let mut rb = self.accounts_request(c, method, path);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        reply(rb.send().await.unwrap()).await
    }

    /// An `/accounts/…` request of `c`, not sent yet.
    pub fn accounts_request(&self, c: &Creds, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(&format!("/accounts/{path}"))).header("Authorization", self.basic(c))
    }

    /// Store Payment Option.
    pub async fn store_option(&self, c: &Creds, account: &str, body: &Value) -> Reply {
        self.accounts(c, reqwest::Method::POST, &format!("{account}/paymentOptions"), Some(body)).await
    }

    /// Stores `number` (valid for three more years) under `account` of `c`: its reference.
    pub async fn stored(&self, c: &Creds, account: &str, number: &str) -> String {
        let r = self.store_option(c, account, &store_body(number, month_from_now(self, 36))).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["storedPaymentOptionReference"].as_str().unwrap().to_owned()
    }

    /// Get All Payment Options.
    pub async fn list_options(&self, c: &Creds, account: &str) -> Reply {
        self.accounts(c, reqwest::Method::GET, &format!("{account}/paymentOptions"), None).await
    }

    /// The options of `account` of `c`, which must answer 200.
    pub async fn options_of(&self, c: &Creds, account: &str) -> Vec<Value> {
        let r = self.list_options(c, account).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["result"].as_array().unwrap().clone()
    }

    /// Get Payment Option.
    pub async fn get_option(&self, c: &Creds, account: &str, reference: &str) -> Reply {
        self.accounts(c, reqwest::Method::GET, &format!("{account}/paymentOptions/{reference}"), None).await
    }

    /// Delete Payment Option.
    pub async fn delete_option(&self, c: &Creds, account: &str, reference: &str) -> Reply {
        self.accounts(c, reqwest::Method::DELETE, &format!("{account}/paymentOptions/{reference}"), None).await
    }

    /// Update Account.
    pub async fn update_account(&self, c: &Creds, account: &str, body: &Value) -> Reply {
        self.accounts(c, reqwest::Method::PATCH, account, Some(body)).await
    }

    /// A widget API request with the frame's origin and `token`.
    fn widget(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/widget/api/{path}")))
            .header("Origin", &self.base)
            .header("X-Checkout-Token", token)
    }

    /// `GET /widget/api/options`.
    pub async fn widget_options(&self, token: &str) -> Reply {
        reply(self.widget(reqwest::Method::GET, "options", token).send().await.unwrap()).await
    }

    /// `DELETE /widget/api/options/{reference}`.
    pub async fn widget_delete(&self, token: &str, reference: &str) -> Reply {
        reply(self.widget(reqwest::Method::DELETE, &format!("options/{reference}"), token).send().await.unwrap()).await
    }

    /// `POST /widget/api/options/{reference}/default`.
    pub async fn widget_default(&self, token: &str, reference: &str) -> Reply {
        let r = self.widget(reqwest::Method::POST, &format!("options/{reference}/default"), token);
        reply(r.send().await.unwrap()).await
    }

    /// `POST /widget/api/payments` with `body`.
    pub async fn widget_pay(&self, token: &str, body: Value) -> Reply {
        reply(self.submit(token, body).await).await
    }
}

/// The card frame's submission of `number` (valid three more years) with `cvc`, stored when
/// `store`.
pub fn card_entry(app: &TestApp, number: &str, cvc: &str, store: bool) -> Value {
    let (y, m) = month_from_now(app, 36);
    json!({"number": number, "expiry": format!("{m:02}/{:02}", y % 100), "cvc": cvc, "storeCard": store})
}

/// The (code, property) pairs of an error answer, asserting its status.
pub fn refused(r: &Reply, status: u16) -> Vec<(String, String)> {
    assert_eq!(r.status, status, "{}", r.text());
    codes(&r.json())
}

/// Every option stored in the whole database (all merchants).
pub async fn options_in_store(app: &TestApp) -> u64 {
    app.state().store.options_per_key().await.unwrap().iter().map(|(_, n)| n).sum()
}
