//! Payments on PostgreSQL: checkouts with their idempotency claims, reads, card-submission
//! counting, status changes through the domain's `transition`, the expiry sweep — the
//! PostgreSQL mirror of the payment half of `sqlite/imp.rs`. Also the helpers the other areas
//! share: [`read_payment`], [`read_modifications`], [`record_status`], [`apply_events_tx`],
//! [`schedule`] and [`schedule_target`].
//!
//! A write that is one statement runs on its own (an autocommit statement is one transaction);
//! a write of several statements runs in one `BEGIN … COMMIT`. Races are decided by the
//! database: a status change is a conditional `UPDATE … WHERE status = $from`, which also locks
//! the row until the change's history and outbox rows are written; idempotency claims are
//! `INSERT … ON CONFLICT DO NOTHING` into their primary key, which makes a concurrent claim of the
//! same key wait for the first transaction and then see its row.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use smartpay_domain::status::{Event, transition};
use smartpay_domain::{Millis, PaymentStatus};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::batch::Batcher;
use super::{client, map_err, outbox, status_from};
use crate::decide::{ClaimCheck, StoredClaim, check_claim};
use crate::*;

/// Column `idx` of `row`; a value of another type than expected is a store failure (the schema
/// and the code disagree), never a panic.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| StoreError::Internal(format!("column {idx}: {e}")))
}

/// A `u32` count or limit as the BIGINT it is compared with.
fn big(v: u32) -> i64 {
    i64::from(v)
}

/// The payment columns [`payment_from`] reads, then its status history (three arrays kept in
/// the payment's own row, migration 0007), then whether the payment has modifications at all
/// (so the common read, a checkout without any, is one statement on one primary-key lookup).
macro_rules! payment_query {
    ($condition:literal) => {
        concat!(
            "SELECT ",
            payment_columns!(),
            ", p.history_statuses, p.history_ats, p.history_reasons,
                EXISTS (SELECT 1 FROM modifications m WHERE m.payment_id = p.id)
             FROM payments p
             WHERE ",
            $condition
        )
    };
}
pub(crate) use payment_query;

/// A merchant's payment by id.
const PAYMENT_BY_ID: &str = payment_query!("p.id = $1 AND p.merchant_id = $2");
/// A payment by its checkout token's digest.
const PAYMENT_BY_TOKEN: &str = payment_query!("p.token_digest = $1");

/// A row of [`payment_query`]: the payment, its history, and whether it has modifications.
pub(crate) fn payment_from(r: &Row) -> Result<(Payment, bool), StoreError> {
    let statuses: Vec<String> = col(r, 25)?;
    let ats: Vec<i64> = col(r, 26)?;
    let reasons: Vec<Option<String>> = col(r, 27)?;
    let mut history = Vec::with_capacity(statuses.len());
    for ((s, at), reason) in statuses.iter().zip(ats).zip(reasons) {
        history.push(StatusChange { status: status_from(s)?, at: Millis(at), reason });
    }
    let attempts: i64 = col(r, 18)?;
    let payment = Payment {
        id: col(r, 0)?,
        merchant_id: col(r, 1)?,
        status: status_from(col(r, 2)?)?,
        amount_minor: col(r, 3)?,
        currency: col(r, 4)?,
        description: col(r, 5)?,
        partner_reference: col(r, 6)?,
        customer_account_id: col(r, 7)?,
        external_order_reference: col(r, 8)?,
        custom_references: col(r, 9)?,
        payment_method: col(r, 10)?,
        reconciliation_reference_id: col(r, 11)?,
        mit: col::<i64>(r, 12)? != 0,
        created_at: Millis(col(r, 13)?),
        last_status_at: Millis(col(r, 14)?),
        expires_at: Millis(col(r, 15)?),
        identity_subject: col(r, 16)?,
        provider: col(r, 17)?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Internal(format!("attempts {attempts}")))?,
        decline_code: col(r, 19)?,
        challenge_url: col(r, 20)?,
        review_reason: col(r, 21)?,
        stored_option_reference: col(r, 22)?,
        culture: col(r, 23)?,
        new_option_reference: col(r, 24)?,
        history,
        modifications: Vec::new(),
    };
    Ok((payment, col(r, 28)?))
}

/// Runs a payment query and completes the payment with its modifications, if it has any.
async fn read_payment_with(
    c: &impl GenericClient,
    sql: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<Payment>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(map_err)?;
    let Some(row) = c.query_opt(&stmt, args).await.map_err(map_err)? else { return Ok(None) };
    let (mut payment, has_modifications) = payment_from(&row)?;
    if has_modifications {
        payment.modifications = read_modifications(c, &payment.id).await?;
    }
    Ok(Some(payment))
}

/// A merchant's payment with its status history and modifications; another merchant's is
/// `None`. Works on a pooled connection or inside a transaction.
pub(crate) async fn read_payment(
    c: &impl GenericClient,
    merchant_id: &str,
    id: &str,
) -> Result<Option<Payment>, StoreError> {
    read_payment_with(c, PAYMENT_BY_ID, &[&id, &merchant_id]).await
}

