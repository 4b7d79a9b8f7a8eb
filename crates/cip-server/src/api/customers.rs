use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cip_core::model::Permission;
use cip_core::parse;
use cip_store::{
    AuditDraft, CustomerFilter, CustomerRow, CustomerWrite, IdempotencyRecord, PageRequest,
    StoreError,
};
use cip_vault::BlindIndexKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::*;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::records::dto::*;
use crate::records::{parse as records_parse, seal};
use crate::state::AppState;
use crate::time::{now_micros, parse_rfc3339, to_rfc3339, today_utc};

fn audit(
    principal: &Principal,
    headers: &HeaderMap,
    action: &str,
    record_id: Option<String>,
    fields: Vec<String>,
    purpose: Option<String>,
) -> AuditDraft {
    super::audit_draft(
        principal, headers, action, "customer", record_id, fields, purpose,
    )
}

/// Opens a stored customer (only the sections of `projection`) and commits the audit entry
/// of the read before handing the plaintext back: no audit entry, no data. Every handler
/// that shows or uses a customer's personal data reads it through here.
pub(crate) async fn read_audited(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: Uuid,
    projection: &seal::Projection,
    action: &str,
    purpose: Option<String>,
) -> Result<(CustomerRow, serde_json::Value), ApiError> {
    let row = state
        .store
        .get_customer(id)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let (value, fields) = seal::open_document(&state.keyring(), id, &row.document, projection)
        .map_err(|e| ApiError::Internal(format!("opening customer {id}: {e}")))?;
    state
        .store
        .append_audit(vec![audit(
            principal,
            headers,
            action,
            Some(id.to_string()),
            fields,
            purpose,
        )])
        .await?;
    Ok((row, value))
}

/// Screens a customer whose record was just stored (created or changed). The record is
/// stored whatever happens here: a failure is logged (without personal data) and the next
/// change or list update screens again.
async fn screen_after_write(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: Uuid,
    doc: &crate::records::dto::CustomerDoc,
) {
    let cause = crate::reviews::Cause {
        actor: principal.key_id.clone(),
        role: principal.role.as_str().into(),
        request_id: request_id(headers),
    };
    if let Err(e) = crate::reviews::screen_customer(state, id, doc, &cause).await {
        tracing::error!(customer_id = %id, error = %e, "screening a customer failed");
    }
}

/// Parses and seals a submitted customer into a store write.
pub fn prepare_customer(
    state: &AppState,
    input: &CustomerIn,
    id: Uuid,
    version: i64,
    created_at: i64,
) -> Result<
    (
        CustomerRow,
        Vec<cip_store::IndexTerm>,
        Vec<String>,
        crate::records::dto::CustomerDoc,
    ),
    ApiError,
> {
    let keyring = state.keyring();
    let fingerprint = |pan: &str| keyring.card_fingerprint(pan).to_hex();
    let ctx = records_parse::ParseContext {
        today: today_utc(),
        ownership_threshold_bp: state.ownership_threshold_bp,
        card_fingerprint: &fingerprint,
    };
    let record = records_parse::customer(input, &ctx).map_err(ApiError::Validation)?;
    let doc = seal::to_doc(&record);
    let fields = seal::field_pointers(&doc);
    let document = seal::seal_document(&keyring, id, &doc)
        .map_err(|e| ApiError::Internal(format!("sealing failed: {e}")))?;
    let plain_digest = crate::records::digest::Digest::of(&doc);
    let digest = crate::records::digest::seal(&keyring, id, version, &plain_digest)
        .map_err(|e| ApiError::Internal(format!("sealing the digest failed: {e}")))?;
    // The keyed re-screen's index: written with the record (docs/design/0008).
    let screen_keys = crate::screen_keys::of_queries(&keyring, &plain_digest.screening.queries);
    let now = now_micros();
    Ok((
        CustomerRow {
            id,
            kind: record.kind.as_str().into(),
            version,
            created_at,
            updated_at: now,
            country: seal::primary_country(&record),
            document,
            key_id: keyring.active_key_id(),
            digest: Some(digest),
            screen_keys: Some(screen_keys),
        },
        seal::index_terms(&keyring, &record),
        fields,
        doc,
    ))
}

