//! Verification over HTTP: evidence (documents, one-time codes, payment confirmations,
//! external vendors), the account outcome it leads to, and unverified cases. See
//! docs/design/0011-verification.md.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cip_core::model::Permission;
use cip_core::verification::{Method, Outcome};
use cip_store::{
    AuditDraft, CaseFilter, CaseResolution, CaseRow, EvidenceFile, EvidenceWrite, OtpRow,
    OtpUpdate, PageRequest, VerificationRequestRow,
};
use cip_vault::BlindIndexKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{audit_draft, purpose, request_id};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::records::dto::{CustomerDoc, IdentityDto};
use crate::records::seal;
use crate::state::AppState;
use crate::time::{now_micros, to_rfc3339};
use crate::verification::{self as v, Settlement};

fn problem(field: &str, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldProblem {
        field: field.into(),
        code: code.into(),
        message: message.into(),
    }])
}

fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Coded {
        status,
        code,
        message: message.into(),
        details: vec![],
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The customer's whole record, read with its audit entry.
async fn read_doc(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: Uuid,
    action: &str,
) -> Result<CustomerDoc, ApiError> {
    let (_, value) = super::customers::read_audited(
        state,
        principal,
        headers,
        id,
        &seal::Projection::all(),
        action,
        purpose(headers)?,
    )
    .await?;
    serde_json::from_value(value).map_err(internal)
}

/// The identity of the customer, or of one of its beneficial owners.
fn identity_of(
    doc: &CustomerDoc,
    owner: Option<Uuid>,
    field: &str,
) -> Result<IdentityDto, ApiError> {
    match owner {
        None => Ok(doc.identity.clone()),
        Some(bo) => doc
            .beneficial_owners
            .iter()
            .find(|b| b.id == bo)
            .map(|b| b.identity.clone())
            .ok_or_else(|| {
                problem(
                    field,
                    "not_found",
                    "no such beneficial owner of this customer",
                )
            }),
    }
}

// ---------------------------------------------------------------- evidence

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceDto {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub beneficial_owner_id: Option<Uuid>,
    /// document, formation_document, otp_email, otp_phone, payment_confirmation,
    /// vendor_documentary, vendor_non_documentary
    pub method: String,
    /// pass, fail or pending
    pub result: String,
    pub at: String,
    /// API key id, `vendor:<name>` or `system:…`
    pub actor: String,
    /// What the check found (personal data: sealed at rest).
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Every verification result of a customer and its beneficial owners, oldest first, with
/// details (personal data: the read is audited before the answer).
#[utoipa::path(get, path = "/v1/customers/{id}/evidence", tag = "verification",
    params(("id" = Uuid, Path), ("X-Purpose" = Option<String>, Header, description = "Why (recorded in the audit trail)")),
    responses((status = 200, body = [EvidenceDto]), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_evidence(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<EvidenceDto>>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    state
        .store
        .get_customer(id)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let rows = state.store.list_evidence(id).await?;
    let keyring = state.keyring();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let plain = keyring
            .open(v::evidence_aad(r.id).as_bytes(), &r.details)
            .map_err(|e| internal(format!("opening evidence {}: {e}", r.id)))?;
        out.push(EvidenceDto {
            id: r.id,
            customer_id: r.customer_id,
            beneficial_owner_id: r.beneficial_owner_id,
            method: r.method,
            result: r.result,
            at: to_rfc3339(r.at),
            actor: r.actor,
            details: serde_json::from_slice(&plain).map_err(internal)?,
        });
    }
    state
        .store
        .append_audit(vec![audit_draft(
            &principal,
            &headers,
            "evidence.read",
            "customer",
            Some(id.to_string()),
            vec!["/evidence".into()],
            purpose,
        )])
        .await?;
    Ok(Json(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedEvidence {
    pub evidence_id: Uuid,
    pub method: String,
    pub result: String,
    /// Why the check failed (when it did).
    pub reasons: Vec<String>,
    /// The customer's verification state after this result, and accounts it moved.
    pub verification: Settlement,
}

/// Stores evidence, then settles the customer's pending accounts.
pub(crate) async fn record(
    state: &AppState,
    headers: &HeaderMap,
    write: EvidenceWrite,
    reasons: Vec<String>,
) -> Result<(StatusCode, Json<RecordedEvidence>), ApiError> {
    let (id, customer, method, result) = (
        write.row.id,
        write.row.customer_id,
        write.row.method.clone(),
        write.row.result.clone(),
    );
    state.store.insert_evidence(write).await?;
    let verification = v::settle(state, customer, request_id(headers))
        .await
        .map_err(internal)?;
    Ok((
        StatusCode::CREATED,
        Json(RecordedEvidence {
            evidence_id: id,
            method,
            result,
            reasons,
            verification,
        }),
    ))
}

fn evidence_audit(
    principal: &Principal,
    headers: &HeaderMap,
    customer: Uuid,
    method: Method,
) -> AuditDraft {
    audit_draft(
        principal,
        headers,
        "evidence.create",
        "customer",
        Some(customer.to_string()),
        vec![format!("/evidence/{}", method.as_str())],
        None,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceIn {
    /// Only `payment_confirmation` here: documents, codes and vendors have their own routes.
    pub method: String,
    /// pass or fail
    pub result: String,
    #[serde(default)]
    pub beneficial_owner_id: Option<Uuid>,
    /// What the billing system confirmed (instrument type, reference…), at most 4 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// Records a result reported by the provider's own systems: a payment instrument confirmed
/// (or refused) by the billing system (admin, analyst, integration).
#[utoipa::path(post, path = "/v1/customers/{id}/evidence", tag = "verification",
    request_body = EvidenceIn, params(("id" = Uuid, Path)),
    responses((status = 201, body = RecordedEvidence), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_evidence(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<EvidenceIn>,
) -> Result<(StatusCode, Json<RecordedEvidence>), ApiError> {
    principal.require(Permission::RecordVerification)?;
    let b = body.value;
    let mut problems = Vec::new();
    if b.method != Method::PaymentConfirmation.as_str() {
        problems.push(FieldProblem {
            field: "/method".into(),
            code: "invalid_enum".into(),
            message: "only payment_confirmation is recorded here; documents go to /documents, codes to /otp, vendors to /verification-requests".into(),
        });
    }
    let outcome = match Outcome::parse(&b.result) {
        Some(o @ (Outcome::Pass | Outcome::Fail)) => Some(o),
        _ => {
            problems.push(FieldProblem {
                field: "/result".into(),
                code: "invalid_enum".into(),
                message: "pass or fail".into(),
            });
            None
        }
    };
    let details = b.details.unwrap_or(json!({}));
    if !details.is_object() || details.to_string().len() > 4096 {
        problems.push(FieldProblem {
            field: "/details".into(),
            code: "invalid".into(),
            message: "an object of at most 4 KiB".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let outcome = outcome.ok_or_else(|| internal("result checked above"))?;
    if b.beneficial_owner_id.is_some() {
        let doc = read_doc(
            &state,
            &principal,
            &headers,
            id,
            "customer.evidence_subject",
        )
        .await?;
        identity_of(&doc, b.beneficial_owner_id, "/beneficial_owner_id")?;
    } else {
        state
            .store
            .get_customer(id)
            .await?
            .ok_or(ApiError::NotFound("customer"))?;
    }
    let row = v::evidence_row(
        &state.keyring(),
        id,
        b.beneficial_owner_id,
        Method::PaymentConfirmation,
        outcome,
        &principal.key_id,
        None,
        &json!({"reported_by": "billing system", "report": details}),
    )
    .map_err(internal)?;
    let write = EvidenceWrite {
        row,
        file: None,
        completes_request: None,
        audit: evidence_audit(&principal, &headers, id, Method::PaymentConfirmation),
    };
    record(&state, &headers, write, vec![]).await
}

// ---------------------------------------------------------------- documents

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageIn {
    /// image/jpeg, image/png, image/webp or application/pdf
    pub content_type: String,
    /// The file, base64 (standard alphabet).
    pub data_base64: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormationIn {
    /// e.g. certificate_of_incorporation, articles_of_organization, commercial_register_extract
    pub document_type: String,
    /// The registry that issued it (e.g. "Companies House", "Delaware Division of Corporations").
    pub registry: String,
    /// The registration number.
    pub number: String,
    /// ISO 3166-1 alpha-2 country, or ISO 3166-2 subdivision (e.g. US-DE).
    pub jurisdiction: String,
    /// The entity type the document states (compared with the record's, when both exist).
    #[serde(default)]
    pub entity_type: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// An identity document's machine-readable zone (lines separated by newlines).
    #[serde(default)]
    pub mrz: Option<String>,
    /// An entity's formation document (instead of `mrz`).
    #[serde(default)]
    pub formation: Option<FormationIn>,
    /// The document is a beneficial owner's.
    #[serde(default)]
    pub beneficial_owner_id: Option<Uuid>,
    /// A scan or photo of the document, stored encrypted with its SHA-256.
    #[serde(default)]
    pub image: Option<ImageIn>,
}

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "application/pdf"];
/// Largest document image (decoded); the request body limit applies first.
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

fn parse_image(img: &ImageIn, problems: &mut Vec<FieldProblem>) -> Option<(String, Vec<u8>)> {
    if !IMAGE_TYPES.contains(&img.content_type.as_str()) {
        problems.push(FieldProblem {
            field: "/image/content_type".into(),
            code: "invalid_enum".into(),
            message: format!("one of {}", IMAGE_TYPES.join(", ")),
        });
    }
    match base64::engine::general_purpose::STANDARD.decode(img.data_base64.trim()) {
        Ok(b) if b.is_empty() => {
            problems.push(FieldProblem {
                field: "/image/data_base64".into(),
                code: "empty".into(),
                message: "the image is empty".into(),
            });
            None
        }
        Ok(b) if b.len() > MAX_IMAGE_BYTES => {
            problems.push(FieldProblem {
                field: "/image/data_base64".into(),
                code: "too_large".into(),
                message: format!("at most {MAX_IMAGE_BYTES} bytes"),
            });
            None
        }
        Ok(b) => Some((img.content_type.clone(), b)),
        Err(_) => {
            problems.push(FieldProblem {
                field: "/image/data_base64".into(),
                code: "invalid_base64".into(),
                message: "not valid base64".into(),
            });
            None
        }
    }
}

/// The MRZ check as evidence: every reason it fails, never an error.
fn check_mrz(raw: &str, ident: &IdentityDto) -> (Outcome, Vec<String>, Value) {
    let m = match cip_core::mrz::parse(raw) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!("machine-readable zone invalid ({}): {e}", e.code());
            return (
                Outcome::Fail,
                vec![reason.clone()],
                json!({"valid": false, "error": e.code(), "message": e.to_string()}),
            );
        }
    };
    let mut reasons = Vec::new();
    let expired = m.is_expired(crate::time::today_utc());
    if expired {
        reasons.push(format!("document expired on {}", m.expiry_date));
    }
    let cmp = super::documents::compare(&m, ident);
    if cmp.name != "match" {
        reasons.push(format!("name: {}", cmp.name));
    }
    if cmp.birth_date == "mismatch" {
        reasons.push("birth date differs from the record".into());
    }
    if cmp.nationality == "mismatch" {
        reasons.push("nationality is not among the record's citizenships".into());
    }
    let fields = super::documents::fields_of(&m);
    let details = json!({
        "valid": true,
        "expired": expired,
        "document": fields,
        "comparison": cmp,
        "reasons": reasons,
    });
    let outcome = if reasons.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    (outcome, reasons, details)
}

fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// A formation document compared with the entity's record.
fn check_formation(f: &FormationIn, doc: &CustomerDoc) -> (Outcome, Vec<String>, Value) {
    let mut reasons = Vec::new();
    let entity = doc.entity.clone().unwrap_or_default();
    let jurisdiction = f.jurisdiction.trim().to_ascii_uppercase();
    let (country, subdivision) = match jurisdiction.split_once('-') {
        Some((c, _)) => (c.to_string(), Some(jurisdiction.clone())),
        None => (jurisdiction.clone(), None),
    };
    match &entity.place_of_organization {
        None => reasons.push("the record has no place of organisation to compare".into()),
        Some(p) if *p != country => reasons.push(format!(
            "jurisdiction {country} differs from the recorded place of organisation {p}"
        )),
        _ => {}
    }
    if let (Some(s), Some(rec)) = (&subdivision, &entity.organization_subdivision)
        && s != rec
    {
        reasons.push(format!(
            "jurisdiction {s} differs from the recorded subdivision {rec}"
        ));
    }
    if let (Some(t), Some(rec)) = (&f.entity_type, &entity.entity_type)
        && norm(t) != norm(rec)
    {
        reasons.push(format!(
            "entity type {} differs from the recorded {}",
            t.trim(),
            rec
        ));
    }
    let details = json!({
        "formation": {
            "document_type": f.document_type.trim(),
            "registry": f.registry.trim(),
            "number": f.number.trim(),
            "jurisdiction": jurisdiction,
            "entity_type": f.entity_type,
        },
        "reasons": reasons,
    });
    let outcome = if reasons.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    (outcome, reasons, details)
}

fn formation_problems(f: &FormationIn, problems: &mut Vec<FieldProblem>) {
    for (field, value) in [
        ("/formation/document_type", &f.document_type),
        ("/formation/registry", &f.registry),
        ("/formation/number", &f.number),
    ] {
        let t = value.trim();
        if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
            problems.push(FieldProblem {
                field: field.into(),
                code: "invalid".into(),
                message: "1 to 200 printable characters".into(),
            });
        }
    }
    let j = f.jurisdiction.trim().to_ascii_uppercase();
    let country_ok = |c: &str| cip_core::parse::CountryCode::parse(c).is_ok();
    let ok = match j.split_once('-') {
        Some((c, s)) => {
            country_ok(c)
                && (1..=3).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => country_ok(&j),
    };
    if !ok {
        problems.push(FieldProblem {
            field: "/formation/jurisdiction".into(),
            code: "invalid_country".into(),
            message: "an ISO 3166-1 alpha-2 country or ISO 3166-2 subdivision (e.g. US-DE)".into(),
        });
    }
}

/// Records an identity document check (machine-readable zone parsed, every check digit,
/// expiry, and compared with the customer's or owner's record) or an entity's formation
/// document (compared with the entity's record) as evidence. A document that fails the
/// check is recorded as a failed result with its reasons (201), not refused. An optional
/// image is stored encrypted with its SHA-256.
#[utoipa::path(post, path = "/v1/customers/{id}/documents", tag = "verification",
    request_body = DocumentIn, params(("id" = Uuid, Path)),
    responses((status = 201, body = RecordedEvidence), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_document(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<DocumentIn>,
) -> Result<(StatusCode, Json<RecordedEvidence>), ApiError> {
    principal.require(Permission::RecordVerification)?;
    let b = body.value;
    let mut problems = Vec::new();
    match (&b.mrz, &b.formation) {
        (Some(_), Some(_)) | (None, None) => problems.push(FieldProblem {
            field: "/mrz".into(),
            code: "one_of".into(),
            message: "give either mrz (identity document) or formation (entity)".into(),
        }),
        (Some(m), None) if m.len() > 400 => problems.push(FieldProblem {
            field: "/mrz".into(),
            code: "too_long".into(),
            message: "a machine-readable zone has at most 3 lines of 44 characters".into(),
        }),
        (None, Some(f)) => {
            formation_problems(f, &mut problems);
            if b.beneficial_owner_id.is_some() {
                problems.push(FieldProblem {
                    field: "/beneficial_owner_id".into(),
                    code: "not_allowed".into(),
                    message: "formation documents are the entity's".into(),
                });
            }
        }
        _ => {}
    }
    let image = b.image.as_ref().and_then(|i| parse_image(i, &mut problems));
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let doc = read_doc(&state, &principal, &headers, id, "customer.document_check").await?;
    let (method, (outcome, reasons, mut details)) = match (&b.mrz, &b.formation) {
        (Some(m), _) => {
            let ident = identity_of(&doc, b.beneficial_owner_id, "/beneficial_owner_id")?;
            (Method::Document, check_mrz(m, &ident))
        }
        (None, Some(f)) => {
            if doc.kind != "entity" {
                return Err(problem(
                    "/formation",
                    "not_an_entity",
                    "formation documents are for entity customers",
                ));
            }
            (Method::FormationDocument, check_formation(f, &doc))
        }
        (None, None) => return Err(internal("checked above")),
    };
    let keyring = state.keyring();
    let mut row = v::evidence_row(
        &keyring,
        id,
        b.beneficial_owner_id,
        method,
        outcome,
        &principal.key_id,
        None,
        &Value::Null,
    )
    .map_err(internal)?;
    let file = match image {
        None => None,
        Some((content_type, bytes)) => {
            let sha: [u8; 32] = Sha256::digest(&bytes).into();
            details["image"] = json!({
                "sha256": hex::encode(sha),
                "size": bytes.len(),
                "content_type": content_type,
            });
            Some(EvidenceFile {
                sha256: sha,
                content_type,
                size: bytes.len() as i64,
                content: keyring
                    .seal(v::evidence_file_aad(row.id).as_bytes(), &bytes)
                    .map_err(internal)?,
            })
        }
    };
    row.details = keyring
        .seal(
            v::evidence_aad(row.id).as_bytes(),
            &serde_json::to_vec(&details).map_err(internal)?,
        )
        .map_err(internal)?;
    let write = EvidenceWrite {
        row,
        file,
        completes_request: None,
        audit: evidence_audit(&principal, &headers, id, method),
    };
    record(&state, &headers, write, reasons).await
}

// ---------------------------------------------------------------- one-time codes

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpIn {
    /// email or phone
    pub channel: String,
    /// Which of the record's emails (or phones): 0 for the first.
    #[serde(default)]
    pub index: usize,
    /// Send to a beneficial owner's email or phone instead.
    #[serde(default)]
    pub beneficial_owner_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtpChallengeDto {
    pub challenge_id: Uuid,
    pub channel: String,
    /// Where the code went, masked.
    pub sent_to: String,
    pub expires_at: String,
    pub max_attempts: i64,
}

fn mask(channel: &str, to: &str) -> String {
    if channel == "email" {
        match to.split_once('@') {
            Some((local, domain)) => {
                format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
            }
            None => "***".into(),
        }
    } else {
        let tail: String = to
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("***{tail}")
    }
}

/// The 429 of a throttled code request.
fn throttled(
    cfg: &crate::config::VerificationConfig,
    limit: cip_store::OtpLimit,
    retry_at: i64,
    now: i64,
) -> Response {
    let message = match limit {
        cip_store::OtpLimit::Interval => format!(
            "a code was sent less than {} s ago; wait before sending another",
            cfg.otp_resend_interval_secs
        ),
        cip_store::OtpLimit::PerHour => format!(
            "at most {} codes per hour on one channel",
            cfg.otp_max_per_hour
        ),
    };
    too_many((retry_at - now + 999_999) / 1_000_000, message)
}

fn too_many(retry_after_secs: i64, message: String) -> Response {
    let mut resp = coded(StatusCode::TOO_MANY_REQUESTS, "CIP-VERIFY-0001", message).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Sends a one-time code to one of the customer's (or a beneficial owner's) email addresses
/// or phones. The code is 6 digits from the OS CSPRNG, stored only as a keyed hash, valid
/// for `otp_ttl_secs`, locked after `otp_max_attempts` wrong tries. Sending again is
/// throttled (`otp_resend_interval_secs` between codes, `otp_max_per_hour`): 429 with
/// `Retry-After`. A new code supersedes the previous one.
#[utoipa::path(post, path = "/v1/customers/{id}/otp", tag = "verification",
    request_body = OtpIn, params(("id" = Uuid, Path)),
    responses((status = 201, body = OtpChallengeDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "Too many codes: see Retry-After", body = ErrorBody),
        (status = 502, description = "The sender could not deliver the code", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_otp(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<OtpIn>,
) -> Result<Response, ApiError> {
    principal.require(Permission::RecordVerification)?;
    let b = body.value;
    if b.channel != "email" && b.channel != "phone" {
        return Err(problem("/channel", "invalid_enum", "email or phone"));
    }
    let cfg = state.verification.config.clone();
    let now = now_micros();
    let throttle = cip_store::OtpThrottle {
        min_interval_micros: cfg.otp_resend_interval_secs as i64 * 1_000_000,
        max_per_hour: cfg.otp_max_per_hour,
    };
    // A first look, so a throttled request does not read the record; the store checks
    // again atomically with the insert, where two concurrent requests cannot both pass.
    let recent: Vec<i64> = state
        .store
        .recent_otps(id, b.beneficial_owner_id, &b.channel, now - 3_600_000_000)
        .await?
        .iter()
        .map(|o| o.created_at)
        .collect();
    if let Some((limit, retry_at)) = cip_store::otp_throttled(&recent, now, &throttle) {
        return Ok(throttled(&cfg, limit, retry_at, now));
    }
    let doc = read_doc(&state, &principal, &headers, id, "customer.otp_destination").await?;
    let ident = identity_of(&doc, b.beneficial_owner_id, "/beneficial_owner_id")?;
    let values = if b.channel == "email" {
        &ident.emails
    } else {
        &ident.phones
    };
    let to = values.get(b.index).cloned().ok_or_else(|| {
        problem(
            "/index",
            "not_found",
            format!("the record has {} {}(s)", values.len(), b.channel),
        )
    })?;
    let keyring = state.keyring();
    let challenge = Uuid::now_v7();
    let code = v::new_code().map_err(internal)?;
    let kind = if b.channel == "email" {
        BlindIndexKind::Email
    } else {
        BlindIndexKind::Phone
    };
    let row = OtpRow {
        id: challenge,
        customer_id: id,
        beneficial_owner_id: b.beneficial_owner_id,
        channel: b.channel.clone(),
        destination_hash: keyring.blind_index(kind, &to),
        code_hash: v::code_hash(&keyring, challenge, &code),
        created_at: now,
        expires_at: now + cfg.otp_ttl_secs as i64 * 1_000_000,
        attempts: 0,
        max_attempts: i64::from(cfg.otp_max_attempts),
        status: "pending".into(),
        version: 1,
    };
    let pointer = match b.beneficial_owner_id {
        None => format!("/identity/{}s/{}", b.channel, b.index),
        Some(bo) => format!(
            "/beneficial_owners/{bo}/identity/{}s/{}",
            b.channel, b.index
        ),
    };
    let outcome = state
        .store
        .insert_otp_throttled(
            row.clone(),
            throttle,
            audit_draft(
                &principal,
                &headers,
                "otp.create",
                "otp_challenge",
                Some(challenge.to_string()),
                vec![pointer],
                None,
            ),
        )
        .await?;
    if let cip_store::OtpOutcome::Throttled { limit, retry_at } = outcome {
        return Ok(throttled(&cfg, limit, retry_at, now));
    }
    let message = v::CodeMessage {
        challenge_id: challenge,
        channel: b.channel.clone(),
        to: to.clone(),
        code,
        expires_at: row.expires_at,
    };
    if let Err(e) = state.verification.sender.send(&message).await {
        tracing::warn!(challenge_id = %challenge, error = %e, "a one-time code could not be sent");
        return Err(coded(
            StatusCode::BAD_GATEWAY,
            "CIP-VERIFY-0007",
            "the code could not be sent; try again after the resend interval",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(OtpChallengeDto {
            challenge_id: challenge,
            channel: b.channel,
            sent_to: mask(&message.channel, &to),
            expires_at: to_rfc3339(row.expires_at),
            max_attempts: row.max_attempts,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerifyIn {
    /// The 6-digit code the customer received.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtpVerifyResult {
    /// pass or fail
    pub result: &'static str,
    /// pending, verified or locked
    pub status: String,
    pub attempts_left: i64,
    /// With a pass (or a lock): the customer's verification state after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Settlement>,
}

/// Checks a one-time code. Right: the challenge is verified and a passing result is
/// recorded. Wrong: the attempt is counted; at the limit the challenge is locked and a
/// failed result recorded. Expired (410), superseded (410), locked or already used (409)
/// challenges take no more attempts.
#[utoipa::path(post, path = "/v1/otp/{challenge_id}/verify", tag = "verification",
    request_body = OtpVerifyIn, params(("challenge_id" = Uuid, Path)),
    responses((status = 200, body = OtpVerifyResult), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify_otp(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(challenge): Path<Uuid>,
    body: JsonBody<OtpVerifyIn>,
) -> Result<Json<OtpVerifyResult>, ApiError> {
    principal.require(Permission::RecordVerification)?;
    let code = body.value.code.trim().to_string();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(problem("/code", "invalid_code", "a code is 6 digits"));
    }
    let current = state
        .store
        .get_otp(challenge)
        .await?
        .ok_or(ApiError::NotFound("one-time code challenge"))?;
    match current.status.as_str() {
        "pending" => {}
        "verified" => {
            return Err(coded(
                StatusCode::CONFLICT,
                "CIP-VERIFY-0004",
                "this code was already used",
            ));
        }
        "locked" => {
            return Err(coded(
                StatusCode::CONFLICT,
                "CIP-VERIFY-0002",
                "too many wrong codes: this challenge is locked; send a new code",
            ));
        }
        _ => {
            return Err(coded(
                StatusCode::GONE,
                "CIP-VERIFY-0005",
                "a newer code was sent; use that one",
            ));
        }
    }
    let now = now_micros();
    if now >= current.expires_at {
        return Err(coded(
            StatusCode::GONE,
            "CIP-VERIFY-0003",
            "the code expired; send a new one",
        ));
    }
    let keyring = state.keyring();
    let right = v::constant_time_eq(
        &v::code_hash(&keyring, challenge, &code),
        &current.code_hash,
    );
    let method = if current.channel == "email" {
        Method::OtpEmail
    } else {
        Method::OtpPhone
    };
    let mut row = current.clone();
    row.version += 1;
    let (result, evidence, action) = if right {
        row.status = "verified".into();
        let e = v::evidence_row(
            &keyring,
            current.customer_id,
            current.beneficial_owner_id,
            method,
            Outcome::Pass,
            &principal.key_id,
            None,
            &json!({"challenge_id": challenge, "channel": current.channel, "attempts": current.attempts + 1}),
        )
        .map_err(internal)?;
        ("pass", Some(e), "otp.verify")
    } else {
        row.attempts += 1;
        if row.attempts >= row.max_attempts {
            row.status = "locked".into();
            let e = v::evidence_row(
                &keyring,
                current.customer_id,
                current.beneficial_owner_id,
                method,
                Outcome::Fail,
                &principal.key_id,
                None,
                &json!({"challenge_id": challenge, "channel": current.channel,
                        "reason": format!("locked after {} wrong codes", row.attempts)}),
            )
            .map_err(internal)?;
            ("fail", Some(e), "otp.lock")
        } else {
            ("fail", None, "otp.attempt")
        }
    };
    let recorded = evidence.is_some();
    state
        .store
        .update_otp(OtpUpdate {
            row: row.clone(),
            expected_version: current.version,
            evidence,
            audit: audit_draft(
                &principal,
                &headers,
                action,
                "otp_challenge",
                Some(challenge.to_string()),
                vec![],
                None,
            ),
        })
        .await?;
    let verification = if recorded {
        Some(
            v::settle(&state, current.customer_id, request_id(&headers))
                .await
                .map_err(internal)?,
        )
    } else {
        None
    };
    Ok(Json(OtpVerifyResult {
        result,
        status: row.status.clone(),
        attempts_left: if row.status == "pending" {
            row.max_attempts - row.attempts
        } else {
            0
        },
        verification,
    }))
}

// ---------------------------------------------------------------- external vendors

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequestIn {
    /// The vendor's name in callback URLs: 1 to 40 of a-z, 0-9, - and _.
    pub vendor: String,
    pub customer_id: Uuid,
    #[serde(default)]
    pub beneficial_owner_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationRequestDto {
    pub id: Uuid,
    pub vendor: String,
    pub customer_id: Uuid,
    pub beneficial_owner_id: Option<Uuid>,
    pub status: String,
    pub created_at: String,
    /// The secret the vendor signs its callback with. Shown once.
    pub secret: String,
    /// Where the vendor posts its result.
    pub callback_path: String,
}

fn valid_vendor(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Creates a request to an external verification vendor, with a per-request signing secret
/// (shown once) for its callback to `POST /v1/vendor-callbacks/{vendor}`.
#[utoipa::path(post, path = "/v1/verification-requests", tag = "verification",
    request_body = VerificationRequestIn,
    responses((status = 201, body = VerificationRequestDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_verification_request(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<VerificationRequestIn>,
) -> Result<(StatusCode, Json<VerificationRequestDto>), ApiError> {
    principal.require(Permission::RecordVerification)?;
    let b = body.value;
    if !valid_vendor(&b.vendor) {
        return Err(problem(
            "/vendor",
            "invalid_vendor",
            "1 to 40 characters of a-z, 0-9, - and _",
        ));
    }
    if b.beneficial_owner_id.is_some() {
        let doc = read_doc(
            &state,
            &principal,
            &headers,
            b.customer_id,
            "customer.verification_request",
        )
        .await?;
        identity_of(&doc, b.beneficial_owner_id, "/beneficial_owner_id")?;
    } else {
        state
            .store
            .get_customer(b.customer_id)
            .await?
            .ok_or(ApiError::NotFound("customer"))?;
    }
    let id = Uuid::now_v7();
    let secret = cip_vault::new_webhook_secret()
        .map_err(internal)?
        .replacen("whsec_", "vsec_", 1);
    let sealed = state
        .keyring()
        .seal_str(v::request_secret_aad(id).as_bytes(), &secret)
        .map_err(internal)?;
    let now = now_micros();
    let row = VerificationRequestRow {
        id,
        customer_id: b.customer_id,
        beneficial_owner_id: b.beneficial_owner_id,
        vendor: b.vendor.clone(),
        status: "open".into(),
        secret: sealed,
        created_at: now,
        completed_at: None,
        actor: principal.key_id.clone(),
    };
    state
        .store
        .insert_verification_request(
            row,
            audit_draft(
                &principal,
                &headers,
                "verification_request.create",
                "verification_request",
                Some(id.to_string()),
                vec![],
                None,
            ),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(VerificationRequestDto {
            id,
            callback_path: format!("/v1/vendor-callbacks/{}", b.vendor),
            vendor: b.vendor,
            customer_id: b.customer_id,
            beneficial_owner_id: b.beneficial_owner_id,
            status: "open".into(),
            created_at: to_rfc3339(now),
            secret,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorResultIn {
    pub request_id: Uuid,
    /// The vendor's id of this result: a result posted again with the same id is stored once.
    pub event_id: String,
    /// pass, fail or pending
    pub result: String,
    /// documentary or non_documentary
    pub method: String,
    /// The vendor's report (at most 16 KiB).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VendorCallbackResult {
    /// recorded, or duplicate (this event id was already recorded; nothing changed)
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<Uuid>,
}

/// Largest vendor callback body.
const MAX_CALLBACK_BYTES: usize = 64 * 1024;
/// How far a callback's signed timestamp may be from now.
pub const CALLBACK_TOLERANCE_SECS: i64 = 300;

fn unauthenticated() -> ApiError {
    coded(
        StatusCode::UNAUTHORIZED,
        "CIP-VERIFY-0008",
        "the callback signature could not be verified",
    )
}

/// `t=<unix seconds>,v1=<hex>` → (t, signature).
fn parse_signature(headers: &HeaderMap) -> Option<(i64, String)> {
    let raw = headers.get("cip-signature")?.to_str().ok()?;
    let mut t = None;
    let mut sig = None;
    for part in raw.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => sig = Some(x.to_ascii_lowercase()),
            _ => {}
        }
    }
    Some((t?, sig?))
}

/// A vendor's result. Authenticated by its signature instead of an API key:
/// `Cip-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(request secret, "<t>.<body>")>`, the
/// timestamp within 5 minutes. A bad or missing signature is 401 and records nothing; a
/// result posted again with the same `event_id` is answered 200 and stored once.
#[utoipa::path(post, path = "/v1/vendor-callbacks/{vendor}", tag = "verification",
    request_body = VendorResultIn,
    params(("vendor" = String, Path), ("Cip-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    responses((status = 200, body = VendorCallbackResult), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn vendor_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(vendor): Path<String>,
    body: Body,
) -> Result<Json<VendorCallbackResult>, ApiError> {
    let raw = axum::body::to_bytes(body, MAX_CALLBACK_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    // Nothing is trusted before the signature is checked; to find the secret, only the
    // request id is read.
    let (t, sig) = parse_signature(&headers).ok_or_else(unauthenticated)?;
    let now = now_micros();
    if (now / 1_000_000 - t).abs() > CALLBACK_TOLERANCE_SECS {
        return Err(unauthenticated());
    }
    let request_id = serde_json::from_slice::<Value>(&raw)
        .ok()
        .and_then(|v| v.get("request_id")?.as_str()?.parse::<Uuid>().ok())
        .ok_or_else(unauthenticated)?;
    let request = state
        .store
        .get_verification_request(request_id)
        .await?
        .filter(|r| r.vendor == vendor)
        .ok_or_else(unauthenticated)?;
    let secret = state
        .keyring()
        .open_str(
            v::request_secret_aad(request.id).as_bytes(),
            &request.secret,
        )
        .map_err(internal)?;
    let expected = cip_vault::webhook_signature(&secret, t, &raw);
    if !v::constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
        return Err(unauthenticated());
    }
    let b: VendorResultIn = crate::extract::parse_json(&raw)?;
    let mut problems = Vec::new();
    let event = b.event_id.trim();
    if event.is_empty() || event.len() > 200 || event.chars().any(char::is_control) {
        problems.push(FieldProblem {
            field: "/event_id".into(),
            code: "invalid".into(),
            message: "1 to 200 printable characters".into(),
        });
    }
    let outcome = Outcome::parse(&b.result);
    if outcome.is_none() {
        problems.push(FieldProblem {
            field: "/result".into(),
            code: "invalid_enum".into(),
            message: "pass, fail or pending".into(),
        });
    }
    let method = match b.method.as_str() {
        "documentary" => Some(Method::VendorDocumentary),
        "non_documentary" => Some(Method::VendorNonDocumentary),
        _ => {
            problems.push(FieldProblem {
                field: "/method".into(),
                code: "invalid_enum".into(),
                message: "documentary or non_documentary".into(),
            });
            None
        }
    };
    let details = b.details.unwrap_or(json!({}));
    if details.to_string().len() > 16 * 1024 {
        problems.push(FieldProblem {
            field: "/details".into(),
            code: "too_large".into(),
            message: "at most 16 KiB".into(),
        });
    }
    let (Some(outcome), Some(method), true) = (outcome, method, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let actor = format!("vendor:{vendor}");
    let row = v::evidence_row(
        &state.keyring(),
        request.customer_id,
        request.beneficial_owner_id,
        method,
        outcome,
        &actor,
        Some(format!("vendor:{vendor}:{event}")),
        &json!({"request_id": request.id, "event_id": event, "report": details}),
    )
    .map_err(internal)?;
    let evidence_id = row.id;
    let write = EvidenceWrite {
        row,
        file: None,
        completes_request: (outcome != Outcome::Pending).then_some(request.id),
        audit: AuditDraft {
            at: now,
            actor,
            role: "vendor".into(),
            action: "evidence.create".into(),
            record_type: "customer".into(),
            record_id: Some(request.customer_id.to_string()),
            fields: vec![format!("/evidence/{}", method.as_str())],
            request_id: super::request_id(&headers),
            purpose: None,
        },
    };
    if !state.store.insert_evidence(write).await? {
        return Ok(Json(VendorCallbackResult {
            status: "duplicate",
            evidence_id: None,
        }));
    }
    v::settle(&state, request.customer_id, super::request_id(&headers))
        .await
        .map_err(internal)?;
    Ok(Json(VendorCallbackResult {
        status: "recorded",
        evidence_id: Some(evidence_id),
    }))
}

// ---------------------------------------------------------------- unverified cases

#[derive(Debug, Deserialize, IntoParams)]
pub struct CaseQuery {
    /// open or resolved
    pub status: Option<String>,
    /// Cases opened in this calendar year (UTC), for the annual certification.
    pub year: Option<i16>,
    pub after: Option<Uuid>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDto {
    pub id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    /// The reason the account failed verification.
    pub reason: String,
    pub opened_at: String,
    /// open or resolved
    pub status: String,
    /// verified_later, closed, exempted or other
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
    /// The analyst's reason (only from `GET /v1/cases/{id}`, an audited read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CasePage {
    pub items: Vec<CaseDto>,
    pub next_cursor: Option<Uuid>,
}

fn case_dto(c: CaseRow) -> CaseDto {
    CaseDto {
        id: c.id,
        account_id: c.account_id,
        customer_id: c.customer_id,
        reason: c.reason,
        opened_at: to_rfc3339(c.opened_at),
        status: c.status,
        resolution: c.resolution,
        resolved_by: c.resolved_by,
        resolved_at: c.resolved_at.map(to_rfc3339),
        resolution_reason: None,
    }
}

fn year_range(year: i16) -> Result<(i64, i64), ApiError> {
    let start = |y: i16| -> Result<i64, ApiError> {
        format!("{y:04}-01-01T00:00:00Z")
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_microsecond())
            .map_err(|_| ApiError::BadQuery("year out of range".into()))
    };
    if !(1970..=9998).contains(&year) {
        return Err(ApiError::BadQuery(
            "year must be between 1970 and 9998".into(),
        ));
    }
    Ok((start(year)?, start(year + 1)?))
}

/// Unverified cases (accounts that reached `failed`), without personal data, for analysts
/// and the annual certification (admin, analyst, auditor).
#[utoipa::path(get, path = "/v1/cases", tag = "verification", params(CaseQuery),
    responses((status = 200, body = CasePage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_cases(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<CaseQuery>, QueryRejection>,
) -> Result<Json<CasePage>, ApiError> {
    principal.require(Permission::ListRecords)?;
    let Query(q) = q.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    if let Some(s) = &q.status
        && s != "open"
        && s != "resolved"
    {
        return Err(ApiError::BadQuery("status must be open or resolved".into()));
    }
    let (from, to) = match q.year {
        None => (None, None),
        Some(y) => {
            let (a, b) = year_range(y)?;
            (Some(a), Some(b))
        }
    };
    let limit = super::page_limit(q.limit)?;
    let rows = state
        .store
        .list_cases(
            &CaseFilter {
                status: q.status,
                opened_from: from,
                opened_to: to,
            },
            &PageRequest {
                after: q.after,
                limit,
            },
        )
        .await?;
    let next_cursor = super::next_cursor(&rows, limit, |r| r.id);
    Ok(Json(CasePage {
        items: rows.into_iter().map(case_dto).collect(),
        next_cursor,
    }))
}

/// One case with the analyst's reason (which may name the person: the read is audited before
/// the answer; admin, analyst, auditor, integration).
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "verification",
    params(("id" = Uuid, Path), ("X-Purpose" = Option<String>, Header, description = "Why (recorded in the audit trail)")),
    responses((status = 200, body = CaseDto), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_case(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<CaseDto>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let row = state
        .store
        .get_case(id)
        .await?
        .ok_or(ApiError::NotFound("case"))?;
    let reason = match &row.resolution_reason {
        None => None,
        Some(sealed) => Some(
            state
                .keyring()
                .open_str(v::case_reason_aad(id).as_bytes(), sealed)
                .map_err(internal)?
                .to_string(),
        ),
    };
    state
        .store
        .append_audit(vec![audit_draft(
            &principal,
            &headers,
            "case.read",
            "case",
            Some(id.to_string()),
            vec!["/resolution_reason".into()],
            purpose,
        )])
        .await?;
    let mut dto = case_dto(row);
    dto.resolution_reason = reason;
    Ok(Json(dto))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveCaseIn {
    /// verified_later, closed, exempted or other
    pub resolution: String,
    /// Why (1 to 500 characters; sealed, it may name the person).
    pub reason: String,
}

const RESOLUTIONS: [&str; 4] = ["verified_later", "closed", "exempted", "other"];

/// Resolves an unverified case with a reason (admin, analyst). The account itself is moved
/// separately (`POST /v1/accounts/{id}/transitions`).
#[utoipa::path(post, path = "/v1/cases/{id}/resolve", tag = "verification",
    request_body = ResolveCaseIn, params(("id" = Uuid, Path)),
    responses((status = 200, body = CaseDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resolve_case(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: JsonBody<ResolveCaseIn>,
) -> Result<Json<CaseDto>, ApiError> {
    principal.require(Permission::ResolveCases)?;
    let b = body.value;
    let mut problems = Vec::new();
    if !RESOLUTIONS.contains(&b.resolution.as_str()) {
        problems.push(FieldProblem {
            field: "/resolution".into(),
            code: "invalid_enum".into(),
            message: format!("one of {}", RESOLUTIONS.join(", ")),
        });
    }
    let reason = match super::lifecycle::parse_reason("/reason", &b.reason) {
        Ok(r) => Some(r),
        Err(ApiError::Validation(p)) => {
            problems.extend(p);
            None
        }
        Err(e) => return Err(e),
    };
    let (Some(reason), true) = (reason, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let sealed = state
        .keyring()
        .seal_str(v::case_reason_aad(id).as_bytes(), &reason)
        .map_err(internal)?;
    let now = now_micros();
    state
        .store
        .resolve_case(CaseResolution {
            id,
            resolution: b.resolution,
            reason: sealed,
            resolved_by: principal.key_id.clone(),
            resolved_at: now,
            audit: audit_draft(
                &principal,
                &headers,
                "case.resolve",
                "case",
                Some(id.to_string()),
                vec!["/resolution".into(), "/reason".into()],
                None,
            ),
        })
        .await
        .map_err(|e| match e {
            cip_store::StoreError::NotFound => ApiError::NotFound("case"),
            cip_store::StoreError::Duplicate { .. } => coded(
                StatusCode::CONFLICT,
                "CIP-VERIFY-0009",
                "the case is already resolved",
            ),
            other => other.into(),
        })?;
    let row = state
        .store
        .get_case(id)
        .await?
        .ok_or(ApiError::NotFound("case"))?;
    Ok(Json(case_dto(row)))
}
