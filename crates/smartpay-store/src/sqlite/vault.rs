//! The vault in SQLite: accounts, stored payment options, key versions and rotations. Blobs
//! arrive sealed; nothing here can read a card number.

use rusqlite::{Connection, OptionalExtension, Row, params};
use smartpay_domain::Millis;

use super::map_err;
use crate::*;

const OPTION_COLUMNS: &str = "reference, merchant_id, account_id, code, masked, expiry_month, expiry_year, fingerprint,
    kek_id, number_sealed, token_sealed, provider, is_default, created_at_ms";

fn option_from(r: &Row<'_>) -> rusqlite::Result<StoredOption> {
    Ok(StoredOption {
        reference: r.get(0)?,
        merchant_id: r.get(1)?,
        account_id: r.get(2)?,
        code: r.get(3)?,
        masked: r.get(4)?,
        expiry_month: r.get(5)?,
        expiry_year: r.get(6)?,
        fingerprint: r.get(7)?,
        kek_id: r.get(8)?,
        pan_sealed: r.get(9)?,
        token_sealed: r.get(10)?,
        provider: r.get(11)?,
        is_default: r.get::<_, i64>(12)? != 0,
        created_at: Millis(r.get(13)?),
    })
}

pub(crate) fn account(conn: &Connection, merchant_id: &str, account_id: &str) -> Result<Option<Account>, StoreError> {
    conn.prepare_cached(
        "SELECT billing_address, consumer, created_at_ms, updated_at_ms FROM accounts WHERE merchant_id = ?1 AND account_id = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![merchant_id, account_id], |r| {
            Ok(Account {
                merchant_id: merchant_id.to_owned(),
                account_id: account_id.to_owned(),
                billing_address: r.get(0)?,
                consumer: r.get(1)?,
                created_at: Millis(r.get(2)?),
                updated_at: Millis(r.get(3)?),
            })
        })
        .optional()
    })
    .map_err(map_err)
}

pub(crate) fn options(conn: &Connection, merchant_id: &str, account_id: &str) -> Result<Vec<StoredOption>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {OPTION_COLUMNS} FROM payment_options WHERE merchant_id = ?1 AND account_id = ?2
             ORDER BY created_at_ms, reference"
        ))
        .map_err(map_err)?;
    let rows = stmt.query_map(params![merchant_id, account_id], option_from).map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(crate) fn option(
    conn: &Connection,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<Option<StoredOption>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {OPTION_COLUMNS} FROM payment_options WHERE merchant_id = ?1 AND account_id = ?2 AND reference = ?3"
    ))
    .and_then(|mut s| s.query_row(params![merchant_id, account_id, reference], option_from).optional())
    .map_err(map_err)
}

pub(crate) fn add(conn: &Connection, o: &StoredOption) -> Result<AddOption, StoreError> {
    if account(conn, &o.merchant_id, &o.account_id)?.is_none() {
        return Ok(AddOption::NoAccount);
    }
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT reference FROM payment_options WHERE merchant_id = ?1 AND account_id = ?2 AND fingerprint = ?3",
        )
        .and_then(|mut s| s.query_row(params![o.merchant_id, o.account_id, o.fingerprint], |r| r.get(0)).optional())
        .map_err(map_err)?;
    if let Some(reference) = existing {
        return Ok(AddOption::Duplicate(reference));
    }
    let first: bool = conn
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM payment_options WHERE merchant_id = ?1 AND account_id = ?2)")
        .and_then(|mut s| s.query_row(params![o.merchant_id, o.account_id], |r| r.get(0)))
        .map_err(map_err)?;
    conn.prepare_cached(&format!(
        "INSERT INTO payment_options ({OPTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            o.reference,
            o.merchant_id,
            o.account_id,
            o.code,
            o.masked,
            o.expiry_month,
            o.expiry_year,
            o.fingerprint,
            o.kek_id,
            o.pan_sealed,
            o.token_sealed,
            o.provider,
            i64::from(first || o.is_default),
            o.created_at.0
        ])
    })
    .map_err(map_err)?;
    if o.is_default && !first {
        set_default(conn, &o.merchant_id, &o.account_id, &o.reference)?;
    }
    Ok(AddOption::Added)
}

