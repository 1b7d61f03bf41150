//! The [`Store`] methods in SQL. Writes go through [`SqliteStore::write`] (group commit),
//! reads through [`SqliteStore::read`].

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};
use smartpay_domain::status::{Event, transition};
use smartpay_domain::{Millis, PaymentStatus};

use super::{SqliteStore, map_err};
use crate::decide::{ClaimCheck, StoredClaim, check_claim};
use crate::*;

/// `NotFound` when a write touched no row.
fn found(rows: usize) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Whether a write changes what authentication caches hold.
enum Epoch {
    Bump,
    Keep,
}

impl SqliteStore {
    /// One statement that must touch a row (else `NotFound`), bumping the auth epoch when it
    /// changes merchants, credentials or keys.
    fn write_one(&self, sql: &'static str, args: Vec<Value>, epoch: Epoch) -> StoreFuture<'_, ()> {
        boxed(self.write(move |c| {
            found(c.execute(sql, rusqlite::params_from_iter(args.iter())).map_err(map_err)?)?;
            match epoch {
                Epoch::Bump => bump_epoch(c),
                Epoch::Keep => Ok(()),
            }
        }))
    }
}

fn bump_epoch(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1", []).map_err(map_err)?;
    Ok(())
}

fn merchant_from(r: &Row<'_>) -> rusqlite::Result<Merchant> {
    let status: String = r.get(2)?;
    Ok(Merchant {
        id: r.get(0)?,
        name: r.get(1)?,
        status: if status == "ACTIVE" { MerchantStatus::Active } else { MerchantStatus::Disabled },
        capture_mode: smartpay_domain::modification::CaptureMode::parse(&r.get::<_, String>(3)?)
            .unwrap_or(smartpay_domain::modification::CaptureMode::Auto),
        created_at: Millis(r.get(4)?),
        identity_jwks: r.get(5)?,
        capture_delay_seconds: r.get::<_, Option<i64>>(6)?.and_then(|v| u64::try_from(v).ok()),
        auto_cancel_seconds: r.get::<_, Option<i64>>(7)?.and_then(|v| u64::try_from(v).ok()),
    })
}

const CREDENTIAL_COLUMNS: &str =
    "c.id, c.merchant_id, c.kind, c.client_id, c.secret_digest, c.label, c.created_at_ms, c.revoked_at_ms";

fn credential_from(r: &Row<'_>) -> rusqlite::Result<Credential> {
    let kind: String = r.get(2)?;
    Ok(Credential {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        kind: if kind == "BASIC" { CredentialKind::Basic } else { CredentialKind::OAuth },
        client_id: r.get(3)?,
        secret_digest: r.get(4)?,
        label: r.get(5)?,
        created_at: Millis(r.get(6)?),
        revoked_at: r.get::<_, Option<i64>>(7)?.map(Millis),
    })
}

fn signing_key_from(r: &Row<'_>) -> rusqlite::Result<SigningKey> {
    Ok(SigningKey {
        kid: r.get(0)?,
        alg: r.get(1)?,
        public_jwk: r.get(2)?,
        private_enc: r.get(3)?,
        created_at: Millis(r.get(4)?),
        retired_at: r.get::<_, Option<i64>>(5)?.map(Millis),
    })
}

pub(crate) fn status_from(s: &str) -> Result<PaymentStatus, StoreError> {
    crate::decide::payment_status(s)
}

fn boxed<'a, T: Send + 'a>(
    f: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a,
) -> StoreFuture<'a, T> {
    Box::pin(f)
}

fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(r))
}

/// Writes a status change, its history row and what it causes ([`super::outbox`]); the status
/// must come from `transition`.
pub(crate) fn record_status(
    conn: &Connection,
    payment_id: &str,
    from: PaymentStatus,
    to: PaymentStatus,
    at: Millis,
    reason: Option<&str>,
    origin: EventOrigin,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached("UPDATE payments SET status = ?1, last_status_at_ms = ?2 WHERE id = ?3 AND status = ?4")
        .and_then(|mut s| s.execute(params![to.as_str(), at.0, payment_id, from.as_str()]))
        .map_err(map_err)?;
    if changed == 0 {
        return Ok(false);
    }
    super::outbox::payment_changed(conn, payment_id, from, to, at, reason, origin)?;
    Ok(true)
}

