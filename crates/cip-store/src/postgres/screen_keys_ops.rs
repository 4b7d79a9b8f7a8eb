//! The keyed index of screening keys on PostgreSQL (see `sqlite_screen_keys.rs` for SQLite;
//! `screen_keys.rs` for the tables): whole key arrays per statement.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::ops::{Head, append_audit};
use crate::screen_keys::{KeyHolder, ScreenKeys, changes, decode, encode, sql};
use crate::writer::{Op, Out};
use crate::*;

/// Brings a customer's stored screening keys to `keys`, in the transaction of the record
/// write (see `sqlite_screen_keys::write_screen_keys`).
pub(crate) async fn write_screen_keys(
    conn: &mut PgConnection,
    customer_id: Uuid,
    keys: Option<&ScreenKeys>,
) -> Result<()> {
    let old = match sqlx::query(sql::GET_KEYSET)
        .bind(customer_id)
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(r) => Some((
            r.try_get::<i64, _>("generation")?,
            r.try_get::<i64, _>("born")?,
            decode(&r.try_get::<Vec<u8>, _>("keys")?),
        )),
        None => None,
    };
    if old.is_none() && keys.is_none() {
        return Ok(());
    }
    let (gone, added) = changes(old, keys);
    if !gone.is_empty() {
        sqlx::query(sql::DELETE_KEYS_MANY)
            .bind(gone)
            .bind(customer_id)
            .execute(&mut *conn)
            .await?;
    }
    if let (false, Some(new)) = (added.is_empty(), keys) {
        sqlx::query(sql::INSERT_KEYS_MANY)
            .bind(added)
            .bind(customer_id)
            .bind(new.born)
            .execute(&mut *conn)
            .await?;
    }
    match keys {
        Some(k) => {
            sqlx::query(sql::PUT_KEYSET)
                .bind(customer_id)
                .bind(k.generation)
                .bind(encode(&k.keys))
                .bind(k.born)
                .execute(&mut *conn)
                .await?
        }
        None => {
            sqlx::query(sql::DELETE_KEYSET)
                .bind(customer_id)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(())
}

async fn put_screen_keys(
    conn: &mut PgConnection,
    head: &mut Head,
    keys: Vec<(Uuid, i64, ScreenKeys)>,
    audit: AuditDraft,
) -> Result<u64> {
    let mut stored = 0;
    for (id, version, k) in keys {
        let current: Option<i64> = sqlx::query(sql::CUSTOMER_VERSION)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get("version"))
            .transpose()?;
        if current == Some(version) {
            write_screen_keys(conn, id, Some(&k)).await?;
            stored += 1;
        }
    }
    append_audit(conn, head, audit).await?;
    Ok(stored)
}

/// The screening-key operations of the writer.
pub(crate) async fn apply(conn: &mut PgConnection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::PutScreenKeys(keys, audit) => {
            Out::Count(put_screen_keys(conn, head, keys, audit).await?)
        }
        _ => return Err(StoreError::Backend("not a screening-key operation".into())),
    })
}

pub(crate) async fn customers_with_screen_keys(
    conn: &mut PgConnection,
    keys: &[i64],
) -> Result<Vec<Uuid>> {
    let rows = sqlx::query(sql::CUSTOMERS_WITH_KEYS_MANY)
        .bind(keys.to_vec())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<Uuid, _>("customer_id")?))
        .collect()
}

pub(crate) async fn screen_key_holders(
    conn: &mut PgConnection,
    keys: &[i64],
) -> Result<Vec<KeyHolder>> {
    let rows = sqlx::query(sql::KEY_HOLDERS_MANY)
        .bind(keys.to_vec())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyHolder {
                customer: r.try_get("customer_id")?,
                key: r.try_get("key")?,
                born: r.try_get("born")?,
            })
        })
        .collect()
}

/// A `CustomerDigestRow` from a statement built on `sql::select_customer_digests!`.
pub(crate) fn customer_digest_from_row(r: &sqlx::postgres::PgRow) -> Result<CustomerDigestRow> {
    let key_id: i64 = r.try_get("key_id")?;
    Ok(CustomerDigestRow {
        id: r.try_get("id")?,
        version: r.try_get("version")?,
        key_id: u32::try_from(key_id)
            .map_err(|_| StoreError::Backend("key id out of range".into()))?,
        digest: r.try_get("digest")?,
        document: r.try_get("document")?,
    })
}

pub(crate) async fn count_screen_keyed(conn: &mut PgConnection, generation: i64) -> Result<u64> {
    let n: i64 = sqlx::query(sql::COUNT_KEYED)
        .bind(generation)
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn customers_without_screen_keys(
    conn: &mut PgConnection,
    generation: i64,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<CustomerDigestRow>> {
    let rows = sqlx::query(sql::WITHOUT_KEYS)
        .bind(DigestPart::Screening.code())
        .bind(crate::types::cursor(after))
        .bind(generation)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(customer_digest_from_row).collect()
}