pub(crate) fn delete(
    conn: &Connection,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<bool, StoreError> {
    let Some(o) = option(conn, merchant_id, account_id, reference)? else { return Ok(false) };
    conn.execute("DELETE FROM payment_options WHERE reference = ?1", [reference]).map_err(map_err)?;
    if o.is_default {
        conn.execute(
            "UPDATE payment_options SET is_default = 1 WHERE reference = (
                 SELECT reference FROM payment_options WHERE merchant_id = ?1 AND account_id = ?2
                 ORDER BY created_at_ms, reference LIMIT 1)",
            params![merchant_id, account_id],
        )
        .map_err(map_err)?;
    }
    Ok(true)
}

pub(crate) fn set_default(
    conn: &Connection,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<bool, StoreError> {
    if option(conn, merchant_id, account_id, reference)?.is_none() {
        return Ok(false);
    }
    conn.execute(
        "UPDATE payment_options SET is_default = CASE WHEN reference = ?3 THEN 1 ELSE 0 END
         WHERE merchant_id = ?1 AND account_id = ?2",
        params![merchant_id, account_id, reference],
    )
    .map_err(map_err)?;
    Ok(true)
}

pub(crate) fn keys(conn: &Connection) -> Result<Vec<VaultKey>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT kek_id, check_sealed, state, created_at_ms FROM vault_keys ORDER BY created_at_ms, kek_id",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(VaultKey {
                kek_id: r.get(0)?,
                check_sealed: r.get(1)?,
                retired: r.get::<_, String>(2)? == "RETIRED",
                created_at: Millis(r.get(3)?),
            })
        })
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(crate) fn options_after(
    conn: &Connection,
    kek_id: Option<&str>,
    after: &str,
    limit: u32,
) -> Result<Vec<StoredOption>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {OPTION_COLUMNS} FROM payment_options WHERE (?1 IS NULL OR kek_id = ?1) AND reference > ?2
             ORDER BY reference LIMIT ?3"
        ))
        .map_err(map_err)?;
    let rows = stmt.query_map(params![kek_id, after, limit], option_from).map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(crate) fn reseal(conn: &Connection, rotation_id: i64, steps: &[Reseal], cursor: &str) -> Result<u64, StoreError> {
    let mut changed = 0;
    for s in steps {
        changed += conn
            .prepare_cached(
                "UPDATE payment_options SET kek_id = ?1, number_sealed = ?2, token_sealed = ?3
                 WHERE reference = ?4 AND number_sealed = ?5",
            )
            .and_then(|mut st| {
                st.execute(params![s.kek_id, s.pan_sealed, s.token_sealed, s.reference, s.expected_pan_sealed])
            })
            .map_err(map_err)? as u64;
    }
    conn.prepare_cached("UPDATE vault_rotations SET cursor = ?1, done = done + ?2 WHERE id = ?3")
        .and_then(|mut st| st.execute(params![cursor, changed, rotation_id]))
        .map_err(map_err)?;
    Ok(changed)
}

fn rotation_from(r: &Row<'_>) -> rusqlite::Result<Rotation> {
    let kind: String = r.get(1)?;
    Ok(Rotation {
        id: r.get(0)?,
        kind: if kind == "KEK" { RotationKind::Kek } else { RotationKind::Dek },
        from_kek: r.get(2)?,
        to_kek: r.get(3)?,
        cursor: r.get(4)?,
        done: r.get::<_, i64>(5)?.max(0) as u64,
        finished: r.get::<_, Option<i64>>(6)?.is_some(),
    })
}

pub(crate) fn open_rotation(conn: &Connection) -> Result<Option<Rotation>, StoreError> {
    conn.prepare_cached(
        "SELECT id, kind, from_kek, to_kek, cursor, done, finished_at_ms FROM vault_rotations
         WHERE finished_at_ms IS NULL ORDER BY id LIMIT 1",
    )
    .and_then(|mut s| s.query_row([], rotation_from).optional())
    .map_err(map_err)
}

pub(crate) fn start_rotation(
    conn: &Connection,
    kind: RotationKind,
    from: &str,
    to: &str,
    at: Millis,
) -> Result<Rotation, StoreError> {
    if let Some(open) = open_rotation(conn)? {
        return Err(StoreError::Conflict(format!(
            "a {} rotation from {} to {} is unfinished: resume it first",
            open.kind.as_str(),
            open.from_kek,
            open.to_kek
        )));
    }
    conn.execute(
        "INSERT INTO vault_rotations (kind, from_kek, to_kek, started_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![kind.as_str(), from, to, at.0],
    )
    .map_err(map_err)?;
    open_rotation(conn)?.ok_or_else(|| StoreError::Internal("rotation vanished".into()))
}
