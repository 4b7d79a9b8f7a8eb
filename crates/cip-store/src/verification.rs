//! Verification records: evidence (every result of a verification method), one-time code
//! challenges, requests to external vendors, and unverified cases. See
//! docs/design/0011-verification.md.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AuditDraft, PageRequest, Result};

/// One verification result. `details` is sealed JSON (it holds personal data: document
/// fields, the reasons of a mismatch, a vendor's report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub beneficial_owner_id: Option<Uuid>,
    /// `document`, `formation_document`, `otp_email`, `otp_phone`, `payment_confirmation`,
    /// `vendor`.
    pub method: String,
    /// `pass`, `fail` or `pending`.
    pub result: String,
    pub at: i64,
    /// API key id, `vendor:<name>` or `system:…`.
    pub actor: String,
    /// Identity of the result at its source (e.g. `vendor:<name>:<event id>`): a second
    /// result with the same key is not stored again.
    pub source_key: Option<String>,
    pub details: Vec<u8>,
}

/// A file kept with a piece of evidence (a document image), sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFile {
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    pub content_type: String,
    pub size: i64,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct EvidenceWrite {
    pub row: EvidenceRow,
    pub file: Option<EvidenceFile>,
    /// The vendor request this result completes (marked `completed` in the same transaction).
    pub completes_request: Option<Uuid>,
    pub audit: AuditDraft,
}

/// A one-time code sent to one of a customer's email addresses or phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub beneficial_owner_id: Option<Uuid>,
    /// `email` or `phone`.
    pub channel: String,
    /// Blind index of the destination (which address the code went to).
    pub destination_hash: [u8; 32],
    /// Keyed hash of the code (never the code).
    pub code_hash: [u8; 32],
    pub created_at: i64,
    pub expires_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// `pending`, `verified`, `locked` or `superseded`.
    pub status: String,
    pub version: i64,
}

/// How often codes may be sent to one customer (or owner) on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpThrottle {
    /// At least this long (micros) between two codes.
    pub min_interval_micros: i64,
    /// At most this many codes in any hour.
    pub max_per_hour: u32,
}

/// Which throttle refused a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpLimit {
    Interval,
    PerHour,
}

/// What [`VerificationStore::insert_otp_throttled`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpOutcome {
    Stored,
    /// Nothing was written; a code may be sent again from `retry_at` (Unix micros).
    Throttled {
        limit: OtpLimit,
        retry_at: i64,
    },
}

/// The throttle's answer at `now` given the creation times of the codes sent in the last
/// hour, newest first: `None` when another code may be sent.
pub fn otp_throttled(recent: &[i64], now: i64, t: &OtpThrottle) -> Option<(OtpLimit, i64)> {
    if let Some(last) = recent.first() {
        let next = last + t.min_interval_micros;
        if next > now {
            return Some((OtpLimit::Interval, next));
        }
    }
    let max = t.max_per_hour as usize;
    if max == 0 {
        return Some((OtpLimit::PerHour, now + 3_600_000_000));
    }
    if recent.len() >= max {
        return Some((OtpLimit::PerHour, recent[max - 1] + 3_600_000_000));
    }
    None
}

/// A change of a challenge (an attempt), made only if its version is still
/// `expected_version`, with the evidence it produced (if any) in the same transaction.
#[derive(Debug, Clone)]
pub struct OtpUpdate {
    pub row: OtpRow,
    pub expected_version: i64,
    pub evidence: Option<EvidenceRow>,
    pub audit: AuditDraft,
}

/// A request to an external verification vendor; the vendor answers through a callback
/// signed with the request's secret (sealed here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRequestRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub beneficial_owner_id: Option<Uuid>,
    pub vendor: String,
    /// `open` or `completed`.
    pub status: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub actor: String,
}

