//! Notices: what customers are told is collected and why. Each policy version carries its
//! notice text (docs/design/0013-policy.md); the integrator fetches the notice in force for
//! its signup page and records which version each customer was shown, at creation
//! (`notice` of `POST /v1/customers`) or later. See
//! docs/design/0015-notices-history-consistency.md.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use cip_core::model::Permission;
use cip_core::policy::Policy;
use cip_store::{NoticeRow, Store};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{audit_draft, purpose};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::time::{now_micros, parse_rfc3339, to_rfc3339};

/// The text of a policy version, where `crate::policy::apply` keeps it.
fn text_key(version: &str) -> String {
    format!("policy.text.{version}")
}

/// The notice of a policy version (the built-in one's, or an applied one's); `None` when no
/// such version was ever applied.
pub async fn notice_of(store: &dyn Store, version: &str) -> Result<Option<String>, ApiError> {
    let builtin = Policy::builtin();
    if version == builtin.version {
        return Ok(Some(builtin.notice));
    }
    let Some(text) = store.get_meta(&text_key(version)).await? else {
        return Ok(None);
    };
    let text = String::from_utf8(text)
        .map_err(|_| ApiError::Internal(format!("policy text {version} is not UTF-8")))?;
    let policy = crate::policy_file::parse(&text)
        .map_err(|_| ApiError::Internal(format!("stored policy {version} no longer parses")))?;
    Ok(Some(policy.notice))
}

pub use crate::records::dto::NoticeShownIn;

/// Checks a submitted notice: a known version, a sensible time. Problems name their field
/// under `base` (`/notice` in a customer, empty on its own).
pub async fn parse_shown(
    store: &dyn Store,
    input: &NoticeShownIn,
    base: &str,
    now: i64,
) -> Result<Result<(String, i64), Vec<FieldProblem>>, ApiError> {
    let mut problems = Vec::new();
    let version = input.version.trim();
    if version.is_empty() || version.len() > 100 {
        problems.push(FieldProblem {
            field: format!("{base}/version"),
            code: "invalid".into(),
            message: "a policy version label of 1 to 100 characters".into(),
        });
    } else if notice_of(store, version).await?.is_none() {
        problems.push(FieldProblem {
            field: format!("{base}/version"),
            code: "unknown_version".into(),
            message: format!(
                "no policy version '{version}' was ever in force; send the version given by GET /v1/policy/notice"
            ),
        });
    }
    let shown_at = match &input.shown_at {
        None => Some(now),
        Some(s) => match parse_rfc3339(s) {
            Ok(t) if t > now + 5 * 60 * 1_000_000 => {
                problems.push(FieldProblem {
                    field: format!("{base}/shown_at"),
                    code: "in_future".into(),
                    message: "a notice cannot have been shown in the future".into(),
                });
                None
            }
            Ok(t) => Some(t),
            Err(m) => {
                problems.push(FieldProblem {
                    field: format!("{base}/shown_at"),
                    code: "invalid_datetime".into(),
                    message: m,
                });
                None
            }
        },
    };
    Ok(match shown_at {
        Some(t) if problems.is_empty() => Ok((version.to_string(), t)),
        _ => Err(problems),
    })
}

pub fn notice_row(customer_id: Uuid, version: String, shown_at: i64, actor: &str) -> NoticeRow {
    NoticeRow {
        id: Uuid::now_v7(),
        customer_id,
        policy_version: version,
        shown_at,
        recorded_at: now_micros(),
        actor: actor.into(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeDto {
    /// The policy version.
    pub version: String,
    /// What the customer is told is collected and why.
    pub notice: String,
    /// True when this is the version in force.
    pub in_force: bool,
}

/// The notice of the policy in force, for the signup page: show `notice` and record
/// `version` with the customer. Any role (it is not personal data).
#[utoipa::path(get, path = "/v1/policy/notice", tag = "policy",
    responses((status = 200, body = NoticeDto), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_notice(
    State(state): State<AppState>,
    _principal: Principal,
) -> Result<Json<NoticeDto>, ApiError> {
    let (p, _, _) = crate::policy::active(state.store.as_ref())
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(NoticeDto {
        version: p.version,
        notice: p.notice,
        in_force: true,
    }))
}

/// The notice of one policy version (in force now or earlier). Any role.
#[utoipa::path(get, path = "/v1/policy/notice/{version}", tag = "policy",
    params(("version" = String, Path)),
    responses((status = 200, body = NoticeDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_notice_version(
    State(state): State<AppState>,
    _principal: Principal,
    Path(version): Path<String>,
) -> Result<Json<NoticeDto>, ApiError> {
    let notice = notice_of(state.store.as_ref(), &version)
        .await?
        .ok_or(ApiError::NotFound("policy version"))?;
    let (p, _, _) = crate::policy::active(state.store.as_ref())
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(NoticeDto {
        in_force: p.version == version,
        version,
        notice,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeShownDto {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// The policy version whose notice was shown.
    pub version: String,
    pub shown_at: String,
    pub recorded_at: String,
    /// The API key that recorded it.
    pub recorded_by: String,
}

fn shown_dto(r: NoticeRow) -> NoticeShownDto {
    NoticeShownDto {
        id: r.id,
        customer_id: r.customer_id,
        version: r.policy_version,
        shown_at: to_rfc3339(r.shown_at),
        recorded_at: to_rfc3339(r.recorded_at),
        recorded_by: r.actor,
    }
}

/// Records that a customer was shown a policy version's notice (e.g. the new one after a
/// policy change). An unknown version is 422 and writes nothing (admin, analyst,
/// integration).
#[utoipa::path(post, path = "/v1/customers/{id}/notices", tag = "customers",
    request_body = NoticeShownIn, params(("id" = Uuid, Path)),
    responses((status = 201, body = NoticeShownDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_notice(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<NoticeShownIn>,
) -> Result<(StatusCode, Json<NoticeShownDto>), ApiError> {
    principal.require(Permission::WriteRecords)?;
    let (version, shown_at) = parse_shown(state.store.as_ref(), &body.value, "", now_micros())
        .await?
        .map_err(ApiError::Validation)?;
    let row = notice_row(id, version, shown_at, &principal.key_id);
    let audit = audit_draft(
        &principal,
        &headers,
        "notice.record",
        "customer",
        Some(id.to_string()),
        vec!["/notices".into(), format!("version={}", row.policy_version)],
        None,
    );
    match state.store.insert_notices(vec![row.clone()], audit).await {
        Err(cip_store::StoreError::NotFound) => return Err(ApiError::NotFound("customer")),
        other => other?,
    }
    Ok((StatusCode::CREATED, Json(shown_dto(row))))
}

/// The notices a customer was shown, in order (audited read: admin, analyst, auditor,
/// integration).
#[utoipa::path(get, path = "/v1/customers/{id}/notices", tag = "customers",
    params(("id" = Uuid, Path), ("X-Purpose" = Option<String>, Header, description = "Why (recorded in the audit trail)")),
    responses((status = 200, body = [NoticeShownDto]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_notices(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<NoticeShownDto>>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    state
        .store
        .get_customer(id)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let rows = state.store.list_notices(id).await?;
    state
        .store
        .append_audit(vec![audit_draft(
            &principal,
            &headers,
            "notice.read",
            "customer",
            Some(id.to_string()),
            vec!["/notices".into()],
            purpose,
        )])
        .await?;
    Ok(Json(rows.into_iter().map(shown_dto).collect()))
}
