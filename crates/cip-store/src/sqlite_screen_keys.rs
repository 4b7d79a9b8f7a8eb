//! The keyed index of screening keys on rusqlite (see `postgres/screen_keys_ops.rs` for
//! PostgreSQL; `screen_keys.rs` for the tables).

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::screen_keys::{KeyHolder, ScreenKeys, changes, decode, encode, sql};
use crate::sqlite_ops::{Head, append_audit};
use crate::writer::{Op, Out};
use crate::*;

/// Brings a customer's stored screening keys to `keys` (its record's new version), in the
/// transaction of the record write: only the keys that changed are deleted and inserted.
/// `None` removes them (the record is then unkeyed until the backfill derives them).
pub(crate) fn write_screen_keys(
    conn: &Connection,
    customer_id: Uuid,
    keys: Option<&ScreenKeys>,
) -> Result<()> {
    let old = conn
        .prepare_cached(sql::GET_KEYSET)?
        .query_row([customer_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?
        .map(|(g, b, k)| (g, b, decode(&k)));
    if old.is_none() && keys.is_none() {
        return Ok(());
    }
    let (gone, added) = changes(old, keys);
    if !gone.is_empty() {
        let mut stmt = conn.prepare_cached(sql::DELETE_KEY)?;
        for k in gone {
            stmt.execute(params![k, customer_id])?;
        }
    }
    if let (false, Some(new)) = (added.is_empty(), keys) {
        let mut stmt = conn.prepare_cached(sql::INSERT_KEY)?;
        for k in added {
            stmt.execute(params![k, customer_id, new.born])?;
        }
    }
    match keys {
        Some(k) => conn.prepare_cached(sql::PUT_KEYSET)?.execute(params![
            customer_id,
            k.generation,
            encode(&k.keys),
            k.born
        ])?,
        None => conn
            .prepare_cached(sql::DELETE_KEYSET)?
            .execute([customer_id])?,
    };
    Ok(())
}

fn put_screen_keys(
    conn: &Connection,
    head: &mut Head,
    keys: Vec<(Uuid, i64, ScreenKeys)>,
    audit: AuditDraft,
) -> Result<u64> {
    let mut stored = 0;
    for (id, version, k) in keys {
        let current = conn
            .prepare_cached(sql::CUSTOMER_VERSION)?
            .query_row([id], |r| r.get::<_, i64>(0))
            .optional()?;
        if current == Some(version) {
            write_screen_keys(conn, id, Some(&k))?;
            stored += 1;
        }
    }
    append_audit(conn, head, audit)?;
    Ok(stored)
}

/// The screening-key operations of the writer.
pub(crate) fn apply(conn: &Connection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::PutScreenKeys(keys, audit) => Out::Count(put_screen_keys(conn, head, keys, audit)?),
        _ => return Err(StoreError::Backend("not a screening-key operation".into())),
    })
}

pub(crate) fn customers_with_screen_keys(conn: &Connection, keys: &[i64]) -> Result<Vec<Uuid>> {
    let mut stmt = conn.prepare_cached(sql::CUSTOMERS_WITH_KEY)?;
    let mut out = Vec::new();
    for k in keys {
        let rows = stmt.query_map([k], |r| r.get::<_, Uuid>(0))?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

pub(crate) fn screen_key_holders(conn: &Connection, keys: &[i64]) -> Result<Vec<KeyHolder>> {
    let mut stmt = conn.prepare_cached(sql::KEY_HOLDERS)?;
    let mut out = Vec::new();
    for &key in keys {
        let rows = stmt.query_map([key], |r| {
            Ok(KeyHolder {
                customer: r.get(0)?,
                key,
                born: r.get(1)?,
            })
        })?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

pub(crate) fn count_screen_keyed(conn: &Connection, generation: i64) -> Result<u64> {
    let n = conn
        .prepare_cached(sql::COUNT_KEYED)?
        .query_row([generation], |r| r.get::<_, i64>(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) fn customers_without_screen_keys(
    conn: &Connection,
    generation: i64,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<CustomerDigestRow>> {
    let mut stmt = conn.prepare_cached(sql::WITHOUT_KEYS)?;
    let rows = stmt.query_map(
        params![
            DigestPart::Screening.code(),
            crate::types::cursor(after),
            generation,
            i64::from(limit)
        ],
        crate::sqlite_ops::customer_digest_from_row,
    )?;
    rows.map(|r| crate::sqlite_ops::with_key_id(r?)).collect()
}
