//! Pending resolution (CONTRACT §11) on a manual clock: the pending test cards reach their final
//! status without anyone calling Get Payment Status, a lost answer is found by the idempotency
//! key, and an abandoned challenge ends at its deadline. The `PAYU` tests script the server's
//! in-process fake PayU through its test controls (reliability rows D1, D2, D4, D5, D7).

mod bulk;
mod deadlines;
mod leases;
mod provider;

use std::sync::Arc;

use serde_json::{Value, json};
use smartpay_domain::time::{Clock, ManualClock};
use smartpay_store::JobKind;

use super::races::*;
use super::*;

/// Runs the job queue until nothing is due (at most `rounds` passes).
async fn drain(app: &TestApp, rounds: usize) {
    for _ in 0..rounds {
        if smartpay_server::workers::run_jobs_once(app.state()).await.unwrap() == 0 {
            return;
        }
    }
}

/// Runs the due jobs with `workers` workers at once, pass after pass, until none is due.
/// Returns how many job runs were made.
pub async fn run_due(app: &TestApp, workers: usize) -> usize {
    let mut total = 0;
    loop {
        let passes: Vec<_> = (0..workers)
            .map(|_| {
                let state = app.state().clone();
                tokio::spawn(async move { smartpay_server::workers::run_jobs_once(&state).await.unwrap() })
            })
            .collect();
        let mut ran = 0;
        for p in passes {
            ran += p.await.unwrap();
        }
        if ran == 0 {
            return total;
        }
        total += ran;
    }
}

/// The payment's status as the store has it.
pub async fn status_of(app: &TestApp, c: &Creds, id: &str) -> String {
    app.state().store.payment(&c.merchant_key, id).await.unwrap().unwrap().status.as_str().to_owned()
}

/// The pending-resolution job of payment `id`, if it has one.
pub async fn resolution_job(app: &TestApp, id: &str) -> Option<smartpay_store::JobView> {
    let jobs = app.state().store.jobs(&[JobKind::ResolveAuthorization, JobKind::ResolveModification], 10_000).await;
    jobs.unwrap().into_iter().find(|j| j.job.payment_id == id)
}

/// A value of the operators' `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A server on a manual clock whose sandbox PayU confirms an approval at once and has its test
/// controls on, configured by `tweak` after that.
pub async fn payu_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, Arc<ManualClock>) {
    clock_app(|c| {
        c.sandbox_payu_test_controls = true;
        c.sandbox_payu_confirm_delay_ms = 0;
        c.sandbox_payu_refund_delay_ms = 0;
        c.sandbox_pending_delay_ms = 0;
        tweak(c);
    })
    .await
}

/// The server's sandbox PayU, reached over its machine API.
pub struct Payu {
    base: String,
    key: String,
    pub notify_secret: String,
    http: reqwest::Client,
}

impl Payu {
    /// Scripts order `order` (`approve`, `pendingPolls`, `failPolls`, `amountOverride`,
    /// `currencyOverride`), then waits for the notification a decision sends to be taken.
    pub async fn script(&self, order: &str, script: Value) {
        let r = self
            .http
            .post(format!("{}/test/orders/{order}/script", self.base))
            .bearer_auth(&self.key)
            .json(&script)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
        self.quiet().await;
    }

