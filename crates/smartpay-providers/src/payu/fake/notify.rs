//! The fake's notifications: when an order reaches a final state it POSTs
//! `{eventId, orderId, extOrderId, status}` to the order's `notifyUrl`, signed
//! ([`super::super::signature`]), once plus up to [`RETRY_BACKOFF`]`.len()` retries on anything
//! but 2xx. Delivery is best effort (the gateway polls anyway): at most [`MAX_IN_FLIGHT`] are
//! waiting or being sent at once, beyond that a notification is dropped, and stopping the fake
//! drops those still waiting. Only http(s) URLs are notified; redirects are not followed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header;
use reqwest::Url;
use smartpay_domain::Millis;
use tokio::task::JoinSet;

use super::super::{signature, wire};

/// Waits before the retries.
pub const RETRY_BACKOFF: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];
/// Most notifications waiting or being sent at once.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Longest wait for the receiver's answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends notifications in the background.
pub struct Notifier {
    http: reqwest::Client,
    secret: Arc<str>,
    tasks: Mutex<JoinSet<()>>,
    stopped: AtomicBool,
    delivered: Arc<AtomicU64>,
}

impl Notifier {
    pub fn new(secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Notifier {
            http,
            secret: secret.into(),
            tasks: Mutex::new(JoinSet::new()),
            stopped: AtomicBool::new(false),
            delivered: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many notifications were answered 2xx.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// How many notifications are waiting, being sent or between retries.
    pub fn in_flight(&self) -> usize {
        self.reaped().map_or(0, |tasks| tasks.len())
    }

    /// The notification tasks, those that ended removed.
    fn reaped(&self) -> Option<std::sync::MutexGuard<'_, JoinSet<()>>> {
        let mut tasks = self.tasks.lock().ok()?;
        while tasks.try_join_next().is_some() {}
        Some(tasks)
    }

    /// Sends `n` to `url` after `delay`, in the background.
    pub fn schedule(&self, url: Url, delay: Duration, n: wire::Notification) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        if !matches!(url.scheme(), "http" | "https") {
            tracing::warn!(service = "fake payu", "refusing to notify a URL that is not http(s)");
            return;
        }
        let Some(mut tasks) = self.reaped() else { return };
        if tasks.len() >= MAX_IN_FLIGHT {
            tracing::warn!(service = "fake payu", order = %n.order_id, "too many notifications in flight: dropped");
            return;
        }
        let (http, secret, delivered) = (self.http.clone(), self.secret.clone(), self.delivered.clone());
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            if deliver(&http, url, &secret, &n).await {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Drops every notification still waiting; none are scheduled after.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.abort_all();
        }
    }
}

/// Sends `n` until it is answered 2xx or the retries are spent; whether it was.
async fn deliver(http: &reqwest::Client, url: Url, secret: &str, n: &wire::Notification) -> bool {
    let Ok(body) = serde_json::to_vec(n) else { return false };
    for attempt in 0..=RETRY_BACKOFF.len() {
        let t = Millis::now().0.div_euclid(1000);
        let sent = http
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signature::header(secret, t, &body))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => {
                tracing::info!(service = "fake payu", order = %n.order_id, status = r.status().as_u16(), attempt, "notification refused");
            }
            Err(e) => {
                tracing::info!(service = "fake payu", order = %n.order_id, error = %e.without_url(), attempt, "notification not delivered");
            }
        }
        if let Some(wait) = RETRY_BACKOFF.get(attempt) {
            tokio::time::sleep(*wait).await;
        }
    }
    false
}
