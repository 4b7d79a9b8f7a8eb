//! The API's one error type. Every error leaves as JSON
//! `{code, message, details: [{field, code, message}], request_id}` with a stable code.
//! A 5xx says "internal error"; its cause is logged once, server-side, without personal data.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use cip_store::StoreError;

/// One problem with one field of the request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldProblem {
    /// JSON pointer (RFC 6901) to the offending field, e.g. `/identity/emails/0`.
    pub field: String,
    /// Stable machine-readable code, e.g. `invalid_phone`, `checksum_mismatch`, `unknown_field`.
    pub code: String,
    pub message: String,
}

/// The error body of every non-2xx response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `CIP-VALIDATION-0001`.
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldProblem>,
    pub request_id: Option<String>,
}

#[derive(Debug)]
pub enum ApiError {
    /// The body is not JSON at all.
    MalformedJson(String),
    /// The body is JSON but not a valid request: every problem is listed.
    Validation(Vec<FieldProblem>),
    BadQuery(String),
    Unauthenticated,
    Forbidden(&'static str),
    NotFound(&'static str),
    VersionConflict {
        current: i64,
    },
    PreconditionRequired,
    Duplicate(&'static str),
    IdempotencyMismatch,
    PayloadTooLarge,
    /// The disk is full: nothing more can be stored until space is freed.
    InsufficientStorage(String),
    Unavailable(String),
    Internal(String),
    /// A refusal with its own stable code (screening and list errors: `CIP-SCREEN-…`,
    /// `CIP-LIST-…`), status and message.
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: Vec<FieldProblem>,
    },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::IdempotencyMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::VersionConflict { .. } | ApiError::Duplicate(_) => StatusCode::CONFLICT,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Coded { status, .. } => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "CIP-REQUEST-0001",
            ApiError::BadQuery(_) => "CIP-REQUEST-0002",
            ApiError::PayloadTooLarge => "CIP-REQUEST-0003",
            ApiError::Validation(_) => "CIP-VALIDATION-0001",
            ApiError::Unauthenticated => "CIP-AUTH-0001",
            ApiError::Forbidden(_) => "CIP-AUTH-0002",
            ApiError::NotFound(_) => "CIP-NOT-FOUND-0001",
            ApiError::VersionConflict { .. } => "CIP-CONFLICT-0001",
            ApiError::Duplicate(_) => "CIP-CONFLICT-0002",
            ApiError::PreconditionRequired => "CIP-CONFLICT-0003",
            ApiError::IdempotencyMismatch => "CIP-IDEMPOTENCY-0001",
            ApiError::InsufficientStorage(_) => "CIP-STORAGE-0001",
            ApiError::Unavailable(_) => "CIP-UNAVAILABLE-0001",
            ApiError::Internal(_) => "CIP-INTERNAL-0001",
            ApiError::Coded { code, .. } => code,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::MalformedJson(m) => format!("The request body is not valid JSON: {m}"),
            ApiError::Validation(p) => format!(
                "The request has {} invalid field(s); see details. Nothing was stored.",
                p.len()
            ),
            ApiError::BadQuery(m) => m.clone(),
            ApiError::Unauthenticated => "A valid API key is required: send `Authorization: Bearer <token>` (create one with `cip keys create`).".into(),
            ApiError::Forbidden(need) => format!("This API key's role may not do this; it needs {need}."),
            ApiError::NotFound(what) => format!("No such {what}."),
            ApiError::VersionConflict { current } => format!(
                "The record was changed since you read it (current version {current}); read it again and retry with If-Match: \"{current}\"."
            ),
            ApiError::PreconditionRequired => "Updates need an If-Match header with the version you read (the ETag of the GET).".into(),
            ApiError::Duplicate(what) => format!("A record with this {what} already exists."),
            ApiError::IdempotencyMismatch => "This Idempotency-Key was already used for a different request; use a new key for a new request.".into(),
            ApiError::PayloadTooLarge => "The request body is larger than the configured limit (max_body_bytes).".into(),
            ApiError::InsufficientStorage(_) => "The server's disk is full: this request was not acknowledged and nothing more is stored until space is freed. Events of it may be partly stored; resending is safe (an event is stored once).".into(),
            ApiError::Unavailable(_) => "The service is temporarily unavailable; retry later.".into(),
            ApiError::Internal(_) => "Internal error; it has been logged with this request id.".into(),
            ApiError::Coded { message, .. } => message.clone(),
        }
    }

    pub fn into_body(self, request_id: Option<String>) -> (StatusCode, ErrorBody) {
        let status = self.status();
        if let ApiError::Internal(cause)
        | ApiError::Unavailable(cause)
        | ApiError::InsufficientStorage(cause) = &self
        {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), cause = %cause, "request failed");
        }
        let body = ErrorBody {
            code: self.code(),
            message: self.message(),
            details: match self {
                ApiError::Validation(p) | ApiError::Coded { details: p, .. } => p,
                _ => Vec::new(),
            },
            request_id,
        };
        (status, body)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("record"),
            StoreError::VersionConflict { current } => ApiError::VersionConflict { current },
            StoreError::Duplicate { what } => ApiError::Duplicate(what),
            StoreError::IdempotencyReplay(_) => ApiError::IdempotencyMismatch,
            StoreError::DiskFull => ApiError::InsufficientStorage("disk full".into()),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<cip_access::AccessError> for ApiError {
    fn from(e: cip_access::AccessError) -> Self {
        match e {
            cip_access::AccessError::DiskFull(m) => ApiError::InsufficientStorage(m),
            cip_access::AccessError::BadCursor => {
                ApiError::BadQuery("cursor: not a cursor this server gave out".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::access::IngestError> for ApiError {
    fn from(e: crate::access::IngestError) -> Self {
        match e {
            crate::access::IngestError::Access(a) => a.into(),
            crate::access::IngestError::Store(s) => s.into(),
        }
    }
}

tokio::task_local! {
    /// The request id of the request being served, so errors can carry it.
    pub static REQUEST_ID: String;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rid = REQUEST_ID.try_with(|r| r.clone()).ok();
        let (status, body) = self.into_body(rid);
        (status, Json(body)).into_response()
    }
}