/// An existing idempotency record: fingerprint, sealed response, payment id, expiry.
fn create_checkout_tx(conn: &Connection, c: &NewCheckout) -> Result<CreateOutcome, StoreError> {
    // An earlier claim on any of the keys decides the answer (crate::decide).
    for claim in &c.claims {
        let found = conn
            .prepare_cached(
                "SELECT fingerprint, response_enc, payment_id, expires_at_ms FROM idempotency_keys
                 WHERE merchant_id = ?1 AND scope = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![c.merchant_id, claim.scope.as_str(), claim.key], |r| {
                    Ok(StoredClaim {
                        fingerprint: r.get(0)?,
                        response_enc: r.get(1)?,
                        payment_id: r.get(2)?,
                        expires_at_ms: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(map_err)?;
        match check_claim(claim, found, c.created_at) {
            ClaimCheck::Free => {}
            ClaimCheck::Expired => {
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE merchant_id = ?1 AND scope = ?2 AND key = ?3",
                    params![c.merchant_id, claim.scope.as_str(), claim.key],
                )
                .map_err(map_err)?;
            }
            ClaimCheck::Decided(outcome) => return Ok(outcome),
        }
    }
    conn.prepare_cached(
        "INSERT INTO payments (id, merchant_id, status, amount_minor, currency, description, partner_reference,
            customer_account_id, external_order_reference, custom_references, culture, request_json, token_digest,
            identity_subject, created_at_ms, last_status_at_ms, expires_at_ms)
         VALUES (?1, ?2, 'CREATED', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15)",
    )
    .and_then(|mut s| {
        s.execute(params![
            c.id,
            c.merchant_id,
            c.amount_minor,
            c.currency,
            c.description,
            c.partner_reference,
            c.customer_account_id,
            c.external_order_reference,
            c.custom_references,
            c.culture,
            c.request_json,
            c.token_digest,
            c.identity_subject,
            c.created_at.0,
            c.expires_at.0
        ])
    })
    .map_err(map_err)?;
    if let Some(account) = &c.customer_account_id {
        // The first checkout that names an account creates its vault (CONTRACT §8).
        conn.prepare_cached(
            "INSERT INTO accounts (merchant_id, account_id, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (merchant_id, account_id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![c.merchant_id, account, c.created_at.0]))
        .map_err(map_err)?;
    }
    conn.prepare_cached(
        "INSERT INTO payment_status_history (payment_id, seq, status, at_ms) VALUES (?1, 1, 'CREATED', ?2)",
    )
    .and_then(|mut s| s.execute(params![c.id, c.created_at.0]))
    .map_err(map_err)?;
    for claim in &c.claims {
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (merchant_id, scope, key, route, fingerprint, payment_id, response_enc, created_at_ms, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.merchant_id,
                claim.scope.as_str(),
                claim.key,
                claim.route,
                claim.fingerprint,
                c.id,
                claim.response_enc,
                c.created_at.0,
                claim.expires_at.map(|m| m.0)
            ])
        })
        .map_err(map_err)?;
    }
    Ok(CreateOutcome::Created)
}

/// A payment with its status history in one statement: the payment's columns repeated on each
/// history row (a checkout has one to a few), in order, and whether it has modifications at all
/// — so the common read, a payment without any, is one statement (PostgreSQL's `payment_query`
/// does the same with arrays).
macro_rules! payment_query {
    ($condition:literal) => {
        concat!(
            "SELECT ",
            payment_columns!(),
            ", h.status, h.at_ms, h.reason,
                EXISTS (SELECT 1 FROM modifications m WHERE m.payment_id = p.id)
             FROM payments p LEFT JOIN payment_status_history h ON h.payment_id = p.id
             WHERE ",
            $condition,
            " ORDER BY h.seq"
        )
    };
}

pub(crate) fn read_payment(conn: &Connection, merchant_id: &str, id: &str) -> Result<Option<Payment>, StoreError> {
    read_payment_where(conn, payment_query!("p.id = ?1 AND p.merchant_id = ?2"), params![id, merchant_id])
}

