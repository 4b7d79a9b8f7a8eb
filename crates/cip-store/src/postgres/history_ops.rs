//! Notices and determination history on PostgreSQL (see `sqlite_history.rs` for SQLite):
//! the same statements from `history::sql`. Every writer group holds the audit advisory
//! lock, so reading the latest determination and appending the next one cannot interleave
//! with another instance's append.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::ops::{Head, append_audit};
use crate::history::sql;
use crate::writer::{Op, Out};
use crate::*;

async fn write_notices(conn: &mut PgConnection, rows: &[NoticeRow]) -> Result<()> {
    for n in rows {
        sqlx::query(sql::INSERT_NOTICE)
            .bind(n.id)
            .bind(n.customer_id)
            .bind(n.policy_version.clone())
            .bind(n.shown_at)
            .bind(n.recorded_at)
            .bind(n.actor.clone())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_notices(
    conn: &mut PgConnection,
    head: &mut Head,
    rows: Vec<NoticeRow>,
    audit: AuditDraft,
) -> Result<()> {
    for id in rows.iter().map(|r| r.customer_id) {
        let exists = sqlx::query(sql::CUSTOMER_EXISTS)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
    }
    write_notices(conn, &rows).await?;
    append_audit(conn, head, audit).await
}

async fn append_determination(
    conn: &mut PgConnection,
    mut row: DeterminationRow,
) -> Result<Option<i64>> {
    let latest = sqlx::query(sql::LATEST_DETERMINATION)
        .bind(row.customer_id)
        .fetch_optional(&mut *conn)
        .await?;
    match latest {
        Some(r) => {
            let digest: Vec<u8> = r.try_get("digest")?;
            if digest == row.digest {
                return Ok(None);
            }
            row.seq = r.try_get::<i64, _>("seq")? + 1;
            row.previous_status = Some(r.try_get("status")?);
        }
        None => {
            row.seq = 1;
            row.previous_status = None;
        }
    }
    sqlx::query(sql::INSERT_DETERMINATION)
        .bind(row.customer_id)
        .bind(row.seq)
        .bind(row.at)
        .bind(row.cause.clone())
        .bind(row.record_version)
        .bind(row.account_id)
        .bind(row.previous_status.clone())
        .bind(row.status.clone())
        .bind(row.summary.clone())
        .bind(row.digest.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(Some(row.seq))
}

pub(crate) async fn write_extras(conn: &mut PgConnection, extras: CustomerExtras) -> Result<()> {
    write_notices(conn, &extras.notices).await?;
    if let Some(d) = extras.determination {
        append_determination(conn, d).await?;
    }
    Ok(())
}

pub(crate) async fn list_notices(
    conn: &mut PgConnection,
    customer_id: Uuid,
) -> Result<Vec<NoticeRow>> {
    let rows = sqlx::query(sql::LIST_NOTICES)
        .bind(customer_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(NoticeRow {
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                policy_version: r.try_get("policy_version")?,
                shown_at: r.try_get("shown_at")?,
                recorded_at: r.try_get("recorded_at")?,
                actor: r.try_get("actor")?,
            })
        })
        .collect()
}

pub(crate) async fn list_determinations(
    conn: &mut PgConnection,
    customer_id: Uuid,
    after: i64,
    limit: u32,
) -> Result<Vec<DeterminationRow>> {
    let rows = sqlx::query(sql::LIST_DETERMINATIONS)
        .bind(customer_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let digest: Vec<u8> = r.try_get("digest")?;
            Ok(DeterminationRow {
                customer_id: r.try_get("customer_id")?,
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                cause: r.try_get("cause")?,
                record_version: r.try_get("record_version")?,
                account_id: r.try_get("account_id")?,
                previous_status: r.try_get("previous_status")?,
                status: r.try_get("status")?,
                summary: r.try_get("summary")?,
                digest: digest
                    .try_into()
                    .map_err(|_| StoreError::Backend("stored digest is not 32 bytes".into()))?,
            })
        })
        .collect()
}

pub(crate) async fn accounts_accessed_after(
    conn: &mut PgConnection,
    at: i64,
    id: Uuid,
    limit: u32,
) -> Result<Vec<AccountRow>> {
    let rows = sqlx::query(sql::ACCOUNTS_ACCESSED_AFTER)
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
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
        })
        .collect()
}

/// The history operations of the writer.
pub(crate) async fn apply(conn: &mut PgConnection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::InsertNotices(rows, audit) => {
            insert_notices(conn, head, rows, audit).await?;
            Out::Unit
        }
        Op::RecordDetermination(row, audit) => {
            let seq = append_determination(conn, *row).await?;
            if seq.is_some()
                && let Some(audit) = audit
            {
                append_audit(conn, head, audit).await?;
            }
            Out::Seq(seq)
        }
        _ => return Err(StoreError::Backend("not a history operation".into())),
    })
}
