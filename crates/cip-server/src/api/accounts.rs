use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cip_core::model::{AccountStatus, AccountType, Permission};
use cip_core::parse;
use cip_store::{
    AccountFilter, AccountRow, AccountWrite, AuditDraft, IdempotencyRecord, PageRequest, StoreError,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::*;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::records::dto::*;
use crate::state::AppState;
use crate::time::{now_micros, parse_rfc3339, to_rfc3339};

fn audit(
    principal: &Principal,
    headers: &HeaderMap,
    action: &str,
    id: Uuid,
    fields: Vec<String>,
) -> AuditDraft {
    super::audit_draft(
        principal,
        headers,
        action,
        "account",
        Some(id.to_string()),
        fields,
        None,
    )
}

/// The account as the API shows it; `last_accessed_at` includes an advance still queued
/// (`crate::access::LastAccess`), so a read right after ingestion sees it.
pub fn to_dto(r: AccountRow, last_access: &crate::access::LastAccess) -> Account {
    let last_accessed_at = r.last_accessed_at.max(last_access.pending(r.id));
    Account {
        id: r.id,
        customer_id: r.customer_id,
        external_id: r.external_id,
        product: r.product,
        account_type: r.account_type,
        status: r.status,
        opened_at: r.opened_at.map(to_rfc3339),
        closed_at: r.closed_at.map(to_rfc3339),
        last_accessed_at: last_accessed_at.map(to_rfc3339),
        version: r.version,
        created_at: to_rfc3339(r.created_at),
        updated_at: to_rfc3339(r.updated_at),
        special_measures: None,
    }
}

struct Fields {
    external_id: Option<Option<String>>,
    product: Option<String>,
    account_type: Option<String>,
    status: Option<String>,
    opened_at: Option<i64>,
    closed_at: Option<i64>,
    last_accessed_at: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
fn parse_fields(
    external_id: &Option<String>,
    product: &Option<String>,
    account_type: &Option<String>,
    status: &Option<String>,
    opened_at: &Option<String>,
    closed_at: &Option<String>,
    last_accessed_at: &Option<String>,
) -> Result<Fields, ApiError> {
    let mut problems = Vec::new();
    let mut add = |field: &str, code: &str, message: String| {
        problems.push(FieldProblem {
            field: format!("/{field}"),
            code: code.into(),
            message,
        });
    };
    let external_id = match external_id {
        None => None,
        Some(x) => match parse::ShortText::parse(x) {
            Ok(t) if t.as_str().len() <= 200 => Some(Some(t.as_str().to_string())),
            Ok(_) => {
                add("external_id", "too_long", "at most 200 characters".into());
                None
            }
            Err(e) => {
                add("external_id", e.code, e.message);
                None
            }
        },
    };
    let product = match product {
        None => None,
        Some(p) => match parse::ShortText::parse(p) {
            Ok(t) => Some(t.as_str().to_string()),
            Err(e) => {
                add("product", e.code, e.message);
                None
            }
        },
    };
    let account_type = match account_type {
        None => None,
        Some(t) if AccountType::parse(t).is_some() => Some(t.clone()),
        Some(_) => {
            add(
                "account_type",
                "invalid_enum",
                "must be standard, trial or reseller_account".into(),
            );
            None
        }
    };
    let status = match status {
        None => None,
        Some(s) if AccountStatus::parse(s).is_some() => Some(s.clone()),
        Some(_) => {
            add(
                "status",
                "invalid_enum",
                format!(
                    "must be one of {}",
                    AccountStatus::ALL.map(AccountStatus::as_str).join(", ")
                ),
            );
            None
        }
    };
    let mut time = |name: &str, v: &Option<String>| -> Option<i64> {
        let s = v.as_deref()?;
        match parse_rfc3339(s) {
            Ok(t) => Some(t),
            Err(m) => {
                add(name, "invalid_date", m);
                None
            }
        }
    };
    let opened_at = time("opened_at", opened_at);
    let closed_at = time("closed_at", closed_at);
    let last_accessed_at = time("last_accessed_at", last_accessed_at);
    if problems.is_empty() {
        Ok(Fields {
            external_id,
            product,
            account_type,
            status,
            opened_at,
            closed_at,
            last_accessed_at,
        })
    } else {
        Err(ApiError::Validation(problems))
    }
}

fn check_consistency(r: &AccountRow) -> Result<(), ApiError> {
    if let (Some(o), Some(c)) = (r.opened_at, r.closed_at)
        && c < o
    {
        return Err(ApiError::Validation(vec![FieldProblem {
            field: "/closed_at".into(),
            code: "inconsistent".into(),
            message: "closed_at is before opened_at".into(),
        }]));
    }
    if r.status == "closed" && r.closed_at.is_none() {
        return Err(ApiError::Validation(vec![FieldProblem {
            field: "/closed_at".into(),
            code: "required".into(),
            message: "a closed account needs closed_at".into(),
        }]));
    }
    Ok(())
}

/// Open an account (an IaaS account of a customer: standard, trial or Reseller Account).
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = AccountIn,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Account), (status = 404, description = "Unknown customer", body = ErrorBody),
        (status = 409, description = "external_id already used", body = ErrorBody),
        (status = 422, description = "Invalid fields; or refused by a special measure: `CIP-MEASURE-0001` (prohibited), `CIP-MEASURE-0002` (product outside a measure's product limit)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_account(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<AccountIn>,
) -> Result<Response, ApiError> {
    principal.require(Permission::WriteRecords)?;
    let idem = idempotency(&headers, "POST /v1/accounts", &body.raw)?;
    if let Some(replayed) = check_replay(state.store.as_ref(), &principal.key_id, &idem).await? {
        return Ok(replayed);
    }
    let b = &body.value;
    let f = parse_fields(
        &b.external_id,
        &Some(b.product.clone()),
        &Some(b.account_type.clone()),
        &b.status,
        &b.opened_at,
        &b.closed_at,
        &b.last_accessed_at,
    )?;
    let now = now_micros();
    let id = Uuid::now_v7();
    let row = AccountRow {
        id,
        customer_id: b.customer_id,
        external_id: f.external_id.flatten(),
        product: f.product.unwrap_or_default(),
        account_type: f.account_type.unwrap_or_default(),
        status: f.status.unwrap_or_else(|| "applied".into()),
        opened_at: f.opened_at,
        closed_at: f.closed_at,
        last_accessed_at: f.last_accessed_at,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    check_consistency(&row)?;
    let reason = match &b.status_reason {
        Some(r) => super::lifecycle::parse_reason("/status_reason", r)?,
        None => "account created".to_string(),
    };
    // Special measures in force: a prohibited application is refused, a conditioned one is
    // opened with the conditions attached (docs/design/0010-special-measures.md).
    let account_type = AccountType::parse(&row.account_type)
        .ok_or_else(|| ApiError::Internal("account type was parsed".into()))?;
    let check =
        crate::measures::check_opening(&state, row.customer_id, account_type, &row.product, now)
            .await?;
    if check.read_record {
        // The check read the customer's record: audited before anything else happens. A
        // refusal leaves only this entry (no account, no action).
        let refused = !check.refusals.is_empty();
        let mut fields: Vec<String> = check
            .refusals
            .iter()
            .map(|r| format!("refused_by={}", r.measure_id))
            .chain(
                check
                    .attached
                    .iter()
                    .map(|a| format!("conditions_of={}", a.row.id)),
            )
            .collect();
        fields.extend(
            crate::measures::EVIDENCE_FIELDS
                .iter()
                .map(|f| f.to_string()),
        );
        let entry = super::audit_draft(
            &principal,
            &headers,
            if refused {
                "account.refused"
            } else {
                "special_measure.check"
            },
            "customer",
            Some(row.customer_id.to_string()),
            fields,
            Some("special measures at account opening".into()),
        );
        if refused {
            // The refusal is recorded for each refusing measure's report, in the entry's
            // transaction; no account is stored.
            let refusals = check
                .refusals
                .iter()
                .map(|r| cip_store::RefusalRow {
                    id: Uuid::now_v7(),
                    measure_id: r.measure_id,
                    customer_id: row.customer_id,
                    account_type: row.account_type.clone(),
                    product: row.product.clone(),
                    reason: if r.limits.is_empty() {
                        "prohibited"
                    } else {
                        "product_limit"
                    }
                    .into(),
                    evidence: serde_json::to_vec(&r.evidence).unwrap_or_else(|_| b"[]".to_vec()),
                    actor: principal.key_id.clone(),
                    at: now,
                })
                .collect();
            state.store.record_refusals(refusals, entry).await?;
        } else {
            state.store.append_audit(vec![entry]).await?;
        }
    }
    if !check.refusals.is_empty() && check.refusals.iter().all(|r| !r.limits.is_empty()) {
        // Only limits refuse it (a product outside a conditioning measure's product limit).
        let broken: Vec<crate::measures::LimitDto> = check
            .refusals
            .iter()
            .flat_map(|r| {
                r.limits.iter().map(|c| crate::measures::LimitDto {
                    measure_id: r.measure_id,
                    legal_reference: r.legal_reference.clone(),
                    kind: c.kind.clone(),
                    allowed_products: c.allowed_products.clone(),
                    max_vcpus: c.max_vcpus,
                    permitted: false,
                })
            })
            .collect();
        return Err(crate::measures::limit_refusal(
            &broken,
            "/product",
            &format!("The product {:?}", row.product),
        ));
    }
    if let Some(first) = check.refusals.iter().find(|r| r.limits.is_empty()) {
        return Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "CIP-MEASURE-0001",
            message: format!(
                "Opening this account is prohibited by special measure {} ({}). Nothing was stored.",
                first.measure_id, first.legal_reference
            ),
            details: check
                .refusals
                .iter()
                .filter(|r| r.limits.is_empty())
                .map(|r| FieldProblem {
                    field: "/customer_id".into(),
                    code: "prohibited_by_special_measure".into(),
                    message: format!(
                        "special measure {} ({}) prohibits this account; the customer is tied to its target by {}",
                        r.measure_id,
                        r.legal_reference,
                        r.evidence
                            .iter()
                            .map(|e| format!("{} of {}", e.kind, e.subject))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
                .collect(),
        });
    }
    let mut actions = Vec::new();
    let mut attached_dtos = Vec::new();
    for a in &check.attached {
        let w = crate::measures::action_write(
            &row,
            Some((&a.row, &a.measure)),
            None,
            cip_core::special_measure::RequiredAction::ApplyConditions,
            None,
            &a.evidence,
            "opening",
            audit(
                &principal,
                &headers,
                "special_measure.attach",
                id,
                vec![format!("measure={}", a.row.id)],
            ),
            false,
        );
        attached_dtos.push(crate::measures::action_dto(
            &w.row,
            Some(&(a.row.clone(), a.measure.clone())),
            now,
        ));
        actions.push(w);
    }
    let transition = cip_store::TransitionRow {
        account_id: id,
        version: 1,
        from_status: "none".into(),
        to_status: row.status.clone(),
        reason: reason.clone(),
        actor: principal.key_id.clone(),
        at: now,
    };
    let event = crate::webhooks::event(
        "account.created",
        serde_json::json!({
            "account_id": id,
            "customer_id": row.customer_id,
            "external_id": row.external_id,
            "account_type": row.account_type,
            "product": row.product,
            "status": row.status,
            "reason": reason,
            "special_measures": attached_dtos.iter().map(|m| serde_json::json!({
                "measure_id": m.measure_id,
                "action": m.action,
                "conditions": m.conditions,
            })).collect::<Vec<_>>(),
        }),
    );
    let mut dto = to_dto(row.clone(), &state.last_access);
    dto.special_measures = Some(attached_dtos);
    let response = serde_json::to_vec(&dto).map_err(|e| ApiError::Internal(e.to_string()))?;
    let write = AccountWrite {
        row,
        audit: audit(
            &principal,
            &headers,
            "account.create",
            id,
            vec!["/*".into()],
        ),
        idempotency: idem.as_ref().map(|i| IdempotencyRecord {
            principal: principal.key_id.clone(),
            key: i.key.clone(),
            request_hash: i.request_hash,
            status: 201,
            response: response.clone(),
            created_at: now,
        }),
        transition: Some(transition),
        events: vec![event],
    };
    let inserted = if actions.is_empty() {
        state.store.insert_account(write).await
    } else {
        state
            .store
            .insert_account_with_actions(write, actions)
            .await
    };
    match inserted {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("customer")),
        Err(StoreError::IdempotencyReplay(stored)) => {
            return Ok(match &idem {
                Some(asked) => replay(&stored, asked),
                None => ApiError::IdempotencyMismatch.into_response(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        StatusCode::CREATED,
        [
            (header::ETAG, etag(1)),
            (
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            ),
        ],
        response,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", params(("id" = Uuid, Path)),
    responses((status = 200, body = Account, headers(("ETag" = String))), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let row = state
        .store
        .get_account(id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    let version = row.version;
    let mut dto = to_dto(row, &state.last_access);
    dto.special_measures = Some(crate::measures::account_measures(&state, id, now_micros()).await?);
    Ok(([(header::ETAG, etag(version))], Json(dto)).into_response())
}

/// Change an account (status, product, times…). Send the version you read in `If-Match`.
#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "accounts", request_body = AccountUpdate,
    params(("id" = Uuid, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = Account), (status = 409, body = ErrorBody),
        (status = 422, description = "Invalid fields; or `CIP-MEASURE-0002`: the new product is outside a special measure's product limit", body = ErrorBody),
        (status = 428, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_account(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<AccountUpdate>,
) -> Result<Response, ApiError> {
    principal.require(Permission::WriteRecords)?;
    let expected = if_match(&headers)?;
    let b = &body.value;
    let f = parse_fields(
        &b.external_id,
        &b.product,
        &b.account_type,
        &b.status,
        &b.opened_at,
        &b.closed_at,
        &b.last_accessed_at,
    )?;
    let current = state
        .store
        .get_account(id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    if current.version != expected {
        return Err(ApiError::VersionConflict {
            current: current.version,
        });
    }
    let mut changed = Vec::new();
    let mut row = current.clone();
    if let Some(x) = f.external_id {
        row.external_id = x;
        changed.push("/external_id".to_string());
    }
    if let Some(x) = f.product {
        if !cip_core::special_measure::same_product(&x, &current.product) {
            // A product outside a measure's product limit is refused like at opening.
            let broken: Vec<_> = crate::measures::account_limits(
                &state,
                id,
                cip_core::special_measure::Use {
                    product: Some(&x),
                    vcpus: None,
                },
                now_micros(),
            )
            .await?
            .into_iter()
            .filter(|l| !l.permitted)
            .collect();
            if !broken.is_empty() {
                return Err(crate::measures::limit_refusal(
                    &broken,
                    "/product",
                    &format!("The product {x:?}"),
                ));
            }
        }
        row.product = x;
        changed.push("/product".into());
    }
    if let Some(x) = f.account_type {
        row.account_type = x;
        changed.push("/account_type".into());
    }
    let new_status = f.status.filter(|x| *x != current.status);
    if let Some(x) = f.opened_at {
        row.opened_at = Some(x);
        changed.push("/opened_at".into());
    }
    if let Some(x) = f.closed_at {
        row.closed_at = Some(x);
        changed.push("/closed_at".into());
    }
    if let Some(x) = f.last_accessed_at {
        row.last_accessed_at = Some(x);
        changed.push("/last_accessed_at".into());
    }
    row.version = expected + 1;
    row.updated_at = now_micros();
    let mut transition = None;
    let mut events = vec![];
    if let Some(to) = new_status {
        // Same rules as POST /v1/accounts/{id}/transitions.
        let to = AccountStatus::parse(&to)
            .ok_or_else(|| ApiError::Internal("status was parsed".into()))?;
        let reason = match &b.status_reason {
            Some(r) => super::lifecycle::parse_reason("/status_reason", r)?,
            None => "status changed by update".to_string(),
        };
        let (t, e) = super::lifecycle::apply_transition(
            &mut row,
            &current.status,
            to,
            reason,
            &principal.key_id,
            "/status",
        )?;
        transition = Some(t);
        events.push(e);
        changed.push("/status".into());
    }
    check_consistency(&row)?;
    state
        .store
        .update_account(
            AccountWrite {
                row: row.clone(),
                audit: audit(&principal, &headers, "account.update", id, changed),
                idempotency: None,
                transition,
                events,
            },
            expected,
        )
        .await?;
    Ok((
        [(header::ETAG, etag(row.version))],
        Json(to_dto(row, &state.last_access)),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountListQuery {
    pub customer_id: Option<Uuid>,
    pub status: Option<String>,
    pub account_type: Option<String>,
    pub after: Option<Uuid>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(AccountListQuery),
    responses((status = 200, body = AccountPage), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AccountListQuery>,
) -> Result<Json<AccountPage>, ApiError> {
    principal.require(Permission::ListRecords)?;
    let limit = page_limit(q.limit)?;
    if q.status
        .as_deref()
        .is_some_and(|s| AccountStatus::parse(s).is_none())
    {
        return Err(ApiError::BadQuery("status: unknown account status".into()));
    }
    if q.account_type
        .as_deref()
        .is_some_and(|s| AccountType::parse(s).is_none())
    {
        return Err(ApiError::BadQuery(
            "account_type: must be standard, trial or reseller_account".into(),
        ));
    }
    let rows = state
        .store
        .list_accounts(
            &AccountFilter {
                customer_id: q.customer_id,
                status: q.status.clone(),
                account_type: q.account_type.clone(),
            },
            &PageRequest {
                after: q.after,
                limit,
            },
        )
        .await?;
    let next_cursor = super::next_cursor(&rows, limit, |r| r.id.to_string());
    Ok(Json(AccountPage {
        items: rows
            .into_iter()
            .map(|r| to_dto(r, &state.last_access))
            .collect(),
        next_cursor,
    }))
}
