//! Pending resolution (CONTRACT §11): nothing stays pending because nobody asked.
//!
//! Every authorization that reaches AUTHORIZATION_PENDING, and every capture, refund or
//! cancellation opened, gets a `RESOLVE_*` job in the same transaction; a final answer deletes
//! it in the transaction that records the answer. A job that is still there when due polls the
//! provider: by the provider's reference, or — when the answer to the authorization request
//! itself was lost (timeout, crash) — by its idempotency key, the transactionId. Polls back off
//! exponentially with jitter, each provider is polled at most `provider_polls_per_second` per
//! node, and past its deadline the payment or modification is recorded as failed with the
//! reason. A provider that reports another amount or currency than the payment's is not
//! believed: the payment is flagged for an operator and left as it is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use smartpay_domain::{Event, Millis, PaymentStatus};
use smartpay_providers::{Lookup, ProviderStatus};
use smartpay_store::{EventOrigin, Job, JobKind, Payment, PaymentUpdate};

use crate::app::AppState;
use crate::error::ApiError;

/// What a resolution run leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Final, flagged, or no longer anybody's business: the job is over.
    Done,
    /// Ask again at this time; the reason is kept for operators.
    Again(Millis, String),
}

/// The failure codes pending resolution records.
pub const TIMEOUT: &str = "payment_provider_timeout";
pub const ABANDONED: &str = "payment_provider_authentication_abandoned";
pub const NOT_RECEIVED: &str = "payment_provider_no_authorization";

/// Per-provider poll ceiling: a token bucket on the state's clock.
#[derive(Default)]
pub struct PollLimiter {
    buckets: Mutex<HashMap<String, (f64, Millis)>>,
}

impl PollLimiter {
    /// Takes one poll of `provider`'s budget; `Err(wait_ms)` when there is none left now.
    pub fn take(&self, provider: &str, per_second: u32, now: Millis) -> Result<(), i64> {
        let rate = f64::from(per_second.max(1));
        let Ok(mut buckets) = self.buckets.lock() else { return Err(1000) };
        let (tokens, last) = buckets.entry(provider.to_owned()).or_insert((rate, now));
        let elapsed = (now.0 - last.0).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / rate) * 1000.0).ceil() as i64)
        }
    }
}

/// The delay before the next poll after `attempts` runs: doubling from the initial delay up to
/// the maximum, then a uniformly random point in its upper half (jitter, so that payments that
/// went pending together do not poll together).
pub fn backoff_ms(attempts: u32, initial_ms: u64, max_ms: u64) -> u64 {
    let doubled = initial_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
    let d = doubled.min(max_ms).max(1);
    let mut b = [0u8; 8];
    let r = if getrandom::getrandom(&mut b).is_ok() { u64::from_le_bytes(b) } else { 0 };
    d / 2 + r % (d - d / 2 + 1)
}

fn again(state: &AppState, job: &Job, why: impl Into<String>) -> Resolution {
    let c = &state.config;
    let wait = backoff_ms(job.attempts, c.pending_poll_initial_ms, c.pending_poll_max_ms);
    Resolution::Again(state.now().plus_millis(wait), why.into())
}

/// Runs one resolution job.
pub async fn run(state: &AppState, job: &Job) -> Result<Resolution, ApiError> {
    let Some(payment) = state.store.payment(&job.merchant_id, &job.payment_id).await? else {
        return Ok(Resolution::Done);
    };
    if payment.review_reason.is_some() {
        return Ok(Resolution::Done);
    }
    let provider = payment.provider.clone().unwrap_or_else(|| "sandbox".into());
    if let Err(wait) = state.poll_limiter.take(&provider, state.config.provider_polls_per_second, state.now()) {
        state.metrics.counters.polls_throttled.fetch_add(1, Ordering::Relaxed);
        return Ok(Resolution::Again(state.now().plus_millis(u64::try_from(wait).unwrap_or(1000)), "throttled".into()));
    }
    match job.kind {
        JobKind::ResolveAuthorization => authorization(state, job, payment).await,
        JobKind::ResolveModification => modification(state, job, payment).await,
        _ => Ok(Resolution::Done),
    }
}

