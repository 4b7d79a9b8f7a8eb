//! The lifecycle job's reads and reminders on PostgreSQL (see `sqlite_due.rs` for SQLite):
//! the same statements from `due::sql`. Two instances recording the same reminder at once:
//! the second insert waits for the first transaction and then does nothing (`ON CONFLICT DO
//! NOTHING` on the key), so its event and audit entry are not written.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::ops::{Head, append_audit};
use crate::due::sql;
use crate::writer::{Op, Out};
use crate::*;

pub(crate) async fn accounts_entered_before(
    conn: &mut PgConnection,
    status: &str,
    after: Option<Uuid>,
    before: i64,
    limit: u32,
) -> Result<Vec<AccountSince>> {
    let rows = sqlx::query(sql::ACCOUNTS_ENTERED_BEFORE)
        .bind(status.to_string())
        .bind(after.unwrap_or(Uuid::nil()))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AccountSince {
                account: super::ops::account_from_row(r)?,
                since: r.try_get("since")?,
            })
        })
        .collect()
}

pub(crate) async fn customer_digests(
    conn: &mut PgConnection,
    part: DigestPart,
    ids: &[Uuid],
) -> Result<Vec<CustomerDigestRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sql::CUSTOMER_DIGESTS_ANY)
        .bind(part.code())
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(super::screen_keys_ops::customer_digest_from_row)
        .collect()
}

pub(crate) async fn reminders_sent(
    conn: &mut PgConnection,
    kind: &str,
    accounts: &[Uuid],
) -> Result<Vec<(Uuid, i64)>> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sql::REMINDERS_SENT_ANY)
        .bind(kind)
        .bind(accounts)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("account_id")?, r.try_get("due_at")?)))
        .collect()
}

pub(crate) async fn list_reminders(
    conn: &mut PgConnection,
    account_id: Uuid,
) -> Result<Vec<ReminderRow>> {
    let rows = sqlx::query(sql::LIST_REMINDERS)
        .bind(account_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ReminderRow {
                account_id: r.try_get("account_id")?,
                kind: r.try_get("kind")?,
                due_at: r.try_get("due_at")?,
                sent_at: r.try_get("sent_at")?,
                event_id: r.try_get("event_id")?,
            })
        })
        .collect()
}

async fn record_reminders(
    conn: &mut PgConnection,
    head: &mut Head,
    writes: Vec<ReminderWrite>,
) -> Result<u64> {
    let mut n = 0;
    for w in writes {
        let r = &w.row;
        let added = sqlx::query(sql::INSERT_REMINDER)
            .bind(r.account_id)
            .bind(r.kind.clone())
            .bind(r.due_at)
            .bind(r.sent_at)
            .bind(r.event_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if added == 0 {
            continue;
        }
        n += 1;
        let e = w.event;
        sqlx::query(crate::sql::INSERT_EVENT)
            .bind(e.id)
            .bind(e.event_type.clone())
            .bind(e.payload)
            .bind(e.created_at)
            .execute(&mut *conn)
            .await?;
        sqlx::query(crate::sql::FAN_OUT_EVENT)
            .bind(e.id)
            .bind(e.created_at)
            .bind(e.event_type)
            .execute(&mut *conn)
            .await?;
        append_audit(conn, head, w.audit).await?;
    }
    Ok(n)
}

/// The due-work operations of the writer.
pub(crate) async fn apply(conn: &mut PgConnection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::RecordReminders(writes) => Out::Count(record_reminders(conn, head, writes).await?),
        _ => return Err(StoreError::Backend("not a due-work operation".into())),
    })
}
