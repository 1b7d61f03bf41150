//! The two statements run in batches (`batch.rs`, decision 0010): inserting checkouts without
//! claims or account, and reading a merchant's payment by id (Get Payment Status, and every
//! other read of one payment outside a transaction).
//!
//! **Checkouts** go together in one autocommitted `INSERT … SELECT … FROM unnest(…)`: all its
//! rows are written or none, and each caller is answered after the commit. A batch refused for
//! a reason that may concern one row (a unique violation — a taken id, token digest or partner
//! reference — or any refusal but the database being away) is tried again row by row, so only
//! the offending checkout gets the error and the others are written. The database away (or a
//! broken connection) is every caller's, as it would have been for each alone.
//!
//! **Reads** go together in one `SELECT … WHERE p.id = ANY($1)` on the primary key; each caller
//! gets the row with its id only when the row is its merchant's, so another merchant's id finds
//! nothing, exactly as alone. A read is queued only once its caller asks, so it sees every write
//! acknowledged before: the batch's statement starts after it was queued. A payment with
//! modifications gets them by a second statement on the same connection, as a lone read does;
//! a row that cannot be read fails only its own readers.

use deadpool_postgres::Pool;

use super::batch::Batcher;
use super::payments::{insert_plain_checkout, payment_from, payment_query, read_modifications};
use super::{client, map_err};
use crate::*;

/// The most calls one batch statement carries.
const MAX_BATCH: usize = 64;

/// How many batches of each kind run at once: two, one with a pool of under eight connections.
/// Few, because a batch takes the calls that arrived while the slots were busy: with more slots,
/// batches are smaller and PostgreSQL's cost per call goes back up (a quarter of a 16-connection
/// pool, four slots, left Get Payment Status at 0.44–0.47× pgbench's select-only rate with two
/// nodes; two slots reached 0.79×, docs/benchmarks.md). The rest of the pool stays free for
/// every other query.
fn slots(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, 2)
}

/// The queue of checkouts without claims or account.
pub(crate) fn checkouts(pool: Pool, max_connections: usize) -> Batcher<NewCheckout, ()> {
    Batcher::start(pool, "insert_checkouts", slots(max_connections), MAX_BATCH, |pool, checkouts| {
        Box::pin(write_checkouts(pool, checkouts))
    })
}

/// The queue of payment reads: (merchant id, payment id).
pub(crate) fn reads(pool: Pool, max_connections: usize) -> Batcher<(String, String), Option<Payment>> {
    Batcher::start(pool, "read_payments", slots(max_connections), MAX_BATCH, |pool, keys| {
        Box::pin(read_payments(pool, keys))
    })
}

/// Every checkout of a batch as one row each, in one statement (a batch of one is inserted by
/// the single-row statement, whose plan is simpler).
const INSERT_CHECKOUTS: &str = "INSERT INTO payments (id, merchant_id, status, amount_minor, currency, description,
        partner_reference, external_order_reference, custom_references, culture, request_json, token_digest,
        identity_subject, created_at_ms, last_status_at_ms, expires_at_ms, history_statuses, history_ats,
        history_reasons)
    SELECT n.id, n.merchant_id, 'CREATED', n.amount_minor, n.currency, n.description, n.partner_reference,
        n.external_order_reference, n.custom_references, n.culture, n.request_json, n.token_digest,
        n.identity_subject, n.created_at_ms, n.created_at_ms, n.expires_at_ms, ARRAY['CREATED'],
        ARRAY[n.created_at_ms], ARRAY[NULL::TEXT]
    FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
            $9::TEXT[], $10::TEXT[], $11::BYTEA[], $12::TEXT[], $13::BIGINT[], $14::BIGINT[])
        AS n(id, merchant_id, amount_minor, currency, description, partner_reference, external_order_reference,
            custom_references, culture, request_json, token_digest, identity_subject, created_at_ms, expires_at_ms)";

/// Inserts a batch of checkouts; row by row after a refusal that may concern one row only (a
/// unique violation, or anything but the database being away), so each caller gets its own.
async fn write_checkouts(pool: Pool, checkouts: Vec<NewCheckout>) -> Vec<Result<(), StoreError>> {
    match insert_all(&pool, &checkouts).await {
        Err(e) if checkouts.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
            let c = client(&pool).await;
            let mut answers = Vec::with_capacity(checkouts.len());
            for checkout in &checkouts {
                answers.push(match &c {
                    Ok(c) => insert_plain_checkout(c, checkout).await,
                    Err(e) => Err(e.clone()),
                });
            }
            answers
        }
        outcome => vec![outcome; checkouts.len()],
    }
}