/// The modifications of a payment with their histories, oldest first (ties in creation time
/// by id, which is time-ordered).
pub(crate) async fn read_modifications(
    c: &impl GenericClient,
    payment_id: &str,
) -> Result<Vec<Modification>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT m.id, m.payment_id, m.merchant_id, m.modification_id, m.kind, m.status, m.amount_minor, m.currency,
                    m.description, m.custom_references, m.reconciliation_reference_id, m.failure_code,
                    m.created_at_ms, m.last_status_at_ms, h.statuses, h.ats
             FROM modifications m
             LEFT JOIN LATERAL (
                 SELECT array_agg(status ORDER BY seq) AS statuses, array_agg(at_ms ORDER BY seq) AS ats
                 FROM modification_status_history WHERE modification_pk = m.id
             ) h ON TRUE
             WHERE m.payment_id = $1 ORDER BY m.created_at_ms, m.id",
        )
        .await
        .map_err(map_err)?;
    let rows = c.query(&stmt, &[&payment_id]).await.map_err(map_err)?;
    rows.iter().map(modification_from).collect()
}

/// A row of [`read_modifications`].
fn modification_from(r: &Row) -> Result<Modification, StoreError> {
    use crate::decide::{modification_status, modification_type};
    let kind: &str = col(r, 4)?;
    let statuses: Option<Vec<String>> = col(r, 14)?;
    let ats: Option<Vec<i64>> = col(r, 15)?;
    let mut history = Vec::new();
    for (s, at) in statuses.unwrap_or_default().iter().zip(ats.unwrap_or_default()) {
        history.push(ModificationChange { status: modification_status(s)?, at: Millis(at) });
    }
    Ok(Modification {
        pk: col(r, 0)?,
        payment_id: col(r, 1)?,
        merchant_id: col(r, 2)?,
        modification_id: col(r, 3)?,
        kind: modification_type(kind)?,
        status: modification_status(col(r, 5)?)?,
        amount_minor: col(r, 6)?,
        currency: col(r, 7)?,
        description: col(r, 8)?,
        custom_references: col(r, 9)?,
        reconciliation_reference_id: col(r, 10)?,
        failure_code: col(r, 11)?,
        created_at: Millis(col(r, 12)?),
        last_status_at: Millis(col(r, 13)?),
        history,
    })
}

/// Schedules payment-wide jobs (no target); an existing job of the same kind stays as it is.
pub(crate) async fn schedule(
    c: &impl GenericClient,
    payment_id: &str,
    jobs: &[(JobKind, Millis)],
    at: Millis,
) -> Result<(), StoreError> {
    for (kind, due) in jobs {
        schedule_target(c, payment_id, *kind, "", *due, at).await?;
    }
    Ok(())
}

/// Schedules one job about `target` (a modification's id, or '' for the payment); an existing
/// job of the same kind, payment and target stays as it is.
pub(crate) async fn schedule_target(
    c: &impl GenericClient,
    payment_id: &str,
    kind: JobKind,
    target: &str,
    due: Millis,
    at: Millis,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO jobs (kind, payment_id, target, due_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, payment_id, target) DO NOTHING",
        )
        .await
        .map_err(map_err)?;
    c.execute(&stmt, &[&kind.as_str(), &payment_id, &target, &due.0, &at.0]).await.map_err(map_err)?;
    Ok(())
}

/// Writes a status change, its history row and what it causes ([`outbox::payment_changed`]);
/// the status must come from `transition`. `false` (nothing written) when the payment is no
/// longer in `from`. The update locks the payment row until the transaction ends.
pub(crate) async fn record_status(
    tx: &Transaction<'_>,
    payment_id: &str,
    from: PaymentStatus,
    to: PaymentStatus,
    at: Millis,
    reason: Option<&str>,
    origin: EventOrigin,
) -> Result<bool, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE payments SET status = $1, last_status_at_ms = $2,
                 history_statuses = array_append(history_statuses, $1::TEXT),
                 history_ats = array_append(history_ats, $2::BIGINT),
                 history_reasons = array_append(history_reasons, $5::TEXT)
             WHERE id = $3 AND status = $4",
        )
        .await
        .map_err(map_err)?;
    let changed =
        tx.execute(&stmt, &[&to.as_str(), &at.0, &payment_id, &from.as_str(), &reason]).await.map_err(map_err)?;
    if changed == 0 {
        return Ok(false);
    }
    outbox::payment_changed(tx, payment_id, from, to, at, origin).await?;
    Ok(true)
}

/// [`crate::Store::apply_events`] inside the caller's transaction (a modification that
/// authorizes first uses it too).
pub(crate) async fn apply_events_tx(
    tx: &Transaction<'_>,
    payment_id: &str,
    from: PaymentStatus,
    events: &[Event],
    at: Millis,
    u: &PaymentUpdate,
) -> Result<Option<PaymentStatus>, StoreError> {
    let path = crate::decide::path(from, events)?;
    let to = path.last().copied().unwrap_or(from);
    // Self-transitions (e.g. a further capture on CAPTURED) change facts, not the status: they
    // get no history entry.
    let changes: Vec<_> = crate::decide::changes(from, &path, u.reason.as_deref()).collect();
    let statuses: Vec<&str> = changes.iter().map(|c| c.1.as_str()).collect();
    let ats: Vec<i64> = vec![at.0; changes.len()];
    let reasons: Vec<Option<&str>> = changes.iter().map(|c| c.2).collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE payments SET status = $1,
                history_statuses = array_cat(history_statuses, $15::TEXT[]),
                history_ats = array_cat(history_ats, $16::BIGINT[]),
                history_reasons = array_cat(history_reasons, $17::TEXT[]),
                last_status_at_ms = CASE WHEN $12::BOOLEAN THEN last_status_at_ms ELSE $2::BIGINT END,
                provider = COALESCE($3::TEXT, provider),
                reconciliation_reference_id = COALESCE($4::TEXT, reconciliation_reference_id),
                payment_method = COALESCE($5::TEXT, payment_method),
                decline_code = COALESCE($6::TEXT, decline_code),
                challenge_url = CASE WHEN $7::BOOLEAN THEN $8::TEXT ELSE challenge_url END,
                stored_option_reference = COALESCE($13::TEXT, stored_option_reference),
                new_option_reference = COALESCE($14::TEXT, new_option_reference),
                attempts = attempts + CASE WHEN $11::BIGINT IS NULL THEN 0 ELSE 1 END
             WHERE id = $9 AND status = $10 AND ($11::BIGINT IS NULL OR attempts < $11::BIGINT)",
        )
        .await
        .map_err(map_err)?;
    let cap = u.attempt_cap.map(big);
    let challenge = u.challenge_url.clone().flatten();
    let changed = tx
        .execute(
            &stmt,
            &[
                &to.as_str(),
                &at.0,
                &u.provider,
                &u.reconciliation_reference_id,
                &u.payment_method,
                &u.decline_code,
                &u.challenge_url.is_some(),
                &challenge,
                &payment_id,
                &from.as_str(),
                &cap,
                &events.is_empty(),
                &u.stored_option_reference,
                &u.new_option_reference,
                &statuses,
                &ats,
                &reasons,
            ],
        )
        .await
        .map_err(map_err)?;
    if changed == 0 {
        return Ok(None);
    }
    for (previous, status, _) in changes {
        outbox::payment_changed(tx, payment_id, previous, status, at, u.origin).await?;
    }
    schedule(tx, payment_id, &u.schedule, at).await?;
    Ok(Some(to))
}