fn past(state: &AppState, since: Millis, seconds: u64) -> bool {
    state.now().0.saturating_sub(since.0) >= i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

async fn authorization(state: &AppState, job: &Job, payment: Payment) -> Result<Resolution, ApiError> {
    if payment.status != PaymentStatus::AuthorizationPending {
        return Ok(Resolution::Done);
    }
    let counters = &state.metrics.counters;
    let expired = past(state, job.created_at, state.config.pending_deadline_seconds);
    let reference = payment.reconciliation_reference_id.clone();
    let provider = match crate::engine::provider_of(state, &payment) {
        Ok(p) => p,
        // The provider is not enabled (any more): nobody can answer, the deadline decides.
        Err(e) if expired => {
            tracing::warn!(transaction_id = %payment.id, error = %e, "no provider to ask at the deadline");
            return fail(state, &payment, TIMEOUT).await;
        }
        Err(e) => return Err(e),
    };
    let asked = match &reference {
        Some(r) => provider.status(r).await,
        None => provider.find(&payment.id).await,
    };
    let lookup = match asked {
        Ok(l) => l,
        // The provider refused the question (a key change, a bug): still no answer; the
        // deadline applies as to silence.
        Err(e) => {
            counters.polls_unanswered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(transaction_id = %payment.id, error = %e, "the provider refused a status question");
            if expired {
                return fail(state, &payment, TIMEOUT).await;
            }
            return Ok(again(state, job, "the provider refused the status question"));
        }
    };
    state.failpoint("resolution.answered");
    let found = match lookup {
        Lookup::Found(found) => found,
        Lookup::NotFound => {
            counters.polls_not_found.fetch_add(1, Ordering::Relaxed);
            // Never received: once no request can still be on its way, nothing will come.
            let settled = state.config.provider_timeout_ms.saturating_add(state.config.pending_first_poll_ms);
            let gone = reference.is_none() && past(state, job.created_at, settled.div_ceil(1000));
            if gone || expired {
                return fail(state, &payment, if gone { NOT_RECEIVED } else { TIMEOUT }).await;
            }
            return Ok(again(state, job, "not found at the provider"));
        }
        Lookup::Unknown => {
            counters.polls_unanswered.fetch_add(1, Ordering::Relaxed);
            if expired {
                return fail(state, &payment, TIMEOUT).await;
            }
            return Ok(again(state, job, "no answer from the provider"));
        }
    };
    if found.amount_minor != payment.amount_minor || !found.currency.eq_ignore_ascii_case(&payment.currency) {
        counters.polls_mismatched.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "the provider reports {} {} for a payment of {} {}",
            found.amount_minor, found.currency, payment.amount_minor, payment.currency
        );
        tracing::error!(transaction_id = %payment.id, provider = provider.name(), audit = true, %reason, "provider contradicts the payment: flagged for review, not advanced");
        state.store.flag_payment(&payment.id, &reason).await?;
        return Ok(Resolution::Done);
    }
    counters.polls_answered.fetch_add(1, Ordering::Relaxed);
    match found.status {
        // The shopper has not completed the challenge or approval page: its own, shorter deadline.
        ProviderStatus::ChallengePending if past(state, job.created_at, state.config.challenge_deadline_seconds) => {
            return fail(state, &payment, ABANDONED).await;
        }
        ProviderStatus::Pending if expired => return fail(state, &payment, TIMEOUT).await,
        ProviderStatus::Pending | ProviderStatus::ChallengePending => {
            if reference.is_none() {
                // Found by its key: keep the reference, so later polls ask by it.
                let facts =
                    PaymentUpdate { reconciliation_reference_id: Some(found.reference.clone()), ..Default::default() };
                state.store.record_facts(&payment.id, PaymentStatus::AuthorizationPending, facts).await?;
            }
            return Ok(again(state, job, "still pending at the provider"));
        }
        ProviderStatus::Authorized | ProviderStatus::Declined(_) => {}
    }
    let outcome = crate::engine::outcome_of(found.status, found.reference, payment.challenge_url.clone());
    crate::engine::record_authorization(state, &payment, outcome, EventOrigin::Automated).await?;
    counters.pending_resolved.fetch_add(1, Ordering::Relaxed);
    Ok(Resolution::Done)
}