/// Inserts all of `checkouts` in one statement; a unique violation is a conflict.
async fn insert_all(pool: &Pool, checkouts: &[NewCheckout]) -> Result<(), StoreError> {
    let c = client(pool).await?;
    if let [one] = checkouts {
        return insert_plain_checkout(&c, one).await;
    }
    fn column<'a, T>(checkouts: &'a [NewCheckout], f: impl Fn(&'a NewCheckout) -> T) -> Vec<T> {
        checkouts.iter().map(f).collect()
    }
    let ids = column(checkouts, |n| n.id.as_str());
    let merchants = column(checkouts, |n| n.merchant_id.as_str());
    let amounts = column(checkouts, |n| n.amount_minor);
    let currencies = column(checkouts, |n| n.currency.as_str());
    let descriptions = column(checkouts, |n| n.description.as_str());
    let partner_references = column(checkouts, |n| n.partner_reference.as_deref());
    let order_references = column(checkouts, |n| n.external_order_reference.as_deref());
    let custom_references = column(checkouts, |n| n.custom_references.as_deref());
    let cultures = column(checkouts, |n| n.culture.as_deref());
    let requests = column(checkouts, |n| n.request_json.as_str());
    let digests = column(checkouts, |n| n.token_digest.as_slice());
    let subjects = column(checkouts, |n| n.identity_subject.as_deref());
    let created = column(checkouts, |n| n.created_at.0);
    let expires = column(checkouts, |n| n.expires_at.0);
    let stmt = c.prepare_cached(INSERT_CHECKOUTS).await.map_err(map_err)?;
    c.execute(
        &stmt,
        &[
            &ids,
            &merchants,
            &amounts,
            &currencies,
            &descriptions,
            &partner_references,
            &order_references,
            &custom_references,
            &cultures,
            &requests,
            &digests,
            &subjects,
            &created,
            &expires,
        ],
    )
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The payments with any of the ids of a batch (an index condition on the primary key, whatever
/// the table's size and statistics); which caller's merchant each belongs to is matched after.
const READ_PAYMENTS: &str = payment_query!("p.id = ANY($1::TEXT[])");

/// Reads a batch of payments; a failure of the statement is every caller's, a row that cannot
/// be read is only its readers'.
async fn read_payments(pool: Pool, keys: Vec<(String, String)>) -> Vec<Result<Option<Payment>, StoreError>> {
    match read_all(&pool, &keys).await {
        Ok(found) => found,
        Err(e) => vec![Err(e); keys.len()],
    }
}

/// The payment of each (merchant id, payment id) key, in the keys' order: `None` where no
/// payment has the id, or where it is another merchant's (whose row is then not even decoded).
async fn read_all(
    pool: &Pool,
    keys: &[(String, String)],
) -> Result<Vec<Result<Option<Payment>, StoreError>>, StoreError> {
    let c = client(pool).await?;
    let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
    let stmt = c.prepare_cached(READ_PAYMENTS).await.map_err(map_err)?;
    let rows = c.query(&stmt, &[&ids]).await.map_err(map_err)?;
    let mut read: Vec<(&tokio_postgres::Row, Option<Result<Payment, StoreError>>)> =
        rows.iter().map(|r| (r, None)).collect();
    let mut answers = Vec::with_capacity(keys.len());
    for (merchant, id) in keys {
        let owned = read.iter_mut().find(|(row, _)| {
            row.try_get::<_, &str>(0).is_ok_and(|v| v == id) && row.try_get::<_, &str>(1).is_ok_and(|v| v == merchant)
        });
        let Some((row, payment)) = owned else {
            answers.push(Ok(None));
            continue;
        };
        // Decoded once, however many callers asked for it.
        let decoded = match payment {
            Some(done) => done.clone(),
            None => payment.insert(read_row(&c, row).await).clone(),
        };
        answers.push(decoded.map(Some));
    }
    Ok(answers)
}

/// One row of [`READ_PAYMENTS`] as a payment, with its modifications when it has any.
async fn read_row(c: &deadpool_postgres::Object, row: &tokio_postgres::Row) -> Result<Payment, StoreError> {
    let (mut payment, has_modifications) = payment_from(row)?;
    if has_modifications {
        payment.modifications = read_modifications(c, &payment.id).await?;
    }
    Ok(payment)
}
