//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! Labels are route templates (`/payment/status/{transactionId}`), methods and status codes:
//! never ids, keys or anything a caller sent.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The process's recorder for the `metrics` facade: what other crates record through it (the
/// store's group commits, pool and unavailability counts) is rendered at `/metrics` after the
/// server's own figures. Installed once per process, on first use, with a thread that drains
/// histogram samples every 5 s so that nothing grows between scrapes; `None` when another
/// recorder was installed first (then only the server's own figures are rendered).
pub fn facade() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(smartpay_store::BATCH_SIZE.to_owned()),
                    &smartpay_store::BATCH_SIZE_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(smartpay_store::PG_BATCH_SIZE.to_owned()),
                        &smartpay_store::BATCH_SIZE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(smartpay_store::COMMIT_SECONDS.to_owned()), &BUCKETS)
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            smartpay_store::describe_metrics();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The job queue's gauges: depth, due jobs and the age of the oldest job per kind (for the
/// pending-resolution kinds, the age of the oldest pending payment or modification).
pub fn render_jobs(stats: &[smartpay_store::JobStat], now: smartpay_domain::Millis) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("# HELP smartpay_jobs_queued Jobs queued, by kind.\n# TYPE smartpay_jobs_queued gauge\n");
    for s in stats {
        let _ = writeln!(out, "smartpay_jobs_queued{{kind=\"{}\"}} {}", s.kind.as_str(), s.queued);
    }
    out.push_str("# HELP smartpay_jobs_due Jobs due now, by kind.\n# TYPE smartpay_jobs_due gauge\n");
    for s in stats {
        let _ = writeln!(out, "smartpay_jobs_due{{kind=\"{}\"}} {}", s.kind.as_str(), s.due);
    }
    out.push_str("# HELP smartpay_jobs_oldest_age_seconds Age of the oldest queued job, by kind (RESOLVE_*: the oldest pending payment or modification).\n# TYPE smartpay_jobs_oldest_age_seconds gauge\n");
    for s in stats {
        let age = s.oldest.map_or(0.0, |o| (now.0 - o.0).max(0) as f64 / 1000.0);
        let _ = writeln!(out, "smartpay_jobs_oldest_age_seconds{{kind=\"{}\"}} {age}", s.kind.as_str());
    }
    out
}

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

/// Counters the use cases bump.
#[derive(Default)]
pub struct Counters {
    pub checkouts_created: AtomicU64,
    pub checkouts_replayed: AtomicU64,
    pub checkouts_expired: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub auth_failures_basic: AtomicU64,
    pub auth_failures_bearer: AtomicU64,
    pub card_submissions: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Requests refused by the brute-force lockout.
    pub auth_lockouts: AtomicU64,
    /// Modification calls made to providers.
    pub provider_captures: AtomicU64,
    pub provider_refunds: AtomicU64,
    pub provider_cancels: AtomicU64,
    /// Pending resolution: polls by what they found, polls the per-provider ceiling deferred,
    /// pending work resolved, and pending work ended at its deadline.
    pub polls_answered: AtomicU64,
    pub polls_unanswered: AtomicU64,
    pub polls_not_found: AtomicU64,
    pub polls_mismatched: AtomicU64,
    pub polls_throttled: AtomicU64,
    pub pending_resolved: AtomicU64,
    pub pending_expired: AtomicU64,
    /// Inbound provider notifications accepted and refused.
    pub provider_notices: AtomicU64,
    pub provider_notices_refused: AtomicU64,
    /// Notification delivery attempts to merchants, and notifications given up.
    pub notifications_delivered: AtomicU64,
    pub notification_failures: AtomicU64,
    pub notifications_given_up: AtomicU64,
}

/// Everything recorded for one route template.
#[derive(Default)]
struct RouteStats {
    /// (method, status) → count; a handful of entries per route.
    counts: Vec<(String, u16, u64)>,
    latency: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    pub counters: Counters,
}

