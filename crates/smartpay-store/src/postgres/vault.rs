//! The vault on PostgreSQL: accounts, stored payment options, key versions and rotations — the
//! mirror of `sqlite/vault.rs`. Blobs arrive sealed; nothing here can read a card number.
//!
//! Several nodes write the same vault, so every write that decides something about an account's
//! options (is this card a duplicate, which option is the default) first locks the account's
//! row: writes to one account are serialized by the database, and an account always has at most
//! one default. A reseal step applies only while the option still holds the blob it was computed
//! from, and starting a rotation takes a transaction-scoped advisory lock, so two nodes cannot
//! both open one.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use smartpay_domain::Millis;
use tokio_postgres::Row;

use super::{client, map_err};
use crate::*;

/// The columns [`option_from`] reads, in its order.
const OPTION_COLUMNS: &str = "reference, merchant_id, account_id, code, masked, expiry_month, expiry_year, fingerprint,
    kek_id, number_sealed, token_sealed, provider, is_default, created_at_ms";

/// The columns [`rotation_from`] reads, in its order.
const ROTATION_COLUMNS: &str = "id, kind, from_kek, to_kek, cursor, done, finished_at_ms";

/// An arbitrary constant naming the lock that serializes the start of key rotations.
const ROTATION_LOCK: i64 = 0x5348_5041_595f_524f;

/// An internal error: a bug or a corrupt database.
fn internal(what: &str) -> StoreError {
    StoreError::Internal(what.to_owned())
}

/// A stored option from a row of [`OPTION_COLUMNS`].
fn option_from(r: &Row) -> Result<StoredOption, StoreError> {
    let month: i64 = get(r, 5)?;
    let year: i64 = get(r, 6)?;
    Ok(StoredOption {
        reference: get(r, 0)?,
        merchant_id: get(r, 1)?,
        account_id: get(r, 2)?,
        code: get(r, 3)?,
        masked: get(r, 4)?,
        expiry_month: u8::try_from(month).map_err(|_| internal("stored expiry month out of range"))?,
        expiry_year: u16::try_from(year).map_err(|_| internal("stored expiry year out of range"))?,
        fingerprint: get(r, 7)?,
        kek_id: get(r, 8)?,
        pan_sealed: get(r, 9)?,
        token_sealed: get(r, 10)?,
        provider: get(r, 11)?,
        is_default: get::<i64>(r, 12)? != 0,
        created_at: Millis(get(r, 13)?),
    })
}

/// A rotation from a row of [`ROTATION_COLUMNS`].
fn rotation_from(r: &Row) -> Result<Rotation, StoreError> {
    let kind: String = get(r, 1)?;
    let kind = match kind.as_str() {
        "KEK" => RotationKind::Kek,
        "DEK" => RotationKind::Dek,
        _ => return Err(internal("unknown rotation kind")),
    };
    Ok(Rotation {
        id: get(r, 0)?,
        kind,
        from_kek: get(r, 2)?,
        to_kek: get(r, 3)?,
        cursor: get(r, 4)?,
        done: u64::try_from(get::<i64>(r, 5)?).unwrap_or(0),
        finished: get::<Option<i64>>(r, 6)?.is_some(),
    })
}

/// Column `i` of a row; a value that does not decode is a bug or a corrupt database (internal),
/// not a lost connection.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| StoreError::Internal(format!("column {i}: {e}")))
}

/// `NotFound` when a write touched no row.
fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Locks an account's row until the transaction ends; `false` when there is no such account.
async fn lock_account(tx: &Transaction<'_>, merchant_id: &str, account_id: &str) -> Result<bool, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT 1 FROM accounts WHERE merchant_id = $1 AND account_id = $2 FOR UPDATE")
        .await
        .map_err(map_err)?;
    Ok(tx.query_opt(&stmt, &[&merchant_id, &account_id]).await.map_err(map_err)?.is_some())
}

/// One option of an account, read through `tx` (a transaction or a pooled connection).
async fn option_in(
    tx: &impl GenericClient,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<Option<StoredOption>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {OPTION_COLUMNS} FROM payment_options WHERE merchant_id = $1 AND account_id = $2 AND reference = $3"
        ))
        .await
        .map_err(map_err)?;
    tx.query_opt(&stmt, &[&merchant_id, &account_id, &reference])
        .await
        .map_err(map_err)?
        .as_ref()
        .map(option_from)
        .transpose()
}