/// An account that was not verified (it reached `failed`): an analyst must resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    /// The account version of the transition to `failed` that opened the case.
    pub transition_version: i64,
    /// The reason of that transition.
    pub reason: String,
    pub opened_at: i64,
    /// `open` or `resolved`.
    pub status: String,
    /// `verified_later`, `closed`, `exempted` or `other`.
    pub resolution: Option<String>,
    /// Sealed: the analyst's reason may name the person.
    pub resolution_reason: Option<Vec<u8>>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CaseResolution {
    pub id: Uuid,
    pub resolution: String,
    pub reason: Vec<u8>,
    pub resolved_by: String,
    pub resolved_at: i64,
    pub audit: AuditDraft,
}

#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub status: Option<String>,
    /// Cases opened in `[from, to)` (Unix micros).
    pub opened_from: Option<i64>,
    pub opened_to: Option<i64>,
}

/// A transition to `failed` that has no case yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedTransition {
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub version: i64,
    pub reason: String,
    pub at: i64,
}

/// Verification records. [`crate::Store`] requires it.
#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// Stores a result with its audit entry (and file, and the completion of its vendor
    /// request). Returns false, writing nothing, when a result with the same `source_key` is
    /// already stored (a replayed callback).
    async fn insert_evidence(&self, write: EvidenceWrite) -> Result<bool>;
    /// A customer's evidence, oldest first (without files).
    async fn list_evidence(&self, customer_id: Uuid) -> Result<Vec<EvidenceRow>>;
    /// The evidence of every customer whose id is between `first` and `last` (inclusive), in
    /// customer order: one read for a page of a bulk pass instead of one per customer.
    async fn list_evidence_between(&self, first: Uuid, last: Uuid) -> Result<Vec<EvidenceRow>>;
    /// The file kept with a piece of evidence.
    async fn get_evidence_file(&self, evidence_id: Uuid) -> Result<Option<EvidenceFile>>;

    /// Stores a new challenge; earlier pending challenges of the same customer, owner and
    /// channel become `superseded` in the same transaction.
    async fn insert_otp(&self, row: OtpRow, audit: AuditDraft) -> Result<()>;
    async fn get_otp(&self, id: Uuid) -> Result<Option<OtpRow>>;
    /// [`crate::StoreError::VersionConflict`] when the challenge changed meanwhile.
    async fn update_otp(&self, update: OtpUpdate) -> Result<()>;
    /// Challenges of a customer (and owner) on a channel created at or after `since`,
    /// newest first: for resend throttling.
    async fn recent_otps(
        &self,
        customer_id: Uuid,
        beneficial_owner_id: Option<Uuid>,
        channel: &str,
        since: i64,
    ) -> Result<Vec<OtpRow>>;

    /// Stores a new challenge (as [`VerificationStore::insert_otp`]) only if the throttle
    /// allows another code at `row.created_at`: the check reads the recent codes inside the
    /// writing transaction (SQLite: the single writer; PostgreSQL: under the writers'
    /// advisory lock), so two concurrent requests cannot both pass it.
    async fn insert_otp_throttled(
        &self,
        row: OtpRow,
        throttle: OtpThrottle,
        audit: AuditDraft,
    ) -> Result<OtpOutcome>;

    async fn insert_verification_request(
        &self,
        row: VerificationRequestRow,
        audit: AuditDraft,
    ) -> Result<()>;
    async fn get_verification_request(&self, id: Uuid) -> Result<Option<VerificationRequestRow>>;

    /// Transitions to `failed` without a case, oldest first.
    async fn unverified_without_case(&self, limit: u32) -> Result<Vec<UnverifiedTransition>>;
    /// Opens cases (each with its audit entry); a case already open for the same transition
    /// is skipped. Returns how many were opened.
    async fn open_cases(&self, cases: Vec<(CaseRow, AuditDraft)>) -> Result<u64>;
    async fn get_case(&self, id: Uuid) -> Result<Option<CaseRow>>;
    async fn list_cases(&self, filter: &CaseFilter, page: &PageRequest) -> Result<Vec<CaseRow>>;
    /// [`crate::StoreError::NotFound`], or `Duplicate` when the case is already resolved.
    async fn resolve_case(&self, resolution: CaseResolution) -> Result<()>;
}