impl Metrics {
    /// Records one request: one lock, no allocation once the route was seen.
    pub fn observe(&self, method: &str, route: &str, status: u16, micros: u64) {
        if let Ok(mut m) = self.routes.lock() {
            let r = match m.get_mut(route) {
                Some(r) => r,
                None => m.entry(route.to_owned()).or_default(),
            };
            match r.counts.iter_mut().find(|(mth, st, _)| mth == method && *st == status) {
                Some(c) => c.2 += 1,
                None => r.counts.push((method.to_owned(), status, 1)),
            }
            let h = &mut r.latency;
            let secs = micros as f64 / 1e6;
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum_micros += micros;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP smartpay_http_requests_total HTTP requests by method, route template and status.\n# TYPE smartpay_http_requests_total counter\n");
        if let Ok(m) = self.routes.lock() {
            for (route, r) in m.iter() {
                let mut counts = r.counts.clone();
                counts.sort();
                for (method, status, n) in counts {
                    let _ = writeln!(
                        out,
                        "smartpay_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP smartpay_http_request_duration_seconds Time to answer, by route template.\n# TYPE smartpay_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.routes.lock() {
            for (route, h) in m.iter().map(|(k, r)| (k, &r.latency)) {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "smartpay_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "smartpay_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "smartpay_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum_micros as f64 / 1e6
                );
                let _ = writeln!(out, "smartpay_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
            }
        }
        let c = &self.counters;
        for (name, help, v) in [
            ("smartpay_checkouts_created_total", "Checkouts created.", &c.checkouts_created),
            (
                "smartpay_checkouts_replayed_total",
                "Create requests answered from an idempotency record.",
                &c.checkouts_replayed,
            ),
            ("smartpay_checkouts_expired_total", "Checkouts moved to EXPIRED by the sweep.", &c.checkouts_expired),
            ("smartpay_oauth_tokens_issued_total", "Access tokens issued.", &c.tokens_issued),
            ("smartpay_card_submissions_total", "Cards sent to a provider for authorization.", &c.card_submissions),
            (
                "smartpay_connections_refused_total",
                "Connections refused because max_connections were open.",
                &c.connections_refused,
            ),
            ("smartpay_auth_lockouts_total", "Requests refused by the brute-force lockout (429).", &c.auth_lockouts),
            ("smartpay_provider_captures_total", "Capture calls made to providers.", &c.provider_captures),
            ("smartpay_provider_refunds_total", "Refund calls made to providers.", &c.provider_refunds),
            ("smartpay_provider_cancels_total", "Cancellation calls made to providers.", &c.provider_cancels),
            (
                "smartpay_pending_polls_answered_total",
                "Pending-resolution polls the provider answered.",
                &c.polls_answered,
            ),
            (
                "smartpay_pending_polls_unanswered_total",
                "Pending-resolution polls without a usable answer (timeout, 5xx).",
                &c.polls_unanswered,
            ),
            (
                "smartpay_pending_polls_not_found_total",
                "Polls for authorizations the provider does not know.",
                &c.polls_not_found,
            ),
            (
                "smartpay_pending_polls_mismatched_total",
                "Polls where the provider reported another amount or currency (payment flagged).",
                &c.polls_mismatched,
            ),
            (
                "smartpay_pending_polls_throttled_total",
                "Polls deferred by the per-provider ceiling.",
                &c.polls_throttled,
            ),
            (
                "smartpay_pending_resolved_total",
                "Pending authorizations and modifications resolved by polling.",
                &c.pending_resolved,
            ),
            ("smartpay_pending_expired_total", "Pending work recorded as failed at its deadline.", &c.pending_expired),
            ("smartpay_provider_notices_total", "Inbound provider notifications accepted.", &c.provider_notices),
            (
                "smartpay_provider_notices_refused_total",
                "Inbound provider notifications refused (unsigned, bad signature, malformed).",
                &c.provider_notices_refused,
            ),
            (
                "smartpay_notification_deliveries_total",
                "Notifications delivered to merchants (2xx).",
                &c.notifications_delivered,
            ),
            (
                "smartpay_notification_failed_attempts_total",
                "Notification delivery attempts that failed.",
                &c.notification_failures,
            ),
            (
                "smartpay_notifications_given_up_total",
                "Notifications given up after the retry horizon.",
                &c.notifications_given_up,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP smartpay_auth_failures_total Failed authentications by scheme.\n# TYPE smartpay_auth_failures_total counter\nsmartpay_auth_failures_total{{scheme=\"basic\"}} {}\nsmartpay_auth_failures_total{{scheme=\"bearer\"}} {}",
            c.auth_failures_basic.load(Ordering::Relaxed),
            c.auth_failures_bearer.load(Ordering::Relaxed)
        );
        if let Some(facade) = facade() {
            out.push_str(&facade.render());
        }
        out
    }
}
