//! The lifecycle job's reads and reminders on rusqlite (see `postgres/due_ops.rs` for
//! PostgreSQL). Same rule as `sqlite_ops`: expected failures before the first write.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::due::sql;
use crate::sqlite_ops::{Head, append_audit};
use crate::writer::{Op, Out};
use crate::*;

pub(crate) fn accounts_entered_before(
    conn: &Connection,
    status: &str,
    after: Option<Uuid>,
    before: i64,
    limit: u32,
) -> Result<Vec<AccountSince>> {
    let mut stmt = conn.prepare_cached(sql::ACCOUNTS_ENTERED_BEFORE)?;
    let rows = stmt.query_map(
        params![
            status,
            after.unwrap_or(Uuid::nil()),
            before,
            i64::from(limit)
        ],
        |r| {
            Ok(AccountSince {
                account: crate::sqlite_ops::account_from_row(r)?,
                since: r.get(12)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn customer_digests(
    conn: &Connection,
    part: DigestPart,
    ids: &[Uuid],
) -> Result<Vec<CustomerDigestRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The digest alone where there is one (one seek in its narrow table); the customer row,
    // whose document stands in for a missing digest, only where there is none.
    // One read transaction for the batch: one snapshot, and the WAL read lock taken once
    // instead of per statement.
    let tx = conn.unchecked_transaction()?;
    let mut digest = conn.prepare_cached(sql::DIGEST_ONLY_BY_ID)?;
    let mut customer = conn.prepare_cached(sql::CUSTOMER_DIGEST_BY_ID)?;
    let part = i64::from(part.code());
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = match digest
            .query_row(
                params![part, id],
                crate::sqlite_ops::customer_digest_from_row,
            )
            .optional()?
        {
            Some(row) => Some(row),
            None => customer
                .query_row(
                    params![part, id],
                    crate::sqlite_ops::customer_digest_from_row,
                )
                .optional()?,
        };
        if let Some(row) = row {
            out.push(crate::sqlite_ops::with_key_id(row)?);
        }
    }
    drop((digest, customer));
    tx.commit()?;
    // As the statement of many ids answers on PostgreSQL: in id order.
    out.sort_unstable_by_key(|r| r.id);
    Ok(out)
}

pub(crate) fn reminders_sent(
    conn: &Connection,
    kind: &str,
    accounts: &[Uuid],
) -> Result<Vec<(Uuid, i64)>> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(sql::REMINDER_SENT)?;
    let mut out = Vec::new();
    for account in accounts {
        let rows = stmt.query_map(params![kind, account], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for r in rows {
            out.push(r?);
        }
    }
    Ok(out)
}

pub(crate) fn list_reminders(conn: &Connection, account_id: Uuid) -> Result<Vec<ReminderRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_REMINDERS)?;
    let rows = stmt.query_map([account_id], |r| {
        Ok(ReminderRow {
            account_id: r.get(0)?,
            kind: r.get(1)?,
            due_at: r.get(2)?,
            sent_at: r.get(3)?,
            event_id: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Each reminder's row first: when another writer recorded it already, nothing of it is
/// written (the insert is the first statement, so nothing needs undoing).
fn record_reminders(conn: &Connection, head: &mut Head, writes: Vec<ReminderWrite>) -> Result<u64> {
    let mut n = 0;
    for w in writes {
        let r = &w.row;
        let added = conn.prepare_cached(sql::INSERT_REMINDER)?.execute(params![
            r.account_id,
            r.kind,
            r.due_at,
            r.sent_at,
            r.event_id
        ])?;
        if added == 0 {
            continue;
        }
        n += 1;
        let e = w.event;
        conn.prepare_cached(crate::sql::INSERT_EVENT)?
            .execute(params![e.id, e.event_type, e.payload, e.created_at])?;
        conn.prepare_cached(crate::sql::FAN_OUT_EVENT)?
            .execute(params![e.id, e.created_at, e.event_type])?;
        append_audit(conn, head, w.audit)?;
    }
    Ok(n)
}

/// The due-work operations of the writer.
pub(crate) fn apply(conn: &Connection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::RecordReminders(writes) => Out::Count(record_reminders(conn, head, writes)?),
        _ => return Err(StoreError::Backend("not a due-work operation".into())),
    })
}
