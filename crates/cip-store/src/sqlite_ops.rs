//! The operations of `ops.rs`, for the SQLite adapter's rusqlite connections: same statements
//! (`sql.rs`), same rule — expected failures before the first write — but synchronous, so a
//! whole group of writes runs on the writer thread without a thread hop per statement.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use uuid::Uuid;

use crate::audit::seal_entry;
use crate::sql;
use crate::writer::{Op, Out};
use crate::*;

pub(crate) type Head = (i64, [u8; 32]);

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(err, _) = &e {
        match err.code {
            rusqlite::ErrorCode::DiskFull => return StoreError::DiskFull,
            rusqlite::ErrorCode::DatabaseBusy
            | rusqlite::ErrorCode::DatabaseLocked
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::SystemIoFailure => {
                return StoreError::Unavailable(e.to_string());
            }
            _ => {}
        }
    }
    StoreError::Backend(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        map_err(e)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(err, _)
        if err.code == rusqlite::ErrorCode::ConstraintViolation
            && matches!(err.extended_code, 1555 | 2067))
}

fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
}

pub(crate) fn load_head(conn: &Connection) -> Result<Head> {
    let row = conn
        .prepare_cached(sql::LOAD_HEAD)?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .optional()?;
    match row {
        None => Ok((0, cip_vault::GENESIS)),
        Some((seq, hash)) => Ok((seq, hash32(hash)?)),
    }
}

pub(crate) fn append_audit(conn: &Connection, head: &mut Head, draft: AuditDraft) -> Result<()> {
    let entry = seal_entry(head.0, head.1, draft);
    let fields = serde_json::to_string(&entry.draft.fields)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let d = &entry.draft;
    conn.prepare_cached(sql::INSERT_AUDIT)?.execute(params![
        entry.seq,
        d.at,
        d.actor,
        d.role,
        d.action,
        d.record_type,
        d.record_id,
        fields,
        d.request_id,
        d.purpose,
        entry.prev_hash.as_slice(),
        entry.hash.as_slice(),
    ])?;
    *head = (entry.seq, entry.hash);
    Ok(())
}

fn init_meta(conn: &Connection, name: &str, value: &[u8]) -> Result<Vec<u8>> {
    conn.prepare_cached(sql::INIT_META)?
        .execute(params![name, value])?;
    Ok(conn
        .prepare_cached(sql::GET_META)?
        .query_row([name], |r| r.get(0))?)
}

fn set_meta(
    conn: &Connection,
    head: &mut Head,
    name: &str,
    value: &[u8],
    audit: AuditDraft,
) -> Result<()> {
    conn.prepare_cached(sql::SET_META)?
        .execute(params![name, value])?;
    append_audit(conn, head, audit)
}