/// [`prepare_customer`] plus what is written with the customer: the notice shown (its problems
/// listed with the record's) and the determination of the record as submitted, for the
/// history (docs/design/0015-notices-history-consistency.md).
#[allow(clippy::type_complexity)]
async fn prepare_with_extras(
    state: &AppState,
    principal: &Principal,
    input: &CustomerIn,
    id: Uuid,
    version: i64,
    created_at: i64,
    cause: &str,
) -> Result<
    (
        CustomerRow,
        Vec<cip_store::IndexTerm>,
        Vec<String>,
        crate::records::dto::CustomerDoc,
        cip_store::CustomerExtras,
    ),
    ApiError,
> {
    let notice = match &input.notice {
        None => Ok(None),
        Some(n) => super::notices::parse_shown(state.store.as_ref(), n, "/notice", now_micros())
            .await?
            .map(Some),
    };
    let prepared = prepare_customer(state, input, id, version, created_at);
    let ((row, terms, mut fields, doc), notice) = match (prepared, notice) {
        (Ok(p), Ok(n)) => (p, n),
        (Err(ApiError::Validation(mut a)), Err(b)) => {
            a.extend(b);
            return Err(ApiError::Validation(a));
        }
        (Err(e), _) => return Err(e),
        (Ok(_), Err(b)) => return Err(ApiError::Validation(b)),
    };
    let mut extras = cip_store::CustomerExtras::default();
    if let Some((notice_version, shown_at)) = notice {
        fields.push("/notice".into());
        extras.notices.push(super::notices::notice_row(
            id,
            notice_version,
            shown_at,
            &principal.key_id,
        ));
    }
    extras.determination =
        Some(crate::history::row_for_write(state, id, version, cause, &doc).await?);
    Ok((row, terms, fields, doc, extras))
}

