//! The lifecycle job's reads and reminders on PostgreSQL (see `sqlite_due.rs` for SQLite):
//! the same statements from `due::sql`. Two instances recording the same reminder at once:
//! the second insert waits for the first transaction and then does nothing (`ON CONFLICT DO
//! NOTHING` on the key), so its event and audit entry are not written.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::ops::{Head, append_audit};
use crate::due::sql;
use crate::writer::{Op, Out};
use crate::*;

fn account(r: &PgRow) -> Result<AccountRow> {
    Ok(AccountRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        external_id: r.try_get("external_id")?,
        product: r.try_get("product")?,
        account_type: r.try_get("account_type")?,
        status: r.try_get("status")?,
        opened_at: r.try_get("opened_at")?,
        closed_at: r.try_get("closed_at")?,
        last_accessed_at: r.try_get("last_accessed_at")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

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
                account: account(r)?,
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
    let text = sql::customer_digests(ids.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(text)).bind(part.code());
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(CustomerDigestRow {
                id: r.try_get("id")?,
                version: r.try_get("version")?,
                key_id: u32::try_from(r.try_get::<i64, _>("key_id")?)
                    .map_err(|_| StoreError::Backend("key id out of range".into()))?,
                digest: r.try_get("digest")?,
                document: r.try_get("document")?,
            })
        })
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
    let text = sql::reminders_sent(accounts.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(text)).bind(kind.to_string());
    for id in accounts {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await?;
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