/// The payment row of a new checkout, with its first history entry (`CREATED`), then
/// `$tail` (the conflict clause and what to return); shared by [`INSERT_CHECKOUT`] and
/// [`INSERT_PLAIN_CHECKOUT`].
macro_rules! insert_payment {
    ($tail:literal) => {
        concat!(
            "INSERT INTO payments (id, merchant_id, status, amount_minor, currency, description, partner_reference,
                customer_account_id, external_order_reference, custom_references, culture, request_json, token_digest,
                identity_subject, created_at_ms, last_status_at_ms, expires_at_ms, history_statuses, history_ats,
                history_reasons)
            VALUES ($1, $2, 'CREATED', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15,
                ARRAY['CREATED'], ARRAY[$14::BIGINT], ARRAY[NULL::TEXT])",
            $tail
        )
    };
}

/// The checkout, the customer's account (the first checkout naming an account creates its
/// vault, CONTRACT §8) and its idempotency claims, in one statement. Every insert depends on
/// the payment's: when it conflicts (a partner reference another checkout holds), nothing is
/// written. Returns how many payments (0 or 1) and claims were written.
const INSERT_CHECKOUT: &str = concat!(
    "WITH p AS (",
    insert_payment!(" ON CONFLICT DO NOTHING RETURNING id"),
    "), a AS (
        INSERT INTO accounts (merchant_id, account_id, created_at_ms, updated_at_ms)
        SELECT $2::TEXT, $7::TEXT, $14::BIGINT, $14::BIGINT FROM p WHERE $7::TEXT IS NOT NULL
        ON CONFLICT (merchant_id, account_id) DO NOTHING
    ), c AS (
        INSERT INTO idempotency_keys (merchant_id, scope, key, route, fingerprint, payment_id, response_enc,
            created_at_ms, expires_at_ms)
        SELECT $2::TEXT, k.scope, k.key, k.route, k.fingerprint, p.id, k.response_enc, $14::BIGINT, k.expires_at_ms
        FROM p CROSS JOIN unnest($16::TEXT[], $17::TEXT[], $18::TEXT[], $19::BYTEA[], $20::BYTEA[], $21::BIGINT[])
            AS k(scope, key, route, fingerprint, response_enc, expires_at_ms)
        ON CONFLICT (merchant_id, scope, key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT COUNT(*) FROM p), (SELECT COUNT(*) FROM c)"
);

/// A checkout without idempotency claims and without an account: the payment row alone, a
/// plain insert (no speculative insertion into each unique index, as `ON CONFLICT` makes). A
/// taken id or token digest is a unique violation, which the store answers as a conflict.
const INSERT_PLAIN_CHECKOUT: &str = insert_payment!("");

/// How often a checkout is tried again after its claims met only expired or vanished records.
const CLAIM_ROUNDS: usize = 3;

/// Stores a checkout, or answers the replay or conflict an existing claim calls for. The common
/// checkout, without claims or account, is one row: `plain` inserts it together with the others
/// arriving alongside it (`batched.rs`).
pub(crate) async fn create_checkout(
    pool: &Pool,
    plain: &Batcher<NewCheckout, ()>,
    checkout: NewCheckout,
) -> Result<CreateOutcome, StoreError> {
    if checkout.claims.is_empty() && checkout.customer_account_id.is_none() {
        plain.call(checkout).await?;
        return Ok(CreateOutcome::Created);
    }
    let mut c = client(pool).await?;
    if checkout.claims.is_empty() {
        // Without claims, every insert of [`INSERT_CHECKOUT`] depends on the payment's, and one
        // statement is atomic by itself: all is written or nothing, with no transaction around
        // it (two round trips fewer than BEGIN … COMMIT). Nothing written means the id or the
        // token digest is taken, which no retry changes.
        return if insert_checkout(&c, &checkout).await? { Ok(CreateOutcome::Created) } else { Err(conflict()) };
    }
    for _ in 0..CLAIM_ROUNDS {
        let tx = c.transaction().await.map_err(map_err)?;
        if insert_checkout(&tx, &checkout).await? {
            tx.commit().await.map_err(map_err)?;
            return Ok(CreateOutcome::Created);
        }
        // A conflicting insert waited for the transaction that holds the key to end, so a new
        // statement sees that transaction's claim.
        let decided = decide_claims(&tx, &checkout).await?;
        tx.rollback().await.map_err(map_err)?;
        match decided {
            Some(outcome) => return Ok(outcome),
            None => delete_expired_claims(&c, &checkout).await?,
        }
    }
    Err(conflict())
}