/// The payment the query finds (see [`payment_query`]), with its history and modifications.
fn read_payment_where(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Option<Payment>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(args).map_err(map_err)?;
    let mut found: Option<(Payment, bool)> = None;
    while let Some(r) = rows.next().map_err(map_err)? {
        let (p, _) = match &mut found {
            Some(f) => f,
            None => {
                let row = |r: &Row<'_>| -> rusqlite::Result<(Payment, String, bool)> {
                    let payment = Payment {
                        id: r.get(0)?,
                        merchant_id: r.get(1)?,
                        status: PaymentStatus::Created,
                        amount_minor: r.get(3)?,
                        currency: r.get(4)?,
                        description: r.get(5)?,
                        partner_reference: r.get(6)?,
                        customer_account_id: r.get(7)?,
                        external_order_reference: r.get(8)?,
                        custom_references: r.get(9)?,
                        payment_method: r.get(10)?,
                        reconciliation_reference_id: r.get(11)?,
                        mit: r.get::<_, i64>(12)? != 0,
                        identity_subject: r.get(16)?,
                        provider: r.get(17)?,
                        attempts: r.get(18)?,
                        decline_code: r.get(19)?,
                        challenge_url: r.get(20)?,
                        review_reason: r.get(21)?,
                        stored_option_reference: r.get(22)?,
                        culture: r.get(23)?,
                        new_option_reference: r.get(24)?,
                        created_at: Millis(r.get(13)?),
                        last_status_at: Millis(r.get(14)?),
                        expires_at: Millis(r.get(15)?),
                        history: Vec::new(),
                        modifications: Vec::new(),
                    };
                    Ok((payment, r.get(2)?, r.get(28)?))
                };
                let (mut payment, status, has_modifications) = row(r).map_err(map_err)?;
                payment.status = status_from(&status)?;
                found.insert((payment, has_modifications))
            }
        };
        if let Some(status) = r.get::<_, Option<String>>(25).map_err(map_err)? {
            p.history.push(StatusChange {
                status: status_from(&status)?,
                at: Millis(r.get(26).map_err(map_err)?),
                reason: r.get(27).map_err(map_err)?,
            });
        }
    }
    drop(rows);
    let Some((mut p, has_modifications)) = found else { return Ok(None) };
    if has_modifications {
        p.modifications = super::modifications::read_modifications(conn, &p.id)?;
    }
    Ok(Some(p))
}

