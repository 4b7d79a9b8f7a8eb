//! Notices and determination history on rusqlite (see `postgres/history_ops.rs` for
//! PostgreSQL). Same rule as `sqlite_ops`: expected failures before the first write.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use crate::history::sql;
use crate::sqlite_ops::{Head, append_audit};
use crate::writer::{Op, Out};
use crate::*;

fn write_notices(conn: &Connection, rows: &[NoticeRow]) -> Result<()> {
    for n in rows {
        conn.prepare_cached(sql::INSERT_NOTICE)?.execute(params![
            n.id,
            n.customer_id,
            n.policy_version,
            n.shown_at,
            n.recorded_at,
            n.actor,
        ])?;
    }
    Ok(())
}

pub(crate) fn insert_notices(
    conn: &Connection,
    head: &mut Head,
    rows: Vec<NoticeRow>,
    audit: AuditDraft,
) -> Result<()> {
    for id in rows.iter().map(|r| r.customer_id) {
        let exists = conn
            .prepare_cached(sql::CUSTOMER_EXISTS)?
            .query_row([id], |_| Ok(()))
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
    }
    write_notices(conn, &rows)?;
    append_audit(conn, head, audit)
}

/// Appends a determination when it differs from the latest; `None` when it does not.
pub(crate) fn append_determination(
    conn: &Connection,
    mut row: DeterminationRow,
) -> Result<Option<i64>> {
    let latest = conn
        .prepare_cached(sql::LATEST_DETERMINATION)?
        .query_row([row.customer_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    if let Some((seq, status, digest)) = latest {
        if digest == row.digest {
            return Ok(None);
        }
        row.seq = seq + 1;
        row.previous_status = Some(status);
    } else {
        row.seq = 1;
        row.previous_status = None;
    }
    conn.prepare_cached(sql::INSERT_DETERMINATION)?
        .execute(params![
            row.customer_id,
            row.seq,
            row.at,
            row.cause,
            row.record_version,
            row.account_id,
            row.previous_status,
            row.status,
            row.summary,
            row.digest.as_slice(),
        ])?;
    Ok(Some(row.seq))
}

/// The rows written with a customer, after it (same transaction).
pub(crate) fn write_extras(conn: &Connection, extras: CustomerExtras) -> Result<()> {
    write_notices(conn, &extras.notices)?;
    if let Some(d) = extras.determination {
        append_determination(conn, d)?;
    }
    Ok(())
}

fn determination_from_row(r: &Row<'_>) -> rusqlite::Result<(DeterminationRow, Vec<u8>)> {
    Ok((
        DeterminationRow {
            customer_id: r.get(0)?,
            seq: r.get(1)?,
            at: r.get(2)?,
            cause: r.get(3)?,
            record_version: r.get(4)?,
            account_id: r.get(5)?,
            previous_status: r.get(6)?,
            status: r.get(7)?,
            summary: r.get(8)?,
            digest: [0; 32],
        },
        r.get(9)?,
    ))
}

pub(crate) fn list_notices(conn: &Connection, customer_id: Uuid) -> Result<Vec<NoticeRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_NOTICES)?;
    let rows = stmt.query_map([customer_id], |r| {
        Ok(NoticeRow {
            id: r.get(0)?,
            customer_id: r.get(1)?,
            policy_version: r.get(2)?,
            shown_at: r.get(3)?,
            recorded_at: r.get(4)?,
            actor: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn list_determinations(
    conn: &Connection,
    customer_id: Uuid,
    after: i64,
    limit: u32,
) -> Result<Vec<DeterminationRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_DETERMINATIONS)?;
    let rows = stmt.query_map(
        params![customer_id, after, i64::from(limit)],
        determination_from_row,
    )?;
    rows.map(|r| {
        let (mut row, digest) = r?;
        row.digest = digest
            .try_into()
            .map_err(|_| StoreError::Backend("stored digest is not 32 bytes".into()))?;
        Ok(row)
    })
    .collect()
}

pub(crate) fn accounts_accessed_after(
    conn: &Connection,
    at: i64,
    id: Uuid,
    limit: u32,
) -> Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached(sql::ACCOUNTS_ACCESSED_AFTER)?;
    let rows = stmt.query_map(
        params![at, id, i64::from(limit)],
        crate::sqlite_ops::account_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The history operations of the writer.
pub(crate) fn apply(conn: &Connection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::InsertNotices(rows, audit) => {
            insert_notices(conn, head, rows, audit)?;
            Out::Unit
        }
        Op::RecordDetermination(row, audit) => {
            let seq = append_determination(conn, *row)?;
            if seq.is_some()
                && let Some(audit) = audit
            {
                append_audit(conn, head, audit)?;
            }
            Out::Seq(seq)
        }
        _ => return Err(StoreError::Backend("not a history operation".into())),
    })
}
