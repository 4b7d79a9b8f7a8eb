//! The verification operations on PostgreSQL (see `sqlite_verification.rs` for SQLite): the
//! same statements from `sql.rs`.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::ops::{Head, append_audit};
use crate::writer::{Op, Out};
use crate::*;

fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
}

async fn write_evidence(conn: &mut PgConnection, r: &EvidenceRow) -> Result<()> {
    sqlx::query(crate::sql::INSERT_EVIDENCE)
        .bind(r.id)
        .bind(r.customer_id)
        .bind(r.beneficial_owner_id)
        .bind(r.method.clone())
        .bind(r.result.clone())
        .bind(r.at)
        .bind(r.actor.clone())
        .bind(r.source_key.clone())
        .bind(r.details.clone())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_evidence(
    conn: &mut PgConnection,
    head: &mut Head,
    w: EvidenceWrite,
) -> Result<bool> {
    if let Some(key) = &w.row.source_key {
        let seen = sqlx::query(crate::sql::EVIDENCE_SOURCE_EXISTS)
            .bind(key.clone())
            .fetch_optional(&mut *conn)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
    }
    write_evidence(conn, &w.row).await?;
    if let Some(f) = &w.file {
        sqlx::query(crate::sql::INSERT_EVIDENCE_FILE)
            .bind(w.row.id)
            .bind(f.sha256.to_vec())
            .bind(f.content_type.clone())
            .bind(f.size)
            .bind(f.content.clone())
            .execute(&mut *conn)
            .await?;
    }
    if let Some(req) = w.completes_request {
        sqlx::query(crate::sql::COMPLETE_REQUEST)
            .bind(w.row.at)
            .bind(req)
            .execute(&mut *conn)
            .await?;
    }
    append_audit(conn, head, w.audit).await?;
    Ok(true)
}

fn evidence_from_row(r: &sqlx::postgres::PgRow) -> Result<EvidenceRow> {
    Ok(EvidenceRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        beneficial_owner_id: r.try_get("beneficial_owner_id")?,
        method: r.try_get("method")?,
        result: r.try_get("result")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        source_key: r.try_get("source_key")?,
        details: r.try_get("details")?,
    })
}

pub(crate) async fn list_evidence(
    conn: &mut PgConnection,
    customer_id: Uuid,
) -> Result<Vec<EvidenceRow>> {
    let rows = sqlx::query(crate::sql::LIST_EVIDENCE)
        .bind(customer_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(evidence_from_row).collect()
}

pub(crate) async fn list_evidence_between(
    conn: &mut PgConnection,
    first: Uuid,
    last: Uuid,
) -> Result<Vec<EvidenceRow>> {
    let rows = sqlx::query(crate::sql::LIST_EVIDENCE_BETWEEN)
        .bind(first)
        .bind(last)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(evidence_from_row).collect()
}

pub(crate) async fn get_evidence_file(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<EvidenceFile>> {
    let row = sqlx::query(crate::sql::GET_EVIDENCE_FILE)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        Ok(EvidenceFile {
            sha256: hash32(r.try_get("sha256")?)?,
            content_type: r.try_get("content_type")?,
            size: r.try_get("size")?,
            content: r.try_get("content")?,
        })
    })
    .transpose()
}

async fn insert_otp(
    conn: &mut PgConnection,
    head: &mut Head,
    r: OtpRow,
    audit: AuditDraft,
) -> Result<()> {
    sqlx::query(crate::sql::INSERT_OTP)
        .bind(r.id)
        .bind(r.customer_id)
        .bind(r.beneficial_owner_id)
        .bind(r.channel.clone())
        .bind(r.destination_hash.to_vec())
        .bind(r.code_hash.to_vec())
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.attempts)
        .bind(r.max_attempts)
        .bind(r.status.clone())
        .bind(r.version)
        .execute(&mut *conn)
        .await?;
    sqlx::query(crate::sql::SUPERSEDE_OTPS)
        .bind(r.customer_id)
        .bind(r.channel)
        .bind(r.beneficial_owner_id)
        .bind(r.id)
        .execute(&mut *conn)
        .await?;
    append_audit(conn, head, audit).await
}

