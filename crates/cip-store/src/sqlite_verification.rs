//! The verification operations on rusqlite (see `ops_verification.rs` for PostgreSQL). Same
//! rule as `sqlite_ops`: expected failures before the first write statement.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use crate::sql;
use crate::sqlite_ops::{Head, append_audit};
use crate::writer::{Op, Out};
use crate::*;

fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
}

fn write_evidence(conn: &Connection, r: &EvidenceRow) -> Result<()> {
    conn.prepare_cached(sql::INSERT_EVIDENCE)?.execute(params![
        r.id,
        r.customer_id,
        r.beneficial_owner_id,
        r.method,
        r.result,
        r.at,
        r.actor,
        r.source_key,
        r.details,
    ])?;
    Ok(())
}

pub(crate) fn insert_evidence(
    conn: &Connection,
    head: &mut Head,
    w: EvidenceWrite,
) -> Result<bool> {
    if let Some(key) = &w.row.source_key {
        let seen = conn
            .prepare_cached(sql::EVIDENCE_SOURCE_EXISTS)?
            .query_row([key], |_| Ok(()))
            .optional()?;
        if seen.is_some() {
            return Ok(false);
        }
    }
    write_evidence(conn, &w.row)?;
    if let Some(f) = &w.file {
        conn.prepare_cached(sql::INSERT_EVIDENCE_FILE)?
            .execute(params![
                w.row.id,
                f.sha256.as_slice(),
                f.content_type,
                f.size,
                f.content,
            ])?;
    }
    if let Some(req) = w.completes_request {
        conn.prepare_cached(sql::COMPLETE_REQUEST)?
            .execute(params![w.row.at, req])?;
    }
    append_audit(conn, head, w.audit)?;
    Ok(true)
}

fn evidence_from_row(r: &Row<'_>) -> rusqlite::Result<EvidenceRow> {
    Ok(EvidenceRow {
        id: r.get(0)?,
        customer_id: r.get(1)?,
        beneficial_owner_id: r.get(2)?,
        method: r.get(3)?,
        result: r.get(4)?,
        at: r.get(5)?,
        actor: r.get(6)?,
        source_key: r.get(7)?,
        details: r.get(8)?,
    })
}