/// Create a customer (individual or entity) with its identity records, means of payment and
/// beneficial owners.
#[utoipa::path(post, path = "/v1/customers", tag = "customers",
    request_body = CustomerIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first response; another body with the same key is refused (422).")),
    responses(
        (status = 201, description = "Created", body = Created, headers(("ETag" = String), ("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, description = "Every invalid field is listed in details", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_customer(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<CustomerIn>,
) -> Result<Response, ApiError> {
    principal.require(Permission::WriteRecords)?;
    let idem = idempotency(&headers, "POST /v1/customers", &body.raw)?;
    if let Some(replayed) = check_replay(state.store.as_ref(), &principal.key_id, &idem).await? {
        return Ok(replayed);
    }
    let id = Uuid::now_v7();
    let now = now_micros();
    let (row, terms, fields, doc, extras) = prepare_with_extras(
        &state,
        &principal,
        &body.value,
        id,
        1,
        now,
        crate::history::CUSTOMER_CREATED,
    )
    .await?;
    let created = Created { id, version: 1 };
    let response = serde_json::to_vec(&created).map_err(|e| ApiError::Internal(e.to_string()))?;
    let write = CustomerWrite {
        row,
        terms,
        audit: audit(
            &principal,
            &headers,
            "customer.create",
            Some(id.to_string()),
            fields,
            None,
        ),
        idempotency: idem.as_ref().map(|i| IdempotencyRecord {
            principal: principal.key_id.clone(),
            key: i.key.clone(),
            request_hash: i.request_hash,
            status: 201,
            response: response.clone(),
            created_at: now,
        }),
        extras,
    };
    match state.store.insert_customer(write).await {
        Ok(()) => {}
        // A concurrent retry with the same key won the race: answer as it was answered.
        Err(StoreError::IdempotencyReplay(stored)) => {
            if let Some(asked) = &idem {
                return Ok(replay(&stored, asked));
            }
            return Err(ApiError::IdempotencyMismatch);
        }
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("cip_customers_created_total").increment(1);
    screen_after_write(&state, &principal, &headers, id, &doc).await;
    Ok((
        StatusCode::CREATED,
        [
            (header::ETAG, etag(1)),
            (
                header::LOCATION,
                axum::http::HeaderValue::from_str(&format!("/v1/customers/{id}"))
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            ),
        ],
        [(header::CONTENT_TYPE, "application/json")],
        response,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Comma-separated sections to return (and decrypt): `identity`, `entity`,
    /// `payment_methods`, `beneficial_owners`, `external_id`. Default: all. Ask only for what
    /// you need: the audit trail records what was read.
    pub fields: Option<String>,
}

const SECTIONS: &[&str] = &[
    "identity",
    "entity",
    "payment_methods",
    "beneficial_owners",
    "external_id",
];

/// Read one customer's full record. The read is recorded in the audit trail (who, which
/// fields, the `X-Purpose` given) before the answer is sent.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = Uuid, Path), ReadQuery,
        ("X-Purpose" = Option<String>, Header, description = "Why the record is read; kept in the audit trail.")),
    responses((status = 200, body = Customer, headers(("ETag" = String))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_customer(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let projection = match &q.fields {
        None => seal::Projection::all(),
        Some(list) => {
            let sections: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            if let Some(bad) = sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                return Err(ApiError::BadQuery(format!(
                    "fields: unknown section `{bad}`; use {}",
                    SECTIONS.join(", ")
                )));
            }
            seal::Projection {
                sections: Some(sections),
            }
        }
    };
    let (row, value) = read_audited(
        &state,
        &principal,
        &headers,
        id,
        &projection,
        "customer.read",
        purpose,
    )
    .await?;
    let mut body = serde_json::Map::new();
    body.insert("id".into(), serde_json::Value::String(id.to_string()));
    body.insert("version".into(), row.version.into());
    body.insert("created_at".into(), to_rfc3339(row.created_at).into());
    body.insert("updated_at".into(), to_rfc3339(row.updated_at).into());
    if let serde_json::Value::Object(doc) = value {
        body.extend(doc);
    }
    metrics::counter!("cip_customers_read_total").increment(1);
    Ok((
        [(header::ETAG, etag(row.version))],
        Json(serde_json::Value::Object(body)),
    )
        .into_response())
}

/// Replace a customer's record. Send the version you read in `If-Match`; a stale version is
/// refused with 409 so no update is ever lost.
#[utoipa::path(put, path = "/v1/customers/{id}", tag = "customers",
    request_body = CustomerIn,
    params(("id" = Uuid, Path), ("If-Match" = String, Header, description = "The version (ETag) you read")),
    responses((status = 200, body = Created, headers(("ETag" = String))),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 428, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_customer(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<CustomerIn>,
) -> Result<Response, ApiError> {
    principal.require(Permission::WriteRecords)?;
    let expected = if_match(&headers)?;
    let current = state
        .store
        .get_customer(id)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    if current.version != expected {
        return Err(ApiError::VersionConflict {
            current: current.version,
        });
    }
    if current.kind != body.value.kind {
        return Err(ApiError::Validation(vec![FieldProblem {
            field: "/kind".into(),
            code: "immutable".into(),
            message: format!("a customer's kind cannot change (it is `{}`)", current.kind),
        }]));
    }
    let (row, terms, fields, doc, extras) = prepare_with_extras(
        &state,
        &principal,
        &body.value,
        id,
        expected + 1,
        current.created_at,
        crate::history::CUSTOMER_UPDATED,
    )
    .await?;
    let write = CustomerWrite {
        row,
        terms,
        audit: audit(
            &principal,
            &headers,
            "customer.update",
            Some(id.to_string()),
            fields,
            None,
        ),
        idempotency: None,
        extras,
    };
    // Special measures in force are re-checked against the new record; what that changes on
    // the customer's accounts commits with the record (docs/design/0010-special-measures.md).
    let recheck = crate::measures::recheck_customer(
        &state,
        id,
        &doc,
        |account, action, fields| {
            super::audit_draft(
                &principal,
                &headers,
                action,
                "account",
                Some(account.id.to_string()),
                fields,
                Some("special measures after a change of the customer's record".into()),
            )
        },
        now_micros(),
    )
    .await?;
    if recheck.is_empty() {
        state.store.update_customer(write, expected).await?;
    } else {
        state
            .store
            .update_customer_with_actions(write, expected, recheck.actions, recheck.ties)
            .await?;
    }
    screen_after_write(&state, &principal, &headers, id, &doc).await;
    Ok((
        [(header::ETAG, etag(expected + 1))],
        Json(Created {
            id,
            version: expected + 1,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `individual` or `entity`.
    pub kind: Option<String>,
    /// ISO 3166-1 alpha-2 of the primary country.
    pub country: Option<String>,
    /// RFC 3339; customers created at or after.
    pub created_from: Option<String>,
    /// RFC 3339; customers created before.
    pub created_to: Option<String>,
    /// Cursor: the `next_cursor` of the previous page.
    pub after: Option<Uuid>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

/// List customers (clear columns only, no personal data), oldest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(ListQuery),
    responses((status = 200, body = CustomerPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_customers(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    principal.require(Permission::ListRecords)?;
    let limit = page_limit(q.limit)?;
    if let Some(k) = &q.kind
        && cip_core::model::CustomerKind::parse(k).is_none()
    {
        return Err(ApiError::BadQuery(
            "kind must be individual or entity".into(),
        ));
    }
    let country = match &q.country {
        None => None,
        Some(c) => Some(
            parse::CountryCode::parse(c)
                .map_err(|e| ApiError::BadQuery(format!("country: {}", e.message)))?
                .as_str()
                .to_string(),
        ),
    };
    let when = |v: &Option<String>, name: &str| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|s| parse_rfc3339(s).map_err(|m| ApiError::BadQuery(format!("{name}: {m}"))))
            .transpose()
    };
    let filter = CustomerFilter {
        kind: q.kind.clone(),
        country,
        created_from: when(&q.created_from, "created_from")?,
        created_to: when(&q.created_to, "created_to")?,
    };
    let rows = state
        .store
        .list_customers(
            &filter,
            &PageRequest {
                after: q.after,
                limit,
            },
        )
        .await?;
    let next_cursor = super::next_cursor(&rows, limit, |r| r.id.to_string());
    Ok(Json(CustomerPage {
        items: rows
            .into_iter()
            .map(|r| CustomerSummary {
                id: r.id,
                kind: r.kind,
                version: r.version,
                country: r.country,
                created_at: to_rfc3339(r.created_at),
                updated_at: to_rfc3339(r.updated_at),
            })
            .collect(),
        next_cursor,
    }))
}

/// One exact-match lookup. Exactly one field must be given. Values are normalised the same
/// way as when stored (emails lowercased, phones to E.164, IBANs compacted…).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub national_id: Option<NationalIdDto>,
    /// The keyed fingerprint returned with a card.
    pub card_fingerprint: Option<String>,
    /// A full card number: fingerprinted for the lookup, never stored or logged.
    pub card_number: Option<String>,
    pub iban: Option<String>,
    pub wallet: Option<CryptoWalletDto>,
    pub external_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupResult {
    pub customer_ids: Vec<Uuid>,
}

/// Find customers (and customers whose beneficial owners match) by email, phone, national ID,
/// card, IBAN, wallet address or external id, through keyed blind indexes. The body keeps the
/// looked-up value out of URLs and access logs.
#[utoipa::path(post, path = "/v1/customers/lookup", tag = "customers", request_body = LookupRequest,
    responses((status = 200, body = LookupResult), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lookup_customers(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<LookupRequest>,
) -> Result<Json<LookupResult>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let q = body.value;
    let keyring = state.keyring();
    let problem = |field: &str, e: parse::FieldError| {
        ApiError::Validation(vec![FieldProblem {
            field: format!("/{field}"),
            code: e.code.into(),
            message: e.message,
        }])
    };
    let mut asked: Vec<(BlindIndexKind, String, &str)> = Vec::new();
    if let Some(v) = &q.email {
        asked.push((
            BlindIndexKind::Email,
            parse::Email::parse(v)
                .map_err(|e| problem("email", e))?
                .index_key(),
            "email",
        ));
    }
    if let Some(v) = &q.phone {
        asked.push((
            BlindIndexKind::Phone,
            parse::Phone::parse(v)
                .map_err(|e| problem("phone", e))?
                .as_str()
                .into(),
            "phone",
        ));
    }
    if let Some(n) = &q.national_id {
        let c = parse::CountryCode::parse(&n.issuing_country)
            .map_err(|e| problem("national_id/issuing_country", e))?;
        let num = parse::NationalIdNumber::parse(&n.number)
            .map_err(|e| problem("national_id/number", e))?;
        asked.push((
            BlindIndexKind::NationalId,
            seal::national_id_key(c.as_str(), num.as_str()),
            "national_id",
        ));
    }
    if let Some(v) = &q.card_fingerprint {
        let fp = cip_vault::CardFingerprint::parse_hex(v.trim()).map_err(|_| {
            problem(
                "card_fingerprint",
                parse::FieldError {
                    code: "invalid_format",
                    message: "must be 64 hex characters".into(),
                },
            )
        })?;
        asked.push((
            BlindIndexKind::CardFingerprint,
            fp.to_hex(),
            "card_fingerprint",
        ));
    }
    if let Some(v) = &q.card_number {
        let pan = parse::CardNumber::parse(v).map_err(|e| problem("card_number", e))?;
        asked.push((
            BlindIndexKind::CardFingerprint,
            keyring.card_fingerprint(pan.digits()).to_hex(),
            "card_number",
        ));
    }
    if let Some(v) = &q.iban {
        asked.push((
            BlindIndexKind::BankAccount,
            parse::Iban::parse(v)
                .map_err(|e| problem("iban", e))?
                .as_str()
                .into(),
            "iban",
        ));
    }
    if let Some(w) = &q.wallet {
        let chain = parse::WalletChain::parse(&w.chain).map_err(|e| problem("wallet/chain", e))?;
        let addr = parse::WalletAddress::parse(&chain, &w.address)
            .map_err(|e| problem("wallet/address", e))?;
        asked.push((BlindIndexKind::WalletAddress, addr.index_key(), "wallet"));
    }
    if let Some(v) = &q.external_id {
        asked.push((
            BlindIndexKind::ExternalId,
            parse::ShortText::parse(v)
                .map_err(|e| problem("external_id", e))?
                .as_str()
                .into(),
            "external_id",
        ));
    }
    if asked.len() != 1 {
        return Err(ApiError::Validation(vec![FieldProblem {
            field: String::new(),
            code: "exactly_one".into(),
            message: "give exactly one of email, phone, national_id, card_fingerprint, card_number, iban, wallet, external_id".into(),
        }]));
    }
    let (kind, value, by) = &asked[0];
    let hash = keyring.blind_index(*kind, value);
    let ids = state
        .store
        .find_customers_by_term(kind.as_str(), &hash)
        .await?;
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "customer.lookup",
            None,
            vec![format!("by={by}"), format!("matches={}", ids.len())],
            purpose(&headers)?,
        )])
        .await?;
    Ok(Json(LookupResult { customer_ids: ids }))
}
