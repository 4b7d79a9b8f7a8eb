//! `/v1/special-measures`: special measures under EO 13984 §2 — create (admin), read
//! (admin, analyst, auditor), extend and revoke (admin), and the report of every account a
//! measure touched. Enforcement lives in `crate::measures`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use cip_core::model::Permission;
use cip_core::parse::parse_date;
use cip_core::special_measure::{MeasureTarget, SpecialMeasure};
use cip_store::{MeasureActionFilter, MeasureRow, PageRequest, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{audit_draft, page_limit, purpose};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::measures::*;
use crate::state::AppState;
use crate::time::{now_micros, to_rfc3339};

/// A special measure as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeasureDto {
    pub id: Uuid,
    pub version: i64,
    /// `scheduled` (not yet effective), `in_force`, `expired` or `revoked`.
    pub status: String,
    #[serde(flatten)]
    pub measure: MeasureIn,
    pub extensions: Vec<ExtensionDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationDto>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// When the measure was applied to the accounts that existed when it took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_to_existing_at: Option<String>,
}

pub fn measure_dto(row: &MeasureRow, now: i64) -> Result<MeasureDto, ApiError> {
    let doc = MeasureDoc::from_row(row)?;
    Ok(MeasureDto {
        id: row.id,
        version: row.version,
        status: status_of(row, now).into(),
        measure: doc.measure,
        extensions: doc.extensions,
        revocation: doc.revocation,
        created_by: doc.created_by,
        created_at: to_rfc3339(row.created_at),
        updated_at: to_rfc3339(row.updated_at),
        applied_to_existing_at: row.swept_at.map(to_rfc3339),
    })
}

fn problems(list: Vec<(String, cip_core::parse::FieldError)>) -> ApiError {
    ApiError::Validation(
        list.into_iter()
            .map(|(field, e)| FieldProblem {
                field,
                code: e.code.into(),
                message: e.message,
            })
            .collect(),
    )
}

fn problem(field: &str, code: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![FieldProblem {
        field: field.into(),
        code: code.into(),
        message: message.into(),
    }])
}

