//! The account lifecycle over HTTP: status transitions with reason and actor, the decision
//! (may this account be opened / used / must it be restricted or closed, and why), and the
//! webhook endpoints that hear about every change.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cip_core::lifecycle::{self, allowed_next, transition_allowed};
use cip_core::model::{AccountStatus, Permission};
use cip_store::{AccountRow, AccountWrite, AuditDraft, TransitionRow, WebhookEndpointRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{etag, if_match, purpose};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::records::dto::{Account, CustomerDoc};
use crate::records::seal;
use crate::state::AppState;
use crate::time::{now_micros, to_rfc3339};
use crate::webhooks;

fn draft(
    principal: &Principal,
    headers: &HeaderMap,
    action: &str,
    kind: &str,
    id: String,
) -> AuditDraft {
    super::audit_draft(principal, headers, action, kind, Some(id), vec![], None)
}

fn problem(field: &str, code: &str, message: String) -> ApiError {
    ApiError::Validation(vec![FieldProblem {
        field: field.into(),
        code: code.into(),
        message,
    }])
}

/// A reason as the lifecycle keeps it: 1 to 500 characters, no control characters.
pub fn parse_reason(field: &str, reason: &str) -> Result<String, ApiError> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 || r.chars().any(char::is_control) {
        return Err(problem(
            field,
            "invalid_reason",
            "a reason of 1 to 500 printable characters is required".into(),
        ));
    }
    Ok(r.to_string())
}

fn parse_status(field: &str, s: &str) -> Result<AccountStatus, ApiError> {
    AccountStatus::parse(s).ok_or_else(|| {
        problem(
            field,
            "invalid_enum",
            format!(
                "unknown status; one of {}",
                AccountStatus::ALL.map(AccountStatus::as_str).join(", ")
            ),
        )
    })
}

