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
