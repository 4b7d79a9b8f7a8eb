//! Special measures (EO 13984 §2) and the actions they (or confirmed screening hits) require
//! of accounts. A measure is public legal data: its document is clear JSON, with the columns
//! the enforcement queries filter on beside it. An action row is the record that a measure
//! touched an account: what it requires, by when, and the evidence that tied the account to
//! the measure's target (countries and review ids, no personal data beyond what the record
//! keeps in clear).

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AccountWrite, AuditDraft, CustomerWrite, EventDraft, PageRequest, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureRow {
    pub id: Uuid,
    pub version: i64,
    /// `jurisdiction` or `designated_persons`.
    pub target_kind: String,
    pub country: Option<String>,
    pub list_id: Option<String>,
    /// Unix micros of 00:00 UTC on the effective date.
    pub effective_at: i64,
    /// Unix micros of 00:00 UTC on the expiry date (the first day it no longer applies).
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the job finished applying the measure to existing accounts.
    pub swept_at: Option<i64>,
    /// The measure as JSON (the server's wire shape, with its extensions).
    pub document: Vec<u8>,
}

/// One account a measure (or a confirmed hit) touched, and what it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureActionRow {
    pub id: Uuid,
    /// `None` for the default policy action of a confirmed hit no measure targets.
    pub measure_id: Option<Uuid>,
    /// The confirmed review item behind the action, if any.
    pub review_id: Option<Uuid>,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    /// `apply_conditions`, `restrict` or `close`.
    pub action: String,
    pub deadline: Option<i64>,
    /// JSON array of evidence items.
    pub evidence: Vec<u8>,
    /// `opening`, `measure_in_effect`, `confirmed_hit` or `record_changed`.
    pub cause: String,
    pub actor: String,
    pub at: i64,
    /// When a change of the customer's record stopped tying the account to the measure's
    /// target (the action stays until an analyst lifts it); `None` while tied.
    pub untied_at: Option<i64>,
}

/// A change of an action's tie after the customer's record changed: `untied_at` set (the
/// record no longer ties the account) or cleared (it ties it again), with its audit entry.
#[derive(Debug, Clone)]
pub struct TieChange {
    pub action_id: Uuid,
    pub untied_at: Option<i64>,
    pub audit: AuditDraft,
}

/// An application a measure refused: no account was stored, this row and the refusal's
/// audit entry were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRow {
    pub id: Uuid,
    pub measure_id: Uuid,
    pub customer_id: Uuid,
    pub account_type: String,
    pub product: String,
    /// `prohibited` or `product_limit`.
    pub reason: String,
    /// JSON array of evidence items.
    pub evidence: Vec<u8>,
    pub actor: String,
    pub at: i64,
}

/// An action to record with its webhook event and audit entry; recorded at most once per
/// (measure, account) — or (review, account) for a default action.
#[derive(Debug, Clone)]
pub struct MeasureActionWrite {
    pub row: MeasureActionRow,
    pub event: Option<EventDraft>,
    pub audit: AuditDraft,
}

#[derive(Debug, Clone, Default)]
pub struct MeasureActionFilter {
    pub measure_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
}

/// Special measures and their actions. [`crate::Store`] requires it.
#[async_trait]
pub trait MeasureStore: Send + Sync {
    async fn insert_measure(&self, row: MeasureRow, audit: AuditDraft) -> Result<()>;
    /// Replaces a measure (an extension or a revocation) if its version is still
    /// `expected_version`; `row.version` must be `expected_version + 1`.
    async fn update_measure(
        &self,
        row: MeasureRow,
        expected_version: i64,
        audit: AuditDraft,
    ) -> Result<()>;
    async fn get_measure(&self, id: Uuid) -> Result<Option<MeasureRow>>;
    async fn list_measures(&self, page: &PageRequest) -> Result<Vec<MeasureRow>>;
    /// Measures effective at `now`, not expired and not revoked, oldest first.
    async fn measures_in_force(&self, now: i64) -> Result<Vec<MeasureRow>>;
    /// Claims up to `limit` measures in force at `now` that were not yet applied to existing
    /// accounts, leased until `lease_until`: while the lease runs no other caller (thread,
    /// process or instance on the same database) claims them.
    async fn claim_measure_sweeps(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<MeasureRow>>;
    /// Marks a claimed measure as applied to existing accounts.
    async fn finish_measure_sweep(&self, id: Uuid, at: i64) -> Result<()>;
    /// Records each action not recorded yet, with its event and audit entry, in one
    /// transaction; an action already recorded for the same (measure, account) or
    /// (review, account) is skipped with its event and entry. Returns how many were new.
    async fn record_measure_actions(&self, actions: Vec<MeasureActionWrite>) -> Result<u64>;
    /// Opens an account and records the actions a measure attached to it, atomically.
    async fn insert_account_with_actions(
        &self,
        write: AccountWrite,
        actions: Vec<MeasureActionWrite>,
    ) -> Result<()>;
    /// Actions, oldest first (at most 10,000).
    async fn list_measure_actions(
        &self,
        filter: &MeasureActionFilter,
    ) -> Result<Vec<MeasureActionRow>>;
    /// Replaces a customer (as [`crate::Store::update_customer`]) and, in the same
    /// transaction, records the actions its new record ties to measures in force (as
    /// `record_measure_actions`) and applies the tie changes of actions already recorded.
    async fn update_customer_with_actions(
        &self,
        write: CustomerWrite,
        expected_version: i64,
        actions: Vec<MeasureActionWrite>,
        ties: Vec<TieChange>,
    ) -> Result<()>;
    /// Records refused applications (one row per refusing measure) with the refusal's audit
    /// entry, in one transaction.
    async fn record_refusals(&self, refusals: Vec<RefusalRow>, audit: AuditDraft) -> Result<()>;
    /// The applications a measure refused, oldest first (at most 10,000).
    async fn list_refusals(&self, measure_id: Uuid) -> Result<Vec<RefusalRow>>;
}
