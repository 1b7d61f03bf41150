//! The job queue on PostgreSQL: scheduled modifications (delayed capture, automatic
//! cancellation, sandbox settlement) and pending resolution (CONTRACT §11), the PostgreSQL
//! mirror of `sqlite/jobs.rs`. One row per (kind, payment, target). Several nodes claim from
//! the one table: a claim locks the rows it takes with `FOR UPDATE SKIP LOCKED` (a claim
//! running at the same moment passes them over instead of waiting for them or taking them
//! twice) and leases them under a fresh token; completing or retrying a job needs that token,
//! so a worker whose lease ran out cannot undo the work of the one that took the job over.
//!
//! Also here: the small statement helpers the modification, job and notification files share
//! (cached statements, counts and limits as BIGINT).

use deadpool_postgres::{GenericClient, Pool};
use smartpay_domain::Millis;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::payments::col as get;
use super::{client, map_err, status_from};
use crate::{Job, JobKind, JobStat, JobView, StoreError};

/// Statement parameters.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs a cached statement and returns its rows.
pub(super) async fn query(c: &impl GenericClient, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(map_err)?;
    c.query(&stmt, params).await.map_err(map_err)
}

/// Runs a cached statement that returns at most one row.
pub(super) async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(map_err)?;
    c.query_opt(&stmt, params).await.map_err(map_err)
}

/// Runs a cached statement and returns how many rows it touched.
pub(super) async fn execute(c: &impl GenericClient, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(map_err)?;
    c.execute(&stmt, params).await.map_err(map_err)
}

/// A count or an attempt number as the model holds it (stored as BIGINT).
pub(super) fn count_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// A `u32` limit as a `LIMIT` parameter.
pub(super) fn limit(v: u32) -> i64 {
    i64::from(v)
}

const JOB_COLUMNS: &str = "j.id, j.kind, j.payment_id, p.merchant_id, j.target, j.attempts, j.created_at_ms,
    j.due_at_ms, j.last_error, j.lease_until_ms, p.status, p.provider, j.lease_token";

/// A job row of [`JOB_COLUMNS`] with its lease, payment status and provider; `None` for a
/// kind this binary does not know (the row is passed over, as on SQLite).
fn job_from(r: &Row) -> Result<Option<JobView>, StoreError> {
    let Some(kind) = JobKind::parse(get::<&str>(r, 1)?) else { return Ok(None) };
    let job = Job {
        id: get(r, 0)?,
        kind,
        payment_id: get(r, 2)?,
        merchant_id: get(r, 3)?,
        target: get(r, 4)?,
        attempts: count_u32(get(r, 5)?),
        created_at: Millis(get(r, 6)?),
        due_at: Millis(get(r, 7)?),
        last_error: get(r, 8)?,
        lease_token: get::<Option<String>>(r, 12)?.unwrap_or_default(),
    };
    Ok(Some(JobView {
        job,
        leased_until: Millis(get(r, 9)?),
        payment_status: status_from(get(r, 10)?)?,
        provider: get(r, 11)?,
    }))
}

pub(crate) async fn claim_due_jobs(
    pool: &Pool,
    now: Millis,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<Job>, StoreError> {
    // One statement, so one transaction: the rows picked are locked (rows another claim holds
    // are skipped, not waited for), leased under this claim's token, and returned with their
    // payments. MATERIALIZED keeps the pick from being evaluated twice.
    let sql = format!(
        "WITH picked AS MATERIALIZED (
             SELECT id FROM jobs WHERE due_at_ms <= $2 AND lease_until_ms <= $2
             ORDER BY due_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE jobs SET lease_until_ms = $1, attempts = jobs.attempts + 1, lease_token = $4, nudged = 0
             FROM picked WHERE jobs.id = picked.id
             RETURNING jobs.*)
         SELECT {JOB_COLUMNS} FROM claimed j JOIN payments p ON p.id = j.payment_id
         ORDER BY j.due_at_ms, j.id"
    );
    let token = uuid::Uuid::new_v4().to_string();
    let c = client(pool).await?;
    let rows = query(&c, &sql, &[&now.0.saturating_add(lease_ms), &now.0, &self::limit(limit), &token]).await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(view) = job_from(row)? {
            jobs.push(view.job);
        }
    }
    Ok(jobs)
}

pub(crate) async fn complete_job(pool: &Pool, id: i64, lease_token: &str) -> Result<bool, StoreError> {
    let c = client(pool).await?;
    let n = execute(&c, "DELETE FROM jobs WHERE id = $1 AND lease_token = $2", &[&id, &lease_token]).await?;
    Ok(n > 0)
}