/// Runs [`INSERT_PLAIN_CHECKOUT`]. A taken id or token digest is [`StoreError::Conflict`]
/// with the same message as the other paths (never the database's, which names the key).
pub(crate) async fn insert_plain_checkout(c: &impl GenericClient, n: &NewCheckout) -> Result<(), StoreError> {
    let stmt = c.prepare_cached(INSERT_PLAIN_CHECKOUT).await.map_err(map_err)?;
    match c.execute(&stmt, &payment_params(n)).await.map_err(map_err) {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(conflict()),
        Err(e) => Err(e),
    }
}

/// A checkout whose id, token digest or claims another payment holds.
fn conflict() -> StoreError {
    StoreError::Conflict("the checkout conflicts with an existing payment".into())
}

/// The parameters `$1`…`$15` of [`insert_payment`].
fn payment_params(n: &NewCheckout) -> [&(dyn tokio_postgres::types::ToSql + Sync); 15] {
    [
        &n.id,
        &n.merchant_id,
        &n.amount_minor,
        &n.currency,
        &n.description,
        &n.partner_reference,
        &n.customer_account_id,
        &n.external_order_reference,
        &n.custom_references,
        &n.culture,
        &n.request_json,
        &n.token_digest,
        &n.identity_subject,
        &n.created_at.0,
        &n.expires_at.0,
    ]
}

/// Runs [`INSERT_CHECKOUT`]; `true` when the payment and all its claims were written.
async fn insert_checkout(tx: &impl GenericClient, c: &NewCheckout) -> Result<bool, StoreError> {
    let stmt = tx.prepare_cached(INSERT_CHECKOUT).await.map_err(map_err)?;
    let scopes: Vec<&str> = c.claims.iter().map(|k| k.scope.as_str()).collect();
    let keys: Vec<&str> = c.claims.iter().map(|k| k.key.as_str()).collect();
    let routes: Vec<&str> = c.claims.iter().map(|k| k.route.as_str()).collect();
    let fingerprints: Vec<&[u8]> = c.claims.iter().map(|k| k.fingerprint.as_slice()).collect();
    let responses: Vec<&[u8]> = c.claims.iter().map(|k| k.response_enc.as_slice()).collect();
    let expiries: Vec<Option<i64>> = c.claims.iter().map(|k| k.expires_at.map(|m| m.0)).collect();
    let mut params = payment_params(c).to_vec();
    params.extend_from_slice(&[&scopes, &keys, &routes, &fingerprints, &responses, &expiries]);
    let row = tx.query_one(&stmt, &params).await.map_err(map_err)?;
    let payments: i64 = col(&row, 0)?;
    let claims: i64 = col(&row, 1)?;
    Ok(payments == 1 && usize::try_from(claims).ok() == Some(c.claims.len()))
}

/// The answer the checkout's existing claims call for, the first claim first (as SQLite
/// decides, through `crate::decide::check_claim`): the same request replays its first
/// response, another one conflicts. `None` when no claim is held by a live record (expired
/// ones do not count).
async fn decide_claims(tx: &Transaction<'_>, c: &NewCheckout) -> Result<Option<CreateOutcome>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT fingerprint, response_enc, payment_id, expires_at_ms FROM idempotency_keys
             WHERE merchant_id = $1 AND scope = $2 AND key = $3",
        )
        .await
        .map_err(map_err)?;
    for claim in &c.claims {
        let row = tx.query_opt(&stmt, &[&c.merchant_id, &claim.scope.as_str(), &claim.key]).await.map_err(map_err)?;
        let found = match row {
            None => None,
            Some(row) => Some(StoredClaim {
                fingerprint: col(&row, 0)?,
                response_enc: col(&row, 1)?,
                payment_id: col(&row, 2)?,
                expires_at_ms: col(&row, 3)?,
            }),
        };
        if let ClaimCheck::Decided(outcome) = check_claim(claim, found, c.created_at) {
            return Ok(Some(outcome));
        }
    }
    Ok(None)
}

/// Deletes the checkout's claims whose records expired by its creation time, so the next round
/// can claim the keys afresh.
async fn delete_expired_claims(c: &impl GenericClient, checkout: &NewCheckout) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND scope = $2 AND key = $3
                 AND expires_at_ms IS NOT NULL AND expires_at_ms <= $4",
        )
        .await
        .map_err(map_err)?;
    for claim in &checkout.claims {
        c.execute(&stmt, &[&checkout.merchant_id, &claim.scope.as_str(), &claim.key, &checkout.created_at.0])
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// The checkout a checkout token's digest belongs to.
pub(crate) async fn payment_by_token(pool: &Pool, token_digest: &[u8]) -> Result<Option<Payment>, StoreError> {
    let c = client(pool).await?;
    read_payment_with(&c, PAYMENT_BY_TOKEN, &[&token_digest]).await
}

/// Counts one card submission unless `max` were made: one conditional update.
pub(crate) async fn count_attempt(pool: &Pool, payment_id: &str, max: u32) -> Result<Option<u32>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(
            "UPDATE payments SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2 RETURNING attempts",
        )
        .await
        .map_err(map_err)?;
    let Some(row) = c.query_opt(&stmt, &[&payment_id, &big(max)]).await.map_err(map_err)? else { return Ok(None) };
    let attempts: i64 = col(&row, 0)?;
    u32::try_from(attempts).map(Some).map_err(|_| StoreError::Internal(format!("attempts {attempts}")))
}

