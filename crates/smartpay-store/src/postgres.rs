//! PostgreSQL behind the [`crate::Store`] trait: one binary, several nodes on one database.
//!
//! tokio-postgres with a deadpool pool (docs/decisions/0007). Every write is one transaction, and
//! concurrency is made safe by the database, never by the process: unique constraints with
//! `INSERT … ON CONFLICT`, conditional `UPDATE … WHERE status = …` (which also locks the row, so
//! the history rows of one payment are numbered in order), row locks, and job claims with
//! `FOR UPDATE SKIP LOCKED`. Migrations are the same versions as SQLite's
//! (`migrations/postgres/`), applied under an advisory lock so nodes starting together do not
//! race. When the database is away, calls fail fast with `StoreError::Unavailable` (503 with
//! `Retry-After`), and the pool reconnects by itself when it is back.

mod auth;
mod batch;
mod batched;
mod jobs;
mod migrate;
mod modifications;
mod notifications;
mod outbox;
mod payments;
mod vault;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use smartpay_domain::{Millis, PaymentStatus};

use crate::*;

/// PostgreSQL behind the [`crate::Store`] trait.
pub struct PgStore {
    pool: Pool,
    /// Checkouts without claims or account, inserted in batches (`postgres/batched.rs`).
    checkouts: batch::Batcher<NewCheckout, ()>,
    /// Reads of one payment by id, in batches (`postgres/batched.rs`).
    reads: batch::Batcher<(String, String), Option<Payment>>,
}

/// How long a request waits for a pooled connection (or a new one) before the store reports
/// itself unavailable.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) with at most `max_connections`
    /// connections and applies pending migrations.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let config = connection_config(url)?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("database pool: {e}")))?;
        migrate::run(&pool).await?;
        let checkouts = batched::checkouts(pool.clone(), max_connections);
        let reads = batched::reads(pool.clone(), max_connections);
        Ok(PgStore { pool, checkouts, reads })
    }
}

/// The connection settings for `url`: a bounded connect time, the application name
/// `smartpay`, and no JIT. Every statement here is a short OLTP read or write of a few rows:
/// JIT compilation (on by default, for plans whose estimated cost passes `jit_above_cost`)
/// would only add milliseconds of compile time to them. Options given in the URL are kept.
fn connection_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| StoreError::Internal(format!("database_url: {e}")))?;
    config.connect_timeout(CONNECT_WAIT);
    // A connection whose peer vanished (half-open TCP) is noticed within about a minute instead
    // of the system's two hours; a batch on it gives up after its own timeout meanwhile.
    config.keepalives_idle(Duration::from_secs(30));
    config.application_name("smartpay");
    let options = match config.get_options() {
        Some(given) if !given.is_empty() => format!("{given} -c jit=off"),
        _ => "-c jit=off".to_owned(),
    };
    config.options(&options);
    Ok(config)
}

/// A database error as the store reports it: unique violations are conflicts; connection
/// trouble and serialization failures make the store unavailable (retry); the rest is internal.
pub(crate) fn map_err(e: tokio_postgres::Error) -> StoreError {
    let mapped = classify(&e);
    if matches!(mapped, StoreError::Unavailable(_)) {
        unavailable();
    }
    mapped
}

pub(crate) fn unavailable() {
    metrics::counter!(crate::UNAVAILABLE, "backend" => "postgres").increment(1);
}

fn classify(e: &tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(e.to_string()),
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreError::Unavailable(e.to_string())
        }
        Some(_) => StoreError::Internal(e.to_string()),
        // No SQLSTATE: the connection itself failed.
        None => StoreError::Unavailable(e.to_string()),
    }
}

/// A pooled connection, or `Unavailable` when none can be had in time.
/// The pool's state goes to the `metrics` facade at every checkout (crate::describe_metrics).
pub(crate) async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    let got = pool.get().await;
    let status = pool.status();
    metrics::gauge!(crate::POOL_CONNECTIONS, "state" => "open").set(status.size as f64);
    metrics::gauge!(crate::POOL_CONNECTIONS, "state" => "idle").set(status.available as f64);
    metrics::gauge!(crate::POOL_WAITING).set(status.waiting as f64);
    got.map_err(|e| {
        unavailable();
        StoreError::Unavailable(format!("database: {e}"))
    })
}

/// A status as stored.
pub(crate) fn status_from(s: &str) -> Result<PaymentStatus, StoreError> {
    crate::decide::payment_status(s)
}