pub(crate) async fn retry_job(
    pool: &Pool,
    id: i64,
    lease_token: &str,
    due_at: Millis,
    last_error: Option<String>,
) -> Result<bool, StoreError> {
    // A nudge (poll_soon) that came while the job ran is not lost: it runs again at once. The
    // row lock orders this against a concurrent nudge either way round.
    let c = client(pool).await?;
    let n = execute(
        &c,
        "UPDATE jobs SET due_at_ms = CASE WHEN nudged = 1 THEN 0 ELSE $1::BIGINT END, nudged = 0, lease_until_ms = 0,
             lease_token = NULL, last_error = $2
         WHERE id = $3 AND lease_token = $4",
        &[&due_at.0, &last_error, &id, &lease_token],
    )
    .await?;
    Ok(n > 0)
}

pub(crate) async fn poll_soon(pool: &Pool, payment_id: &str, at: Millis) -> Result<bool, StoreError> {
    let c = client(pool).await?;
    let n = execute(
        &c,
        "UPDATE jobs SET due_at_ms = LEAST(due_at_ms, $1), nudged = CASE WHEN lease_until_ms > $1 THEN 1 ELSE 0 END
         WHERE payment_id = $2 AND kind IN ('RESOLVE_AUTHORIZATION', 'RESOLVE_MODIFICATION')",
        &[&at.0, &payment_id],
    )
    .await?;
    Ok(n > 0)
}

pub(crate) async fn flag_payment(pool: &Pool, payment_id: &str, reason: &str) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let n = execute(&c, "UPDATE payments SET review_reason = $1 WHERE id = $2", &[&reason, &payment_id]).await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(crate) async fn jobs(pool: &Pool, kinds: &[JobKind], limit: u32) -> Result<Vec<JobView>, StoreError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN payments p ON p.id = j.payment_id
         WHERE j.kind = ANY($1) ORDER BY j.created_at_ms, j.id LIMIT $2"
    );
    let c = client(pool).await?;
    let rows = query(&c, &sql, &[&kinds, &self::limit(limit)]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.extend(job_from(row)?);
    }
    Ok(out)
}

pub(crate) async fn flagged_payments(pool: &Pool, limit: u32) -> Result<Vec<(String, String, String)>, StoreError> {
    let c = client(pool).await?;
    let rows = query(
        &c,
        "SELECT merchant_id, id, review_reason FROM payments WHERE review_reason IS NOT NULL
         ORDER BY last_status_at_ms, id LIMIT $1",
        &[&self::limit(limit)],
    )
    .await?;
    rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?))).collect()
}

pub(crate) async fn job_stats(pool: &Pool, now: Millis) -> Result<Vec<JobStat>, StoreError> {
    let c = client(pool).await?;
    let rows = query(
        &c,
        "SELECT kind, COUNT(*), COALESCE(SUM(CASE WHEN due_at_ms <= $1 THEN 1 ELSE 0 END), 0)::BIGINT,
             MIN(created_at_ms)
         FROM jobs GROUP BY kind",
        &[&now.0],
    )
    .await?;
    let mut stats: Vec<JobStat> =
        JobKind::ALL.into_iter().map(|kind| JobStat { kind, queued: 0, due: 0, oldest: None }).collect();
    for row in &rows {
        let kind = JobKind::parse(get(row, 0)?);
        if let Some(stat) = stats.iter_mut().find(|s| Some(s.kind) == kind) {
            stat.queued = u64::try_from(get::<i64>(row, 1)?).unwrap_or(0);
            stat.due = u64::try_from(get::<i64>(row, 2)?).unwrap_or(0);
            stat.oldest = get::<Option<i64>>(row, 3)?.map(Millis);
        }
    }
    Ok(stats)
}

pub(crate) async fn payment_by_provider_reference(
    pool: &Pool,
    provider: &str,
    reference: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let c = client(pool).await?;
    let row = query_opt(
        &c,
        "SELECT merchant_id, id FROM payments WHERE reconciliation_reference_id = $1 AND provider = $2",
        &[&reference, &provider],
    )
    .await?;
    row.map(|r| Ok((get(&r, 0)?, get(&r, 1)?))).transpose()
}

pub(crate) async fn record_provider_notice(
    pool: &Pool,
    provider: &str,
    event_id: &str,
    at: Millis,
) -> Result<bool, StoreError> {
    // A concurrent insert of the same notice waits for the other transaction, then inserts
    // nothing: exactly one caller sees `true`.
    let c = client(pool).await?;
    let n = execute(
        &c,
        "INSERT INTO provider_notices (provider, event_id, received_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (provider, event_id) DO NOTHING",
        &[&provider, &event_id, &at.0],
    )
    .await?;
    Ok(n > 0)
}