/// Makes `reference` the account's only default (the account is locked by the caller).
async fn make_default(
    tx: &Transaction<'_>,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE payment_options SET is_default = CASE WHEN reference = $3 THEN 1 ELSE 0 END
             WHERE merchant_id = $1 AND account_id = $2",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&stmt, &[&merchant_id, &account_id, &reference]).await.map_err(map_err)?;
    Ok(())
}

/// An account of a merchant, or `None`.
pub(crate) async fn account(pool: &Pool, merchant_id: &str, account_id: &str) -> Result<Option<Account>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(
            "SELECT billing_address, consumer, created_at_ms, updated_at_ms FROM accounts
             WHERE merchant_id = $1 AND account_id = $2",
        )
        .await
        .map_err(map_err)?;
    let Some(row) = c.query_opt(&stmt, &[&merchant_id, &account_id]).await.map_err(map_err)? else { return Ok(None) };
    let r = &row;
    Ok(Some(Account {
        merchant_id: merchant_id.to_owned(),
        account_id: account_id.to_owned(),
        billing_address: get(r, 0)?,
        consumer: get(r, 1)?,
        created_at: Millis(get(r, 2)?),
        updated_at: Millis(get(r, 3)?),
    }))
}

/// Replaces an account's billing address and consumer; `NotFound` without the account.
pub(crate) async fn update_account(
    pool: &Pool,
    merchant_id: &str,
    account_id: &str,
    billing_address: String,
    consumer: Option<String>,
    at: Millis,
) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(
            "UPDATE accounts SET billing_address = $1, consumer = $2, updated_at_ms = $3
             WHERE merchant_id = $4 AND account_id = $5",
        )
        .await
        .map_err(map_err)?;
    found(c.execute(&stmt, &[&billing_address, &consumer, &at.0, &merchant_id, &account_id]).await.map_err(map_err)?)
}

/// An account's options, oldest first.
pub(crate) async fn payment_options(
    pool: &Pool,
    merchant_id: &str,
    account_id: &str,
) -> Result<Vec<StoredOption>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {OPTION_COLUMNS} FROM payment_options WHERE merchant_id = $1 AND account_id = $2
             ORDER BY created_at_ms, reference"
        ))
        .await
        .map_err(map_err)?;
    c.query(&stmt, &[&merchant_id, &account_id]).await.map_err(map_err)?.iter().map(option_from).collect()
}