    /// Waits until the fake has no notification left to send, so the gateway has taken each
    /// one (a nudge of the order's resolution job) before the test claims jobs itself.
    pub async fn quiet(&self) {
        for _ in 0..1000 {
            if self.stats().await.notifications_in_flight == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the fake PayU still has notifications in flight after 5 s");
    }

    /// What the fake answered so far.
    pub async fn stats(&self) -> smartpay_providers::payu::wire::Stats {
        let r = self.http.get(format!("{}/test/stats", self.base)).bearer_auth(&self.key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

impl TestApp {
    pub fn payu(&self) -> Payu {
        let (base, key, notify_secret) = self.state().sandbox_payu_api().expect("sandbox PayU is running");
        Payu { base, key, notify_secret, http: reqwest::Client::new() }
    }

    /// A `PAYU` payment of `c` for `amount` EUR started in the widget, the shopper sent to the
    /// approval page: its transactionId and PayU order id.
    pub async fn start_payu(&self, c: &Creds, amount: f64) -> (String, String) {
        let (id, token) = self.checkout_as(c, amount).await;
        let r = self
            .client
            .post(self.url("/widget/api/payments/redirect"))
            .header("Origin", &self.base)
            .header("X-Checkout-Token", &token)
            .json(&json!({"paymentMethod": "PAYU"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["transactionStatus"], "AUTHORIZATION_PENDING", "{answer}");
        let p = self.state().store.payment(&c.merchant_key, &id).await.unwrap().unwrap();
        let order = p.reconciliation_reference_id.expect("the order id is kept");
        let url = answer["challengeUrl"].as_str().unwrap();
        assert!(url.ends_with(&format!("/pay/{order}")), "{url}");
        (id, order)
    }
}

#[tokio::test]
async fn pending_cards_reach_their_final_status_on_their_own() {
    let (app, clock) = clock_app(|c| c.sandbox_pending_delay_ms = 0).await;
    let a = app.merchant.clone();
    let approved = app.pay_as(&a, 10.99, "4000000000000259").await;
    let declined = app.pay_as(&a, 10.99, "4000000000000267").await;
    let store = &app.state().store;
    for id in [&approved, &declined] {
        let p = store.payment(&a.merchant_key, id).await.unwrap().unwrap();
        assert_eq!(p.status.as_str(), "AUTHORIZATION_PENDING");
    }
    drain(&app, 5).await;
    assert_eq!(
        store.payment(&a.merchant_key, &approved).await.unwrap().unwrap().status.as_str(),
        "AUTHORIZATION_PENDING",
        "polled early"
    );
    clock.advance_ms(app.state().config.pending_first_poll_ms as i64);
    drain(&app, 5).await;
    let p = store.payment(&a.merchant_key, &approved).await.unwrap().unwrap();
    assert_eq!(p.status.as_str(), "CAPTURED", "{p:?}");
    let p = store.payment(&a.merchant_key, &declined).await.unwrap().unwrap();
    assert_eq!(p.status.as_str(), "AUTHORIZATION_FAILED", "{p:?}");
    assert!(store.jobs(&smartpay_store::JobKind::ALL, 100).await.unwrap().iter().all(|j| !j.job.kind.is_resolution()));
    app.assert_verified().await;
}

#[tokio::test]
async fn a_card_the_provider_does_not_answer_in_time_is_found_by_its_transaction_id_and_captured() {
    let (app, clock) = clock_app(|c| {
        c.provider_timeout_ms = 300;
        c.sandbox_slow_delay_ms = 1500;
        c.request_timeout_ms = 10_000;
    })
    .await;
    let b = app.other.clone(); // automatic capture
    let (id, token) = app.checkout_as(&b, 10.99).await;
    let (year, month, _) = smartpay_domain::Millis::now().date();
    let card =
        json!({"number": "4000000000000408", "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737"});
    let r = app.submit(&token, card).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["transactionStatus"], "AUTHORIZATION_PENDING", "{answer}");
    assert!(answer.get("challengeUrl").is_none(), "{answer}");
    let view = app.view(&b, &id).await;
    assert!(view["reconciliationReferenceId"].is_null(), "no answer, no provider reference: {view}");
    let before = app.calls();
    clock.advance_ms(app.state().config.pending_first_poll_ms as i64 - 1);
    assert_eq!(run_due(&app, 1).await, 0, "polled early");
    clock.advance_ms(1);
    assert_eq!(run_due(&app, 1).await, 1);
    let view = app.view(&b, &id).await;
    assert_eq!(view["paymentStatus"], "CAPTURED", "{view}");
    assert_eq!(view["reconciliationReferenceId"].as_str().map(str::len), Some(22), "found by its key: {view}");
    let captures = mods_of(&view, "CAPTURE");
    assert_eq!(captures.len(), 1, "{view}");
    assert_eq!(captures[0]["status"], "CAPTURED");
    assert_eq!(app.calls().since(before), Calls { captures: 1, ..NO_CALLS });
    let history: Vec<&str> =
        view["statusHistory"].as_array().unwrap().iter().filter_map(|h| h["status"].as_str()).collect();
    assert_eq!(history.iter().filter(|s| **s == "AUTHORIZATION_COMPLETED").count(), 1, "{history:?}");
    assert!(resolution_job(&app, &id).await.is_none());
    app.assert_verified().await;
}