/// Applies `events` to a payment in status `from`, in one transaction.
pub(crate) async fn apply_events(
    pool: &Pool,
    payment_id: &str,
    from: PaymentStatus,
    events: Vec<Event>,
    at: Millis,
    update: PaymentUpdate,
) -> Result<Option<PaymentStatus>, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let done = apply_events_tx(&tx, payment_id, from, &events, at, &update).await?;
    if done.is_some() {
        tx.commit().await.map_err(map_err)?;
    } else {
        tx.rollback().await.map_err(map_err)?;
    }
    Ok(done)
}

/// `(merchant, transactionId)` of payments after `after`, in the primary key's order.
pub(crate) async fn payment_keys_after(
    pool: &Pool,
    after: &str,
    limit: u32,
) -> Result<Vec<(String, String)>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached("SELECT merchant_id, id FROM payments WHERE id > $1 ORDER BY id LIMIT $2")
        .await
        .map_err(map_err)?;
    let rows = c.query(&stmt, &[&after, &big(limit)]).await.map_err(map_err)?;
    rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
}

/// The history reason of a checkout the sweep expired.
const EXPIRED_REASON: &str = "checkout lifetime ended";

/// Moves up to `limit` checkouts whose lifetime ended to `EXPIRED`. Payments another node's
/// sweep holds are skipped (`SKIP LOCKED`), so concurrent sweeps never expire one twice.
pub(crate) async fn expire_due(pool: &Pool, now: Millis, limit: u32) -> Result<Vec<Expired>, StoreError> {
    let from = PaymentStatus::Created;
    let Ok(to) = transition(from, Event::Expired) else { return Ok(Vec::new()) };
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached(
            "WITH due AS (
                 SELECT id FROM payments WHERE status = $3 AND expires_at_ms <= $1
                 ORDER BY expires_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED
             )
             UPDATE payments p SET status = $4, last_status_at_ms = $1,
                 history_statuses = array_append(p.history_statuses, $4::TEXT),
                 history_ats = array_append(p.history_ats, $1::BIGINT),
                 history_reasons = array_append(p.history_reasons, $5::TEXT)
             FROM due WHERE p.id = due.id AND p.status = $3
             RETURNING p.id, p.merchant_id, p.expires_at_ms",
        )
        .await
        .map_err(map_err)?;
    let rows = tx
        .query(&stmt, &[&now.0, &big(limit), &from.as_str(), &to.as_str(), &EXPIRED_REASON])
        .await
        .map_err(map_err)?;
    let mut due = rows
        .iter()
        .map(|r| Ok((col::<i64>(r, 2)?, Expired { payment_id: col(r, 0)?, merchant_id: col(r, 1)? })))
        .collect::<Result<Vec<_>, StoreError>>()?;
    due.sort_by(|a, b| (a.0, &a.1.payment_id).cmp(&(b.0, &b.1.payment_id)));
    for (_, e) in &due {
        outbox::payment_changed(&tx, &e.payment_id, from, to, now, EventOrigin::Automated).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(due.into_iter().map(|(_, e)| e).collect())
}