impl Store for PgStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { auth::ping(&self.pool).await })
    }

    fn create_merchant(&self, merchant: Merchant) -> StoreFuture<'_, ()> {
        Box::pin(async move { auth::create_merchant(&self.pool, merchant).await })
    }

    fn merchant(&self, id: &str) -> StoreFuture<'_, Option<Merchant>> {
        let id = id.to_owned();
        Box::pin(async move { auth::merchant(&self.pool, &id).await })
    }

    fn merchants(&self) -> StoreFuture<'_, Vec<Merchant>> {
        Box::pin(async move { auth::merchants(&self.pool).await })
    }

    fn set_merchant_status(&self, id: &str, status: MerchantStatus) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        Box::pin(async move { auth::set_merchant_status(&self.pool, &id, status).await })
    }

    fn set_identity_jwks(&self, id: &str, jwks: Option<String>) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        Box::pin(async move { auth::set_identity_jwks(&self.pool, &id, jwks).await })
    }

    fn identity_issuer(&self, id: &str) -> StoreFuture<'_, Option<IdentityIssuer>> {
        let id = id.to_owned();
        Box::pin(async move { auth::identity_issuer(&self.pool, &id).await })
    }

    fn set_identity_issuer(&self, id: &str, issuer: IdentityIssuer) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        Box::pin(async move { auth::set_identity_issuer(&self.pool, &id, issuer).await })
    }

    fn add_credential(&self, credential: Credential) -> StoreFuture<'_, ()> {
        Box::pin(async move { auth::add_credential(&self.pool, credential).await })
    }

    fn revoke_credential(&self, id: &str, at: Millis) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        Box::pin(async move { auth::revoke_credential(&self.pool, &id, at).await })
    }

    fn credentials(&self, merchant_id: &str) -> StoreFuture<'_, Vec<Credential>> {
        let merchant_id = merchant_id.to_owned();
        Box::pin(async move { auth::credentials(&self.pool, &merchant_id).await })
    }

    fn active_basic_credentials(&self, merchant_id: &str) -> StoreFuture<'_, Vec<Credential>> {
        let merchant_id = merchant_id.to_owned();
        Box::pin(async move { auth::active_basic_credentials(&self.pool, &merchant_id).await })
    }

    fn active_oauth_client(&self, client_id: &str) -> StoreFuture<'_, Option<Credential>> {
        let client_id = client_id.to_owned();
        Box::pin(async move { auth::active_oauth_client(&self.pool, &client_id).await })
    }

    fn auth_epoch(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move { auth::auth_epoch(&self.pool).await })
    }

    fn rotate_signing_key(&self, key: SigningKey) -> StoreFuture<'_, ()> {
        Box::pin(async move { auth::rotate_signing_key(&self.pool, key).await })
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKey>> {
        Box::pin(async move { auth::signing_keys(&self.pool).await })
    }

    fn delete_retired_signing_keys(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(async move { auth::delete_retired_signing_keys(&self.pool, before).await })
    }

    fn create_checkout(&self, checkout: NewCheckout) -> StoreFuture<'_, CreateOutcome> {
        Box::pin(async move { payments::create_checkout(&self.pool, &self.checkouts, checkout).await })
    }

    fn payment(&self, merchant_id: &str, id: &str) -> StoreFuture<'_, Option<Payment>> {
        let merchant_id = merchant_id.to_owned();
        let id = id.to_owned();
        Box::pin(async move { self.reads.call((merchant_id, id)).await })
    }

    fn payment_by_token(&self, token_digest: &[u8]) -> StoreFuture<'_, Option<Payment>> {
        let token_digest = token_digest.to_vec();
        Box::pin(async move { payments::payment_by_token(&self.pool, &token_digest).await })
    }

    fn count_attempt(&self, payment_id: &str, max: u32) -> StoreFuture<'_, Option<u32>> {
        let payment_id = payment_id.to_owned();
        Box::pin(async move { payments::count_attempt(&self.pool, &payment_id, max).await })
    }

    fn apply_events(
        &self,
        payment_id: &str,
        from: smartpay_domain::PaymentStatus,
        events: Vec<smartpay_domain::Event>,
        at: Millis,
        update: PaymentUpdate,
    ) -> StoreFuture<'_, Option<smartpay_domain::PaymentStatus>> {
        let payment_id = payment_id.to_owned();
        Box::pin(async move { payments::apply_events(&self.pool, &payment_id, from, events, at, update).await })
    }

    fn begin_modification(&self, m: NewModification) -> StoreFuture<'_, BeginOutcome> {
        Box::pin(async move { modifications::begin_modification(&self.pool, m).await })
    }

    fn finish_modification(&self, pk: &str, answer: ModificationAnswer) -> StoreFuture<'_, Option<Payment>> {
        let pk = pk.to_owned();
        Box::pin(async move { modifications::finish_modification(&self.pool, &pk, answer).await })
    }

    fn note_modification_reference(&self, pk: &str, reference: &str) -> StoreFuture<'_, ()> {
        let pk = pk.to_owned();
        let reference = reference.to_owned();
        Box::pin(async move { modifications::note_modification_reference(&self.pool, &pk, &reference).await })
    }

    fn save_modification_response(&self, pk: &str, response: Vec<u8>) -> StoreFuture<'_, ()> {
        let pk = pk.to_owned();
        Box::pin(async move { modifications::save_modification_response(&self.pool, &pk, response).await })
    }

    fn set_capture_policy(
        &self,
        id: &str,
        mode: smartpay_domain::modification::CaptureMode,
        delay_seconds: Option<u64>,
        auto_cancel_seconds: Option<u64>,
    ) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        Box::pin(
            async move { auth::set_capture_policy(&self.pool, &id, mode, delay_seconds, auto_cancel_seconds).await },
        )
    }

    fn claim_due_jobs(&self, now: Millis, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Job>> {
        Box::pin(async move { jobs::claim_due_jobs(&self.pool, now, lease_ms, limit).await })
    }

    fn complete_job(&self, id: i64, lease_token: &str) -> StoreFuture<'_, bool> {
        let lease_token = lease_token.to_owned();
        Box::pin(async move { jobs::complete_job(&self.pool, id, &lease_token).await })
    }

    fn retry_job(
        &self,
        id: i64,
        lease_token: &str,
        due_at: Millis,
        last_error: Option<String>,
    ) -> StoreFuture<'_, bool> {
        let lease_token = lease_token.to_owned();
        Box::pin(async move { jobs::retry_job(&self.pool, id, &lease_token, due_at, last_error).await })
    }

    fn poll_soon(&self, payment_id: &str, at: Millis) -> StoreFuture<'_, bool> {
        let payment_id = payment_id.to_owned();
        Box::pin(async move { jobs::poll_soon(&self.pool, &payment_id, at).await })
    }

    fn flag_payment(&self, payment_id: &str, reason: &str) -> StoreFuture<'_, ()> {
        let payment_id = payment_id.to_owned();
        let reason = reason.to_owned();
        Box::pin(async move { jobs::flag_payment(&self.pool, &payment_id, &reason).await })
    }

    fn jobs(&self, kinds: &[JobKind], limit: u32) -> StoreFuture<'_, Vec<JobView>> {
        let kinds = kinds.to_vec();
        Box::pin(async move { jobs::jobs(&self.pool, &kinds, limit).await })
    }

    fn flagged_payments(&self, limit: u32) -> StoreFuture<'_, Vec<(String, String, String)>> {
        Box::pin(async move { jobs::flagged_payments(&self.pool, limit).await })
    }

    fn job_stats(&self, now: Millis) -> StoreFuture<'_, Vec<JobStat>> {
        Box::pin(async move { jobs::job_stats(&self.pool, now).await })
    }

    fn payment_by_provider_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StoreFuture<'_, Option<(String, String)>> {
        let provider = provider.to_owned();
        let reference = reference.to_owned();
        Box::pin(async move { jobs::payment_by_provider_reference(&self.pool, &provider, &reference).await })
    }

    fn record_provider_notice(&self, provider: &str, event_id: &str, at: Millis) -> StoreFuture<'_, bool> {
        let provider = provider.to_owned();
        let event_id = event_id.to_owned();
        Box::pin(async move { jobs::record_provider_notice(&self.pool, &provider, &event_id, at).await })
    }

    fn notification_settings(&self, merchant_id: &str) -> StoreFuture<'_, Option<NotificationSettings>> {
        let merchant_id = merchant_id.to_owned();
        Box::pin(async move { notifications::notification_settings(&self.pool, &merchant_id).await })
    }

    fn set_notification_settings(
        &self,
        merchant_id: &str,
        settings: Option<NotificationSettings>,
    ) -> StoreFuture<'_, ()> {
        let merchant_id = merchant_id.to_owned();
        Box::pin(async move { notifications::set_notification_settings(&self.pool, &merchant_id, settings).await })
    }

    fn add_notification_secret(&self, secret: NotificationSecret, retire_others_at: Millis) -> StoreFuture<'_, ()> {
        Box::pin(async move { notifications::add_notification_secret(&self.pool, secret, retire_others_at).await })
    }

    fn notification_secrets(&self, merchant_id: &str, now: Millis) -> StoreFuture<'_, Vec<NotificationSecret>> {
        let merchant_id = merchant_id.to_owned();
        Box::pin(async move { notifications::notification_secrets(&self.pool, &merchant_id, now).await })
    }

    fn claim_notifications(&self, now: Millis, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Notification>> {
        Box::pin(async move { notifications::claim_notifications(&self.pool, now, lease_ms, limit).await })
    }

    fn record_delivery_attempt(
        &self,
        id: &str,
        lease_token: &str,
        attempt: DeliveryAttempt,
        result: AttemptResult,
    ) -> StoreFuture<'_, bool> {
        let id = id.to_owned();
        let lease_token = lease_token.to_owned();
        Box::pin(
            async move { notifications::record_delivery_attempt(&self.pool, &id, &lease_token, attempt, result).await },
        )
    }

    fn notifications(&self, filter: NotificationFilter) -> StoreFuture<'_, Vec<Notification>> {
        Box::pin(async move { notifications::notifications(&self.pool, filter).await })
    }

    fn notification(
        &self,
        id: &str,
        merchant_id: Option<&str>,
    ) -> StoreFuture<'_, Option<(Notification, Vec<DeliveryAttempt>)>> {
        let id = id.to_owned();
        let merchant_id = merchant_id.map(str::to_owned);
        Box::pin(async move { notifications::notification(&self.pool, &id, merchant_id.as_deref()).await })
    }

    fn redeliver_notification(&self, id: &str, merchant_id: Option<&str>, at: Millis) -> StoreFuture<'_, bool> {
        let id = id.to_owned();
        let merchant_id = merchant_id.map(str::to_owned);
        Box::pin(
            async move { notifications::redeliver_notification(&self.pool, &id, merchant_id.as_deref(), at).await },
        )
    }

    fn payment_keys_after(&self, after: &str, limit: u32) -> StoreFuture<'_, Vec<(String, String)>> {
        let after = after.to_owned();
        Box::pin(async move { payments::payment_keys_after(&self.pool, &after, limit).await })
    }

    fn origins(&self, merchant_id: &str) -> StoreFuture<'_, Vec<String>> {
        let merchant_id = merchant_id.to_owned();
        Box::pin(async move { auth::origins(&self.pool, &merchant_id).await })
    }

    fn add_origin(&self, merchant_id: &str, origin: &str, at: Millis) -> StoreFuture<'_, ()> {
        let merchant_id = merchant_id.to_owned();
        let origin = origin.to_owned();
        Box::pin(async move { auth::add_origin(&self.pool, &merchant_id, &origin, at).await })
    }

    fn remove_origin(&self, merchant_id: &str, origin: &str) -> StoreFuture<'_, ()> {
        let merchant_id = merchant_id.to_owned();
        let origin = origin.to_owned();
        Box::pin(async move { auth::remove_origin(&self.pool, &merchant_id, &origin).await })
    }

    fn expire_due(&self, now: Millis, limit: u32) -> StoreFuture<'_, Vec<Expired>> {
        Box::pin(async move { payments::expire_due(&self.pool, now, limit).await })
    }

    fn prune_idempotency(&self, now: Millis) -> StoreFuture<'_, u64> {
        Box::pin(async move { payments::prune_idempotency(&self.pool, now).await })
    }

    fn account(&self, merchant_id: &str, account_id: &str) -> StoreFuture<'_, Option<Account>> {
        let merchant_id = merchant_id.to_owned();
        let account_id = account_id.to_owned();
        Box::pin(async move { vault::account(&self.pool, &merchant_id, &account_id).await })
    }

    fn update_account(
        &self,
        merchant_id: &str,
        account_id: &str,
        billing_address: String,
        consumer: Option<String>,
        at: Millis,
    ) -> StoreFuture<'_, ()> {
        let merchant_id = merchant_id.to_owned();
        let account_id = account_id.to_owned();
        Box::pin(async move {
            vault::update_account(&self.pool, &merchant_id, &account_id, billing_address, consumer, at).await
        })
    }

    fn payment_options(&self, merchant_id: &str, account_id: &str) -> StoreFuture<'_, Vec<StoredOption>> {
        let merchant_id = merchant_id.to_owned();
        let account_id = account_id.to_owned();
        Box::pin(async move { vault::payment_options(&self.pool, &merchant_id, &account_id).await })
    }

    fn payment_option(
        &self,
        merchant_id: &str,
        account_id: &str,
        reference: &str,
    ) -> StoreFuture<'_, Option<StoredOption>> {
        let merchant_id = merchant_id.to_owned();
        let account_id = account_id.to_owned();
        let reference = reference.to_owned();
        Box::pin(async move { vault::payment_option(&self.pool, &merchant_id, &account_id, &reference).await })
    }

    fn add_payment_option(&self, option: StoredOption) -> StoreFuture<'_, AddOption> {
        Box::pin(async move { vault::add_payment_option(&self.pool, option).await })
    }

    fn delete_payment_option(&self, merchant_id: &str, account_id: &str, reference: &str) -> StoreFuture<'_, bool> {
        let merchant_id = merchant_id.to_owned();
        let account_id = account_id.to_owned();
        let reference = reference.to_owned();
        Box::pin(async move { vault::delete_payment_option(&self.pool, &merchant_id, &account_id, &reference).await })
    }

    fn set_default_option(&self, merchant_id: &str, account_id: &str, reference: &str) -> StoreFuture<'_, bool> {
        let merchant_id = merchant_id.to_owned();
        let account_id = account_id.to_owned();
        let reference = reference.to_owned();
        Box::pin(async move { vault::set_default_option(&self.pool, &merchant_id, &account_id, &reference).await })
    }

    fn vault_keys(&self) -> StoreFuture<'_, Vec<VaultKey>> {
        Box::pin(async move { vault::vault_keys(&self.pool).await })
    }

    fn add_vault_key(&self, key: VaultKey) -> StoreFuture<'_, ()> {
        Box::pin(async move { vault::add_vault_key(&self.pool, key).await })
    }

    fn retire_vault_key(&self, kek_id: &str, at: Millis) -> StoreFuture<'_, ()> {
        let kek_id = kek_id.to_owned();
        Box::pin(async move { vault::retire_vault_key(&self.pool, &kek_id, at).await })
    }

    fn options_per_key(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(async move { vault::options_per_key(&self.pool).await })
    }

    fn options_after(&self, kek_id: Option<&str>, after: &str, limit: u32) -> StoreFuture<'_, Vec<StoredOption>> {
        let kek_id = kek_id.map(str::to_owned);
        let after = after.to_owned();
        Box::pin(async move { vault::options_after(&self.pool, kek_id.as_deref(), &after, limit).await })
    }

    fn reseal_options(&self, rotation_id: i64, steps: Vec<Reseal>, cursor: String) -> StoreFuture<'_, u64> {
        Box::pin(async move { vault::reseal_options(&self.pool, rotation_id, steps, cursor).await })
    }

    fn open_rotation(&self) -> StoreFuture<'_, Option<Rotation>> {
        Box::pin(async move { vault::open_rotation(&self.pool).await })
    }

    fn start_rotation(
        &self,
        kind: RotationKind,
        from_kek: &str,
        to_kek: &str,
        at: Millis,
    ) -> StoreFuture<'_, Rotation> {
        let from_kek = from_kek.to_owned();
        let to_kek = to_kek.to_owned();
        Box::pin(async move { vault::start_rotation(&self.pool, kind, &from_kek, &to_kek, at).await })
    }

    fn finish_rotation(&self, id: i64, at: Millis) -> StoreFuture<'_, ()> {
        Box::pin(async move { vault::finish_rotation(&self.pool, id, at).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_run_without_jit_and_keep_the_urls_own_options() {
        let plain = connection_config("postgres://smartpay@db:5432/smartpay").unwrap();
        assert_eq!(plain.get_options(), Some("-c jit=off"));
        assert_eq!(plain.get_application_name(), Some("smartpay"));
        let given = connection_config("postgres://smartpay@db/smartpay?options=-c%20statement_timeout%3D5000").unwrap();
        assert_eq!(given.get_options(), Some("-c statement_timeout=5000 -c jit=off"));
        assert!(connection_config("mysql:/nope").is_err());
    }
}
