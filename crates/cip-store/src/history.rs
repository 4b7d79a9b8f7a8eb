//! What a customer was told and how the U.S./foreign determination of a customer changed
//! over time: the notices shown (which policy version's notice, when) and the history of
//! determinations. See docs/design/0015-notices-history-consistency.md.
//!
//! Neither holds personal data beyond codes: a notice row is a version label and times, a
//! determination row holds statuses, country codes, evidence kinds and owner ids.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AuditDraft, Result};

/// A notice (the text of one policy version) shown to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// The policy version whose notice was shown.
    pub policy_version: String,
    /// When the customer saw it (as the provider reports it).
    pub shown_at: i64,
    /// When cip recorded it.
    pub recorded_at: i64,
    /// The API key id that recorded it.
    pub actor: String,
}

/// One state of a customer's determination. `seq` and `previous_status` are given by the
/// store when the row is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeterminationRow {
    pub customer_id: Uuid,
    /// 1, 2, … per customer.
    pub seq: i64,
    pub at: i64,
    /// `customer_created`, `customer_updated`, `access_country`, `recompute`.
    pub cause: String,
    /// The customer record's version the determination was computed from.
    pub record_version: i64,
    /// For `access_country`: the account whose access showed a new country.
    pub account_id: Option<Uuid>,
    pub previous_status: Option<String>,
    /// The customer's status: `us_person`, `foreign_person`, `undetermined`.
    pub status: String,
    /// JSON (codes only): each person's status and the (kind, country) of its evidence.
    pub summary: Vec<u8>,
    /// SHA-256 of `summary`: a row is appended only when it differs from the latest one.
    pub digest: [u8; 32],
}

/// Rows written with a customer in the same transaction as the customer itself.
#[derive(Debug, Clone, Default)]
pub struct CustomerExtras {
    pub notices: Vec<NoticeRow>,
    /// Appended (after the customer) when it differs from the latest determination.
    pub determination: Option<DeterminationRow>,
}

/// Notices and determination history. [`crate::Store`] requires it.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Records notices shown to one customer, with their audit entry.
    /// [`crate::StoreError::NotFound`] when the customer does not exist (nothing written).
    async fn insert_notices(&self, rows: Vec<NoticeRow>, audit: AuditDraft) -> Result<()>;
    /// A customer's notices, in the order they were shown.
    async fn list_notices(&self, customer_id: Uuid) -> Result<Vec<NoticeRow>>;
    /// Appends `row` (its `seq` and `previous_status` are set here) unless its digest equals
    /// the customer's latest row's; the audit entry goes with it. Returns the new `seq`, or
    /// `None` when nothing changed (nothing written).
    async fn record_determination(
        &self,
        row: DeterminationRow,
        audit: Option<AuditDraft>,
    ) -> Result<Option<i64>>;
    /// A customer's determinations with `seq > after`, oldest first.
    async fn list_determinations(
        &self,
        customer_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeterminationRow>>;
    /// Accounts last accessed after the cursor `(at, id)`, in that order: the accounts whose
    /// countries the determination pass looks at again.
    async fn accounts_accessed_after(
        &self,
        at: i64,
        id: Uuid,
        limit: u32,
    ) -> Result<Vec<crate::AccountRow>>;
}

/// The SQL both engines run.
pub(crate) mod sql {
    pub const CUSTOMER_EXISTS: &str = "SELECT 1 FROM customers WHERE id = $1";
    pub const INSERT_NOTICE: &str = "INSERT INTO notices_shown \
        (id, customer_id, policy_version, shown_at, recorded_at, actor) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    pub const LIST_NOTICES: &str = "SELECT id, customer_id, policy_version, shown_at, \
        recorded_at, actor FROM notices_shown WHERE customer_id = $1 ORDER BY shown_at, id";
    pub const LATEST_DETERMINATION: &str = "SELECT seq, status, digest \
        FROM determination_history WHERE customer_id = $1 ORDER BY seq DESC LIMIT 1";
    pub const INSERT_DETERMINATION: &str = "INSERT INTO determination_history \
        (customer_id, seq, at, cause, record_version, account_id, previous_status, status, \
        summary, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    pub const LIST_DETERMINATIONS: &str = "SELECT customer_id, seq, at, cause, record_version, \
        account_id, previous_status, status, summary, digest FROM determination_history \
        WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    pub const ACCOUNTS_ACCESSED_AFTER: &str = "SELECT id, customer_id, external_id, product, \
        account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
        updated_at FROM accounts \
        WHERE last_accessed_at > $1 OR (last_accessed_at = $1 AND id > $2) \
        ORDER BY last_accessed_at, id LIMIT $3";
}