/// Create a special measure (admin). The measure applies from its effective date: new
/// applications are checked against it at once, and the special-measures job applies it to
/// existing accounts when it takes effect. Audited.
#[utoipa::path(post, path = "/v1/special-measures", tag = "special measures",
    request_body = MeasureIn,
    responses((status = 201, body = MeasureDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_measure(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<MeasureIn>,
) -> Result<(StatusCode, Json<MeasureDto>), ApiError> {
    principal.require(Permission::ManageSpecialMeasures)?;
    let measure = SpecialMeasure::parse(&input_of(&body.value)).map_err(problems)?;
    if let MeasureTarget::DesignatedPersons { list_id, .. } = &measure.target
        && !state
            .store
            .list_lists()
            .await?
            .iter()
            .any(|l| &l.list_id == list_id)
    {
        return Err(problem(
            "/target/list_id",
            "unknown_list",
            "no list with this id is loaded; import it first (cip lists import / POST /v1/lists)",
        ));
    }
    let now = now_micros();
    let id = Uuid::now_v7();
    let doc = MeasureDoc {
        measure: wire_of(&measure),
        extensions: Vec::new(),
        revocation: None,
        created_by: principal.key_id.clone(),
    };
    let row = MeasureRow {
        id,
        version: 1,
        target_kind: doc.measure.target.kind.clone(),
        country: doc.measure.target.country.clone(),
        list_id: doc.measure.target.list_id.clone(),
        effective_at: day_start(measure.effective_date),
        expires_at: day_start(measure.expiry_date),
        revoked_at: None,
        created_at: now,
        updated_at: now,
        swept_at: None,
        document: serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    state
        .store
        .insert_measure(
            row.clone(),
            audit_draft(
                &principal,
                &headers,
                "special_measure.create",
                "special_measure",
                Some(id.to_string()),
                vec!["/*".into()],
                None,
            ),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(measure_dto(&row, now)?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MeasureListQuery {
    pub after: Option<Uuid>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeasurePage {
    pub items: Vec<MeasureDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Every special measure, oldest first (admin, analyst, auditor).
#[utoipa::path(get, path = "/v1/special-measures", tag = "special measures",
    params(MeasureListQuery),
    responses((status = 200, body = MeasurePage), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_measures(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<MeasureListQuery>,
) -> Result<Json<MeasurePage>, ApiError> {
    principal.require(Permission::ReadSpecialMeasures)?;
    let limit = page_limit(q.limit)?;
    let rows = state
        .store
        .list_measures(&PageRequest {
            after: q.after,
            limit,
        })
        .await?;
    let now = now_micros();
    let next_cursor = super::next_cursor(&rows, limit, |r| r.id.to_string());
    Ok(Json(MeasurePage {
        items: rows
            .iter()
            .map(|r| measure_dto(r, now))
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

async fn load(state: &AppState, id: Uuid) -> Result<MeasureRow, ApiError> {
    state
        .store
        .get_measure(id)
        .await?
        .ok_or(ApiError::NotFound("special measure"))
}

#[utoipa::path(get, path = "/v1/special-measures/{id}", tag = "special measures",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = MeasureDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_measure(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<MeasureDto>, ApiError> {
    principal.require(Permission::ReadSpecialMeasures)?;
    let row = load(&state, id).await?;
    Ok(Json(measure_dto(&row, now_micros())?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendIn {
    /// The new expiry date (YYYY-MM-DD), after the current one.
    pub expiry_date: String,
    /// Why (1–500 characters; e.g. the notice that extended the measure).
    pub reason: String,
}

/// Extend a measure's term (admin). Each extension is recorded with the previous and new
/// expiry, the reason and the actor. Audited.
#[utoipa::path(post, path = "/v1/special-measures/{id}/extend", tag = "special measures",
    params(("id" = Uuid, Path)), request_body = ExtendIn,
    responses((status = 200, body = MeasureDto), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn extend_measure(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<ExtendIn>,
) -> Result<Json<MeasureDto>, ApiError> {
    principal.require(Permission::ManageSpecialMeasures)?;
    let mut errs = Vec::new();
    let new_expiry = match parse_date(&body.value.expiry_date) {
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(("/expiry_date".to_string(), e));
            None
        }
    };
    let reason = body.value.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        errs.push((
            "/reason".to_string(),
            cip_core::parse::FieldError {
                code: "invalid_reason",
                message: "a reason of 1 to 500 printable characters is required".into(),
            },
        ));
    }
    if !errs.is_empty() {
        return Err(problems(errs));
    }
    let current = load(&state, id).await?;
    let mut doc = MeasureDoc::from_row(&current)?;
    if doc.revocation.is_some() {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "CIP-MEASURE-0002",
            message: "This special measure was revoked; it cannot be extended.".into(),
            details: Vec::new(),
        });
    }
    let mut measure = doc.domain()?;
    let new_expiry = new_expiry.ok_or_else(|| ApiError::Internal("date was parsed".into()))?;
    if new_expiry <= measure.expiry_date {
        return Err(problem(
            "/expiry_date",
            "not_later",
            "an extension moves the expiry date later than the current one",
        ));
    }
    let now = now_micros();
    doc.extensions.push(ExtensionDto {
        previous_expiry_date: measure.expiry_date.to_string(),
        expiry_date: new_expiry.to_string(),
        reason,
        actor: principal.key_id.clone(),
        at: to_rfc3339(now),
    });
    measure.expiry_date = new_expiry;
    doc.measure = wire_of(&measure);
    let mut row = current.clone();
    row.version = current.version + 1;
    row.expires_at = day_start(new_expiry);
    row.updated_at = now;
    row.document = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .update_measure(
            row.clone(),
            current.version,
            audit_draft(
                &principal,
                &headers,
                "special_measure.extend",
                "special_measure",
                Some(id.to_string()),
                vec!["/expiry_date".into(), "/extensions".into()],
                None,
            ),
        )
        .await?;
    Ok(Json(measure_dto(&row, now)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeIn {
    /// Why (1–500 characters).
    pub reason: String,
}

/// Revoke a measure (admin): it stops applying at once — new applications are no longer
/// checked against it and account decisions stop citing it. Audited.
#[utoipa::path(post, path = "/v1/special-measures/{id}/revoke", tag = "special measures",
    params(("id" = Uuid, Path)), request_body = RevokeIn,
    responses((status = 200, body = MeasureDto), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_measure(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<RevokeIn>,
) -> Result<Json<MeasureDto>, ApiError> {
    principal.require(Permission::ManageSpecialMeasures)?;
    let reason = super::lifecycle::parse_reason("/reason", &body.value.reason)?;
    let current = load(&state, id).await?;
    let mut doc = MeasureDoc::from_row(&current)?;
    if current.revoked_at.is_some() {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "CIP-MEASURE-0002",
            message: "This special measure is already revoked.".into(),
            details: Vec::new(),
        });
    }
    let now = now_micros();
    doc.revocation = Some(RevocationDto {
        reason,
        actor: principal.key_id.clone(),
        at: to_rfc3339(now),
    });
    let mut row = current.clone();
    row.version = current.version + 1;
    row.revoked_at = Some(now);
    row.updated_at = now;
    row.document = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .update_measure(
            row.clone(),
            current.version,
            audit_draft(
                &principal,
                &headers,
                "special_measure.revoke",
                "special_measure",
                Some(id.to_string()),
                vec!["/revocation".into()],
                None,
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::VersionConflict { current } => ApiError::VersionConflict { current },
            other => other.into(),
        })?;
    Ok(Json(measure_dto(&row, now)?))
}

/// One account a measure touched.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportLine {
    pub account_id: Uuid,
    pub customer_id: Uuid,
    /// `apply_conditions`, `restrict` or `close`.
    pub action: String,
    /// `opening` (conditions attached when opened), `measure_in_effect` (an existing
    /// account when the measure took effect) or `confirmed_hit`.
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<Uuid>,
    pub evidence: Vec<EvidenceDto>,
    pub actor: String,
    pub recorded_at: String,
}

/// An application the measure refused (no account was opened).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefusedApplication {
    pub customer_id: Uuid,
    pub account_type: String,
    pub product: String,
    /// `prohibited` (the measure bars the account) or `product_limit` (the product is
    /// outside the measure's product limit).
    pub reason: String,
    pub evidence: Vec<EvidenceDto>,
    pub actor: String,
    pub refused_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeasureReport {
    pub measure: MeasureDto,
    /// Accounts touched, by action.
    pub counts: std::collections::BTreeMap<String, u64>,
    pub accounts: Vec<ReportLine>,
    /// Applications the measure refused, oldest first.
    pub refused_applications: Vec<RefusedApplication>,
}

/// Builds the report of one measure (shared with `cip measures report`).
pub async fn build_report(
    store: &dyn cip_store::Store,
    id: Uuid,
    now: i64,
) -> Result<MeasureReport, ApiError> {
    let row = store
        .get_measure(id)
        .await?
        .ok_or(ApiError::NotFound("special measure"))?;
    let actions = store
        .list_measure_actions(&MeasureActionFilter {
            measure_id: Some(id),
            account_id: None,
        })
        .await?;
    let mut counts = std::collections::BTreeMap::new();
    let accounts = actions
        .into_iter()
        .map(|a| {
            *counts.entry(a.action.clone()).or_insert(0) += 1;
            ReportLine {
                account_id: a.account_id,
                customer_id: a.customer_id,
                action: a.action,
                cause: a.cause,
                deadline: a.deadline.map(to_rfc3339),
                review_id: a.review_id,
                evidence: serde_json::from_slice(&a.evidence).unwrap_or_default(),
                actor: a.actor,
                recorded_at: to_rfc3339(a.at),
            }
        })
        .collect();
    let refused_applications = store
        .list_refusals(id)
        .await?
        .into_iter()
        .map(|r| RefusedApplication {
            customer_id: r.customer_id,
            account_type: r.account_type,
            product: r.product,
            reason: r.reason,
            evidence: serde_json::from_slice(&r.evidence).unwrap_or_default(),
            actor: r.actor,
            refused_at: to_rfc3339(r.at),
        })
        .collect();
    Ok(MeasureReport {
        measure: measure_dto(&row, now)?,
        counts,
        accounts,
        refused_applications,
    })
}

/// Every account the measure touched, the evidence that tied it, what was required and
/// when (admin, analyst, auditor). The evidence comes from customers' records, so the read
/// is audited.
#[utoipa::path(get, path = "/v1/special-measures/{id}/report", tag = "special measures",
    params(("id" = Uuid, Path), ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = MeasureReport), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn measure_report(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<MeasureReport>, ApiError> {
    principal.require(Permission::ReadSpecialMeasures)?;
    let purpose = purpose(&headers)?;
    let report = build_report(state.store.as_ref(), id, now_micros()).await?;
    state
        .store
        .append_audit(vec![audit_draft(
            &principal,
            &headers,
            "special_measure.report",
            "special_measure",
            Some(id.to_string()),
            vec![
                format!("accounts={}", report.accounts.len()),
                format!("refused_applications={}", report.refused_applications.len()),
                "/evidence".into(),
            ],
            purpose,
        )])
        .await?;
    Ok(Json(report))
}