/// Deletes idempotency records that expired by `now`.
pub(crate) async fn prune_idempotency(pool: &Pool, now: Millis) -> Result<u64, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached("DELETE FROM idempotency_keys WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1")
        .await
        .map_err(map_err)?;
    c.execute(&stmt, &[&now.0]).await.map_err(map_err)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Quick checks against the local PostgreSQL, each in a database of its own that is dropped
    //! afterwards (also when the test fails).

    use std::sync::Arc;

    use smartpay_domain::modification::{ModificationStatus, ModificationType};
    use smartpay_domain::status::Event;
    use smartpay_domain::{Millis, PaymentStatus};

    use super::super::PgStore;
    use crate::*;

    /// The server the tests use (trust auth), without a database name.
    fn server() -> String {
        std::env::var("TEST_DATABASE_URL")
            .ok()
            .and_then(|u| u.rsplit_once('/').map(|(base, _)| base.to_owned()))
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into())
    }

    async fn admin(sql: &str) {
        let (client, conn) = tokio_postgres::connect(&format!("{}/postgres", server()), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must run for these tests");
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = task.await;
    }

    /// A store on a fresh database, dropped with the value.
    pub(crate) struct TestDb {
        pub(crate) store: Arc<PgStore>,
        name: String,
    }

    impl TestDb {
        pub(crate) async fn new() -> Self {
            let name = format!("smartpay_pga_{}", uuid::Uuid::new_v4().simple());
            admin(&format!("CREATE DATABASE {name}")).await;
            let store = PgStore::connect(&format!("{}/{name}", server()), 16).await.unwrap();
            TestDb { store: Arc::new(store), name }
        }

        /// Runs SQL on the test database directly.
        pub(crate) async fn sql(&self, sql: &str) -> Vec<tokio_postgres::Row> {
            let c = self.store.pool.get().await.unwrap();
            c.query(sql, &[]).await.unwrap()
        }

        pub(crate) async fn count(&self, sql: &str) -> i64 {
            self.sql(sql).await[0].get(0)
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(admin(&sql));
            })
            .join();
        }
    }

    pub(crate) async fn merchant(store: &PgStore, id: &str) {
        store.create_merchant(crate::testing::merchant_record(id)).await.unwrap();
    }

    /// [`crate::testing::checkout`] with a culture, which these tests read back.
    fn checkout(id: &str, merchant: &str, claims: Vec<IdempotencyClaim>) -> NewCheckout {
        NewCheckout { culture: Some("de-DE".into()), ..crate::testing::checkout(id, merchant, claims) }
    }

    fn claim(scope: IdempotencyScope, key: &str, fingerprint: &[u8], expires_at: Option<Millis>) -> IdempotencyClaim {
        IdempotencyClaim {
            scope,
            key: key.into(),
            route: "POST /payment/creation".into(),
            fingerprint: fingerprint.to_vec(),
            response_enc: format!("response-{key}").into_bytes(),
            expires_at,
        }
    }

    fn header(key: &str, fingerprint: &[u8]) -> IdempotencyClaim {
        claim(IdempotencyScope::Header, key, fingerprint, Some(Millis(86_401_000)))
    }

    async fn with_settings(db: &TestDb, merchant: &str) {
        db.sql(&format!(
            "INSERT INTO notification_settings (merchant_id, url, auth_kind, updated_at_ms)
             VALUES ('{merchant}', 'https://example.test/hook', 'NONE', 1)"
        ))
        .await;
    }

    #[tokio::test]
    async fn a_checkout_is_stored_read_replayed_and_conflicts() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        merchant(s, "m2").await;
        let mut first = checkout("p1", "m1", vec![header("k1", b"fp")]);
        first.customer_account_id = Some("acct".into());
        assert_eq!(s.create_checkout(first).await.unwrap(), CreateOutcome::Created);
        let p = s.payment("m1", "p1").await.unwrap().unwrap();
        assert_eq!(
            (p.status, p.amount_minor, p.culture.as_deref(), p.attempts),
            (PaymentStatus::Created, 1099, Some("de-DE"), 0)
        );
        assert_eq!(p.history, vec![StatusChange { status: PaymentStatus::Created, at: Millis(1_000), reason: None }]);
        assert!(p.modifications.is_empty());
        assert_eq!(db.count("SELECT COUNT(*) FROM accounts WHERE account_id = 'acct'").await, 1);
        assert!(s.payment("m2", "p1").await.unwrap().is_none(), "another merchant's payment is not found");
        assert_eq!(s.payment_by_token(b"p1").await.unwrap().unwrap().id, "p1");
        assert!(s.payment_by_token(b"nope").await.unwrap().is_none());

        let replay = s.create_checkout(checkout("p2", "m1", vec![header("k1", b"fp")])).await.unwrap();
        assert_eq!(replay, CreateOutcome::Replay { response_enc: b"response-k1".to_vec(), payment_id: "p1".into() });
        let conflict = s.create_checkout(checkout("p3", "m1", vec![header("k1", b"other")])).await.unwrap();
        assert_eq!(conflict, CreateOutcome::Conflict { scope: IdempotencyScope::Header });
        // The same key is another merchant's own.
        assert_eq!(
            s.create_checkout(checkout("p4", "m2", vec![header("k1", b"x")])).await.unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM payments").await, 2, "replays and conflicts write nothing");
        assert_eq!(db.count("SELECT COUNT(*) FROM payments, unnest(history_statuses)").await, 2);
    }

    #[tokio::test]
    async fn concurrent_claims_of_one_key_make_one_checkout() {
        let db = TestDb::new().await;
        merchant(&db.store, "m1").await;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let s = db.store.clone();
                tokio::spawn(async move {
                    let c = checkout(&format!("p{i}"), "m1", vec![header("k", b"fp")]);
                    s.create_checkout(c).await.unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let created = outcomes.iter().filter(|o| **o == CreateOutcome::Created).count();
        assert_eq!(created, 1);
        let winner: String = db.sql("SELECT id FROM payments").await[0].get(0);
        for o in outcomes.iter().filter(|o| **o != CreateOutcome::Created) {
            assert_eq!(*o, CreateOutcome::Replay { response_enc: b"response-k".to_vec(), payment_id: winner.clone() });
        }
        assert_eq!(db.count("SELECT COUNT(*) FROM payments").await, 1);
    }

    #[tokio::test]
    async fn a_partner_reference_makes_one_checkout_under_concurrency() {
        let db = TestDb::new().await;
        merchant(&db.store, "m1").await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = db.store.clone();
                tokio::spawn(async move {
                    let fp: &[u8] = if i % 2 == 0 { b"fp" } else { b"other" };
                    // Each request also has a key of its own: the partner reference decides.
                    let claims = vec![
                        header(&format!("k{i}"), fp),
                        claim(IdempotencyScope::PartnerReference, "order-1", fp, None),
                    ];
                    let mut c = checkout(&format!("p{i}"), "m1", claims);
                    c.partner_reference = Some("order-1".into());
                    (fp, s.create_checkout(c).await.unwrap())
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(results.iter().filter(|(_, o)| *o == CreateOutcome::Created).count(), 1);
        let (winner_fp, _) = results.iter().find(|(_, o)| *o == CreateOutcome::Created).unwrap();
        for (fp, o) in &results {
            match o {
                CreateOutcome::Created => {}
                CreateOutcome::Replay { .. } => assert_eq!(fp, winner_fp),
                CreateOutcome::Conflict { scope } => {
                    assert_ne!(fp, winner_fp);
                    assert_eq!(*scope, IdempotencyScope::PartnerReference);
                }
            }
        }
        assert_eq!(db.count("SELECT COUNT(*) FROM payments").await, 1);
        assert_eq!(db.count("SELECT COUNT(*) FROM idempotency_keys").await, 2);
    }

    #[tokio::test]
    async fn an_expired_claim_is_claimed_afresh_and_pruned() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        let short = |fp: &[u8]| claim(IdempotencyScope::Header, "k", fp, Some(Millis(1_500)));
        assert_eq!(s.create_checkout(checkout("p1", "m1", vec![short(b"a")])).await.unwrap(), CreateOutcome::Created);
        let mut later = checkout("p2", "m1", vec![claim(IdempotencyScope::Header, "k", b"b", Some(Millis(9_000)))]);
        later.created_at = Millis(2_000);
        assert_eq!(s.create_checkout(later).await.unwrap(), CreateOutcome::Created);
        let mut again = checkout("p3", "m1", vec![header("k", b"b")]);
        again.created_at = Millis(3_000);
        assert!(
            matches!(s.create_checkout(again).await.unwrap(), CreateOutcome::Replay { payment_id, .. } if payment_id == "p2")
        );
        assert_eq!(s.prune_idempotency(Millis(8_999)).await.unwrap(), 0);
        assert_eq!(s.prune_idempotency(Millis(9_000)).await.unwrap(), 1);
        assert_eq!(db.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
    }

    #[tokio::test]
    async fn events_move_the_payment_write_history_outbox_and_jobs() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        with_settings(&db, "m1").await;
        s.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
        let pending = PaymentUpdate {
            provider: Some("sandbox".into()),
            challenge_url: Some(Some("https://acs.test/c".into())),
            attempt_cap: Some(3),
            reason: Some("submitted".into()),
            schedule: vec![(JobKind::ResolveAuthorization, Millis(5_000))],
            origin: EventOrigin::Widget,
            ..PaymentUpdate::default()
        };
        let to =
            s.apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, Millis(2_000), pending).await;
        assert_eq!(to.unwrap(), Some(PaymentStatus::AuthorizationPending));
        assert_eq!(db.count("SELECT COUNT(*) FROM jobs WHERE kind = 'RESOLVE_AUTHORIZATION'").await, 1);
        assert_eq!(db.count("SELECT COUNT(*) FROM notifications").await, 0, "pending statuses are not notified");
        // A stale `from` writes nothing; a forbidden event is an error and writes nothing.
        let stale = s.apply_event(
            "p1",
            PaymentStatus::Created,
            Event::AuthorizationRequested,
            Millis(2_500),
            PaymentUpdate::default(),
        );
        assert_eq!(stale.await.unwrap(), None);
        let forbidden = s.apply_event(
            "p1",
            PaymentStatus::AuthorizationPending,
            Event::Settled,
            Millis(2_500),
            PaymentUpdate::default(),
        );
        assert!(matches!(forbidden.await, Err(StoreError::Conflict(_))));
        // Facts only: the status and lastStatusDate stay.
        let facts = PaymentUpdate { reconciliation_reference_id: Some("psp-1".into()), ..PaymentUpdate::default() };
        assert!(s.record_facts("p1", PaymentStatus::AuthorizationPending, facts).await.unwrap());
        let p = s.payment("m1", "p1").await.unwrap().unwrap();
        assert_eq!(
            (p.last_status_at, p.attempts, p.reconciliation_reference_id.as_deref()),
            (Millis(2_000), 1, Some("psp-1"))
        );
        assert_eq!(p.challenge_url.as_deref(), Some("https://acs.test/c"));

        let done = PaymentUpdate { challenge_url: Some(None), origin: EventOrigin::Api, ..PaymentUpdate::default() };
        let events = vec![Event::Authorized, Event::CaptureRequested, Event::CaptureSucceeded];
        let to = s.apply_events("p1", PaymentStatus::AuthorizationPending, events, Millis(3_000), done).await;
        assert_eq!(to.unwrap(), Some(PaymentStatus::Captured));
        let p = s.payment("m1", "p1").await.unwrap().unwrap();
        let statuses: Vec<_> = p.history.iter().map(|h| (h.status, h.reason.as_deref())).collect();
        assert_eq!(
            statuses,
            vec![
                (PaymentStatus::Created, None),
                (PaymentStatus::AuthorizationPending, Some("submitted")),
                (PaymentStatus::AuthorizationCompleted, None),
                (PaymentStatus::CapturePending, None),
                (PaymentStatus::Captured, None),
            ]
        );
        assert_eq!((p.challenge_url, p.last_status_at), (None, Millis(3_000)));
        assert_eq!(db.count("SELECT COUNT(*) FROM jobs").await, 0, "leaving AUTHORIZATION_PENDING ends its resolution");
        let notified: Vec<(String, String)> = db
            .sql("SELECT status, origin FROM notifications ORDER BY id")
            .await
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(notified, vec![("AUTHORIZATION_COMPLETED".into(), "api".into()), ("CAPTURED".into(), "api".into())]);
    }

    #[tokio::test]
    async fn the_attempt_cap_holds() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        s.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.count_attempt("p1", 5).await.unwrap() })
            })
            .collect();
        let mut counted = Vec::new();
        for t in tasks {
            counted.extend(t.await.unwrap());
        }
        counted.sort_unstable();
        assert_eq!(counted, vec![1, 2, 3, 4, 5]);
        let capped = PaymentUpdate { attempt_cap: Some(5), ..PaymentUpdate::default() };
        let to = s.apply_event("p1", PaymentStatus::Created, Event::AuthorizationRequested, Millis(2), capped).await;
        assert_eq!(to.unwrap(), None, "the cap was reached: nothing written");
        assert_eq!(s.payment("m1", "p1").await.unwrap().unwrap().status, PaymentStatus::Created);
    }

    #[tokio::test]
    async fn one_of_many_concurrent_status_changes_wins() {
        let db = TestDb::new().await;
        merchant(&db.store, "m1").await;
        db.store.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = db.store.clone();
                let event = if i % 2 == 0 { Event::AuthorizationRequested } else { Event::Expired };
                tokio::spawn(async move {
                    s.apply_event("p1", PaymentStatus::Created, event, Millis(5), PaymentUpdate::default())
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(won, 1);
        assert_eq!(db.count("SELECT COUNT(*) FROM payments, unnest(history_statuses)").await, 2);
    }

    #[tokio::test]
    async fn the_expiry_sweep_expires_each_due_checkout_once() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        with_settings(&db, "m1").await;
        for (id, expires) in [("a", 30_000), ("b", 10_000), ("c", 20_000), ("d", 90_000)] {
            let mut c = checkout(id, "m1", vec![]);
            c.expires_at = Millis(expires);
            s.create_checkout(c).await.unwrap();
        }
        let first = s.expire_due(Millis(60_000), 2).await.unwrap();
        let ids: Vec<_> = first.iter().map(|e| e.payment_id.as_str()).collect();
        assert_eq!(ids, vec!["b", "c"], "oldest first");
        let (x, y) = tokio::join!(s.expire_due(Millis(60_000), 10), s.expire_due(Millis(60_000), 10));
        let mut rest: Vec<_> = x.unwrap().into_iter().chain(y.unwrap()).map(|e| e.payment_id).collect();
        rest.sort();
        assert_eq!(rest, vec!["a".to_owned()]);
        let p = s.payment("m1", "a").await.unwrap().unwrap();
        assert_eq!(p.status, PaymentStatus::Expired);
        assert_eq!(p.history[1].reason.as_deref(), Some("checkout lifetime ended"));
        assert_eq!(
            db.count("SELECT COUNT(*) FROM notifications WHERE status = 'EXPIRED' AND origin = 'automated'").await,
            3
        );
        assert_eq!(s.payment("m1", "d").await.unwrap().unwrap().status, PaymentStatus::Created);
    }

    #[tokio::test]
    async fn payment_keys_page_in_id_order() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        merchant(s, "m2").await;
        for (id, m) in [("c", "m1"), ("a", "m2"), ("b", "m1")] {
            s.create_checkout(checkout(id, m, vec![])).await.unwrap();
        }
        let page = s.payment_keys_after("", 2).await.unwrap();
        assert_eq!(page, vec![("m2".into(), "a".into()), ("m1".into(), "b".into())]);
        assert_eq!(s.payment_keys_after("b", 2).await.unwrap(), vec![("m1".into(), "c".into())]);
    }

    #[tokio::test]
    async fn modifications_are_read_with_the_payment_and_their_outbox_is_written() {
        let db = TestDb::new().await;
        let s = &db.store;
        merchant(s, "m1").await;
        with_settings(&db, "m1").await;
        s.create_checkout(checkout("p1", "m1", vec![])).await.unwrap();
        db.sql(
            "INSERT INTO modifications (id, payment_id, merchant_id, modification_id, kind, status, amount_minor,
                 currency, fingerprint, created_at_ms, last_status_at_ms)
             VALUES ('r1', 'p1', 'm1', 'refund-1', 'REFUND', 'REFUND_PENDING', 500, 'EUR', '\\x00', 7, 7),
                    ('c1', 'p1', 'm1', 'capture-1', 'CAPTURE', 'CAPTURE_PENDING', 1099, 'EUR', '\\x00', 5, 5)",
        )
        .await;
        let mut c = s.pool.get().await.unwrap();
        let tx = c.transaction().await.unwrap();
        super::schedule_target(&tx, "p1", JobKind::ResolveModification, "r1", Millis(9), Millis(7)).await.unwrap();
        super::schedule_target(&tx, "p1", JobKind::ResolveModification, "c1", Millis(9), Millis(5)).await.unwrap();
        let (refund, capture) = (ModificationType::Refund, ModificationType::Capture);
        let changed = |pk, kind, status, at| {
            super::outbox::modification_changed(&tx, pk, kind, status, Millis(at), EventOrigin::Api)
        };
        changed("c1", capture, ModificationStatus::CapturePending, 5).await.unwrap();
        changed("r1", refund, ModificationStatus::RefundPending, 7).await.unwrap();
        changed("r1", refund, ModificationStatus::Refunded, 8).await.unwrap();
        tx.commit().await.unwrap();
        drop(c);

        let p = s.payment("m1", "p1").await.unwrap().unwrap();
        let pks: Vec<_> = p.modifications.iter().map(|m| m.pk.as_str()).collect();
        assert_eq!(pks, vec!["c1", "r1"], "oldest first");
        let r1 = &p.modifications[1];
        assert_eq!((r1.kind, r1.status, r1.amount_minor), (refund, ModificationStatus::RefundPending, 500));
        let history: Vec<_> = r1.history.iter().map(|h| (h.status, h.at)).collect();
        assert_eq!(
            history,
            vec![(ModificationStatus::RefundPending, Millis(7)), (ModificationStatus::Refunded, Millis(8))]
        );
        // Refunds are notified, captures' own changes are not; a final status ends resolution.
        let notified: Vec<(String, String)> = db
            .sql("SELECT object_id, status FROM notifications ORDER BY id")
            .await
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            notified,
            vec![("refund-1".into(), "REFUND_PENDING".into()), ("refund-1".into(), "REFUNDED".into())]
        );
        let jobs: Vec<String> = db.sql("SELECT target FROM jobs").await.iter().map(|r| r.get(0)).collect();
        assert_eq!(jobs, vec!["c1".to_owned()]);
    }
}