/// Applies a status change to `row` (already at its next version) and returns the
/// transition and its webhook event. Illegal transitions are refused with the statuses that
/// may follow.
/// A move made by the system (a background job, new evidence, a policy change): the
/// transition, its webhook event and its audit entry committed with the account, made with
/// the version read. `Ok(false)`: the account changed meanwhile and that change stands.
pub async fn system_transition(
    store: &dyn cip_store::Store,
    current: &AccountRow,
    to: AccountStatus,
    reason: &str,
    actor: &str,
    request_id: Option<String>,
    now: i64,
) -> Result<bool, String> {
    let mut row = current.clone();
    row.version = current.version + 1;
    row.updated_at = now;
    let (transition, event) = apply_transition(
        &mut row,
        &current.status,
        to,
        reason.to_string(),
        actor,
        "/status",
    )
    .map_err(|e| format!("{e:?}"))?;
    let write = cip_store::AccountWrite {
        row,
        audit: cip_store::AuditDraft {
            at: now,
            actor: actor.into(),
            role: "system".into(),
            action: "account.transition".into(),
            record_type: "account".into(),
            record_id: Some(current.id.to_string()),
            fields: vec!["/status".into()],
            request_id,
            purpose: Some(reason.into()),
        },
        idempotency: None,
        transition: Some(transition),
        events: vec![event],
    };
    match store.update_account(write, current.version).await {
        Ok(()) => Ok(true),
        Err(cip_store::StoreError::VersionConflict { .. }) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

pub fn apply_transition(
    row: &mut AccountRow,
    from: &str,
    to: AccountStatus,
    reason: String,
    actor: &str,
    field: &str,
) -> Result<(TransitionRow, cip_store::EventDraft), ApiError> {
    let from_status = AccountStatus::parse(from)
        .ok_or_else(|| ApiError::Internal(format!("stored status {from:?} is unknown")))?;
    if !transition_allowed(from_status, to) {
        let next = allowed_next(from_status);
        return Err(problem(
            field,
            "illegal_transition",
            if next.is_empty() {
                format!("{from} is final: no status may follow it")
            } else {
                format!(
                    "{from} cannot become {}; it may become {}",
                    to.as_str(),
                    next.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
    }
    let at = row.updated_at;
    row.status = to.as_str().into();
    if to == AccountStatus::Closed && row.closed_at.is_none() {
        row.closed_at = Some(at);
    }
    if matches!(
        to,
        AccountStatus::Active | AccountStatus::PendingVerification
    ) && row.opened_at.is_none()
    {
        row.opened_at = Some(at);
    }
    let decision = lifecycle::decide(to);
    let event = webhooks::event(
        "account.status_changed",
        json!({
            "account_id": row.id,
            "customer_id": row.customer_id,
            "external_id": row.external_id,
            "from": from,
            "to": to.as_str(),
            "reason": reason,
            "version": row.version,
            "decision": {
                "usage": decision.usage.as_str(),
                "must_close": decision.must_close,
                "verification_needed": decision.verification_needed,
            },
        }),
    );
    let transition = TransitionRow {
        account_id: row.id,
        version: row.version,
        from_status: from.into(),
        to_status: to.as_str().into(),
        reason,
        actor: actor.into(),
        at,
    };
    Ok((transition, event))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The status to move to.
    pub to: String,
    /// Why (kept with the transition and sent in the webhook; no personal data).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionDto {
    pub version: i64,
    pub from: String,
    pub to: String,
    pub reason: String,
    /// API key id of who made the change.
    pub actor: String,
    pub at: String,
}

fn transition_dto(t: TransitionRow) -> TransitionDto {
    TransitionDto {
        version: t.version,
        from: t.from_status,
        to: t.to_status,
        reason: t.reason,
        actor: t.actor,
        at: to_rfc3339(t.at),
    }
}

/// Move an account to another status, with a reason. Illegal transitions (e.g. from
/// `closed`, or `failed` → `active` without a new verification) are refused with 422 and
/// the statuses that may follow. Send the version you read in `If-Match`.
#[utoipa::path(post, path = "/v1/accounts/{id}/transitions", tag = "accounts",
    request_body = TransitionRequest,
    params(("id" = Uuid, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = Account), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 428, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn transition_account(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<TransitionRequest>,
) -> Result<Response, ApiError> {
    principal.require(Permission::WriteRecords)?;
    let expected = if_match(&headers)?;
    let to = parse_status("/to", &body.value.to);
    let reason = parse_reason("/reason", &body.value.reason);
    let (to, reason) = match (to, reason) {
        (Ok(t), Ok(r)) => (t, r),
        (Err(ApiError::Validation(mut a)), Err(ApiError::Validation(b))) => {
            a.extend(b);
            return Err(ApiError::Validation(a));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
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
    let mut row = current.clone();
    row.version = expected + 1;
    row.updated_at = now_micros();
    let (transition, event) = apply_transition(
        &mut row,
        &current.status,
        to,
        reason,
        &principal.key_id,
        "/to",
    )?;
    let mut audit = draft(
        &principal,
        &headers,
        "account.transition",
        "account",
        id.to_string(),
    );
    audit.fields = vec!["/status".into()];
    state
        .store
        .update_account(
            AccountWrite {
                row: row.clone(),
                audit,
                idempotency: None,
                transition: Some(transition),
                events: vec![event],
            },
            expected,
        )
        .await?;
    Ok((
        [(header::ETAG, etag(row.version))],
        Json(super::accounts::to_dto(row, &state.last_access)),
    )
        .into_response())
}

/// Every status change of an account, oldest first, with reason and actor.
#[utoipa::path(get, path = "/v1/accounts/{id}/transitions", tag = "accounts",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = [TransitionDto]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_transitions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<TransitionDto>>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    state
        .store
        .get_account(id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    let rows = state.store.list_transitions(id).await?;
    Ok(Json(rows.into_iter().map(transition_dto).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDto {
    pub account_id: Uuid,
    pub status: String,
    pub version: i64,
    /// May the provider open this account now (possibly for restricted interim use)?
    pub may_open: bool,
    /// May the account be used at all?
    pub may_use: bool,
    /// full, restricted (interim use, enhanced monitoring) or none.
    pub usage: &'static str,
    pub must_restrict: bool,
    pub must_close: bool,
    /// Verification (or re-verification) evidence is still needed.
    pub verification_needed: bool,
    /// Whether the customer or a beneficial owner is not established as a U.S. person
    /// (from the customer's determination).
    pub customer_requires_verification: bool,
    /// The status an `applied` account should move to when opened.
    pub open_as: Option<&'static str>,
    /// Statuses that may follow the current one.
    pub next_statuses: Vec<&'static str>,
    pub reasons: Vec<String>,
    /// Special measures in force on this account (and policy actions of confirmed
    /// screening hits), each with its action, conditions, deadline and evidence. They only
    /// narrow the answer: `close` means no use and closure by the deadline, `restrict` and
    /// `apply_conditions` restricted use under the conditions.
    pub special_measures: Vec<crate::measures::AccountMeasureDto>,
    /// Only when a use is asked (`product`, `vcpus`): whether the account may be used that
    /// way under the product and capacity limits in force, each limit cited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_check: Option<crate::measures::UseCheckDto>,
}

/// May this account be opened, used, must it be restricted or closed — and why. Reads the
/// customer's record to determine who must be verified, so the read is audited. With
/// `product` and/or `vcpus`, also answers whether that use is allowed under the product and
/// capacity limits of the special measures in force (`use_check`).
#[utoipa::path(get, path = "/v1/accounts/{id}/decision", tag = "accounts",
    params(("id" = Uuid, Path), crate::measures::UseQuery, ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = DecisionDto), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, description = "An invalid product or vcpus", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn account_decision(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    use_query: Result<Query<crate::measures::UseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DecisionDto>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let Query(use_query) = use_query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let purpose = purpose(&headers)?;
    let account = state
        .store
        .get_account(id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    let status = AccountStatus::parse(&account.status).ok_or_else(|| {
        ApiError::Internal(format!("stored status {:?} is unknown", account.status))
    })?;
    // The asked use is parsed before the record is read: a bad query writes nothing.
    let asked = crate::measures::parse_use(&use_query, &account)?;
    let (_, value) = super::customers::read_audited(
        &state,
        &principal,
        &headers,
        account.customer_id,
        &seal::Projection::all(),
        "account.decision",
        purpose.clone(),
    )
    .await?;
    let doc: CustomerDoc = serde_json::from_value(value)
        .map_err(|e| ApiError::Internal(format!("stored document: {e}")))?;
    // The same evidence as GET /v1/customers/{id}/determination, the countries of access
    // included: a decision never disagrees with the determination shown beside it.
    let (mut customer, owners) = super::determination::evidence_of(&doc);
    customer.extend(
        super::determination::access_evidence(
            &state,
            &principal,
            &headers,
            account.customer_id,
            &purpose,
        )
        .await?,
    );
    let determination = cip_core::determination::determine_customer(customer, owners);
    let d = lifecycle::decide(status);
    let mut reasons = vec![d.reason.to_string()];
    let open_as = match status {
        AccountStatus::Applied if determination.requires_verification => {
            reasons.push(
                "the customer or a beneficial owner is not established as a U.S. person: open as pending_verification (restricted interim use) and verify".into(),
            );
            Some("pending_verification")
        }
        AccountStatus::Applied => {
            reasons.push("the customer and every beneficial owner are established U.S. persons: may open as active".into());
            Some("active")
        }
        _ => None,
    };
    reasons.extend(determination.reasons.iter().cloned());
    let measures: Vec<_> = crate::measures::account_measures(&state, id, now_micros())
        .await?
        .into_iter()
        .filter(|m| m.in_force)
        .collect();
    let mut usage = d.usage;
    let mut must_close = d.must_close;
    let mut measure_verification = false;
    let mut may_open = matches!(status, AccountStatus::Applied);
    for m in &measures {
        let cited = match (&m.measure_id, &m.legal_reference) {
            (Some(mid), Some(legal)) => format!("special measure {mid} ({legal})"),
            _ => format!(
                "a confirmed screening hit (review {})",
                m.review_id.map(|r| r.to_string()).unwrap_or_default()
            ),
        };
        let cited = match &m.no_longer_tied_since {
            Some(since) => format!(
                "{cited} (the customer's record no longer ties the account to its target since {since}; it applies until an analyst lifts it)"
            ),
            None => cited,
        };
        let by = m
            .deadline
            .as_deref()
            .map(|d| format!(" by {d}"))
            .unwrap_or_default();
        match m.action.as_str() {
            "close" => {
                usage = lifecycle::Usage::None;
                must_close = true;
                may_open = false;
                reasons.push(format!(
                    "{cited}: the account must not be used and must be closed{by}"
                ));
            }
            "restrict" => {
                if usage == lifecycle::Usage::Full {
                    usage = lifecycle::Usage::Restricted;
                }
                reasons.push(format!("{cited}: restrict the account pending review"));
            }
            _ => {
                if usage == lifecycle::Usage::Full {
                    usage = lifecycle::Usage::Restricted;
                }
                if m.conditions
                    .iter()
                    .any(|c| c.kind == "enhanced_verification")
                {
                    measure_verification = true;
                }
                reasons.push(format!(
                    "{cited}: use only under its conditions ({}){by}",
                    m.conditions
                        .iter()
                        .map(|c| c.kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let use_check = match asked {
        Some(asked) => Some(
            crate::measures::check_use(
                &state,
                id,
                asked,
                usage != lifecycle::Usage::None,
                now_micros(),
            )
            .await?,
        ),
        None => None,
    };
    Ok(Json(DecisionDto {
        account_id: id,
        status: account.status.clone(),
        version: account.version,
        may_open,
        may_use: usage != lifecycle::Usage::None,
        usage: usage.as_str(),
        // An account a measure restricts must be restricted even while it is not yet in use.
        must_restrict: usage == lifecycle::Usage::Restricted
            || measures.iter().any(|m| m.action != "close"),
        must_close,
        verification_needed: d.verification_needed
            || measure_verification
            || (status == AccountStatus::Applied && determination.requires_verification),
        customer_requires_verification: determination.requires_verification,
        open_as,
        next_statuses: allowed_next(status)
            .into_iter()
            .map(AccountStatus::as_str)
            .collect(),
        reasons,
        special_measures: measures,
        use_check,
    }))
}

// ---- webhook endpoints ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// http(s) URL that receives POSTs.
    pub url: String,
    /// Event types (`account.created`, `account.status_changed`, `account.special_measure`,
    /// `account.verification_reminder`, `account.reverification_reminder`) or `["*"]`.
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDto {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// Only in the creation answer: verify `Cip-Signature: t=<t>,v1=<hex>` as
    /// HMAC-SHA256(secret, "<t>.<body>").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_dto(r: WebhookEndpointRow, secret: Option<String>) -> WebhookDto {
    WebhookDto {
        id: r.id,
        url: r.url,
        events: r.events.split(',').map(str::to_string).collect(),
        created_at: to_rfc3339(r.created_at),
        disabled_at: r.disabled_at.map(to_rfc3339),
        secret,
    }
}

/// Register a webhook endpoint. The answer carries its signing secret, shown only once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookCreate,
    responses((status = 201, body = WebhookDto), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<WebhookCreate>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ManageKeys)?;
    let b = &body.value;
    let mut problems = Vec::new();
    let url_ok = reqwest::Url::parse(&b.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if url_ok.is_none() || b.url.len() > 2000 {
        problems.push(FieldProblem {
            field: "/url".into(),
            code: "invalid_url".into(),
            message: "an absolute http:// or https:// URL of at most 2000 characters".into(),
        });
    }
    let mut events: Vec<String> = Vec::new();
    if b.events.is_empty() {
        problems.push(FieldProblem {
            field: "/events".into(),
            code: "required".into(),
            message: "at least one event type, or \"*\"".into(),
        });
    }
    for (i, e) in b.events.iter().enumerate() {
        if e == "*" || webhooks::EVENT_TYPES.contains(&e.as_str()) {
            if !events.contains(e) {
                events.push(e.clone());
            }
        } else {
            problems.push(FieldProblem {
                field: format!("/events/{i}"),
                code: "invalid_enum".into(),
                message: format!(
                    "unknown event type; one of *, {}",
                    webhooks::EVENT_TYPES.join(", ")
                ),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    if events.iter().any(|e| e == "*") {
        events = vec!["*".into()];
    }
    let id = Uuid::now_v7();
    let secret = cip_vault::new_webhook_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
    let sealed = state
        .keyring()
        .seal_str(webhooks::secret_aad(id).as_bytes(), &secret)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = WebhookEndpointRow {
        id,
        url: b.url.clone(),
        events: events.join(","),
        secret: sealed,
        created_at: now_micros(),
        disabled_at: None,
    };
    state
        .store
        .insert_webhook_endpoint(
            row.clone(),
            draft(
                &principal,
                &headers,
                "webhook.create",
                "webhook",
                id.to_string(),
            ),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(webhook_dto(row, Some(secret)))).into_response())
}

/// Webhook endpoints (secrets are never shown again).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = [WebhookDto])),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<WebhookDto>>, ApiError> {
    if !(principal.require(Permission::ManageKeys).is_ok()
        || principal.require(Permission::ReadAudit).is_ok())
    {
        return Err(ApiError::Forbidden("admin or auditor"));
    }
    let rows = state.store.list_webhook_endpoints().await?;
    Ok(Json(
        rows.into_iter().map(|r| webhook_dto(r, None)).collect(),
    ))
}

/// Disable an endpoint: no new deliveries are made to it (its log stays).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::ManageKeys)?;
    let done = state
        .store
        .disable_webhook_endpoint(
            id,
            now_micros(),
            draft(
                &principal,
                &headers,
                "webhook.disable",
                "webhook",
                id.to_string(),
            ),
        )
        .await?;
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    pub event_id: Uuid,
    pub event_type: String,
    /// pending (will be retried), delivered, or failed (gave up).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
}

/// The delivery log of an endpoint: each event, its attempts and the last outcome.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), DeliveryQuery),
    responses((status = 200, body = [DeliveryDto]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryDto>>, ApiError> {
    if !(principal.require(Permission::ManageKeys).is_ok()
        || principal.require(Permission::ReadAudit).is_ok())
    {
        return Err(ApiError::Forbidden("admin or auditor"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadQuery("limit: 1 to 1000".into()));
    }
    let endpoints = state.store.list_webhook_endpoints().await?;
    if !endpoints.iter().any(|e| e.id == id) {
        return Err(ApiError::NotFound("webhook"));
    }
    let rows = state.store.list_deliveries(id, limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| DeliveryDto {
                event_id: r.event_id,
                event_type: r.event_type,
                next_attempt_at: (r.state == "pending").then(|| to_rfc3339(r.next_attempt_at)),
                state: r.state,
                attempts: r.attempts,
                last_status: r.last_status,
                last_error: r.last_error,
                delivered_at: r.delivered_at.map(to_rfc3339),
                created_at: to_rfc3339(r.created_at),
            })
            .collect(),
    ))
}