fn insert_api_key(
    conn: &Connection,
    head: &mut Head,
    key: &ApiKeyRow,
    audit: AuditDraft,
) -> Result<()> {
    let res = conn.prepare_cached(sql::INSERT_API_KEY)?.execute(params![
        key.id,
        key.role,
        key.secret_hash.as_slice(),
        key.label,
        key.created_at,
        key.revoked_at,
    ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate { what: "api key id" });
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    append_audit(conn, head, audit)
}

fn revoke_api_key(
    conn: &Connection,
    head: &mut Head,
    id: &str,
    at: i64,
    audit: AuditDraft,
) -> Result<bool> {
    let done = conn
        .prepare_cached(sql::REVOKE_API_KEY)?
        .execute(params![at, id])?;
    if done == 0 {
        return Ok(false);
    }
    append_audit(conn, head, audit)?;
    Ok(true)
}

fn check_idempotency(conn: &Connection, rec: &Option<IdempotencyRecord>) -> Result<()> {
    if let Some(rec) = rec
        && let Some(found) = get_idempotency(conn, &rec.principal, &rec.key)?
    {
        return Err(StoreError::IdempotencyReplay(Box::new(found)));
    }
    Ok(())
}

fn put_idempotency(conn: &Connection, rec: Option<IdempotencyRecord>) -> Result<()> {
    if let Some(rec) = rec {
        conn.prepare_cached(sql::INSERT_IDEMPOTENCY)?
            .execute(params![
                rec.principal,
                rec.key,
                rec.request_hash.as_slice(),
                i64::from(rec.status),
                rec.response,
                rec.created_at,
            ])?;
    }
    Ok(())
}

pub(crate) fn get_idempotency(
    conn: &Connection,
    principal: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>> {
    let row = conn
        .prepare_cached(sql::GET_IDEMPOTENCY)?
        .query_row(params![principal, key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .optional()?;
    row.map(
        |(principal, key, hash, status, response, created_at)| -> Result<_> {
            Ok(IdempotencyRecord {
                principal,
                key,
                request_hash: hash32(hash)?,
                status: u16::try_from(status).unwrap_or(500),
                response,
                created_at,
            })
        },
    )
    .transpose()
}

fn put_terms(conn: &Connection, id: Uuid, terms: &[IndexTerm]) -> Result<()> {
    // One multi-row statement per chunk of up to 64 terms (cached per row count).
    for chunk in terms.chunks(64) {
        let statement = sql::insert_terms(chunk.len());
        let mut stmt = conn.prepare_cached(&statement)?;
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(chunk.len() * 3);
        for t in chunk {
            values.push(t.kind.clone().into());
            values.push(t.hash.to_vec().into());
            values.push(id.as_bytes().to_vec().into());
        }
        stmt.execute(params_from_iter(values))?;
    }
    Ok(())
}

/// Writes (or, with `None`, removes) the digest of a record at `version`, in the record's own
/// transaction: a digest never describes another version than the row beside it.
fn put_digest(
    conn: &Connection,
    id: Uuid,
    version: i64,
    key_id: u32,
    digest: Option<&SealedDigest>,
) -> Result<()> {
    let Some(d) = digest else {
        conn.prepare_cached(sql::DELETE_DIGESTS)?.execute([id])?;
        return Ok(());
    };
    let mut stmt = conn.prepare_cached(sql::PUT_DIGEST)?;
    for (part, sealed) in [
        (DigestPart::Policy, &d.policy),
        (DigestPart::Screening, &d.screening),
    ] {
        stmt.execute(params![part.code(), id, version, i64::from(key_id), sealed])?;
    }
    Ok(())
}

fn insert_customer(conn: &Connection, head: &mut Head, w: CustomerWrite) -> Result<()> {
    check_idempotency(conn, &w.idempotency)?;
    let r = &w.row;
    let res = conn.prepare_cached(sql::INSERT_CUSTOMER)?.execute(params![
        r.id,
        r.kind,
        r.version,
        r.created_at,
        r.updated_at,
        r.country,
        i64::from(r.key_id),
        r.document,
    ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "customer id",
            });
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    put_digest(conn, r.id, r.version, r.key_id, r.digest.as_ref())?;
    put_terms(conn, r.id, &w.terms)?;
    crate::sqlite_screen_keys::write_screen_keys(conn, r.id, r.screen_keys.as_ref())?;
    put_idempotency(conn, w.idempotency)?;
    crate::sqlite_history::write_extras(conn, w.extras)?;
    append_audit(conn, head, w.audit)
}

fn current_version(conn: &Connection, statement: &'static str, id: Uuid) -> Result<StoreError> {
    let v = conn
        .prepare_cached(statement)?
        .query_row([id], |r| r.get::<_, i64>(0))
        .optional()?;
    Ok(match v {
        None => StoreError::NotFound,
        Some(current) => StoreError::VersionConflict { current },
    })
}

fn update_customer(
    conn: &Connection,
    head: &mut Head,
    w: CustomerWrite,
    expected_version: i64,
) -> Result<()> {
    let r = &w.row;
    let n = conn.prepare_cached(sql::UPDATE_CUSTOMER)?.execute(params![
        r.kind,
        r.version,
        r.updated_at,
        r.country,
        i64::from(r.key_id),
        r.document,
        r.id,
        expected_version,
    ])?;
    if n == 0 {
        return Err(current_version(conn, sql::CUSTOMER_VERSION, r.id)?);
    }
    put_digest(conn, r.id, r.version, r.key_id, r.digest.as_ref())?;
    conn.prepare_cached(sql::DELETE_TERMS)?.execute([r.id])?;
    put_terms(conn, r.id, &w.terms)?;
    crate::sqlite_screen_keys::write_screen_keys(conn, r.id, r.screen_keys.as_ref())?;
    crate::sqlite_history::write_extras(conn, w.extras)?;
    append_audit(conn, head, w.audit)
}

fn reseal_customer(
    conn: &Connection,
    head: &mut Head,
    id: Uuid,
    version: i64,
    r: crate::writer::Resealed,
    audit: AuditDraft,
) -> Result<bool> {
    let n = conn.prepare_cached(sql::RESEAL_CUSTOMER)?.execute(params![
        r.document,
        i64::from(r.key_id),
        id,
        version
    ])?;
    if n == 0 {
        return Ok(false);
    }
    put_digest(conn, id, version, r.key_id, r.digest.as_ref())?;
    append_audit(conn, head, audit)?;
    Ok(true)
}

fn insert_account(conn: &Connection, head: &mut Head, w: AccountWrite) -> Result<()> {
    check_idempotency(conn, &w.idempotency)?;
    let exists = conn
        .prepare_cached(sql::CUSTOMER_EXISTS)?
        .query_row([w.row.customer_id], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let r = &w.row;
    let res = conn.prepare_cached(sql::INSERT_ACCOUNT)?.execute(params![
        r.id,
        r.customer_id,
        r.external_id,
        r.product,
        r.account_type,
        r.status,
        r.opened_at,
        r.closed_at,
        r.last_accessed_at,
        r.version,
        r.created_at,
        r.updated_at,
    ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "account external_id",
            });
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    put_idempotency(conn, w.idempotency)?;
    write_lifecycle(conn, w.transition, w.events)?;
    append_audit(conn, head, w.audit)
}

fn update_account(
    conn: &Connection,
    head: &mut Head,
    w: AccountWrite,
    expected_version: i64,
) -> Result<()> {
    let r = &w.row;
    let res = conn.prepare_cached(sql::UPDATE_ACCOUNT)?.execute(params![
        r.external_id,
        r.product,
        r.account_type,
        r.status,
        r.opened_at,
        r.closed_at,
        r.last_accessed_at,
        r.version,
        r.updated_at,
        r.id,
        expected_version,
    ]);
    let n = match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "account external_id",
            });
        }
        Err(e) => return Err(e.into()),
        Ok(n) => n,
    };
    if n == 0 {
        return Err(current_version(conn, sql::ACCOUNT_VERSION, r.id)?);
    }
    write_lifecycle(conn, w.transition, w.events)?;
    append_audit(conn, head, w.audit)
}

fn write_lifecycle(
    conn: &Connection,
    transition: Option<TransitionRow>,
    events: Vec<EventDraft>,
) -> Result<()> {
    if let Some(t) = transition {
        conn.prepare_cached(sql::INSERT_TRANSITION)?
            .execute(params![
                t.account_id,
                t.version,
                t.from_status,
                t.to_status,
                t.reason,
                t.actor,
                t.at
            ])?;
    }
    for e in events {
        conn.prepare_cached(sql::INSERT_EVENT)?.execute(params![
            e.id,
            e.event_type,
            e.payload,
            e.created_at
        ])?;
        conn.prepare_cached(sql::FAN_OUT_EVENT)?.execute(params![
            e.id,
            e.created_at,
            e.event_type
        ])?;
    }
    Ok(())
}

fn insert_endpoint(
    conn: &Connection,
    head: &mut Head,
    w: WebhookEndpointRow,
    audit: AuditDraft,
) -> Result<()> {
    conn.prepare_cached(sql::INSERT_ENDPOINT)?.execute(params![
        w.id,
        w.url,
        w.events,
        w.secret,
        w.created_at,
        w.disabled_at
    ])?;
    append_audit(conn, head, audit)
}

fn disable_endpoint(
    conn: &Connection,
    head: &mut Head,
    id: Uuid,
    at: i64,
    audit: AuditDraft,
) -> Result<bool> {
    let n = conn
        .prepare_cached(sql::DISABLE_ENDPOINT)?
        .execute(params![at, id])?;
    if n == 0 {
        return Ok(false);
    }
    append_audit(conn, head, audit)?;
    Ok(true)
}

fn claim_deliveries(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>> {
    let claimed: Vec<(Uuid, Uuid, i64)> = conn
        .prepare_cached(&sql::claim_deliveries(""))?
        .query_map(params![lease_until, now, i64::from(limit)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(claimed.len());
    for (event_id, endpoint_id, attempts) in claimed {
        let (event_type, payload, url, secret) = conn
            .prepare_cached(sql::CLAIMED_DETAILS)?
            .query_row(params![event_id, endpoint_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        out.push(ClaimedDelivery {
            event_id,
            endpoint_id,
            attempts,
            event_type,
            payload,
            url,
            secret,
        });
    }
    Ok(out)
}

fn finish_delivery(
    conn: &Connection,
    event_id: Uuid,
    endpoint_id: Uuid,
    o: DeliveryOutcome,
) -> Result<()> {
    let delivered_at = (o.state == "delivered").then_some(o.at);
    conn.prepare_cached(sql::FINISH_DELIVERY)?.execute(params![
        o.state,
        o.status,
        o.error,
        delivered_at,
        o.next_attempt_at,
        event_id,
        endpoint_id
    ])?;
    Ok(())
}

pub(crate) fn accounts_in_status_since(
    conn: &Connection,
    status: &str,
    before: i64,
    limit: u32,
) -> Result<Vec<AccountRow>> {
    Ok(conn
        .prepare_cached(sql::ACCOUNTS_IN_STATUS_SINCE)?
        .query_map(params![status, before, i64::from(limit)], account_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn list_transitions(conn: &Connection, account_id: Uuid) -> Result<Vec<TransitionRow>> {
    Ok(conn
        .prepare_cached(sql::LIST_TRANSITIONS)?
        .query_map([account_id], |r| {
            Ok(TransitionRow {
                account_id: r.get(0)?,
                version: r.get(1)?,
                from_status: r.get(2)?,
                to_status: r.get(3)?,
                reason: r.get(4)?,
                actor: r.get(5)?,
                at: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn list_endpoints(conn: &Connection) -> Result<Vec<WebhookEndpointRow>> {
    Ok(conn
        .prepare_cached(sql::LIST_ENDPOINTS)?
        .query_map([], |r| {
            Ok(WebhookEndpointRow {
                id: r.get(0)?,
                url: r.get(1)?,
                events: r.get(2)?,
                secret: r.get(3)?,
                created_at: r.get(4)?,
                disabled_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn list_deliveries(
    conn: &Connection,
    endpoint_id: Uuid,
    limit: u32,
) -> Result<Vec<DeliveryRow>> {
    Ok(conn
        .prepare_cached(sql::LIST_DELIVERIES)?
        .query_map(params![endpoint_id, i64::from(limit)], |r| {
            Ok(DeliveryRow {
                event_id: r.get(0)?,
                endpoint_id: r.get(1)?,
                event_type: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get(4)?,
                next_attempt_at: r.get(5)?,
                last_status: r.get(6)?,
                last_error: r.get(7)?,
                delivered_at: r.get(8)?,
                created_at: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

fn insert_checkpoint(conn: &Connection, cp: CheckpointRow) -> Result<()> {
    conn.prepare_cached(sql::INSERT_CHECKPOINT)?
        .execute(params![
            cp.seq,
            cp.head_hash.as_slice(),
            cp.at,
            cp.signature,
            cp.public_key.as_slice(),
        ])?;
    Ok(())
}

/// Stores a list version and activates it. The expected failure (another version became
/// active meanwhile) is met by the read before the first write.
fn insert_list_version(conn: &Connection, head: &mut Head, w: ListVersionWrite) -> Result<()> {
    let m = &w.row.meta;
    let current: Option<i64> = conn
        .prepare_cached(sql::ACTIVE_LIST_VERSION)?
        .query_row([&m.list_id], |r| r.get(0))
        .optional()?;
    if current != w.expected_active || m.version != w.expected_active.unwrap_or(0) + 1 {
        return Err(StoreError::VersionConflict {
            current: current.unwrap_or(0),
        });
    }
    conn.prepare_cached(sql::INSERT_LIST_VERSION)?
        .execute(params![
            m.list_id,
            m.version,
            m.content_hash,
            m.entry_count,
            m.imported_at,
            m.source_format,
            m.added,
            m.changed,
            m.removed,
            w.row.entries,
        ])?;
    conn.prepare_cached(sql::SET_ACTIVE_LIST)?.execute(params![
        m.list_id,
        m.version,
        m.imported_at
    ])?;
    append_audit(conn, head, w.audit)
}

fn open_review(
    conn: &Connection,
    head: &mut Head,
    r: ReviewRow,
    audit: AuditDraft,
) -> Result<bool> {
    let dismissed = conn
        .prepare_cached(sql::DISMISSAL_EXISTS)?
        .query_row(
            params![
                r.customer_id,
                r.subject,
                r.list_id,
                r.entry_id,
                r.entry_hash,
                r.subject_hash.as_slice()
            ],
            |_| Ok(()),
        )
        .optional()?;
    let open = conn
        .prepare_cached(sql::OPEN_REVIEW_EXISTS)?
        .query_row(
            params![r.customer_id, r.subject, r.list_id, r.entry_id],
            |_| Ok(()),
        )
        .optional()?;
    if dismissed.is_some() || open.is_some() {
        return Ok(false);
    }
    conn.prepare_cached(sql::INSERT_REVIEW)?.execute(params![
        r.id,
        r.customer_id,
        r.subject,
        r.list_id,
        r.entry_id,
        r.list_version,
        r.entry_hash,
        r.subject_hash.as_slice(),
        r.score_bp,
        r.status,
        r.details,
        i64::from(r.key_id),
        r.created_at,
        r.decided_at,
        r.decided_by,
        r.reason,
    ])?;
    append_audit(conn, head, audit)?;
    Ok(true)
}

fn decide_review(conn: &Connection, head: &mut Head, d: ReviewDecision) -> Result<()> {
    let n = conn.prepare_cached(sql::DECIDE_REVIEW)?.execute(params![
        d.status,
        d.reason,
        d.decided_by,
        d.decided_at,
        d.id
    ])?;
    if n == 0 {
        let exists = conn
            .prepare_cached(sql::REVIEW_EXISTS)?
            .query_row([d.id], |_| Ok(()))
            .optional()?;
        return Err(match exists {
            None => StoreError::NotFound,
            Some(()) => StoreError::Duplicate {
                what: "decision (the review item is not open)",
            },
        });
    }
    if d.status == "dismissed" {
        conn.prepare_cached(sql::REMEMBER_DISMISSAL)?
            .execute([d.id])?;
    }
    append_audit(conn, head, d.audit)?;
    record_actions(conn, head, d.actions)?;
    Ok(())
}

fn close_reviews(
    conn: &Connection,
    head: &mut Head,
    list_id: &str,
    entry_ids: &[String],
    at: i64,
    audit: AuditDraft,
) -> Result<u64> {
    let mut n = 0u64;
    for id in entry_ids {
        n += conn
            .prepare_cached(sql::CLOSE_REVIEWS)?
            .execute(params![at, list_id, id])? as u64;
    }
    if n > 0 {
        append_audit(conn, head, audit)?;
    }
    Ok(n)
}

// ---- special measures ----

fn insert_measure(
    conn: &Connection,
    head: &mut Head,
    m: MeasureRow,
    audit: AuditDraft,
) -> Result<()> {
    let res = conn.prepare_cached(sql::INSERT_MEASURE)?.execute(params![
        m.id,
        m.version,
        m.target_kind,
        m.country,
        m.list_id,
        m.effective_at,
        m.expires_at,
        m.revoked_at,
        m.created_at,
        m.updated_at,
        m.swept_at,
        m.document,
    ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Duplicate {
                what: "special measure id",
            });
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    append_audit(conn, head, audit)
}

fn update_measure(
    conn: &Connection,
    head: &mut Head,
    m: MeasureRow,
    expected_version: i64,
    audit: AuditDraft,
) -> Result<()> {
    let n = conn.prepare_cached(sql::UPDATE_MEASURE)?.execute(params![
        m.version,
        m.effective_at,
        m.expires_at,
        m.revoked_at,
        m.updated_at,
        m.document,
        m.id,
        expected_version,
    ])?;
    if n == 0 {
        return Err(current_version(conn, sql::MEASURE_VERSION, m.id)?);
    }
    append_audit(conn, head, audit)
}

/// Inserts each action not recorded yet; its event and audit entry go only with a new row.
fn record_actions(
    conn: &Connection,
    head: &mut Head,
    actions: Vec<MeasureActionWrite>,
) -> Result<u64> {
    let mut n = 0u64;
    for w in actions {
        let r = &w.row;
        let added = conn
            .prepare_cached(sql::INSERT_MEASURE_ACTION)?
            .execute(params![
                r.id,
                r.measure_id,
                r.review_id,
                r.account_id,
                r.customer_id,
                r.action,
                r.deadline,
                r.evidence,
                r.cause,
                r.actor,
                r.at,
            ])?;
        if added == 0 {
            continue;
        }
        n += 1;
        write_lifecycle(conn, None, w.event.into_iter().collect())?;
        append_audit(conn, head, w.audit)?;
    }
    Ok(n)
}

fn measure_from_row(r: &Row<'_>) -> rusqlite::Result<MeasureRow> {
    Ok(MeasureRow {
        id: r.get(0)?,
        version: r.get(1)?,
        target_kind: r.get(2)?,
        country: r.get(3)?,
        list_id: r.get(4)?,
        effective_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        swept_at: r.get(10)?,
        document: r.get(11)?,
    })
}

fn claim_measure_sweeps(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<MeasureRow>> {
    Ok(conn
        .prepare_cached(&sql::claim_measure_sweeps(""))?
        .query_map(
            params![lease_until, now, i64::from(limit)],
            measure_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn get_measure(conn: &Connection, id: Uuid) -> Result<Option<MeasureRow>> {
    Ok(conn
        .prepare_cached(sql::GET_MEASURE)?
        .query_row([id], measure_from_row)
        .optional()?)
}

pub(crate) fn list_measures(conn: &Connection, page: &PageRequest) -> Result<Vec<MeasureRow>> {
    Ok(conn
        .prepare_cached(sql::LIST_MEASURES)?
        .query_map(
            params![page.cursor(), i64::from(page.limit)],
            measure_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn measures_in_force(conn: &Connection, now: i64) -> Result<Vec<MeasureRow>> {
    Ok(conn
        .prepare_cached(sql::MEASURES_IN_FORCE)?
        .query_map([now], measure_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn list_measure_actions(
    conn: &Connection,
    f: &MeasureActionFilter,
) -> Result<Vec<MeasureActionRow>> {
    Ok(conn
        .prepare_cached(sql::LIST_MEASURE_ACTIONS)?
        .query_map(params![f.measure_id, f.account_id], |r| {
            Ok(MeasureActionRow {
                id: r.get(0)?,
                measure_id: r.get(1)?,
                review_id: r.get(2)?,
                account_id: r.get(3)?,
                customer_id: r.get(4)?,
                action: r.get(5)?,
                deadline: r.get(6)?,
                evidence: r.get(7)?,
                cause: r.get(8)?,
                actor: r.get(9)?,
                at: r.get(10)?,
                untied_at: r.get(11)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn list_refusals(conn: &Connection, measure_id: Uuid) -> Result<Vec<RefusalRow>> {
    Ok(conn
        .prepare_cached(sql::LIST_REFUSALS)?
        .query_map([measure_id], |r| {
            Ok(RefusalRow {
                id: r.get(0)?,
                measure_id: r.get(1)?,
                customer_id: r.get(2)?,
                account_type: r.get(3)?,
                product: r.get(4)?,
                reason: r.get(5)?,
                evidence: r.get(6)?,
                actor: r.get(7)?,
                at: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn apply(conn: &Connection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::InitMeta(name, value) => Out::Bytes(init_meta(conn, &name, &value)?),
        Op::SetMeta(name, value, audit) => {
            set_meta(conn, head, &name, &value, audit)?;
            Out::Unit
        }
        Op::ClaimJob {
            name,
            holder,
            now,
            until,
        } => Out::Bool(
            conn.prepare_cached(sql::CLAIM_JOB)?
                .execute(params![name, holder, until, now])?
                == 1,
        ),
        Op::ReleaseJob { name, holder } => {
            conn.prepare_cached(sql::RELEASE_JOB)?
                .execute(params![name, holder])?;
            Out::Unit
        }
        Op::InsertApiKey(key, audit) => {
            insert_api_key(conn, head, &key, audit)?;
            Out::Unit
        }
        Op::RevokeApiKey(id, at, audit) => Out::Bool(revoke_api_key(conn, head, &id, at, audit)?),
        Op::InsertCustomer(w) => {
            insert_customer(conn, head, w)?;
            Out::Unit
        }
        Op::UpdateCustomer(w, v) => {
            update_customer(conn, head, w, v)?;
            Out::Unit
        }
        Op::Reseal(id, version, resealed, audit) => {
            Out::Bool(reseal_customer(conn, head, id, version, resealed, audit)?)
        }
        Op::InsertAccount(w) => {
            insert_account(conn, head, w)?;
            Out::Unit
        }
        Op::UpdateAccount(w, v) => {
            update_account(conn, head, w, v)?;
            Out::Unit
        }
        Op::TouchLastAccessed(times) => {
            let mut st = conn.prepare_cached(sql::TOUCH_LAST_ACCESSED)?;
            for (id, at) in times {
                st.execute(params![at, id])?;
            }
            Out::Unit
        }
        Op::AppendAudit(drafts) => {
            for d in drafts {
                append_audit(conn, head, d)?;
            }
            Out::Unit
        }
        Op::InsertCheckpoint(cp) => {
            insert_checkpoint(conn, cp)?;
            Out::Unit
        }
        Op::InsertEndpoint(w, audit) => {
            insert_endpoint(conn, head, w, audit)?;
            Out::Unit
        }
        Op::DisableEndpoint(id, at, audit) => {
            Out::Bool(disable_endpoint(conn, head, id, at, audit)?)
        }
        Op::ClaimDeliveries {
            now,
            lease_until,
            limit,
        } => Out::Claimed(claim_deliveries(conn, now, lease_until, limit)?),
        Op::FinishDelivery(event_id, endpoint_id, outcome) => {
            finish_delivery(conn, event_id, endpoint_id, outcome)?;
            Out::Unit
        }
        Op::InsertListVersion(w) => {
            insert_list_version(conn, head, *w)?;
            Out::Unit
        }
        Op::OpenReview(r, audit) => Out::Bool(open_review(conn, head, *r, audit)?),
        Op::DecideReview(d) => {
            decide_review(conn, head, *d)?;
            Out::Unit
        }
        Op::CloseReviews(list, ids, at, audit) => {
            Out::Count(close_reviews(conn, head, &list, &ids, at, audit)?)
        }
        Op::InsertMeasure(m, audit) => {
            insert_measure(conn, head, *m, audit)?;
            Out::Unit
        }
        Op::UpdateMeasure(m, v, audit) => {
            update_measure(conn, head, *m, v, audit)?;
            Out::Unit
        }
        Op::ClaimMeasureSweeps {
            now,
            lease_until,
            limit,
        } => Out::Measures(claim_measure_sweeps(conn, now, lease_until, limit)?),
        Op::FinishMeasureSweep(id, at) => {
            conn.prepare_cached(sql::FINISH_MEASURE_SWEEP)?
                .execute(params![at, id])?;
            Out::Unit
        }
        Op::RecordMeasureActions(actions) => Out::Count(record_actions(conn, head, actions)?),
        Op::InsertAccountWithActions(w, actions) => {
            insert_account(conn, head, w)?;
            record_actions(conn, head, actions)?;
            Out::Unit
        }
        Op::RecordRefusals(rows, audit) => {
            for r in rows {
                conn.prepare_cached(sql::INSERT_REFUSAL)?.execute(params![
                    r.id,
                    r.measure_id,
                    r.customer_id,
                    r.account_type,
                    r.product,
                    r.reason,
                    r.evidence,
                    r.actor,
                    r.at,
                ])?;
            }
            append_audit(conn, head, audit)?;
            Out::Unit
        }
        Op::UpdateCustomerWithActions(w, v, actions, ties) => {
            update_customer(conn, head, *w, v)?;
            record_actions(conn, head, actions)?;
            for t in ties {
                conn.prepare_cached(sql::SET_ACTION_UNTIED)?
                    .execute(params![t.untied_at, t.action_id])?;
                append_audit(conn, head, t.audit)?;
            }
            Out::Unit
        }
        op @ (Op::InsertEvidence(_)
        | Op::InsertOtp(..)
        | Op::UpdateOtp(_)
        | Op::InsertVerificationRequest(..)
        | Op::OpenCases(_)
        | Op::ResolveCase(_)
        | Op::InsertOtpThrottled(..)) => crate::sqlite_verification::apply(conn, head, op)?,
        op @ (Op::InsertNotices(..) | Op::RecordDetermination(..)) => {
            crate::sqlite_history::apply(conn, head, op)?
        }
        op @ Op::RecordReminders(_) => crate::sqlite_due::apply(conn, head, op)?,
        op @ Op::PutScreenKeys(..) => crate::sqlite_screen_keys::apply(conn, head, op)?,
    })
}

// ---- reads ----

fn customer_from_row(r: &Row<'_>) -> rusqlite::Result<(CustomerRow, i64)> {
    Ok((
        CustomerRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            version: r.get(2)?,
            created_at: r.get(3)?,
            updated_at: r.get(4)?,
            country: r.get(5)?,
            key_id: 0,
            document: r.get(7)?,
            digest: match (r.get(8)?, r.get(9)?) {
                (Some(policy), Some(screening)) => Some(SealedDigest { policy, screening }),
                _ => None,
            },
            screen_keys: None,
        },
        r.get(6)?,
    ))
}

fn customer_row(pair: (CustomerRow, i64)) -> Result<CustomerRow> {
    let (mut row, key_id) = pair;
    row.key_id =
        u32::try_from(key_id).map_err(|_| StoreError::Backend("key id out of range".into()))?;
    Ok(row)
}

pub(crate) fn account_from_row(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(0)?,
        customer_id: r.get(1)?,
        external_id: r.get(2)?,
        product: r.get(3)?,
        account_type: r.get(4)?,
        status: r.get(5)?,
        opened_at: r.get(6)?,
        closed_at: r.get(7)?,
        last_accessed_at: r.get(8)?,
        version: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

type RawAudit = (i64, AuditDraft, String, Vec<u8>, Vec<u8>);

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<RawAudit> {
    Ok((
        r.get(0)?,
        AuditDraft {
            at: r.get(1)?,
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            record_type: r.get(5)?,
            record_id: r.get(6)?,
            fields: Vec::new(),
            request_id: r.get(8)?,
            purpose: r.get(9)?,
        },
        r.get(7)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn audit_entry(raw: RawAudit) -> Result<AuditEntry> {
    let (seq, mut draft, fields, prev, hash) = raw;
    draft.fields = serde_json::from_str(&fields)
        .map_err(|e| StoreError::Backend(format!("audit fields: {e}")))?;
    Ok(AuditEntry {
        seq,
        draft,
        prev_hash: hash32(prev)?,
        hash: hash32(hash)?,
    })
}

pub(crate) fn get_meta(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached(sql::GET_META)?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

fn api_key_from_row(r: &Row<'_>) -> rusqlite::Result<(ApiKeyRow, Vec<u8>)> {
    Ok((
        ApiKeyRow {
            id: r.get(0)?,
            role: r.get(1)?,
            secret_hash: [0; 32],
            label: r.get(3)?,
            created_at: r.get(4)?,
            revoked_at: r.get(5)?,
        },
        r.get(2)?,
    ))
}

fn api_key_row(pair: (ApiKeyRow, Vec<u8>)) -> Result<ApiKeyRow> {
    let (mut row, hash) = pair;
    row.secret_hash = hash32(hash)?;
    Ok(row)
}

pub(crate) fn get_api_key(conn: &Connection, id: &str) -> Result<Option<ApiKeyRow>> {
    conn.prepare_cached(sql::GET_API_KEY)?
        .query_row([id], api_key_from_row)
        .optional()?
        .map(api_key_row)
        .transpose()
}

pub(crate) fn list_api_keys(conn: &Connection) -> Result<Vec<ApiKeyRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_API_KEYS)?;
    let rows = stmt.query_map([], api_key_from_row)?;
    rows.map(|r| api_key_row(r?)).collect()
}

pub(crate) fn get_customer(conn: &Connection, id: Uuid) -> Result<Option<CustomerRow>> {
    conn.prepare_cached(sql::GET_CUSTOMER)?
        .query_row([id], customer_from_row)
        .optional()?
        .map(customer_row)
        .transpose()
}

pub(crate) fn list_customers(
    conn: &Connection,
    filter: &CustomerFilter,
    page: &PageRequest,
) -> Result<Vec<CustomerRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_CUSTOMERS)?;
    let rows = stmt.query_map(
        params![
            page.cursor(),
            filter.kind,
            filter.country,
            filter.created_from,
            filter.created_to,
            i64::from(page.limit),
        ],
        customer_from_row,
    )?;
    rows.map(|r| customer_row(r?)).collect()
}

/// A `CustomerDigestRow` from a statement built on `sql::select_customer_digests!`, with the
/// key id still to check ([`with_key_id`]).
pub(crate) fn customer_digest_from_row(r: &Row<'_>) -> rusqlite::Result<(CustomerDigestRow, i64)> {
    Ok((
        CustomerDigestRow {
            id: r.get(0)?,
            version: r.get(1)?,
            key_id: 0,
            digest: r.get(3)?,
            document: r.get(4)?,
        },
        r.get::<_, i64>(2)?,
    ))
}

pub(crate) fn with_key_id(
    (mut row, key_id): (CustomerDigestRow, i64),
) -> Result<CustomerDigestRow> {
    row.key_id =
        u32::try_from(key_id).map_err(|_| StoreError::Backend("key id out of range".into()))?;
    Ok(row)
}

pub(crate) fn scan_customer_digests(
    conn: &Connection,
    part: DigestPart,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<CustomerDigestRow>> {
    let mut stmt = conn.prepare_cached(sql::SCAN_CUSTOMER_DIGESTS)?;
    let rows = stmt.query_map(
        params![part.code(), crate::types::cursor(after), i64::from(limit)],
        customer_digest_from_row,
    )?;
    rows.map(|r| with_key_id(r?)).collect()
}

pub(crate) fn find_customers_by_term(
    conn: &Connection,
    kind: &str,
    hash: &[u8; 32],
) -> Result<Vec<Uuid>> {
    let mut stmt = conn.prepare_cached(sql::FIND_BY_TERM)?;
    let rows = stmt.query_map(params![kind, hash.as_slice()], |r| r.get::<_, Uuid>(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn customers_with_stale_key(
    conn: &Connection,
    active_key_id: u32,
    limit: u32,
) -> Result<Vec<CustomerRow>> {
    let mut stmt = conn.prepare_cached(sql::STALE_KEY_CUSTOMERS)?;
    let rows = stmt.query_map(
        params![i64::from(active_key_id), i64::from(limit)],
        customer_from_row,
    )?;
    rows.map(|r| customer_row(r?)).collect()
}

pub(crate) fn count_customers(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(sql::COUNT_CUSTOMERS)?
        .query_row([], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) fn get_account(conn: &Connection, id: Uuid) -> Result<Option<AccountRow>> {
    Ok(conn
        .prepare_cached(sql::GET_ACCOUNT)?
        .query_row([id], account_from_row)
        .optional()?)
}

pub(crate) fn get_account_by_external_id(
    conn: &Connection,
    external_id: &str,
) -> Result<Option<AccountRow>> {
    Ok(conn
        .prepare_cached(sql::GET_ACCOUNT_BY_EXTERNAL_ID)?
        .query_row([external_id], account_from_row)
        .optional()?)
}

pub(crate) fn list_accounts(
    conn: &Connection,
    filter: &AccountFilter,
    page: &PageRequest,
) -> Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached(sql::list_accounts(
        filter.customer_id.is_some(),
        filter.status.is_some(),
    ))?;
    let rows = stmt.query_map(
        params![
            page.cursor(),
            filter.customer_id,
            filter.status,
            filter.account_type,
            i64::from(page.limit),
        ],
        account_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn list_audit(
    conn: &Connection,
    filter: &AuditFilter,
    limit: u32,
) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(sql::list_audit(
        filter.record_id.is_some(),
        filter.actor.is_some(),
    ))?;
    let rows = stmt.query_map(
        params![
            filter.after_seq.unwrap_or(-1),
            filter.record_id,
            filter.actor,
            i64::from(limit)
        ],
        audit_from_row,
    )?;
    rows.map(|r| audit_entry(r?)).collect()
}

pub(crate) fn audit_range(conn: &Connection, from_seq: i64, limit: u32) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(sql::AUDIT_RANGE)?;
    let rows = stmt.query_map(params![from_seq, i64::from(limit)], audit_from_row)?;
    rows.map(|r| audit_entry(r?)).collect()
}

pub(crate) fn list_checkpoints(conn: &Connection) -> Result<Vec<CheckpointRow>> {
    let mut stmt = conn.prepare_cached(sql::LIST_CHECKPOINTS)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Vec<u8>>(4)?,
        ))
    })?;
    rows.map(|r| {
        let (seq, head, at, signature, public_key) = r?;
        Ok(CheckpointRow {
            seq,
            head_hash: hash32(head)?,
            at,
            signature,
            public_key: hash32(public_key)?,
        })
    })
    .collect()
}

// ---- screening lists ----

fn list_meta_from_row(r: &Row<'_>) -> rusqlite::Result<ListVersionMeta> {
    Ok(ListVersionMeta {
        list_id: r.get(0)?,
        version: r.get(1)?,
        content_hash: r.get(2)?,
        entry_count: r.get(3)?,
        imported_at: r.get(4)?,
        source_format: r.get(5)?,
        added: r.get(6)?,
        changed: r.get(7)?,
        removed: r.get(8)?,
    })
}

fn list_row_from_row(r: &Row<'_>) -> rusqlite::Result<ListVersionRow> {
    Ok(ListVersionRow {
        meta: list_meta_from_row(r)?,
        entries: r.get(9)?,
    })
}

pub(crate) fn list_lists(conn: &Connection) -> Result<Vec<ListVersionMeta>> {
    let mut stmt = conn.prepare_cached(sql::LIST_LISTS)?;
    let rows = stmt.query_map([], list_meta_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn list_versions(conn: &Connection, list_id: &str) -> Result<Vec<ListVersionMeta>> {
    let mut stmt = conn.prepare_cached(sql::LIST_VERSIONS)?;
    let rows = stmt.query_map([list_id], list_meta_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn get_list_version(
    conn: &Connection,
    list_id: &str,
    version: i64,
) -> Result<Option<ListVersionRow>> {
    Ok(conn
        .prepare_cached(sql::GET_LIST_VERSION)?
        .query_row(params![list_id, version], list_row_from_row)
        .optional()?)
}

pub(crate) fn active_list_versions(conn: &Connection) -> Result<Vec<ListVersionRow>> {
    let mut stmt = conn.prepare_cached(sql::ACTIVE_LIST_VERSIONS)?;
    let rows = stmt.query_map([], list_row_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

// ---- screening review items ----

fn review_from_row(r: &Row<'_>) -> rusqlite::Result<(ReviewRow, Vec<u8>, i64)> {
    Ok((
        ReviewRow {
            id: r.get(0)?,
            customer_id: r.get(1)?,
            subject: r.get(2)?,
            list_id: r.get(3)?,
            entry_id: r.get(4)?,
            list_version: r.get(5)?,
            entry_hash: r.get(6)?,
            subject_hash: [0; 32],
            score_bp: r.get(8)?,
            status: r.get(9)?,
            details: r.get(10)?,
            key_id: 0,
            created_at: r.get(12)?,
            decided_at: r.get(13)?,
            decided_by: r.get(14)?,
            reason: r.get(15)?,
        },
        r.get(7)?,
        r.get(11)?,
    ))
}

fn review_row(raw: (ReviewRow, Vec<u8>, i64)) -> Result<ReviewRow> {
    let (mut row, hash, key_id) = raw;
    row.subject_hash = hash32(hash)?;
    row.key_id =
        u32::try_from(key_id).map_err(|_| StoreError::Backend("key id out of range".into()))?;
    Ok(row)
}

pub(crate) fn get_review(conn: &Connection, id: Uuid) -> Result<Option<ReviewRow>> {
    conn.prepare_cached(sql::GET_REVIEW)?
        .query_row([id], review_from_row)
        .optional()?
        .map(review_row)
        .transpose()
}

pub(crate) fn list_reviews(
    conn: &Connection,
    filter: &ReviewFilter,
    page: &PageRequest,
) -> Result<Vec<ReviewRow>> {
    let mut stmt = conn.prepare_cached(if filter.status.is_some() {
        sql::LIST_REVIEWS_IN_STATUS
    } else {
        sql::LIST_REVIEWS
    })?;
    let rows = stmt.query_map(
        params![
            page.cursor(),
            filter.status,
            filter.customer_id,
            i64::from(page.limit)
        ],
        review_from_row,
    )?;
    rows.map(|r| review_row(r?)).collect()
}
