//! Storage for SmartPay: the [`Store`] trait every caller uses, and its SQLite
//! implementation ([`SqliteStore`]).
//!
//! The trait speaks in domain records, never SQL, so a PostgreSQL implementation can follow
//! without touching callers. Every method that writes does all of its work in one
//! transaction: a status change and its history row, a checkout and its idempotency claims.

/// The payment columns both stores read for a payment (table alias `p`), in the order their
/// row readers (`sqlite/imp.rs` `read_payment_where`, `postgres/payments.rs` `payment_from`)
/// take them.
macro_rules! payment_columns {
    () => {
        "p.id, p.merchant_id, p.status, p.amount_minor, p.currency, p.description, p.partner_reference,
         p.customer_account_id, p.external_order_reference, p.custom_references, p.payment_method,
         p.reconciliation_reference_id, p.mit, p.created_at_ms, p.last_status_at_ms, p.expires_at_ms,
         p.identity_subject, p.provider, p.attempts, p.decline_code, p.challenge_url, p.review_reason,
         p.stored_option_reference, p.culture, p.new_option_reference"
    };
}

mod decide;
mod model;
mod postgres;
mod sqlite;
#[cfg(test)]
mod testing;

use std::future::Future;
use std::pin::Pin;

pub use model::*;
pub use postgres::PgStore;
pub use sqlite::{GroupCommits, SqliteOptions, SqliteStore};

/// Writes committed together in one SQLite group commit (histogram).
pub const BATCH_SIZE: &str = "smartpay_store_batch_size";
/// Duration of each SQLite group commit, in seconds (histogram).
pub const COMMIT_SECONDS: &str = "smartpay_store_commit_seconds";
/// Calls run by one PostgreSQL statement, by `statement` (`insert_checkouts`,
/// `read_payments`; histogram; `postgres/batch.rs`).
pub const PG_BATCH_SIZE: &str = "smartpay_store_pg_batch_size";
/// PostgreSQL pool connections by state: `open` (idle and busy) and `idle` (gauge).
pub const POOL_CONNECTIONS: &str = "smartpay_store_pool_connections";
/// Requests waiting for a PostgreSQL pool connection (gauge).
pub const POOL_WAITING: &str = "smartpay_store_pool_waiting";
/// Store operations that failed because the database could not be reached or written, by
/// backend (counter).
pub const UNAVAILABLE: &str = "smartpay_store_unavailable_total";

/// The store's statistics go through the `metrics` facade, not through the [`Store`] trait:
/// the backends record what they have (SQLite its group commits, PostgreSQL its pool) and
/// whichever recorder the process installed renders them. This gives them their help texts
/// (call it once, after installing the recorder); the buckets suit [`BATCH_SIZE`] when a
/// recorder asks for them.
pub fn describe_metrics() {
    metrics::describe_histogram!(BATCH_SIZE, "Writes committed together in one SQLite group commit.");
    metrics::describe_histogram!(COMMIT_SECONDS, metrics::Unit::Seconds, "Duration of each SQLite group commit.");
    metrics::describe_histogram!(
        PG_BATCH_SIZE,
        "Calls run together by one PostgreSQL statement, by statement (insert_checkouts, read_payments)."
    );
    metrics::describe_gauge!(POOL_CONNECTIONS, "PostgreSQL pool connections, by state (open, idle).");
    metrics::describe_gauge!(POOL_WAITING, "Requests waiting for a PostgreSQL pool connection.");
    metrics::describe_counter!(
        UNAVAILABLE,
        "Store operations refused because the database was unreachable or unwritable."
    );
}

/// Bucket bounds for [`BATCH_SIZE`].
pub const BATCH_SIZE_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

use smartpay_domain::Millis;

/// A boxed future, so the trait can be used as `Arc<dyn Store>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written right now (disk full, I/O error, locked).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The named record does not exist.
    #[error("not found")]
    NotFound,
    /// Anything else: a bug or a corrupt database.
    #[error("store failure: {0}")]
    Internal(String),
}