fn expire_tx(conn: &Connection, now: Millis, limit: u32) -> Result<Vec<Expired>, StoreError> {
    let due: Vec<(String, String, String)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, merchant_id, status FROM payments WHERE status = 'CREATED' AND expires_at_ms <= ?1
                 ORDER BY expires_at_ms LIMIT ?2",
            )
            .map_err(map_err)?;
        let rows = stmt.query_map(params![now.0, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    let mut expired = Vec::new();
    for (id, merchant_id, status) in due {
        let from = status_from(&status)?;
        let Ok(to) = transition(from, Event::Expired) else { continue };
        if record_status(conn, &id, from, to, now, Some("checkout lifetime ended"), EventOrigin::Automated)? {
            expired.push(Expired { payment_id: id, merchant_id });
        }
    }
    Ok(expired)
}

pub(crate) fn apply_events_tx(
    conn: &Connection,
    payment_id: &str,
    from: PaymentStatus,
    events: &[Event],
    at: Millis,
    u: &PaymentUpdate,
) -> Result<Option<PaymentStatus>, StoreError> {
    let path = crate::decide::path(from, events)?;
    let to = path.last().copied().unwrap_or(from);
    let changed = conn
        .prepare_cached(
            "UPDATE payments SET status = ?1, last_status_at_ms = CASE WHEN ?12 THEN last_status_at_ms ELSE ?2 END,
                provider = COALESCE(?3, provider),
                reconciliation_reference_id = COALESCE(?4, reconciliation_reference_id),
                payment_method = COALESCE(?5, payment_method),
                decline_code = COALESCE(?6, decline_code),
                challenge_url = CASE WHEN ?7 THEN ?8 ELSE challenge_url END,
                stored_option_reference = COALESCE(?13, stored_option_reference),
                new_option_reference = COALESCE(?14, new_option_reference),
                attempts = attempts + (?11 IS NOT NULL)
             WHERE id = ?9 AND status = ?10 AND (?11 IS NULL OR attempts < ?11)",
        )
        .and_then(|mut s| {
            s.execute(params![
                to.as_str(),
                at.0,
                u.provider,
                u.reconciliation_reference_id,
                u.payment_method,
                u.decline_code,
                u.challenge_url.is_some(),
                u.challenge_url.clone().flatten(),
                payment_id,
                from.as_str(),
                u.attempt_cap,
                events.is_empty(),
                u.stored_option_reference,
                u.new_option_reference
            ])
        })
        .map_err(map_err)?;
    if changed == 0 {
        return Ok(None);
    }
    // Self-transitions (e.g. a further capture on CAPTURED) change facts, not the status: they
    // get no history row.
    for (previous, status, reason) in crate::decide::changes(from, &path, u.reason.as_deref()) {
        super::outbox::payment_changed(conn, payment_id, previous, status, at, reason, u.origin)?;
    }
    super::jobs::schedule(conn, payment_id, &u.schedule, at)?;
    Ok(Some(to))
}

impl Store for SqliteStore {
    fn payment_by_token(&self, token_digest: &[u8]) -> StoreFuture<'_, Option<Payment>> {
        ready(self.read(|c| read_payment_where(c, payment_query!("p.token_digest = ?1"), params![token_digest])))
    }

    fn count_attempt(&self, payment_id: &str, max: u32) -> StoreFuture<'_, Option<u32>> {
        let id = payment_id.to_owned();
        boxed(self.write(move |c| {
            c.prepare_cached(
                "UPDATE payments SET attempts = attempts + 1 WHERE id = ?1 AND attempts < ?2 RETURNING attempts",
            )
            .and_then(|mut s| s.query_row(params![id, max], |r| r.get(0)).optional())
            .map_err(map_err)
        }))
    }

    fn apply_events(
        &self,
        payment_id: &str,
        from: PaymentStatus,
        events: Vec<Event>,
        at: Millis,
        update: PaymentUpdate,
    ) -> StoreFuture<'_, Option<PaymentStatus>> {
        let id = payment_id.to_owned();
        boxed(self.write(move |c| apply_events_tx(c, &id, from, &events, at, &update)))
    }

    fn origins(&self, merchant_id: &str) -> StoreFuture<'_, Vec<String>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT origin FROM merchant_origins WHERE merchant_id = ?1 ORDER BY origin")
                .map_err(map_err)?;
            let rows = s.query_map([merchant_id], |r| r.get(0)).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn add_origin(&self, merchant_id: &str, origin: &str, at: Millis) -> StoreFuture<'_, ()> {
        let (m, o) = (merchant_id.to_owned(), origin.to_owned());
        boxed(self.write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO merchant_origins (merchant_id, origin, created_at_ms) VALUES (?1, ?2, ?3)",
                params![m, o, at.0],
            )
            .map_err(map_err)?;
            bump_epoch(c)
        }))
    }

    fn remove_origin(&self, merchant_id: &str, origin: &str) -> StoreFuture<'_, ()> {
        let args = vec![Value::from(merchant_id.to_owned()), Value::from(origin.to_owned())];
        self.write_one("DELETE FROM merchant_origins WHERE merchant_id = ?1 AND origin = ?2", args, Epoch::Bump)
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        let r = self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err));
        match r {
            Err(e) => ready(Err(e)),
            Ok(()) => boxed(self.write(|c| c.execute_batch("SELECT 1").map_err(map_err))),
        }
    }

    fn create_merchant(&self, m: Merchant) -> StoreFuture<'_, ()> {
        boxed(self.write(move |c| {
            c.execute(
                "INSERT INTO merchants (id, name, status, capture_mode, created_at_ms, identity_jwks,
                     capture_delay_seconds, auto_cancel_seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    m.id,
                    m.name,
                    if m.status == MerchantStatus::Active { "ACTIVE" } else { "DISABLED" },
                    m.capture_mode.as_str(),
                    m.created_at.0,
                    m.identity_jwks,
                    m.capture_delay_seconds.and_then(|v| i64::try_from(v).ok()),
                    m.auto_cancel_seconds.and_then(|v| i64::try_from(v).ok())
                ],
            )
            .map_err(map_err)?;
            bump_epoch(c)
        }))
    }

    fn merchant(&self, id: &str) -> StoreFuture<'_, Option<Merchant>> {
        ready(self.read(|c| {
            c.query_row(
                "SELECT id, name, status, capture_mode, created_at_ms, identity_jwks, capture_delay_seconds,
                    auto_cancel_seconds FROM merchants WHERE id = ?1",
                [id],
                merchant_from,
            )
            .optional()
            .map_err(map_err)
        }))
    }

    fn merchants(&self) -> StoreFuture<'_, Vec<Merchant>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare(
                    "SELECT id, name, status, capture_mode, created_at_ms, identity_jwks, capture_delay_seconds,
                        auto_cancel_seconds FROM merchants ORDER BY created_at_ms, id",
                )
                .map_err(map_err)?;
            let rows = s.query_map([], merchant_from).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn set_merchant_status(&self, id: &str, status: MerchantStatus) -> StoreFuture<'_, ()> {
        let status = if status == MerchantStatus::Active { "ACTIVE" } else { "DISABLED" };
        let args = vec![Value::from(status.to_owned()), Value::from(id.to_owned())];
        self.write_one("UPDATE merchants SET status = ?1 WHERE id = ?2", args, Epoch::Bump)
    }

    fn set_capture_policy(
        &self,
        id: &str,
        mode: smartpay_domain::modification::CaptureMode,
        delay_seconds: Option<u64>,
        auto_cancel_seconds: Option<u64>,
    ) -> StoreFuture<'_, ()> {
        let secs = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok()).map_or(Value::Null, Value::from);
        let args = vec![
            Value::from(mode.as_str().to_owned()),
            secs(delay_seconds),
            secs(auto_cancel_seconds),
            Value::from(id.to_owned()),
        ];
        self.write_one(
            "UPDATE merchants SET capture_mode = ?1, capture_delay_seconds = ?2, auto_cancel_seconds = ?3 WHERE id = ?4",
            args,
            Epoch::Keep,
        )
    }

    fn begin_modification(&self, m: NewModification) -> StoreFuture<'_, BeginOutcome> {
        boxed(self.write(move |c| super::modifications::begin_tx(c, &m)))
    }

    fn finish_modification(&self, pk: &str, answer: ModificationAnswer) -> StoreFuture<'_, Option<Payment>> {
        let pk = pk.to_owned();
        boxed(self.write(move |c| super::modifications::finish_tx(c, &pk, &answer)))
    }

    fn note_modification_reference(&self, pk: &str, reference: &str) -> StoreFuture<'_, ()> {
        let args = vec![Value::from(reference.to_owned()), Value::from(pk.to_owned())];
        self.write_one("UPDATE modifications SET reconciliation_reference_id = ?1 WHERE id = ?2", args, Epoch::Keep)
    }

    fn save_modification_response(&self, pk: &str, response: Vec<u8>) -> StoreFuture<'_, ()> {
        let pk = pk.to_owned();
        // The first answer stays: a later one (a concurrent retry) changes nothing.
        boxed(self.write(move |c| {
            c.execute(
                "UPDATE modifications SET response = ?1 WHERE id = ?2 AND response IS NULL",
                params![response, pk],
            )
            .map_err(map_err)?;
            Ok(())
        }))
    }

    fn claim_due_jobs(&self, now: Millis, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Job>> {
        boxed(self.write(move |c| super::jobs::claim_jobs_tx(c, now, lease_ms, limit)))
    }

    fn complete_job(&self, id: i64, lease_token: &str) -> StoreFuture<'_, bool> {
        let token = lease_token.to_owned();
        boxed(self.write(move |c| super::jobs::complete_tx(c, id, &token)))
    }

    fn retry_job(
        &self,
        id: i64,
        lease_token: &str,
        due_at: Millis,
        last_error: Option<String>,
    ) -> StoreFuture<'_, bool> {
        let token = lease_token.to_owned();
        boxed(self.write(move |c| super::jobs::retry_tx(c, id, &token, due_at, last_error.as_deref())))
    }

    fn poll_soon(&self, payment_id: &str, at: Millis) -> StoreFuture<'_, bool> {
        let id = payment_id.to_owned();
        boxed(self.write(move |c| super::jobs::poll_soon_tx(c, &id, at)))
    }

    fn flag_payment(&self, payment_id: &str, reason: &str) -> StoreFuture<'_, ()> {
        let args = vec![Value::from(reason.to_owned()), Value::from(payment_id.to_owned())];
        self.write_one("UPDATE payments SET review_reason = ?1 WHERE id = ?2", args, Epoch::Keep)
    }

    fn jobs(&self, kinds: &[JobKind], limit: u32) -> StoreFuture<'_, Vec<JobView>> {
        ready(self.read(|c| super::jobs::jobs_of(c, kinds, limit)))
    }

    fn flagged_payments(&self, limit: u32) -> StoreFuture<'_, Vec<(String, String, String)>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT merchant_id, id, review_reason FROM payments WHERE review_reason IS NOT NULL
                     ORDER BY last_status_at_ms LIMIT ?1",
                )
                .map_err(map_err)?;
            let rows = s.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn job_stats(&self, now: Millis) -> StoreFuture<'_, Vec<JobStat>> {
        ready(self.read(|c| super::jobs::stats(c, now)))
    }

    fn payment_by_provider_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StoreFuture<'_, Option<(String, String)>> {
        ready(self.read(|c| {
            c.prepare_cached(
                "SELECT merchant_id, id FROM payments WHERE reconciliation_reference_id = ?1 AND provider = ?2",
            )
            .and_then(|mut s| s.query_row(params![reference, provider], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(map_err)
        }))
    }

    fn record_provider_notice(&self, provider: &str, event_id: &str, at: Millis) -> StoreFuture<'_, bool> {
        let (p, e) = (provider.to_owned(), event_id.to_owned());
        boxed(self.write(move |c| {
            let n = c
                .execute(
                    "INSERT INTO provider_notices (provider, event_id, received_at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (provider, event_id) DO NOTHING",
                    params![p, e, at.0],
                )
                .map_err(map_err)?;
            Ok(n > 0)
        }))
    }

    fn notification_settings(&self, merchant_id: &str) -> StoreFuture<'_, Option<NotificationSettings>> {
        ready(self.read(|c| super::notifications::settings(c, merchant_id)))
    }

    fn set_notification_settings(
        &self,
        merchant_id: &str,
        settings: Option<NotificationSettings>,
    ) -> StoreFuture<'_, ()> {
        let m = merchant_id.to_owned();
        boxed(self.write(move |c| super::notifications::set_settings(c, &m, settings.as_ref())))
    }

    fn add_notification_secret(&self, secret: NotificationSecret, retire_others_at: Millis) -> StoreFuture<'_, ()> {
        boxed(self.write(move |c| super::notifications::add_secret(c, &secret, retire_others_at)))
    }

    fn notification_secrets(&self, merchant_id: &str, now: Millis) -> StoreFuture<'_, Vec<NotificationSecret>> {
        ready(self.read(|c| super::notifications::secrets(c, merchant_id, now)))
    }

    fn claim_notifications(&self, now: Millis, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Notification>> {
        boxed(self.write(move |c| super::notifications::claim(c, now, lease_ms, limit)))
    }

    fn record_delivery_attempt(
        &self,
        id: &str,
        lease_token: &str,
        attempt: DeliveryAttempt,
        result: AttemptResult,
    ) -> StoreFuture<'_, bool> {
        let (id, token) = (id.to_owned(), lease_token.to_owned());
        boxed(self.write(move |c| super::notifications::record_attempt(c, &id, &token, &attempt, result)))
    }

    fn notifications(&self, filter: NotificationFilter) -> StoreFuture<'_, Vec<Notification>> {
        ready(self.read(|c| super::notifications::list(c, &filter)))
    }

    fn notification(
        &self,
        id: &str,
        merchant_id: Option<&str>,
    ) -> StoreFuture<'_, Option<(Notification, Vec<DeliveryAttempt>)>> {
        ready(self.read(|c| super::notifications::one(c, id, merchant_id)))
    }

    fn redeliver_notification(&self, id: &str, merchant_id: Option<&str>, at: Millis) -> StoreFuture<'_, bool> {
        let (id, m) = (id.to_owned(), merchant_id.map(str::to_owned));
        boxed(self.write(move |c| super::notifications::redeliver(c, &id, m.as_deref(), at)))
    }

    fn account(&self, merchant_id: &str, account_id: &str) -> StoreFuture<'_, Option<Account>> {
        ready(self.read(|c| super::vault::account(c, merchant_id, account_id)))
    }

    fn update_account(
        &self,
        merchant_id: &str,
        account_id: &str,
        billing_address: String,
        consumer: Option<String>,
        at: Millis,
    ) -> StoreFuture<'_, ()> {
        let args = vec![
            Value::from(billing_address),
            Value::from(consumer),
            Value::from(at.0),
            Value::from(merchant_id.to_owned()),
            Value::from(account_id.to_owned()),
        ];
        self.write_one(
            "UPDATE accounts SET billing_address = ?1, consumer = ?2, updated_at_ms = ?3 WHERE merchant_id = ?4 AND account_id = ?5",
            args,
            Epoch::Keep,
        )
    }

    fn payment_options(&self, merchant_id: &str, account_id: &str) -> StoreFuture<'_, Vec<StoredOption>> {
        ready(self.read(|c| super::vault::options(c, merchant_id, account_id)))
    }

    fn payment_option(
        &self,
        merchant_id: &str,
        account_id: &str,
        reference: &str,
    ) -> StoreFuture<'_, Option<StoredOption>> {
        ready(self.read(|c| super::vault::option(c, merchant_id, account_id, reference)))
    }

    fn add_payment_option(&self, option: StoredOption) -> StoreFuture<'_, AddOption> {
        boxed(self.write(move |c| super::vault::add(c, &option)))
    }

    fn delete_payment_option(&self, merchant_id: &str, account_id: &str, reference: &str) -> StoreFuture<'_, bool> {
        let (m, a, r) = (merchant_id.to_owned(), account_id.to_owned(), reference.to_owned());
        boxed(self.write(move |c| super::vault::delete(c, &m, &a, &r)))
    }

    fn set_default_option(&self, merchant_id: &str, account_id: &str, reference: &str) -> StoreFuture<'_, bool> {
        let (m, a, r) = (merchant_id.to_owned(), account_id.to_owned(), reference.to_owned());
        boxed(self.write(move |c| super::vault::set_default(c, &m, &a, &r)))
    }

    fn vault_keys(&self) -> StoreFuture<'_, Vec<VaultKey>> {
        ready(self.read(super::vault::keys))
    }

    fn add_vault_key(&self, key: VaultKey) -> StoreFuture<'_, ()> {
        boxed(self.write(move |c| {
            c.execute(
                "INSERT INTO vault_keys (kek_id, check_sealed, state, created_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kek_id) DO NOTHING",
                params![key.kek_id, key.check_sealed, if key.retired { "RETIRED" } else { "ACTIVE" }, key.created_at.0],
            )
            .map_err(map_err)?;
            Ok(())
        }))
    }

    fn retire_vault_key(&self, kek_id: &str, at: Millis) -> StoreFuture<'_, ()> {
        let args = vec![Value::from(at.0), Value::from(kek_id.to_owned())];
        self.write_one(
            "UPDATE vault_keys SET state = 'RETIRED', retired_at_ms = ?1 WHERE kek_id = ?2",
            args,
            Epoch::Keep,
        )
    }

    fn options_per_key(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT kek_id, COUNT(*) FROM payment_options GROUP BY kek_id ORDER BY kek_id")
                .map_err(map_err)?;
            let rows = s
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
                .map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn options_after(&self, kek_id: Option<&str>, after: &str, limit: u32) -> StoreFuture<'_, Vec<StoredOption>> {
        ready(self.read(|c| super::vault::options_after(c, kek_id, after, limit)))
    }

    fn reseal_options(&self, rotation_id: i64, steps: Vec<Reseal>, cursor: String) -> StoreFuture<'_, u64> {
        boxed(self.write(move |c| super::vault::reseal(c, rotation_id, &steps, &cursor)))
    }

    fn open_rotation(&self) -> StoreFuture<'_, Option<Rotation>> {
        ready(self.read(super::vault::open_rotation))
    }

    fn start_rotation(
        &self,
        kind: RotationKind,
        from_kek: &str,
        to_kek: &str,
        at: Millis,
    ) -> StoreFuture<'_, Rotation> {
        let (f, t) = (from_kek.to_owned(), to_kek.to_owned());
        boxed(self.write(move |c| super::vault::start_rotation(c, kind, &f, &t, at)))
    }

    fn finish_rotation(&self, id: i64, at: Millis) -> StoreFuture<'_, ()> {
        let args = vec![Value::from(at.0), Value::from(id)];
        self.write_one("UPDATE vault_rotations SET finished_at_ms = ?1 WHERE id = ?2", args, Epoch::Keep)
    }

    fn payment_keys_after(&self, after: &str, limit: u32) -> StoreFuture<'_, Vec<(String, String)>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT merchant_id, id FROM payments WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(map_err)?;
            let rows = s.query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?))).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn set_identity_jwks(&self, id: &str, jwks: Option<String>) -> StoreFuture<'_, ()> {
        let args = vec![jwks.map_or(Value::Null, Value::from), Value::from(id.to_owned())];
        self.write_one("UPDATE merchants SET identity_jwks = ?1 WHERE id = ?2", args, Epoch::Bump)
    }

    fn identity_issuer(&self, id: &str) -> StoreFuture<'_, Option<IdentityIssuer>> {
        ready(self.read(|c| {
            c.query_row(
                "SELECT identity_jwks, identity_issuer, identity_audience FROM merchants WHERE id = ?1",
                [id],
                |r| Ok(IdentityIssuer { jwks: r.get(0)?, issuer: r.get(1)?, audience: r.get(2)? }),
            )
            .optional()
            .map_err(map_err)
        }))
    }

    fn set_identity_issuer(&self, id: &str, issuer: IdentityIssuer) -> StoreFuture<'_, ()> {
        let text = |v: Option<String>| v.map_or(Value::Null, Value::from);
        let args = vec![text(issuer.jwks), text(issuer.issuer), text(issuer.audience), Value::from(id.to_owned())];
        self.write_one(
            "UPDATE merchants SET identity_jwks = ?1, identity_issuer = ?2, identity_audience = ?3 WHERE id = ?4",
            args,
            Epoch::Bump,
        )
    }

    fn add_credential(&self, cr: Credential) -> StoreFuture<'_, ()> {
        boxed(self.write(move |c| {
            c.execute(
                "INSERT INTO api_credentials (id, merchant_id, kind, client_id, secret_digest, label, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![cr.id, cr.merchant_id, cr.kind.as_str(), cr.client_id, cr.secret_digest, cr.label, cr.created_at.0],
            )
            .map_err(map_err)?;
            bump_epoch(c)
        }))
    }

    fn revoke_credential(&self, id: &str, at: Millis) -> StoreFuture<'_, ()> {
        let args = vec![Value::from(at.0), Value::from(id.to_owned())];
        self.write_one(
            "UPDATE api_credentials SET revoked_at_ms = ?1 WHERE id = ?2 AND revoked_at_ms IS NULL",
            args,
            Epoch::Bump,
        )
    }

    fn credentials(&self, merchant_id: &str) -> StoreFuture<'_, Vec<Credential>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare(&format!("SELECT {CREDENTIAL_COLUMNS} FROM api_credentials c WHERE c.merchant_id = ?1 ORDER BY c.created_at_ms, c.id"))
                .map_err(map_err)?;
            let rows = s.query_map([merchant_id], credential_from).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn active_basic_credentials(&self, merchant_id: &str) -> StoreFuture<'_, Vec<Credential>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials c JOIN merchants m ON m.id = c.merchant_id
                     WHERE c.merchant_id = ?1 AND c.kind = 'BASIC' AND c.revoked_at_ms IS NULL AND m.status = 'ACTIVE'"
                ))
                .map_err(map_err)?;
            let rows = s.query_map([merchant_id], credential_from).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn active_oauth_client(&self, client_id: &str) -> StoreFuture<'_, Option<Credential>> {
        ready(self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials c JOIN merchants m ON m.id = c.merchant_id
                 WHERE c.client_id = ?1 AND c.kind = 'OAUTH' AND c.revoked_at_ms IS NULL AND m.status = 'ACTIVE'"
            ))
            .and_then(|mut s| s.query_row([client_id], credential_from).optional())
            .map_err(map_err)
        }))
    }

    fn auth_epoch(&self) -> StoreFuture<'_, i64> {
        ready(
            self.read(|c| c.query_row("SELECT epoch FROM auth_epoch WHERE id = 1", [], |r| r.get(0)).map_err(map_err)),
        )
    }

    fn rotate_signing_key(&self, k: SigningKey) -> StoreFuture<'_, ()> {
        boxed(self.write(move |c| {
            c.execute("UPDATE signing_keys SET retired_at_ms = ?1 WHERE retired_at_ms IS NULL", [k.created_at.0]).map_err(map_err)?;
            c.execute(
                "INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.kid, k.alg, k.public_jwk, k.private_enc, k.created_at.0],
            )
            .map_err(map_err)?;
            bump_epoch(c)
        }))
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKey>> {
        ready(self.read(|c| {
            let mut s = c
                .prepare("SELECT kid, alg, public_jwk, private_enc, created_at_ms, retired_at_ms FROM signing_keys ORDER BY created_at_ms, kid")
                .map_err(map_err)?;
            let rows = s.query_map([], signing_key_from).map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        }))
    }

    fn delete_retired_signing_keys(&self, before: Millis) -> StoreFuture<'_, u64> {
        boxed(self.write(move |c| {
            let n = c
                .execute("DELETE FROM signing_keys WHERE retired_at_ms IS NOT NULL AND retired_at_ms < ?1", [before.0])
                .map_err(map_err)?;
            if n > 0 {
                bump_epoch(c)?;
            }
            Ok(n as u64)
        }))
    }

    fn create_checkout(&self, checkout: NewCheckout) -> StoreFuture<'_, CreateOutcome> {
        boxed(self.write(move |c| create_checkout_tx(c, &checkout)))
    }

    fn payment(&self, merchant_id: &str, id: &str) -> StoreFuture<'_, Option<Payment>> {
        ready(self.read(|c| read_payment(c, merchant_id, id)))
    }

    fn expire_due(&self, now: Millis, limit: u32) -> StoreFuture<'_, Vec<Expired>> {
        boxed(self.write(move |c| expire_tx(c, now, limit)))
    }

    fn prune_idempotency(&self, now: Millis) -> StoreFuture<'_, u64> {
        boxed(self.write(move |c| {
            let n = c
                .execute(
                    "DELETE FROM idempotency_keys WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1",
                    [now.0],
                )
                .map_err(map_err)?;
            Ok(n as u64)
        }))
    }
}