/// Records a pending authorization as failed with `code`. Whatever the provider holds is
/// released first (best effort): a shopper who approves after the deadline must not leave a
/// hold on the card that nobody captures.
async fn fail(state: &AppState, payment: &Payment, code: &str) -> Result<Resolution, ApiError> {
    tracing::warn!(transaction_id = %payment.id, code, "pending authorization ended as failed");
    if let (Some(reference), Ok(provider)) =
        (payment.reconciliation_reference_id.clone(), crate::engine::provider_of(state, payment))
    {
        let release = smartpay_providers::ModifyRequest {
            reference,
            modification_id: format!("release-{}", payment.id),
            amount_minor: payment.amount_minor,
            currency: payment.currency.clone(),
        };
        if let Ok(smartpay_providers::ModifyOutcome::Succeeded { .. }) = provider.cancel(release).await {
            tracing::info!(transaction_id = %payment.id, "the provider's authorization was released at the deadline");
        }
    }
    crate::engine::forget_new_option(state, payment).await?;
    let update = PaymentUpdate {
        decline_code: Some(code.to_owned()),
        challenge_url: Some(None),
        reason: Some(code.to_owned()),
        origin: EventOrigin::Automated,
        ..Default::default()
    };
    let from = PaymentStatus::AuthorizationPending;
    state.store.apply_event(&payment.id, from, Event::AuthorizationFailed, state.now(), update).await?;
    state.metrics.counters.pending_expired.fetch_add(1, Ordering::Relaxed);
    Ok(Resolution::Done)
}

async fn modification(state: &AppState, job: &Job, payment: Payment) -> Result<Resolution, ApiError> {
    let Some(m) = payment.modifications.iter().find(|m| m.pk == job.target) else { return Ok(Resolution::Done) };
    if !m.status.is_pending() {
        return Ok(Resolution::Done);
    }
    let (merchant, id, pk, kind) = (payment.merchant_id.clone(), payment.id.clone(), m.pk.clone(), m.kind);
    // Always ask first: a modification the provider did make is never recorded as failed
    // because the deadline passed while nobody asked (a restart, a long outage).
    if crate::modify::resolve(state, &merchant, &id, &pk).await? {
        state.metrics.counters.pending_resolved.fetch_add(1, Ordering::Relaxed);
        return Ok(Resolution::Done);
    }
    if past(state, job.created_at, state.config.pending_deadline_seconds) {
        tracing::warn!(transaction_id = %id, modification = %pk, "pending modification ended as failed");
        if !crate::modify::give_up(state, &pk, kind, TIMEOUT).await? {
            // Another request of this process is driving it right now: look again soon.
            return Ok(again(state, job, "being driven by a request"));
        }
        state.metrics.counters.pending_expired.fetch_add(1, Ordering::Relaxed);
        return Ok(Resolution::Done);
    }
    Ok(again(state, job, "still pending at the provider"))
}

/// An inbound provider notification: verified, deduplicated, and only a reason to poll soon.
pub async fn on_provider_notice(
    state: &AppState,
    provider_name: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<NoticeAnswer, ApiError> {
    let Some(provider) = state.providers().get(provider_name) else { return Ok(NoticeAnswer::UnknownProvider) };
    let notice = match provider.verify_notification(signature, body) {
        Ok(n) => n,
        Err(e) => {
            state.metrics.counters.provider_notices_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(provider = provider_name, error = %e, "inbound provider notification refused");
            return Ok(NoticeAnswer::Refused(e));
        }
    };
    let now = state.now();
    if !state.store.record_provider_notice(provider_name, &notice.event_id, now).await? {
        return Ok(NoticeAnswer::Duplicate);
    }
    state.metrics.counters.provider_notices.fetch_add(1, Ordering::Relaxed);
    if let Some((_, payment_id)) = state.store.payment_by_provider_reference(provider_name, &notice.reference).await? {
        state.store.poll_soon(&payment_id, now).await?;
    }
    Ok(NoticeAnswer::Accepted)
}

/// How an inbound notification was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeAnswer {
    Accepted,
    Duplicate,
    Refused(smartpay_providers::NoticeError),
    UnknownProvider,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        for attempts in 1..40 {
            let d = (2000u64 << (attempts - 1).min(30)).min(300_000);
            for _ in 0..50 {
                let b = backoff_ms(attempts, 2000, 300_000);
                assert!(b >= d / 2 && b <= d, "attempt {attempts}: {b} outside [{}, {d}]", d / 2);
            }
        }
    }

    #[test]
    fn the_poll_ceiling_holds_per_provider_and_refills_with_time() {
        let l = PollLimiter::default();
        let t = Millis(1_000_000);
        for _ in 0..5 {
            assert!(l.take("payu", 5, t).is_ok());
        }
        let wait = l.take("payu", 5, t).unwrap_err();
        assert!(wait > 0 && wait <= 200, "{wait}");
        assert!(l.take("sandbox", 5, t).is_ok(), "another provider has its own budget");
        assert!(l.take("payu", 5, Millis(t.0 + 200)).is_ok(), "refilled after 1/rate seconds");
        assert!(l.take("payu", 5, Millis(t.0 + 200)).is_err());
    }
}
