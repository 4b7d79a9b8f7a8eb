//! `GET`/`PUT /v1/policy`: the verification policy in force, and applying a new version of
//! the provider's policy file (docs/design/0013-policy.md).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cip_core::model::Permission;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::policy::{self, Applied, ApplyError};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TierDto {
    pub name: String,
    /// none, restricted or full: what an account may do while verification is pending
    pub interim_use: &'static str,
    pub verification_deadline_days: u32,
    pub reverify_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDto {
    pub version: String,
    /// True while no policy has been applied (the built-in one is in force).
    pub builtin: bool,
    /// The text shown to customers with this version.
    pub notice: String,
    pub tiers: Vec<TierDto>,
    pub max_failed_attempts: u32,
    pub verify_us_persons: bool,
    /// Days after which a failed account is closed.
    pub close_failed_after_days: u32,
    /// Days before re-verification falls due that `account.reverification_reminder` is sent
    /// (0: none).
    pub reverification_reminder_days: u32,
    /// Days before the verification deadline that `account.verification_reminder` is sent
    /// (0: none).
    pub verification_reminder_days: u32,
    pub exemptions: Vec<String>,
    /// The policy file (TOML).
    pub text: String,
}

fn dto(p: &cip_core::policy::Policy, text: String, builtin: bool) -> PolicyDto {
    PolicyDto {
        version: p.version.clone(),
        builtin,
        notice: p.notice.clone(),
        tiers: p
            .tiers
            .iter()
            .map(|t| TierDto {
                name: t.name.clone(),
                interim_use: t.interim_use.as_str(),
                verification_deadline_days: t.verification_deadline_days,
                reverify_days: t.reverify_days,
            })
            .collect(),
        max_failed_attempts: p.max_failed_attempts,
        verify_us_persons: p.verify_us_persons,
        close_failed_after_days: p.close_failed_after_days,
        reverification_reminder_days: p.reverification_reminder_days,
        verification_reminder_days: p.verification_reminder_days,
        exemptions: p
            .exemptions
            .iter()
            .map(|e| format!("{} ({})", e.name, e.legal_reference))
            .collect(),
        text,
    }
}

/// The verification policy in force (the built-in one until a policy is applied).
#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    responses((status = 200, body = PolicyDto), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PolicyDto>, ApiError> {
    principal.require(Permission::ListRecords)?;
    let (p, text, builtin) = policy::active(state.store.as_ref())
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(dto(&p, text, builtin)))
}

/// Applies a new version of the policy file (the TOML text as the body). A file that does not
/// parse or contradicts itself is refused with every problem and its line (422), and the
/// policy in force stays in force. A version label is immutable: applying the same label with
/// another text is 409; applying the version in force again changes nothing (200). Check
/// what a file would change first with `cip policy check FILE`.
#[utoipa::path(put, path = "/v1/policy", tag = "policy",
    request_body(content = String, content_type = "application/toml"),
    responses((status = 200, body = PolicyDto), (status = 201, body = PolicyDto),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: String,
) -> Result<(StatusCode, Json<PolicyDto>), ApiError> {
    principal.require(Permission::ManagePolicy)?;
    let audit = |action: &str, fields: Vec<String>| {
        super::audit_draft(&principal, &headers, action, "policy", None, fields, None)
    };
    match policy::apply(state.store.as_ref(), &body, audit).await {
        Ok((p, applied)) => {
            let status = match applied {
                Applied::Applied => StatusCode::CREATED,
                Applied::Unchanged => StatusCode::OK,
            };
            Ok((status, Json(dto(&p, body, false))))
        }
        Err(ApplyError::Invalid(problems)) => Err(ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldProblem {
                    field: String::new(),
                    code: "invalid_policy".into(),
                    message: p.to_string(),
                })
                .collect(),
        )),
        Err(ApplyError::VersionReused(v)) => Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "CIP-POLICY-0001",
            message: format!(
                "policy version '{v}' was applied before with another text; versions are immutable, give this file a new version"
            ),
            details: vec![],
        }),
        Err(ApplyError::Store(e)) => Err(ApiError::Internal(e)),
    }
}
