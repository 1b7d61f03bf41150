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
    vec![tokio::spawn(sweep_loop(state.clone(), stop.clone())), tokio::spawn(auth_refresh_loop(state, stop))]
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
