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
    put_terms(conn, r.id, &w.terms)?;
    put_idempotency(conn, w.idempotency)?;
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
    conn.prepare_cached(sql::DELETE_TERMS)?.execute([r.id])?;
    put_terms(conn, r.id, &w.terms)?;
    append_audit(conn, head, w.audit)
}

fn reseal_customer(
    conn: &Connection,
    head: &mut Head,
    id: Uuid,
    version: i64,
    document: Vec<u8>,
    key_id: u32,
    audit: AuditDraft,
) -> Result<bool> {
    let n = conn.prepare_cached(sql::RESEAL_CUSTOMER)?.execute(params![
        document,
        i64::from(key_id),
        id,
        version
    ])?;
    if n == 0 {
        return Ok(false);
    }
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
    append_audit(conn, head, w.audit)
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

pub(crate) fn apply(conn: &Connection, head: &mut Head, op: Op) -> Result<Out> {
    Ok(match op {
        Op::InitMeta(name, value) => Out::Bytes(init_meta(conn, &name, &value)?),
        Op::SetMeta(name, value, audit) => {
            set_meta(conn, head, &name, &value, audit)?;
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
        Op::Reseal(id, version, doc, key_id, audit) => Out::Bool(reseal_customer(
            conn, head, id, version, doc, key_id, audit,
        )?),
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

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
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
            page.after,
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
    let mut stmt = conn.prepare_cached(sql::LIST_ACCOUNTS)?;
    let rows = stmt.query_map(
        params![
            page.after,
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
    let mut stmt = conn.prepare_cached(sql::LIST_AUDIT)?;
    let rows = stmt.query_map(
        params![
            filter.after_seq,
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