/// One option of an account, or `None`.
pub(crate) async fn payment_option(
    pool: &Pool,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<Option<StoredOption>, StoreError> {
    let c = client(pool).await?;
    option_in(&c, merchant_id, account_id, reference).await
}

/// Stores an option under its locked account: the account's first becomes its default, a card
/// already stored (same fingerprint) is reported as a duplicate, not stored twice.
pub(crate) async fn add_payment_option(pool: &Pool, o: StoredOption) -> Result<AddOption, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    if !lock_account(&tx, &o.merchant_id, &o.account_id).await? {
        return Ok(AddOption::NoAccount);
    }
    let existing = tx
        .prepare_cached(
            "SELECT reference FROM payment_options WHERE merchant_id = $1 AND account_id = $2 AND fingerprint = $3",
        )
        .await
        .map_err(map_err)?;
    if let Some(row) =
        tx.query_opt(&existing, &[&o.merchant_id, &o.account_id, &o.fingerprint]).await.map_err(map_err)?
    {
        return Ok(AddOption::Duplicate(get(&row, 0)?));
    }
    let first = tx
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM payment_options WHERE merchant_id = $1 AND account_id = $2)")
        .await
        .map_err(map_err)?;
    let first: bool = get(&tx.query_one(&first, &[&o.merchant_id, &o.account_id]).await.map_err(map_err)?, 0)?;
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO payment_options ({OPTION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .await
        .map_err(map_err)?;
    tx.execute(
        &insert,
        &[
            &o.reference,
            &o.merchant_id,
            &o.account_id,
            &o.code,
            &o.masked,
            &i64::from(o.expiry_month),
            &i64::from(o.expiry_year),
            &o.fingerprint,
            &o.kek_id,
            &o.pan_sealed,
            &o.token_sealed,
            &o.provider,
            &i64::from(first || o.is_default),
            &o.created_at.0,
        ],
    )
    .await
    .map_err(map_err)?;
    if o.is_default && !first {
        make_default(&tx, &o.merchant_id, &o.account_id, &o.reference).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(AddOption::Added)
}

/// Deletes an option; a deleted default passes to the oldest remaining option. `false`
/// without such an option.
pub(crate) async fn delete_payment_option(
    pool: &Pool,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<bool, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    if !lock_account(&tx, merchant_id, account_id).await? {
        return Ok(false);
    }
    let Some(o) = option_in(&tx, merchant_id, account_id, reference).await? else { return Ok(false) };
    let delete = tx.prepare_cached("DELETE FROM payment_options WHERE reference = $1").await.map_err(map_err)?;
    tx.execute(&delete, &[&reference]).await.map_err(map_err)?;
    if o.is_default {
        let promote = tx
            .prepare_cached(
                "UPDATE payment_options SET is_default = 1 WHERE reference = (
                     SELECT reference FROM payment_options WHERE merchant_id = $1 AND account_id = $2
                     ORDER BY created_at_ms, reference LIMIT 1)",
            )
            .await
            .map_err(map_err)?;
        tx.execute(&promote, &[&merchant_id, &account_id]).await.map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}

/// Makes an option the account's only default; `false` without such an option.
pub(crate) async fn set_default_option(
    pool: &Pool,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<bool, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    if !lock_account(&tx, merchant_id, account_id).await? {
        return Ok(false);
    }
    if option_in(&tx, merchant_id, account_id, reference).await?.is_none() {
        return Ok(false);
    }
    make_default(&tx, merchant_id, account_id, reference).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}

/// The key versions, oldest first.
pub(crate) async fn vault_keys(pool: &Pool) -> Result<Vec<VaultKey>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(
            "SELECT kek_id, check_sealed, state, created_at_ms FROM vault_keys ORDER BY created_at_ms, kek_id",
        )
        .await
        .map_err(map_err)?;
    c.query(&stmt, &[])
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(VaultKey {
                kek_id: get(r, 0)?,
                check_sealed: get(r, 1)?,
                retired: get::<String>(r, 2)? == "RETIRED",
                created_at: Millis(get(r, 3)?),
            })
        })
        .collect()
}

/// Records a key version; a known one is left as it is.
pub(crate) async fn add_vault_key(pool: &Pool, key: VaultKey) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO vault_keys (kek_id, check_sealed, state, created_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kek_id) DO NOTHING",
        )
        .await
        .map_err(map_err)?;
    let state = if key.retired { "RETIRED" } else { "ACTIVE" };
    c.execute(&stmt, &[&key.kek_id, &key.check_sealed, &state, &key.created_at.0]).await.map_err(map_err)?;
    Ok(())
}

/// Retires a key version; `NotFound` when it is unknown.
pub(crate) async fn retire_vault_key(pool: &Pool, kek_id: &str, at: Millis) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached("UPDATE vault_keys SET state = 'RETIRED', retired_at_ms = $1 WHERE kek_id = $2")
        .await
        .map_err(map_err)?;
    found(c.execute(&stmt, &[&at.0, &kek_id]).await.map_err(map_err)?)
}

/// How many options are sealed under each key version.
pub(crate) async fn options_per_key(pool: &Pool) -> Result<Vec<(String, u64)>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached("SELECT kek_id, COUNT(*) FROM payment_options GROUP BY kek_id ORDER BY kek_id")
        .await
        .map_err(map_err)?;
    c.query(&stmt, &[])
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            let count: i64 = get(r, 1)?;
            Ok((get(r, 0)?, u64::try_from(count).unwrap_or(0)))
        })
        .collect()
}

/// Options after `after` in reference order, optionally only those under `kek_id`.
pub(crate) async fn options_after(
    pool: &Pool,
    kek_id: Option<&str>,
    after: &str,
    limit: u32,
) -> Result<Vec<StoredOption>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {OPTION_COLUMNS} FROM payment_options WHERE ($1::TEXT IS NULL OR kek_id = $1) AND reference > $2
             ORDER BY reference LIMIT $3"
        ))
        .await
        .map_err(map_err)?;
    c.query(&stmt, &[&kek_id, &after, &i64::from(limit)]).await.map_err(map_err)?.iter().map(option_from).collect()
}

