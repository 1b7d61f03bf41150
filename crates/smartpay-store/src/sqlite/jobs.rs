//! The job queue in SQLite: scheduled modifications (delayed capture, automatic cancellation,
//! sandbox settlement) and pending resolution (CONTRACT §11). One row per (kind, payment,
//! target); a claim leases rows so that no two workers run the same job, and a crashed
//! worker's jobs come back when the lease ends. SQLite has one writer, so a claim (an
//! `UPDATE … RETURNING` in the writer's transaction) can never overlap another.

use rusqlite::{Connection, OptionalExtension, params};
use smartpay_domain::Millis;

use super::imp::status_from;
use super::map_err;
use crate::{Job, JobKind, JobStat, JobView, StoreError};

/// Schedules payment-wide jobs (no target); an existing job of the same kind stays as it is.
pub(crate) fn schedule(
    conn: &Connection,
    payment_id: &str,
    jobs: &[(JobKind, Millis)],
    at: Millis,
) -> Result<(), StoreError> {
    for (kind, due) in jobs {
        schedule_target(conn, payment_id, *kind, "", *due, at)?;
    }
    Ok(())
}

/// Schedules one job about `target` (a modification's id, or '' for the payment).
pub(crate) fn schedule_target(
    conn: &Connection,
    payment_id: &str,
    kind: JobKind,
    target: &str,
    due: Millis,
    at: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO jobs (kind, payment_id, target, due_at_ms, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, payment_id, target) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![kind.as_str(), payment_id, target, due.0, at.0]))
    .map_err(map_err)?;
    Ok(())
}

const JOB_COLUMNS: &str = "j.id, j.kind, j.payment_id, p.merchant_id, j.target, j.attempts, j.created_at_ms,
    j.due_at_ms, j.last_error, j.lease_until_ms, p.status, p.provider, j.lease_token";

/// A job row of [`JOB_COLUMNS`] with its lease, payment status and provider.
fn job_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Option<Job>, i64, String, Option<String>)> {
    let kind: String = r.get(1)?;
    let job = JobKind::parse(&kind).map(|kind| Job {
        id: r.get(0).unwrap_or_default(),
        kind,
        payment_id: r.get(2).unwrap_or_default(),
        merchant_id: r.get(3).unwrap_or_default(),
        target: r.get(4).unwrap_or_default(),
        attempts: r.get(5).unwrap_or_default(),
        created_at: Millis(r.get(6).unwrap_or_default()),
        due_at: Millis(r.get(7).unwrap_or_default()),
        last_error: r.get(8).unwrap_or_default(),
        lease_token: r.get::<_, Option<String>>(12).unwrap_or_default().unwrap_or_default(),
    });
    Ok((job, r.get(9)?, r.get(10)?, r.get(11)?))
}

pub(crate) fn claim_jobs_tx(conn: &Connection, now: Millis, lease_ms: i64, limit: u32) -> Result<Vec<Job>, StoreError> {
    let ids: Vec<i64> = {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE jobs SET lease_until_ms = ?1, attempts = attempts + 1, lease_token = ?4, nudged = 0
                 WHERE id IN (SELECT id FROM jobs WHERE due_at_ms <= ?2 AND lease_until_ms <= ?2
                              ORDER BY due_at_ms LIMIT ?3)
                 RETURNING id",
            )
            .map_err(map_err)?;
        let token = uuid::Uuid::new_v4().to_string();
        let rows = stmt
            .query_map(params![now.0.saturating_add(lease_ms), now.0, limit, token], |r| r.get(0))
            .map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    let mut jobs = Vec::with_capacity(ids.len());
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN payments p ON p.id = j.payment_id WHERE j.id = ?1"
        ))
        .map_err(map_err)?;
    for id in ids {
        let row = stmt.query_row([id], job_from).optional().map_err(map_err)?;
        if let Some((Some(job), ..)) = row {
            jobs.push(job);
        }
    }
    jobs.sort_by_key(|j| j.due_at);
    Ok(jobs)
}

pub(crate) fn retry_tx(
    conn: &Connection,
    id: i64,
    token: &str,
    due: Millis,
    last_error: Option<&str>,
) -> Result<bool, StoreError> {
    // A nudge (poll_soon) that came while the job ran is not lost: it runs again at once.
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET due_at_ms = CASE WHEN nudged = 1 THEN 0 ELSE ?1 END, nudged = 0, lease_until_ms = 0,
                 lease_token = NULL, last_error = ?2
             WHERE id = ?3 AND lease_token = ?4",
        )
        .and_then(|mut s| s.execute(params![due.0, last_error, id, token]))
        .map_err(map_err)?;
    Ok(n > 0)
}

pub(crate) fn complete_tx(conn: &Connection, id: i64, token: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND lease_token = ?2")
        .and_then(|mut s| s.execute(params![id, token]))
        .map_err(map_err)?;
    Ok(n > 0)
}

pub(crate) fn poll_soon_tx(conn: &Connection, payment_id: &str, at: Millis) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET due_at_ms = MIN(due_at_ms, ?1), nudged = (lease_until_ms > ?1)
             WHERE payment_id = ?2 AND kind IN ('RESOLVE_AUTHORIZATION', 'RESOLVE_MODIFICATION')",
        )
        .and_then(|mut s| s.execute(params![at.0, payment_id]))
        .map_err(map_err)?;
    Ok(n > 0)
}

pub(crate) fn jobs_of(conn: &Connection, kinds: &[JobKind], limit: u32) -> Result<Vec<JobView>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN payments p ON p.id = j.payment_id
             WHERE j.kind = ?1 ORDER BY j.created_at_ms, j.id LIMIT ?2"
        ))
        .map_err(map_err)?;
    for kind in kinds {
        let rows = stmt.query_map(params![kind.as_str(), limit], job_from).map_err(map_err)?;
        for row in rows {
            let (job, lease, status, provider) = row.map_err(map_err)?;
            if let Some(job) = job {
                out.push(JobView { job, leased_until: Millis(lease), payment_status: status_from(&status)?, provider });
            }
        }
    }
    out.sort_by_key(|v| (v.job.created_at, v.job.id));
    out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(out)
}

pub(crate) fn stats(conn: &Connection, now: Millis) -> Result<Vec<JobStat>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(due_at_ms <= ?2), 0), MIN(created_at_ms) FROM jobs WHERE kind = ?1",
        )
        .map_err(map_err)?;
    JobKind::ALL
        .into_iter()
        .map(|kind| {
            let (queued, due, oldest) = stmt
                .query_row(params![kind.as_str(), now.0], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?))
                })
                .map_err(map_err)?;
            Ok(JobStat {
                kind,
                queued: u64::try_from(queued).unwrap_or(0),
                due: u64::try_from(due).unwrap_or(0),
                oldest: oldest.map(Millis),
            })
        })
        .collect()
}
