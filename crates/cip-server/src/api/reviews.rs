//! Review items of screening hits (`/v1/reviews`): list (no personal data), read one (its
//! explanation is personal data: opened and audited), decide (confirm or dismiss, with a
//! reason; a dismissal is remembered for the subject's data and the entry's content).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use cip_core::model::Permission;
use cip_store::{PageRequest, ReviewDecision, ReviewFilter, ReviewRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::time::{now_micros, to_rfc3339};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// `open`, `confirmed`, `dismissed` or `entry_removed`.
    pub status: Option<String>,
    pub customer_id: Option<Uuid>,
    /// Cursor: items after this id.
    pub after: Option<Uuid>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDto {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// `customer` or `owner/<n>` (the n-th beneficial owner).
    pub subject: String,
    pub list: String,
    pub entry_id: String,
    pub list_version: i64,
    pub score: f64,
    pub status: String,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    /// Only when one item is read: entry name, score and the explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// Only when one item is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn dto(r: ReviewRow) -> ReviewDto {
    ReviewDto {
        id: r.id,
        customer_id: r.customer_id,
        subject: r.subject,
        list: r.list_id,
        entry_id: r.entry_id,
        list_version: r.list_version,
        score: r.score_bp as f64 / 10_000.0,
        status: r.status,
        created_at: to_rfc3339(r.created_at),
        decided_at: r.decided_at.map(to_rfc3339),
        decided_by: r.decided_by,
        details: None,
        reason: None,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewDto>,
    pub next_cursor: Option<Uuid>,
}

const STATUSES: [&str; 4] = ["open", "confirmed", "dismissed", "entry_removed"];

/// Review items of screening hits, without personal data (admin, analyst, auditor).
#[utoipa::path(get, path = "/v1/reviews", tag = "screening", params(ReviewQuery),
    responses((status = 200, body = ReviewPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_reviews(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ReviewQuery>, QueryRejection>,
) -> Result<Json<ReviewPage>, ApiError> {
    principal.require(Permission::ListRecords)?;
    let Query(q) = q.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::BadQuery(
            "status must be open, confirmed, dismissed or entry_removed".into(),
        ));
    }
    let limit = super::page_limit(q.limit)?;
    let rows = state
        .store
        .list_reviews(
            &ReviewFilter {
                status: q.status,
                customer_id: q.customer_id,
            },
            &PageRequest {
                after: q.after,
                limit,
            },
        )
        .await?;
    let next_cursor = super::next_cursor(&rows, limit, |r| r.id);
    Ok(Json(ReviewPage {
        items: rows.into_iter().map(dto).collect(),
        next_cursor,
    }))
}

/// One review item with its explanation and the decision's reason (personal data: the read
/// is audited before the answer; admin, analyst, auditor, integration).
#[utoipa::path(get, path = "/v1/reviews/{id}", tag = "screening",
    params(("id" = Uuid, Path), ("X-Purpose" = Option<String>, Header, description = "Why (recorded in the audit trail)")),
    responses((status = 200, body = ReviewDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_review(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<ReviewDto>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = super::purpose(&headers)?;
    let row = state
        .store
        .get_review(id)
        .await?
        .ok_or(ApiError::NotFound("review item"))?;
    let keyring = state.keyring();
    let aad = format!("review/{id}");
    let details = keyring
        .open(aad.as_bytes(), &row.details)
        .map_err(|e| ApiError::Internal(format!("opening review {id}: {e}")))?;
    let details: serde_json::Value = serde_json::from_slice(&details)
        .map_err(|e| ApiError::Internal(format!("review {id} details: {e}")))?;
    let reason = match &row.reason {
        None => None,
        Some(sealed) => Some(
            keyring
                .open_str(format!("review/{id}/reason").as_bytes(), sealed)
                .map_err(|e| ApiError::Internal(format!("opening review {id}: {e}")))?
                .to_string(),
        ),
    };
    state
        .store
        .append_audit(vec![super::audit_draft(
            &principal,
            &headers,
            "review.read",
            "customer",
            Some(row.customer_id.to_string()),
            vec![format!("review={id}"), "/details".into(), "/reason".into()],
            purpose,
        )])
        .await?;
    let mut out = dto(row);
    out.details = Some(details);
    out.reason = reason;
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// `confirm` (a true match: apply the policy action) or `dismiss` (a false positive).
    pub decision: String,
    /// Why, 1–2000 characters (kept sealed; shown when the item is read).
    pub reason: String,
}

/// Confirm or dismiss an open review item (admin, analyst). Audited. A dismissal is
/// remembered: the same hit does not reopen until the person's screened data or the list
/// entry changes.
#[utoipa::path(post, path = "/v1/reviews/{id}/decision", tag = "screening",
    params(("id" = Uuid, Path)), request_body = DecisionIn,
    responses((status = 200, body = ReviewDto), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The item is not open"),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide_review(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<DecisionIn>,
) -> Result<Json<ReviewDto>, ApiError> {
    principal.require(Permission::DecideReviews)?;
    let input = body.value;
    let mut problems = Vec::new();
    let status = match input.decision.as_str() {
        "confirm" => "confirmed",
        "dismiss" => "dismissed",
        _ => {
            problems.push(FieldProblem {
                field: "/decision".into(),
                code: "invalid_value".into(),
                message: "decision must be confirm or dismiss".into(),
            });
            ""
        }
    };
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        problems.push(FieldProblem {
            field: "/reason".into(),
            code: "invalid_value".into(),
            message: "give a reason of 1 to 2000 characters".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let sealed = state
        .keyring()
        .seal_str(format!("review/{id}/reason").as_bytes(), reason)
        .map_err(|e| ApiError::Internal(format!("sealing: {e}")))?;
    let now = now_micros();
    let item = state
        .store
        .get_review(id)
        .await?
        .ok_or(ApiError::NotFound("review item"))?;
    // The policy action of a confirmed hit — the measure targeting the entry, or restriction
    // pending review — commits with the decision, or neither does
    // (docs/design/0010-special-measures.md).
    let actions = if status == "confirmed" && item.status == "open" {
        crate::measures::confirmed_hit_actions(
            &state,
            &item,
            |account, action| {
                super::audit_draft(
                    &principal,
                    &headers,
                    "special_measure.apply",
                    "account",
                    Some(account.id.to_string()),
                    vec![format!("review={id}"), format!("action={action}")],
                    Some("confirmed screening hit".into()),
                )
            },
            now,
        )
        .await?
    } else {
        Vec::new()
    };
    state
        .store
        .decide_review(ReviewDecision {
            id,
            status: status.into(),
            reason: sealed,
            decided_by: principal.key_id.clone(),
            decided_at: now,
            audit: super::audit_draft(
                &principal,
                &headers,
                "review.decide",
                "review",
                Some(id.to_string()),
                vec![format!("decision={status}"), "/reason".into()],
                None,
            ),
            actions,
        })
        .await
        .map_err(|e| match e {
            cip_store::StoreError::NotFound => ApiError::NotFound("review item"),
            cip_store::StoreError::Duplicate { .. } => ApiError::Coded {
                status: axum::http::StatusCode::CONFLICT,
                code: "CIP-REVIEW-DECIDED",
                message: "This review item is not open: it was already decided or closed.".into(),
                details: Vec::new(),
            },
            other => other.into(),
        })?;
    let row = state
        .store
        .get_review(id)
        .await?
        .ok_or(ApiError::NotFound("review item"))?;
    Ok(Json(dto(row)))
}
