//! Background work: the expiry sweep (CREATED checkouts past their lifetime become EXPIRED),
//! pruning of expired idempotency records and retired signing keys, and the authentication
//! refresher. All of it is driven by the database, so it resumes after a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smartpay_domain::Millis;
use tokio::sync::watch;

use crate::app::AppState;

/// Checkouts expired per store transaction.
const EXPIRE_BATCH: u32 = 500;

pub fn spawn(state: Arc<AppState>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(sweep_loop(state.clone(), stop.clone())),
        tokio::spawn(job_loop(state.clone(), stop.clone())),
        tokio::spawn(notification_loop(state.clone(), stop.clone())),
        tokio::spawn(auth_refresh_loop(state, stop)),
    ]
}

/// Jobs claimed per pass, how long a claim holds before another worker may take the job, and
/// how many run at once.
/// Jobs claimed per pass and how many run at once. A claim holds its jobs long enough for the
/// whole batch to run at the worst provider latency (two rounds at the provider timeout, with
/// room to spare: [`job_lease_ms`]), and a lost lease cannot undo the work of the worker that
/// took the job over (lease tokens).
const JOB_BATCH: u32 = 16;
const JOB_CONCURRENCY: usize = 8;

/// How long a claim holds its jobs: four provider timeouts, at least 30 s, at most 5 min. A
/// crashed worker's jobs are taken over after this.
pub fn job_lease_ms(state: &AppState) -> i64 {
    let ms = state.config.provider_timeout_ms.saturating_mul(4).clamp(30_000, 300_000);
    i64::try_from(ms).unwrap_or(300_000)
}

/// One pass over the due jobs: delayed captures, automatic cancellations, sandbox settlements
/// and pending resolution (`crate::resolve`). A scheduled modification that fails runs again
/// later (backoff doubling from 1 s, at most 10 min); pending resolution sets its own schedule.
pub async fn run_jobs_once(state: &AppState) -> Result<usize, smartpay_store::StoreError> {
    use futures_util::StreamExt;
    let jobs = state.store.claim_due_jobs(state.now(), job_lease_ms(state), JOB_BATCH).await?;
    let n = jobs.len();
    let results: Vec<Result<(), smartpay_store::StoreError>> = futures_util::stream::iter(jobs)
        .map(|job| run_job(state, job))
        .buffer_unordered(JOB_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(n)
}

/// Runs one claimed job and records what follows: done, or again at a later time.
async fn run_job(state: &AppState, job: smartpay_store::Job) -> Result<(), smartpay_store::StoreError> {
    use smartpay_domain::modification::Request;
    use smartpay_store::{EventOrigin, JobKind, ModificationRequest};
    let (id, request) = match job.kind {
        JobKind::ResolveAuthorization | JobKind::ResolveModification => {
            return match crate::resolve::run(state, &job).await {
                Ok(crate::resolve::Resolution::Done) => done(state.store.complete_job(job.id, &job.lease_token).await),
                Ok(crate::resolve::Resolution::Again(at, why)) => {
                    done(state.store.retry_job(job.id, &job.lease_token, at, Some(why)).await)
                }
                Err(e) => {
                    tracing::warn!(job = job.kind.as_str(), transaction_id = %job.payment_id, error = %e, "pending resolution failed; will retry");
                    let c = &state.config;
                    let wait =
                        crate::resolve::backoff_ms(job.attempts, c.pending_poll_initial_ms, c.pending_poll_max_ms);
                    let at = state.now().plus_millis(wait);
                    done(state.store.retry_job(job.id, &job.lease_token, at, Some(error_code(&e))).await)
                }
            };
        }
        JobKind::DelayedCapture => {
            (format!("delayed-capture-{}", job.payment_id), ModificationRequest::Merchant(Request::Capture(None)))
        }
        JobKind::AutoCancel => {
            (format!("auto-cancel-{}", job.payment_id), ModificationRequest::Merchant(Request::Cancel))
        }
        JobKind::Settlement => (format!("settlement-{}", job.payment_id), ModificationRequest::Settlement),
    };
    let result =
        crate::modify::internal(state, &job.merchant_id, &job.payment_id, id, request, None, EventOrigin::Automated)
            .await;
    match result {
        // Done, or no longer applicable (captured before the auto-cancel, refunded before
        // settlement): either way the job is over.
        Ok(_) => done(state.store.complete_job(job.id, &job.lease_token).await),
        Err(e) => {
            let backoff = 1000u64.saturating_mul(1 << job.attempts.min(10)).min(600_000);
            tracing::warn!(job = job.kind.as_str(), transaction_id = %job.payment_id, error = %e, "job failed; will retry");
            let at = state.now().plus_millis(backoff);
            done(state.store.retry_job(job.id, &job.lease_token, at, Some(error_code(&e))).await)
        }
    }
}

/// A job's completion or retry whose lease was lost meanwhile changed nothing: the worker that
/// took the job over decides.
fn done(r: Result<bool, smartpay_store::StoreError>) -> Result<(), smartpay_store::StoreError> {
    if let Ok(false) = r {
        tracing::warn!("a job's lease ran out before it finished; its new holder decides");
    }
    r.map(|_| ())
}

/// A short, stable description of a job's failure for operators (never a provider's body).
fn error_code(e: &crate::error::ApiError) -> String {
    match e {
        crate::error::ApiError::Unavailable(_) => "store_unavailable".into(),
        crate::error::ApiError::Internal(m) => m.chars().take(200).collect(),
        other => other.to_string().chars().take(200).collect(),
    }
}

async fn job_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.config.sweep_interval_ms.max(10));
    loop {
        match run_jobs_once(&state).await {
            // A full batch: more may be due right away.
            Ok(n) if n == JOB_BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scheduled jobs failed; will retry"),
        }
        if sleep_or_stop(&mut stop, interval).await {
            return;
        }
    }
}

