//! Screening lists: versioned snapshots of public list data (OFAC, UN, OpenSanctions, the
//! provider's own lists). The store keeps each version's entries as opaque JSON bytes and one
//! active version per list; a new version and the switch to it commit together.

use async_trait::async_trait;

use crate::{AuditDraft, Result};

/// What is known about one stored version of one list, without its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersionMeta {
    pub list_id: String,
    /// 1, 2, 3 … per list, in import order.
    pub version: i64,
    /// The snapshot's content hash (change detection, not tamper evidence).
    pub content_hash: String,
    pub entry_count: i64,
    pub imported_at: i64,
    /// `ofac_legacy`, `un_xml`, `ftm_jsonl`, `own_csv`, `own_json`.
    pub source_format: String,
    /// Diff counts against the version it replaced (all `added` for a first version).
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
}

/// A version with its entries (JSON bytes, as the screening engine serialised them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersionRow {
    pub meta: ListVersionMeta,
    pub entries: Vec<u8>,
}

/// A new version to store and activate.
#[derive(Debug, Clone)]
pub struct ListVersionWrite {
    /// `row.meta.version` must be `expected_active + 1` (1 for a new list).
    pub row: ListVersionRow,
    /// The active version the new one was diffed against; `None` for a list not loaded yet.
    /// If another import activated a version meanwhile, the write is refused with
    /// [`crate::StoreError::VersionConflict`] and nothing is stored.
    pub expected_active: Option<i64>,
    pub audit: AuditDraft,
}

/// The list part of the store. [`crate::Store`] requires it, so every adapter has it and
/// `dyn Store` reaches it.
#[async_trait]
pub trait ListStore: Send + Sync {
    /// Stores a version and makes it the list's active version in one transaction, with its
    /// audit entry.
    async fn insert_list_version(&self, write: ListVersionWrite) -> Result<()>;
    /// Every list's active version (without entries), ordered by list id.
    async fn list_lists(&self) -> Result<Vec<ListVersionMeta>>;
    /// Every stored version of one list (without entries), oldest first.
    async fn list_versions(&self, list_id: &str) -> Result<Vec<ListVersionMeta>>;
    async fn get_list_version(&self, list_id: &str, version: i64)
    -> Result<Option<ListVersionRow>>;
    /// Every list's active version with its entries (to build the screening index).
    async fn active_list_versions(&self) -> Result<Vec<ListVersionRow>>;
}

/// A potential match of a customer (or one of its beneficial owners) with a list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    pub id: uuid::Uuid,
    pub customer_id: uuid::Uuid,
    /// `customer` or `owner/<n>`.
    pub subject: String,
    pub list_id: String,
    pub entry_id: String,
    pub list_version: i64,
    /// Content hash of the entry when the match was found.
    pub entry_hash: String,
    /// Keyed hash of the subject's screened data when the match was found.
    pub subject_hash: [u8; 32],
    /// Score × 10,000.
    pub score_bp: i64,
    /// `open`, `confirmed`, `dismissed` or `entry_removed`.
    pub status: String,
    /// Sealed JSON (the explanation mentions the person's name tokens).
    pub details: Vec<u8>,
    pub key_id: u32,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    /// Sealed reason of the decision.
    pub reason: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    pub status: Option<String>,
    pub customer_id: Option<uuid::Uuid>,
}

/// A decision on an open review item.
#[derive(Debug, Clone)]
pub struct ReviewDecision {
    pub id: uuid::Uuid,
    /// `confirmed` or `dismissed`.
    pub status: String,
    pub reason: Vec<u8>,
    pub decided_by: String,
    pub decided_at: i64,
    pub audit: AuditDraft,
    /// The policy action of a confirmed hit (each with its event and audit entry): recorded
    /// in the decision's transaction, so a decision never stands without its actions.
    pub actions: Vec<crate::MeasureActionWrite>,
}

/// Review items of screening hits. [`crate::Store`] requires it.
#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Opens a review item with its audit entry, unless one is already open for the same
    /// subject and entry, or the same subject data was dismissed for the same entry content.
    /// Returns whether an item was opened.
    async fn open_review(&self, review: ReviewRow, audit: AuditDraft) -> Result<bool>;
    async fn get_review(&self, id: uuid::Uuid) -> Result<Option<ReviewRow>>;
    async fn list_reviews(
        &self,
        filter: &ReviewFilter,
        page: &crate::PageRequest,
    ) -> Result<Vec<ReviewRow>>;
    /// Decides an open item (a dismissal is remembered for the subject data and entry
    /// content) and records `decision.actions` (as `record_measure_actions` does), all in one
    /// transaction. `NotFound` if there is no such item, `Duplicate` if it is not open.
    async fn decide_review(&self, decision: ReviewDecision) -> Result<()>;
    /// Closes the open items of entries removed from a list (`entry_removed`); returns how many.
    async fn close_reviews_for_entries(
        &self,
        list_id: &str,
        entry_ids: Vec<String>,
        at: i64,
        audit: AuditDraft,
    ) -> Result<u64>;
}