/// Applies rotation steps (each only while its option still holds the expected blob) and moves
/// the rotation's cursor, in one transaction; batches of one rotation run one after the other.
pub(crate) async fn reseal_options(
    pool: &Pool,
    rotation_id: i64,
    steps: Vec<Reseal>,
    cursor: String,
) -> Result<u64, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    // Batches of one rotation from several nodes run one after the other.
    let lock = tx.prepare_cached("SELECT 1 FROM vault_rotations WHERE id = $1 FOR UPDATE").await.map_err(map_err)?;
    tx.query_opt(&lock, &[&rotation_id]).await.map_err(map_err)?;
    let step = tx
        .prepare_cached(
            "UPDATE payment_options SET kek_id = $1, number_sealed = $2, token_sealed = $3
             WHERE reference = $4 AND number_sealed = $5",
        )
        .await
        .map_err(map_err)?;
    let mut changed: u64 = 0;
    for s in &steps {
        changed += tx
            .execute(&step, &[&s.kek_id, &s.pan_sealed, &s.token_sealed, &s.reference, &s.expected_pan_sealed])
            .await
            .map_err(map_err)?;
    }
    let advance = tx
        .prepare_cached("UPDATE vault_rotations SET cursor = $1, done = done + $2 WHERE id = $3")
        .await
        .map_err(map_err)?;
    let done = i64::try_from(changed).map_err(|_| internal("reseal count out of range"))?;
    tx.execute(&advance, &[&cursor, &done, &rotation_id]).await.map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(changed)
}

/// The unfinished rotation, if any.
pub(crate) async fn open_rotation(pool: &Pool) -> Result<Option<Rotation>, StoreError> {
    let c = client(pool).await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {ROTATION_COLUMNS} FROM vault_rotations WHERE finished_at_ms IS NULL ORDER BY id LIMIT 1"
        ))
        .await
        .map_err(map_err)?;
    c.query_opt(&stmt, &[]).await.map_err(map_err)?.as_ref().map(rotation_from).transpose()
}

/// Starts a rotation; `Conflict` while another is unfinished (also one that another node is
/// starting at the same moment).
pub(crate) async fn start_rotation(
    pool: &Pool,
    kind: RotationKind,
    from_kek: &str,
    to_kek: &str,
    at: Millis,
) -> Result<Rotation, StoreError> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(map_err)?;
    // Held until commit: a node starting a rotation at the same time waits, then sees this one.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ROTATION_LOCK]).await.map_err(map_err)?;
    let open = tx
        .prepare_cached(&format!(
            "SELECT {ROTATION_COLUMNS} FROM vault_rotations WHERE finished_at_ms IS NULL ORDER BY id LIMIT 1"
        ))
        .await
        .map_err(map_err)?;
    if let Some(open) = tx.query_opt(&open, &[]).await.map_err(map_err)?.as_ref().map(rotation_from).transpose()? {
        return Err(StoreError::Conflict(format!(
            "a {} rotation from {} to {} is unfinished: resume it first",
            open.kind.as_str(),
            open.from_kek,
            open.to_kek
        )));
    }
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO vault_rotations (kind, from_kek, to_kek, started_at_ms) VALUES ($1, $2, $3, $4)
             RETURNING {ROTATION_COLUMNS}"
        ))
        .await
        .map_err(map_err)?;
    let row = tx.query_one(&insert, &[&kind.as_str(), &from_kek, &to_kek, &at.0]).await.map_err(map_err)?;
    let rotation = rotation_from(&row)?;
    tx.commit().await.map_err(map_err)?;
    Ok(rotation)
}

/// Marks a rotation finished; `NotFound` when it is unknown.
pub(crate) async fn finish_rotation(pool: &Pool, id: i64, at: Millis) -> Result<(), StoreError> {
    let c = client(pool).await?;
    let stmt =
        c.prepare_cached("UPDATE vault_rotations SET finished_at_ms = $1 WHERE id = $2").await.map_err(map_err)?;
    found(c.execute(&stmt, &[&at.0, &id]).await.map_err(map_err)?)
}