fn otp_from_row(r: &sqlx::postgres::PgRow) -> Result<OtpRow> {
    Ok(OtpRow {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        beneficial_owner_id: r.try_get("beneficial_owner_id")?,
        channel: r.try_get("channel")?,
        destination_hash: hash32(r.try_get("destination_hash")?)?,
        code_hash: hash32(r.try_get("code_hash")?)?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        status: r.try_get("status")?,
        version: r.try_get("version")?,
    })
}

pub(crate) async fn get_otp(conn: &mut PgConnection, id: Uuid) -> Result<Option<OtpRow>> {
    let row = sqlx::query(crate::sql::GET_OTP)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(otp_from_row).transpose()
}

pub(crate) async fn recent_otps(
    conn: &mut PgConnection,
    customer_id: Uuid,
    owner: Option<Uuid>,
    channel: &str,
    since: i64,
) -> Result<Vec<OtpRow>> {
    let rows = sqlx::query(crate::sql::RECENT_OTPS)
        .bind(customer_id)
        .bind(channel.to_string())
        .bind(since)
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(otp_from_row).collect()
}

async fn update_otp(conn: &mut PgConnection, head: &mut Head, u: OtpUpdate) -> Result<()> {
    let n = sqlx::query(crate::sql::UPDATE_OTP)
        .bind(u.row.attempts)
        .bind(u.row.status.clone())
        .bind(u.row.version)
        .bind(u.row.id)
        .bind(u.expected_version)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n == 0 {
        let current = sqlx::query(crate::sql::OTP_VERSION)
            .bind(u.row.id)
            .fetch_optional(&mut *conn)
            .await?;
        return Err(match current {
            None => StoreError::NotFound,
            Some(r) => StoreError::VersionConflict {
                current: r.try_get("version")?,
            },
        });
    }
    if let Some(e) = &u.evidence {
        write_evidence(conn, e).await?;
    }
    append_audit(conn, head, u.audit).await
}

async fn insert_verification_request(
    conn: &mut PgConnection,
    head: &mut Head,
    r: VerificationRequestRow,
    audit: AuditDraft,
) -> Result<()> {
    let res = sqlx::query(crate::sql::INSERT_VERIFICATION_REQUEST)
        .bind(r.id)
        .bind(r.customer_id)
        .bind(r.beneficial_owner_id)
        .bind(r.vendor)
        .bind(r.status)
        .bind(r.secret)
        .bind(r.created_at)
        .bind(r.completed_at)
        .bind(r.actor)
        .execute(&mut *conn)
        .await;
    match res {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(StoreError::Duplicate {
                what: "verification request id",
            });
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    append_audit(conn, head, audit).await
}

pub(crate) async fn get_verification_request(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<VerificationRequestRow>> {
    let row = sqlx::query(crate::sql::GET_VERIFICATION_REQUEST)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        Ok(VerificationRequestRow {
            id: r.try_get("id")?,
            customer_id: r.try_get("customer_id")?,
            beneficial_owner_id: r.try_get("beneficial_owner_id")?,
            vendor: r.try_get("vendor")?,
            status: r.try_get("status")?,
            secret: r.try_get("secret")?,
            created_at: r.try_get("created_at")?,
            completed_at: r.try_get("completed_at")?,
            actor: r.try_get("actor")?,
        })
    })
    .transpose()
}