pub(crate) fn list_evidence(conn: &Connection, customer_id: Uuid) -> Result<Vec<EvidenceRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_EVIDENCE)?;
    let rows = stmt.query_map([customer_id], evidence_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn list_evidence_between(
    conn: &Connection,
    first: Uuid,
    last: Uuid,
) -> Result<Vec<EvidenceRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_EVIDENCE_BETWEEN)?;
    let rows = stmt.query_map([first, last], evidence_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn get_evidence_file(conn: &Connection, id: Uuid) -> Result<Option<EvidenceFile>> {
    let raw = conn
        .prepare_cached(sql::GET_EVIDENCE_FILE)?
        .query_row([id], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    raw.map(|(h, content_type, size, content)| {
        Ok(EvidenceFile {
            sha256: hash32(h)?,
            content_type,
            size,
            content,
        })
    })
    .transpose()
}

pub(crate) fn insert_otp(
    conn: &Connection,
    head: &mut Head,
    r: OtpRow,
    audit: AuditDraft,
) -> Result<()> {
    conn.prepare_cached(sql::INSERT_OTP)?.execute(params![
        r.id,
        r.customer_id,
        r.beneficial_owner_id,
        r.channel,
        r.destination_hash.as_slice(),
        r.code_hash.as_slice(),
        r.created_at,
        r.expires_at,
        r.attempts,
        r.max_attempts,
        r.status,
        r.version,
    ])?;
    conn.prepare_cached(sql::SUPERSEDE_OTPS)?.execute(params![
        r.customer_id,
        r.channel,
        r.beneficial_owner_id,
        r.id
    ])?;
    append_audit(conn, head, audit)
}

type RawOtp = (OtpRow, Vec<u8>, Vec<u8>);

fn otp_from_row(r: &Row<'_>) -> rusqlite::Result<RawOtp> {
    Ok((
        OtpRow {
            id: r.get(0)?,
            customer_id: r.get(1)?,
            beneficial_owner_id: r.get(2)?,
            channel: r.get(3)?,
            destination_hash: [0; 32],
            code_hash: [0; 32],
            created_at: r.get(6)?,
            expires_at: r.get(7)?,
            attempts: r.get(8)?,
            max_attempts: r.get(9)?,
            status: r.get(10)?,
            version: r.get(11)?,
        },
        r.get(4)?,
        r.get(5)?,
    ))
}

fn otp_row(raw: RawOtp) -> Result<OtpRow> {
    let (mut row, dest, code) = raw;
    row.destination_hash = hash32(dest)?;
    row.code_hash = hash32(code)?;
    Ok(row)
}

pub(crate) fn get_otp(conn: &Connection, id: Uuid) -> Result<Option<OtpRow>> {
    conn.prepare_cached(sql::GET_OTP)?
        .query_row([id], otp_from_row)
        .optional()?
        .map(otp_row)
        .transpose()
}

pub(crate) fn recent_otps(
    conn: &Connection,
    customer_id: Uuid,
    owner: Option<Uuid>,
    channel: &str,
    since: i64,
) -> Result<Vec<OtpRow>> {
    let mut stmt = conn.prepare_cached(sql::RECENT_OTPS)?;
    let rows = stmt.query_map(params![customer_id, channel, since, owner], otp_from_row)?;
    rows.map(|r| otp_row(r?)).collect()
}

pub(crate) fn update_otp(conn: &Connection, head: &mut Head, u: OtpUpdate) -> Result<()> {
    let n = conn.prepare_cached(sql::UPDATE_OTP)?.execute(params![
        u.row.attempts,
        u.row.status,
        u.row.version,
        u.row.id,
        u.expected_version
    ])?;
    if n == 0 {
        let current: Option<i64> = conn
            .prepare_cached(sql::OTP_VERSION)?
            .query_row([u.row.id], |r| r.get(0))
            .optional()?;
        return Err(match current {
            None => StoreError::NotFound,
            Some(current) => StoreError::VersionConflict { current },
        });
    }
    if let Some(e) = &u.evidence {
        write_evidence(conn, e)?;
    }
    append_audit(conn, head, u.audit)
}

pub(crate) fn insert_verification_request(
    conn: &Connection,
    head: &mut Head,
    r: VerificationRequestRow,
    audit: AuditDraft,
) -> Result<()> {
    let res = conn
        .prepare_cached(sql::INSERT_VERIFICATION_REQUEST)?
        .execute(params![
            r.id,
            r.customer_id,
            r.beneficial_owner_id,
            r.vendor,
            r.status,
            r.secret,
            r.created_at,
            r.completed_at,
            r.actor,
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "verification request id",
            });
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    append_audit(conn, head, audit)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(err, _)
        if err.code == rusqlite::ErrorCode::ConstraintViolation
            && matches!(err.extended_code, 1555 | 2067))
}

pub(crate) fn get_verification_request(
    conn: &Connection,
    id: Uuid,
) -> Result<Option<VerificationRequestRow>> {
    Ok(conn
        .prepare_cached(sql::GET_VERIFICATION_REQUEST)?
        .query_row([id], |r| {
            Ok(VerificationRequestRow {
                id: r.get(0)?,
                customer_id: r.get(1)?,
                beneficial_owner_id: r.get(2)?,
                vendor: r.get(3)?,
                status: r.get(4)?,
                secret: r.get(5)?,
                created_at: r.get(6)?,
                completed_at: r.get(7)?,
                actor: r.get(8)?,
            })
        })
        .optional()?)
}

pub(crate) fn unverified_without_case(
    conn: &Connection,
    limit: u32,
) -> Result<Vec<UnverifiedTransition>> {
    let mut stmt = conn.prepare_cached(sql::UNVERIFIED_WITHOUT_CASE)?;
    let rows = stmt.query_map([i64::from(limit)], |r| {
        Ok(UnverifiedTransition {
            account_id: r.get(0)?,
            customer_id: r.get(1)?,
            version: r.get(2)?,
            reason: r.get(3)?,
            at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn open_cases(
    conn: &Connection,
    head: &mut Head,
    cases: Vec<(CaseRow, AuditDraft)>,
) -> Result<u64> {
    let mut n = 0;
    for (c, audit) in cases {
        let done = conn.prepare_cached(sql::INSERT_CASE)?.execute(params![
            c.id,
            c.account_id,
            c.customer_id,
            c.transition_version,
            c.reason,
            c.opened_at,
            c.status,
            c.resolution,
            c.resolution_reason,
            c.resolved_by,
            c.resolved_at,
        ])?;
        if done > 0 {
            append_audit(conn, head, audit)?;
            n += 1;
        }
    }
    Ok(n)
}

fn case_from_row(r: &Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok(CaseRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        customer_id: r.get(2)?,
        transition_version: r.get(3)?,
        reason: r.get(4)?,
        opened_at: r.get(5)?,
        status: r.get(6)?,
        resolution: r.get(7)?,
        resolution_reason: r.get(8)?,
        resolved_by: r.get(9)?,
        resolved_at: r.get(10)?,
    })
}

pub(crate) fn get_case(conn: &Connection, id: Uuid) -> Result<Option<CaseRow>> {
    Ok(conn
        .prepare_cached(sql::GET_CASE)?
        .query_row([id], case_from_row)
        .optional()?)
}

pub(crate) fn list_cases(
    conn: &Connection,
    f: &CaseFilter,
    page: &PageRequest,
) -> Result<Vec<CaseRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_CASES)?;
    let rows = stmt.query_map(
        params![
            page.cursor(),
            f.status,
            f.opened_from,
            f.opened_to,
            i64::from(page.limit)
        ],
        case_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn resolve_case(conn: &Connection, head: &mut Head, d: CaseResolution) -> Result<()> {
    let n = conn.prepare_cached(sql::RESOLVE_CASE)?.execute(params![
        d.resolution,
        d.reason,
        d.resolved_by,
        d.resolved_at,
        d.id
    ])?;
    if n == 0 {
        let exists = conn
            .prepare_cached(sql::CASE_EXISTS)?
            .query_row([d.id], |_| Ok(()))
            .optional()?;
        return Err(match exists {
            None => StoreError::NotFound,
            Some(()) => StoreError::Duplicate {
                what: "resolution (the case is already resolved)",
            },
        });
    }
    append_audit(conn, head, d.audit)
}

/// The verification operations of the writer (the rest are in `sqlite_ops::apply`).
pub(crate) fn apply(conn: &Connection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::InsertEvidence(w) => Out::Bool(insert_evidence(conn, head, *w)?),
        Op::InsertOtp(r, audit) => {
            insert_otp(conn, head, *r, audit)?;
            Out::Unit
        }
        Op::UpdateOtp(u) => {
            update_otp(conn, head, *u)?;
            Out::Unit
        }
        Op::InsertVerificationRequest(r, audit) => {
            insert_verification_request(conn, head, *r, audit)?;
            Out::Unit
        }
        Op::OpenCases(cases) => Out::Count(open_cases(conn, head, cases)?),
        Op::ResolveCase(d) => {
            resolve_case(conn, head, *d)?;
            Out::Unit
        }
        Op::InsertOtpThrottled(r, throttle, audit) => {
            let recent: Vec<i64> = recent_otps(
                conn,
                r.customer_id,
                r.beneficial_owner_id,
                &r.channel,
                r.created_at - 3_600_000_000,
            )?
            .iter()
            .map(|o| o.created_at)
            .collect();
            match otp_throttled(&recent, r.created_at, &throttle) {
                Some((limit, retry_at)) => Out::Otp(OtpOutcome::Throttled { limit, retry_at }),
                None => {
                    insert_otp(conn, head, *r, audit)?;
                    Out::Otp(OtpOutcome::Stored)
                }
            }
        }
        _ => {
            return Err(StoreError::Backend("not a verification operation".into()));
        }
    })
}