/// Delivers due notifications to merchants ([`crate::notifications::deliver_due`]).
async fn notification_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.config.sweep_interval_ms.max(10));
    loop {
        match crate::notifications::deliver_due(&state).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "notification delivery failed; will retry"),
        }
        if sleep_or_stop(&mut stop, interval).await {
            return;
        }
    }
}

async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// One pass of the sweep: expires every due checkout. Returns how many expired.
pub async fn sweep_once(state: &AppState, now: Millis) -> Result<usize, smartpay_store::StoreError> {
    let mut total = 0;
    loop {
        let expired = state.store.expire_due(now, EXPIRE_BATCH).await?;
        total += expired.len();
        for e in &expired {
            tracing::info!(transaction_id = %e.payment_id, "checkout expired");
        }
        if expired.len() < EXPIRE_BATCH as usize {
            break;
        }
    }
    state.metrics.counters.checkouts_expired.fetch_add(total as u64, Ordering::Relaxed);
    Ok(total)
}

async fn sweep_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.config.sweep_interval_ms.max(10));
    let mut last_prune = Millis(0);
    loop {
        let now = state.now();
        if let Err(e) = sweep_once(&state, now).await {
            tracing::warn!(error = %e, "expiry sweep failed; will retry");
        }
        if now.0 - last_prune.0 >= 60_000 {
            last_prune = now;
            match state.store.prune_idempotency(now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "pruned expired idempotency records"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "idempotency pruning failed"),
            }
            let grace = i64::try_from(state.config.token_ttl_seconds + state.config.token_leeway_seconds)
                .unwrap_or(i64::MAX / 2000);
            if let Err(e) = state.store.delete_retired_signing_keys(now.plus_seconds(-grace)).await {
                tracing::warn!(error = %e, "signing key cleanup failed");
            }
        }
        if sleep_or_stop(&mut stop, interval).await {
            return;
        }
    }
}

async fn auth_refresh_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.config.auth_refresh_ms.max(10));
    loop {
        if sleep_or_stop(&mut stop, interval).await {
            return;
        }
        match state.auth.refresh().await {
            Ok(true) => tracing::debug!("credentials or keys changed; caches refreshed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "authentication refresh failed"),
        }
    }
}