pub(crate) async fn unverified_without_case(
    conn: &mut PgConnection,
    limit: u32,
) -> Result<Vec<UnverifiedTransition>> {
    let rows = sqlx::query(crate::sql::UNVERIFIED_WITHOUT_CASE)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UnverifiedTransition {
                account_id: r.try_get("account_id")?,
                customer_id: r.try_get("customer_id")?,
                version: r.try_get("version")?,
                reason: r.try_get("reason")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

async fn open_cases(
    conn: &mut PgConnection,
    head: &mut Head,
    cases: Vec<(CaseRow, AuditDraft)>,
) -> Result<u64> {
    let mut n = 0;
    for (c, audit) in cases {
        let done = sqlx::query(crate::sql::INSERT_CASE)
            .bind(c.id)
            .bind(c.account_id)
            .bind(c.customer_id)
            .bind(c.transition_version)
            .bind(c.reason)
            .bind(c.opened_at)
            .bind(c.status)
            .bind(c.resolution)
            .bind(c.resolution_reason)
            .bind(c.resolved_by)
            .bind(c.resolved_at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if done > 0 {
            append_audit(conn, head, audit).await?;
            n += 1;
        }
    }
    Ok(n)
}

fn case_from_row(r: &sqlx::postgres::PgRow) -> Result<CaseRow> {
    Ok(CaseRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        customer_id: r.try_get("customer_id")?,
        transition_version: r.try_get("transition_version")?,
        reason: r.try_get("reason")?,
        opened_at: r.try_get("opened_at")?,
        status: r.try_get("status")?,
        resolution: r.try_get("resolution")?,
        resolution_reason: r.try_get("resolution_reason")?,
        resolved_by: r.try_get("resolved_by")?,
        resolved_at: r.try_get("resolved_at")?,
    })
}

pub(crate) async fn get_case(conn: &mut PgConnection, id: Uuid) -> Result<Option<CaseRow>> {
    let row = sqlx::query(crate::sql::GET_CASE)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(case_from_row).transpose()
}

pub(crate) async fn list_cases(
    conn: &mut PgConnection,
    f: &CaseFilter,
    page: &PageRequest,
) -> Result<Vec<CaseRow>> {
    let rows = sqlx::query(crate::sql::LIST_CASES)
        .bind(page.cursor())
        .bind(f.status.clone())
        .bind(f.opened_from)
        .bind(f.opened_to)
        .bind(i64::from(page.limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(case_from_row).collect()
}

async fn resolve_case(conn: &mut PgConnection, head: &mut Head, d: CaseResolution) -> Result<()> {
    let n = sqlx::query(crate::sql::RESOLVE_CASE)
        .bind(d.resolution)
        .bind(d.reason)
        .bind(d.resolved_by)
        .bind(d.resolved_at)
        .bind(d.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n == 0 {
        let exists = sqlx::query(crate::sql::CASE_EXISTS)
            .bind(d.id)
            .fetch_optional(&mut *conn)
            .await?;
        return Err(match exists {
            None => StoreError::NotFound,
            Some(_) => StoreError::Duplicate {
                what: "resolution (the case is already resolved)",
            },
        });
    }
    append_audit(conn, head, d.audit).await
}

/// The verification operations of the writer (the rest are in `ops::apply`).
pub(crate) async fn apply(conn: &mut PgConnection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::InsertEvidence(w) => Out::Bool(insert_evidence(conn, head, *w).await?),
        Op::InsertOtp(r, audit) => {
            insert_otp(conn, head, *r, audit).await?;
            Out::Unit
        }
        Op::UpdateOtp(u) => {
            update_otp(conn, head, *u).await?;
            Out::Unit
        }
        Op::InsertVerificationRequest(r, audit) => {
            insert_verification_request(conn, head, *r, audit).await?;
            Out::Unit
        }
        Op::OpenCases(cases) => Out::Count(open_cases(conn, head, cases).await?),
        Op::ResolveCase(d) => {
            resolve_case(conn, head, *d).await?;
            Out::Unit
        }
        Op::InsertOtpThrottled(r, throttle, audit) => {
            let recent: Vec<i64> = recent_otps(
                conn,
                r.customer_id,
                r.beneficial_owner_id,
                &r.channel,
                r.created_at - 3_600_000_000,
            )
            .await?
            .iter()
            .map(|o| o.created_at)
            .collect();
            match otp_throttled(&recent, r.created_at, &throttle) {
                Some((limit, retry_at)) => Out::Otp(OtpOutcome::Throttled { limit, retry_at }),
                None => {
                    insert_otp(conn, head, *r, audit).await?;
                    Out::Otp(OtpOutcome::Stored)
                }
            }
        }
        _ => {
            return Err(StoreError::Backend("not a verification operation".into()));
        }
    })
}
