use axum::Json;
use axum::extract::{Query, State};
use cip_core::model::Permission;
use cip_store::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::VerifyReport;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::to_rfc3339;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries about this record (customer or account id).
    pub record_id: Option<String>,
    /// Entries by this API key id.
    pub actor: Option<String>,
    /// Cursor: entries after this sequence number.
    pub after: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDto {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub record_type: String,
    pub record_id: Option<String>,
    /// Fields read or changed, as JSON pointers (never their values).
    pub fields: Vec<String>,
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryDto>,
    pub next_cursor: Option<i64>,
}

/// The audit trail: who read or changed which record, when and why. Hash-chained.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let limit = super::page_limit(q.limit)?;
    let rows = state
        .store
        .list_audit(
            &AuditFilter {
                record_id: q.record_id,
                actor: q.actor,
                after_seq: q.after,
            },
            limit,
        )
        .await?;
    let next_cursor = super::next_cursor(&rows, limit, |r| r.seq);
    Ok(Json(AuditPage {
        items: rows
            .into_iter()
            .map(|e| AuditEntryDto {
                seq: e.seq,
                at: to_rfc3339(e.draft.at),
                actor: e.draft.actor,
                role: e.draft.role,
                action: e.draft.action,
                record_type: e.draft.record_type,
                record_id: e.draft.record_id,
                fields: e.draft.fields,
                request_id: e.draft.request_id,
                purpose: e.draft.purpose,
                prev_hash: hex::encode(e.prev_hash),
                hash: hex::encode(e.hash),
            })
            .collect(),
        next_cursor,
    }))
}

/// Verify the whole audit chain and its signed checkpoints now.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyReport), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify_audit(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<VerifyReport>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    Ok(Json(
        crate::audit::verify(state.store.as_ref(), |_| {}).await?,
    ))
}
