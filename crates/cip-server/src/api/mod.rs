//! HTTP handlers of `/v1`. Each handler: authenticate (the `Principal` extractor), check the
//! permission, parse input into domain types, call the store, write the audit entry, answer.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod consistency;
pub mod customers;
pub mod determination;
pub mod documents;
pub mod lifecycle;
pub mod notices;
pub mod policy;
pub mod reviews;
pub mod screening;
pub mod special_measures;
pub mod system;
pub mod verification;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cip_store::{IdempotencyRecord, Store};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const PURPOSE: &str = "x-purpose";
pub const REQUEST_ID: &str = "x-request-id";

pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The audit entry of something `principal` does in this request: who, role, request id
/// and time filled in, the rest from the caller. Every handler builds its entries here.
pub fn audit_draft(
    principal: &crate::auth::Principal,
    headers: &HeaderMap,
    action: &str,
    record_type: &str,
    record_id: Option<String>,
    fields: Vec<String>,
    purpose: Option<String>,
) -> cip_store::AuditDraft {
    cip_store::AuditDraft {
        at: crate::time::now_micros(),
        actor: principal.key_id.clone(),
        role: principal.role.as_str().into(),
        action: action.into(),
        record_type: record_type.into(),
        record_id,
        fields,
        request_id: request_id(headers),
        purpose,
    }
}

/// The purpose a reader states for reading personal data (recorded in the audit trail).
pub fn purpose(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(PURPOSE) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::BadQuery("X-Purpose must be printable ASCII".into()))?
                .trim();
            if s.is_empty() || s.len() > 200 {
                return Err(ApiError::BadQuery(
                    "X-Purpose must be 1 to 200 characters".into(),
                ));
            }
            Ok(Some(s.to_string()))
        }
    }
}

/// `If-Match: "3"` (or `3`, or `W/"3"`) → 3. Updates require it.
pub fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
    let raw = headers
        .get(axum::http::header::IF_MATCH)
        .ok_or(ApiError::PreconditionRequired)?
        .to_str()
        .map_err(|_| ApiError::BadQuery("If-Match must be a version like \"3\"".into()))?;
    raw.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map_err(|_| ApiError::BadQuery("If-Match must be a version like \"3\"".into()))
}

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// An `Idempotency-Key` request: the key, and the hash of what was asked.
pub struct Idempotency {
    pub key: String,
    pub request_hash: [u8; 32],
}

pub fn idempotency(
    headers: &HeaderMap,
    method_path: &str,
    body: &[u8],
) -> Result<Option<Idempotency>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::BadQuery("Idempotency-Key must be 1 to 255 printable characters".into())
        })?;
    let mut h = Sha256::new();
    h.update(method_path.as_bytes());
    h.update([0]);
    h.update(body);
    Ok(Some(Idempotency {
        key: key.to_string(),
        request_hash: h.finalize().into(),
    }))
}

/// The response to send again for a repeated request, or 422 if the key was used for a
/// different request.
pub fn replay(stored: &IdempotencyRecord, asked: &Idempotency) -> Response {
    if stored.request_hash != asked.request_hash {
        return ApiError::IdempotencyMismatch.into_response();
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, stored.response.clone()).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

pub async fn check_replay(
    store: &dyn Store,
    principal: &str,
    asked: &Option<Idempotency>,
) -> Result<Option<Response>, ApiError> {
    if let Some(asked) = asked
        && let Some(stored) = store.get_idempotency(principal, &asked.key).await?
    {
        return Ok(Some(replay(&stored, asked)));
    }
    Ok(None)
}

/// Page size: 50 by default, 1 to 500.
/// The cursor of the next page: the last row's, when the page is full (a shorter page is the
/// last one).
pub fn next_cursor<T, C>(rows: &[T], limit: u32, cursor: impl FnOnce(&T) -> C) -> Option<C> {
    if rows.len() == limit as usize {
        rows.last().map(cursor)
    } else {
        None
    }
}

pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadQuery("limit must be between 1 and 500".into())),
    }
}