/// Everything SmartPay keeps.
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store can serve reads and writes.
    fn ping(&self) -> StoreFuture<'_, ()>;

    // --- merchants and credentials (operator commands, authentication) ---
    fn create_merchant(&self, merchant: Merchant) -> StoreFuture<'_, ()>;
    fn merchant(&self, id: &str) -> StoreFuture<'_, Option<Merchant>>;
    fn merchants(&self) -> StoreFuture<'_, Vec<Merchant>>;
    fn set_merchant_status(&self, id: &str, status: MerchantStatus) -> StoreFuture<'_, ()>;
    /// Sets (or clears) the JWK Set that verifies a merchant's `X-Access-Token`s.
    fn set_identity_jwks(&self, id: &str, jwks: Option<String>) -> StoreFuture<'_, ()>;
    /// A merchant's identity issuer settings; `None` when there is no such merchant.
    fn identity_issuer(&self, id: &str) -> StoreFuture<'_, Option<IdentityIssuer>>;
    /// Replaces all of a merchant's identity issuer settings at once.
    fn set_identity_issuer(&self, id: &str, issuer: IdentityIssuer) -> StoreFuture<'_, ()>;
    fn add_credential(&self, credential: Credential) -> StoreFuture<'_, ()>;
    /// Revokes a credential; `NotFound` when there is no such unrevoked credential.
    fn revoke_credential(&self, id: &str, at: Millis) -> StoreFuture<'_, ()>;
    fn credentials(&self, merchant_id: &str) -> StoreFuture<'_, Vec<Credential>>;
    /// The unrevoked Basic credentials of an active merchant.
    fn active_basic_credentials(&self, merchant_id: &str) -> StoreFuture<'_, Vec<Credential>>;
    /// An unrevoked OAuth client of an active merchant.
    fn active_oauth_client(&self, client_id: &str) -> StoreFuture<'_, Option<Credential>>;
    /// Bumped by every change to merchants, credentials and signing keys.
    fn auth_epoch(&self) -> StoreFuture<'_, i64>;

    // --- token-signing keys ---
    /// Adds a key that signs from now on; every other active key is retired at `key.created_at`.
    fn rotate_signing_key(&self, key: SigningKey) -> StoreFuture<'_, ()>;
    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKey>>;
    /// Deletes keys retired before `before`.
    fn delete_retired_signing_keys(&self, before: Millis) -> StoreFuture<'_, u64>;

    // --- payments ---
    /// Stores a checkout, its first history row and its idempotency claims, or answers the
    /// replay or conflict an existing claim calls for. Atomic.
    fn create_checkout(&self, checkout: NewCheckout) -> StoreFuture<'_, CreateOutcome>;
    /// A merchant's payment with its status history; another merchant's is `None`.
    fn payment(&self, merchant_id: &str, id: &str) -> StoreFuture<'_, Option<Payment>>;
    /// The checkout a checkout token's digest belongs to, with its merchant.
    fn payment_by_token(&self, token_digest: &[u8]) -> StoreFuture<'_, Option<Payment>>;
    /// Counts one card submission; `None` when `max` submissions were already made.
    fn count_attempt(&self, payment_id: &str, max: u32) -> StoreFuture<'_, Option<u32>>;
    /// Applies `events`, in order, to a payment that is in status `from`: each new status is the
    /// one `smartpay_domain::status::transition` decides, and every status change gets a history
    /// row; all of it, with `update`, in one transaction. `None` when the payment was no longer
    /// in `from` (someone else moved it first), or when `update.attempt_cap` was reached: nothing
    /// is written then. An event the model forbids is an error and writes nothing. With no
    /// events, only `update`'s facts are written and `lastStatusDate` stays.
    fn apply_events(
        &self,
        payment_id: &str,
        from: smartpay_domain::PaymentStatus,
        events: Vec<smartpay_domain::Event>,
        at: Millis,
        update: PaymentUpdate,
    ) -> StoreFuture<'_, Option<smartpay_domain::PaymentStatus>>;
    /// [`Store::apply_events`] with one event.
    fn apply_event(
        &self,
        payment_id: &str,
        from: smartpay_domain::PaymentStatus,
        event: smartpay_domain::Event,
        at: Millis,
        update: PaymentUpdate,
    ) -> StoreFuture<'_, Option<smartpay_domain::PaymentStatus>> {
        self.apply_events(payment_id, from, vec![event], at, update)
    }
    /// Records facts (provider reference, pending challenge) on a payment that is still in
    /// `status`, without changing it. `false` when it moved on meanwhile.
    fn record_facts(
        &self,
        payment_id: &str,
        status: smartpay_domain::PaymentStatus,
        update: PaymentUpdate,
    ) -> StoreFuture<'_, bool> {
        let done = self.apply_events(payment_id, status, Vec::new(), Millis(0), update);
        Box::pin(async move { Ok(done.await?.is_some()) })
    }
    // --- modifications (captures, refunds, cancellations, settlements, chargebacks) ---
    /// Opens a modification: checks the `modificationId` (replay, conflict), the payment, the
    /// currency and the money rules, then writes the modification and the payment's status
    /// change — all in one transaction, so concurrent requests cannot both pass the checks.
    fn begin_modification(&self, m: NewModification) -> StoreFuture<'_, BeginOutcome>;
    /// Records the provider's answer on a pending modification, and the payment status change
    /// it leads to (`smartpay_domain::modification::on_outcome`), and schedules `schedule`.
    /// `None` when the modification was no longer pending (answered before): nothing is written.
    fn finish_modification(&self, pk: &str, answer: ModificationAnswer) -> StoreFuture<'_, Option<Payment>>;
    /// Records the provider's reference of a modification that is still pending (what the
    /// pending-resolution work polls with, besides the idempotency key: the modification's id).
    fn note_modification_reference(&self, pk: &str, reference: &str) -> StoreFuture<'_, ()>;
    /// Keeps the first answer to a modification request, for replays of its `modificationId`.
    fn save_modification_response(&self, pk: &str, response: Vec<u8>) -> StoreFuture<'_, ()>;
    /// Sets a merchant's capture mode, capture delay and automatic cancellation.
    fn set_capture_policy(
        &self,
        id: &str,
        mode: smartpay_domain::modification::CaptureMode,
        delay_seconds: Option<u64>,
        auto_cancel_seconds: Option<u64>,
    ) -> StoreFuture<'_, ()>;

    // --- scheduled jobs and pending resolution ---
    /// Leases up to `limit` jobs due at `now` for `lease_ms` (a crashed worker's jobs come back
    /// when the lease ends) and counts an attempt on each. No two claims overlap: a job leased
    /// to one worker is invisible to every other until its lease ends (on PostgreSQL, by
    /// `FOR UPDATE SKIP LOCKED`).
    fn claim_due_jobs(&self, now: Millis, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Job>>;
    /// Deletes a job this claim (`lease_token`) still holds; `false` when the lease was lost
    /// (another worker took the job over): nothing is changed then.
    fn complete_job(&self, id: i64, lease_token: &str) -> StoreFuture<'_, bool>;
    /// Runs the job again at `due_at` (at once if it was nudged while leased), keeping
    /// `last_error` for operators; `false` when the lease was lost.
    fn retry_job(
        &self,
        id: i64,
        lease_token: &str,
        due_at: Millis,
        last_error: Option<String>,
    ) -> StoreFuture<'_, bool>;
    /// Brings a payment's pending-resolution jobs forward to `at` (a provider's notification
    /// or the shopper's return says something changed). `false` when it has none.
    fn poll_soon(&self, payment_id: &str, at: Millis) -> StoreFuture<'_, bool>;
    /// Marks a payment for an operator's review with `reason` (the provider contradicted it).
    fn flag_payment(&self, payment_id: &str, reason: &str) -> StoreFuture<'_, ()>;
    /// The queued jobs of `kinds`, oldest first.
    fn jobs(&self, kinds: &[JobKind], limit: u32) -> StoreFuture<'_, Vec<JobView>>;
    /// Payments flagged for review: (merchant, transactionId, reason).
    fn flagged_payments(&self, limit: u32) -> StoreFuture<'_, Vec<(String, String, String)>>;
    /// Queue depth, due jobs and the oldest job per kind.
    fn job_stats(&self, now: Millis) -> StoreFuture<'_, Vec<JobStat>>;
    /// The payment a provider reference belongs to: (merchant, transactionId).
    fn payment_by_provider_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StoreFuture<'_, Option<(String, String)>>;
    /// Records an inbound provider notification's id; `false` when it was seen before.
    fn record_provider_notice(&self, provider: &str, event_id: &str, at: Millis) -> StoreFuture<'_, bool>;

    // --- notifications to merchants (the outbox is written by the status changes themselves) ---
    fn notification_settings(&self, merchant_id: &str) -> StoreFuture<'_, Option<NotificationSettings>>;
    /// Sets or (with `None`) removes a merchant's notification endpoint. `NotFound` without
    /// such a merchant.
    fn set_notification_settings(
        &self,
        merchant_id: &str,
        settings: Option<NotificationSettings>,
    ) -> StoreFuture<'_, ()>;
    /// Adds a signing secret; every older secret of the merchant that is still active expires
    /// at `retire_others_at` (now, or later to let receivers switch).
    fn add_notification_secret(&self, secret: NotificationSecret, retire_others_at: Millis) -> StoreFuture<'_, ()>;
    /// A merchant's secrets still active at `now`, newest first.
    fn notification_secrets(&self, merchant_id: &str, now: Millis) -> StoreFuture<'_, Vec<NotificationSecret>>;
    /// Leases up to `limit` notifications due at `now` for `lease_ms`.
    fn claim_notifications(&self, now: Millis, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Notification>>;
    /// Records one attempt and what follows it, atomically, if this claim (`lease_token`) still
    /// holds the notification; `false` otherwise (nothing written).
    fn record_delivery_attempt(
        &self,
        id: &str,
        lease_token: &str,
        attempt: DeliveryAttempt,
        result: AttemptResult,
    ) -> StoreFuture<'_, bool>;
    /// Notifications newest first, optionally of one merchant, one payment and one state.
    fn notifications(&self, filter: NotificationFilter) -> StoreFuture<'_, Vec<Notification>>;
    /// One notification and its attempts; `merchant_id` restricts it to that merchant's.
    fn notification(
        &self,
        id: &str,
        merchant_id: Option<&str>,
    ) -> StoreFuture<'_, Option<(Notification, Vec<DeliveryAttempt>)>>;
    /// Queues a notification again from `at` (its retry horizon restarts). `false` when there
    /// is no such notification (of that merchant).
    fn redeliver_notification(&self, id: &str, merchant_id: Option<&str>, at: Millis) -> StoreFuture<'_, bool>;

    /// `(merchant, transactionId)` of payments after `after` in id order, for the verifier.
    fn payment_keys_after(&self, after: &str, limit: u32) -> StoreFuture<'_, Vec<(String, String)>>;

    /// Origins allowed to embed a merchant's widget.
    fn origins(&self, merchant_id: &str) -> StoreFuture<'_, Vec<String>>;
    fn add_origin(&self, merchant_id: &str, origin: &str, at: Millis) -> StoreFuture<'_, ()>;
    /// `NotFound` when the origin was not registered.
    fn remove_origin(&self, merchant_id: &str, origin: &str) -> StoreFuture<'_, ()>;
    /// Moves up to `limit` checkouts whose lifetime ended at `now` to `EXPIRED`.
    fn expire_due(&self, now: Millis, limit: u32) -> StoreFuture<'_, Vec<Expired>>;
    /// Deletes idempotency records that expired before `now`.
    fn prune_idempotency(&self, now: Millis) -> StoreFuture<'_, u64>;

    // --- the vault (accounts and stored payment options; secrets arrive sealed) ---
    fn account(&self, merchant_id: &str, account_id: &str) -> StoreFuture<'_, Option<Account>>;
    /// Replaces an account's billing address and consumer (canonical JSON). `NotFound` when the
    /// account does not exist.
    fn update_account(
        &self,
        merchant_id: &str,
        account_id: &str,
        billing_address: String,
        consumer: Option<String>,
        at: Millis,
    ) -> StoreFuture<'_, ()>;
    /// An account's options, oldest first.
    fn payment_options(&self, merchant_id: &str, account_id: &str) -> StoreFuture<'_, Vec<StoredOption>>;
    fn payment_option(
        &self,
        merchant_id: &str,
        account_id: &str,
        reference: &str,
    ) -> StoreFuture<'_, Option<StoredOption>>;
    /// Stores an option; the account's first becomes its default. A card already stored under
    /// the account (same fingerprint) is not stored twice.
    fn add_payment_option(&self, option: StoredOption) -> StoreFuture<'_, AddOption>;
    /// Deletes an option; when it was the default, the oldest remaining one becomes the default.
    /// `false` when there is no such option.
    fn delete_payment_option(&self, merchant_id: &str, account_id: &str, reference: &str) -> StoreFuture<'_, bool>;
    /// Makes an option the account's only default; `false` when there is no such option.
    fn set_default_option(&self, merchant_id: &str, account_id: &str, reference: &str) -> StoreFuture<'_, bool>;
    /// The key versions the vault has seen.
    fn vault_keys(&self) -> StoreFuture<'_, Vec<VaultKey>>;
    /// Records a key version (no change when it is known).
    fn add_vault_key(&self, key: VaultKey) -> StoreFuture<'_, ()>;
    fn retire_vault_key(&self, kek_id: &str, at: Millis) -> StoreFuture<'_, ()>;
    /// How many options are sealed under each key version.
    fn options_per_key(&self) -> StoreFuture<'_, Vec<(String, u64)>>;
    /// Options after `after` in reference order, optionally only those under `kek_id`.
    fn options_after(&self, kek_id: Option<&str>, after: &str, limit: u32) -> StoreFuture<'_, Vec<StoredOption>>;
    /// Applies rotation steps and moves the rotation's cursor, in one transaction. Returns how
    /// many options were changed (an option deleted or changed meanwhile is skipped).
    fn reseal_options(&self, rotation_id: i64, steps: Vec<Reseal>, cursor: String) -> StoreFuture<'_, u64>;
    /// The unfinished rotation, if any.
    fn open_rotation(&self) -> StoreFuture<'_, Option<Rotation>>;
    /// Starts a rotation; `Conflict` while another is unfinished.
    fn start_rotation(&self, kind: RotationKind, from_kek: &str, to_kek: &str, at: Millis)
    -> StoreFuture<'_, Rotation>;
    fn finish_rotation(&self, id: i64, at: Millis) -> StoreFuture<'_, ()>;
}
