//! `cip-store`: persistence of cip's records behind one trait, [`Store`], with a SQLite adapter
//! (the embedded default) and a PostgreSQL adapter (the scale-out path), their migrations, and
//! the conformance suite both must pass.
//!
//! Invariants:
//! - The store never sees plaintext personal data or key material: customer documents arrive
//!   already sealed, lookups arrive as keyed blind-index hashes. It only stores bytes.
//! - No driver type (`sqlx::Error`, `SqlitePool`, …) appears in the [`Store`] trait.
//! - Every change and its audit entry commit in one transaction: there is never a change
//!   without its audit entry, or an audit entry for a change that did not happen.
//! - The audit chain is appended by exactly one writer at a time (SQLite: the single writer
//!   thread; PostgreSQL: a transaction-scoped advisory lock), so sequence numbers have no gaps.

mod audit;
pub mod conformance;
mod due;
mod error;
mod history;
mod lists;
mod measures;
mod ops;
pub mod postgres;
mod screen_keys;
mod sql;
pub mod sqlite;
mod sqlite_due;
mod sqlite_history;
mod sqlite_ops;
mod sqlite_screen_keys;
mod sqlite_verification;
mod types;
mod verification;
mod writer;

pub use audit::{AuditDraft, AuditEntry, canonical_audit_body};
pub use due::{AccountSince, DueStore, ReminderRow, ReminderWrite};
pub use error::StoreError;
pub use history::{CustomerExtras, DeterminationRow, HistoryStore, NoticeRow};
pub use lists::{
    ListStore, ListVersionMeta, ListVersionRow, ListVersionWrite, ReviewDecision, ReviewFilter,
    ReviewRow, ReviewStore,
};
pub use measures::{
    MeasureActionFilter, MeasureActionRow, MeasureActionWrite, MeasureRow, MeasureStore,
    RefusalRow, TieChange,
};
pub use screen_keys::{KeyHolder, ScreenKeyStore, ScreenKeys};
pub use types::*;
pub use verification::*;

use async_trait::async_trait;
use uuid::Uuid;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything cip persists. Both adapters implement it; [`conformance`] proves they agree.
#[async_trait]
pub trait Store:
    ListStore
    + ReviewStore
    + MeasureStore
    + VerificationStore
    + HistoryStore
    + DueStore
    + ScreenKeyStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> Backend;

    /// A cheap round trip to the database.
    async fn ping(&self) -> Result<()>;

    // ---- installation metadata and wrapped key material ----
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `name` only if it is not set yet; returns the value now stored (ours or the
    /// earlier one), so two instances starting at once agree on one value.
    async fn init_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>>;
    async fn set_meta(&self, name: &str, value: &[u8], audit: AuditDraft) -> Result<()>;
    /// Takes (or renews) the lease on a background job's `name` until `until` when it is free,
    /// expired (`until <= now`) or already `holder`'s. `false`: another holder has it.
    async fn claim_job(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool>;
    /// Ends `holder`'s lease on `name` (nothing happens if another holder has it).
    async fn release_job(&self, name: &str, holder: &str) -> Result<()>;

    // ---- API keys ----
    async fn insert_api_key(&self, key: ApiKeyRow, audit: AuditDraft) -> Result<()>;
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>>;
    /// Returns false when there was no such unrevoked key.
    async fn revoke_api_key(&self, id: &str, at: i64, audit: AuditDraft) -> Result<bool>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>>;

    // ---- customers ----
    /// Inserts a customer, its blind-index terms, its audit entry and (when given) the
    /// idempotency record of the request, atomically. An idempotency key already used by the
    /// same principal gives [`StoreError::IdempotencyReplay`] with the stored record.
    async fn insert_customer(&self, write: CustomerWrite) -> Result<()>;
    /// Replaces a customer document if its version is still `expected_version`;
    /// `write.row.version` must be `expected_version + 1`.
    async fn update_customer(&self, write: CustomerWrite, expected_version: i64) -> Result<()>;
    async fn get_customer(&self, id: Uuid) -> Result<Option<CustomerRow>>;
    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Vec<CustomerRow>>;
    /// Customers with a blind-index term of that kind and hash (exact lookup).
    async fn find_customers_by_term(&self, kind: &str, hash: &[u8; 32]) -> Result<Vec<Uuid>>;
    /// Customers whose document was sealed under another data key than `active_key_id`.
    async fn customers_with_stale_key(
        &self,
        active_key_id: u32,
        limit: u32,
    ) -> Result<Vec<CustomerRow>>;
    /// Stores a re-encrypted document without changing its version or content.
    /// Returns false when the customer changed meanwhile (the caller tries again later).
    async fn reseal_customer(
        &self,
        id: Uuid,
        version: i64,
        document: Vec<u8>,
        key_id: u32,
        digest: Option<SealedDigest>,
    ) -> Result<bool>;
    async fn count_customers(&self) -> Result<u64>;
    /// Every customer in id order, a page at a time, as the bulk jobs read them: one part of
    /// the sealed digest, or the document when the record has none.
    async fn scan_customer_digests(
        &self,
        part: DigestPart,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CustomerDigestRow>>;

    // ---- accounts ----
    async fn insert_account(&self, write: AccountWrite) -> Result<()>;
    async fn update_account(&self, write: AccountWrite, expected_version: i64) -> Result<()>;
    async fn get_account(&self, id: Uuid) -> Result<Option<AccountRow>>;
    /// The account with this provider identifier, if any.
    async fn get_account_by_external_id(&self, external_id: &str) -> Result<Option<AccountRow>>;
    /// Moves each account's `last_accessed_at` forward to the given time (never back), one
    /// statement per account in one transaction. Derived bookkeeping of the access record:
    /// no version change (it would make every client `PATCH` race the ingestion) and no audit
    /// entry of its own (the events it derives from are the record).
    async fn touch_last_accessed(&self, times: Vec<(Uuid, i64)>) -> Result<()>;
    async fn list_accounts(
        &self,
        filter: &AccountFilter,
        page: &PageRequest,
    ) -> Result<Vec<AccountRow>>;

    // ---- idempotency ----
    async fn get_idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>>;

    // ---- audit trail ----
    /// Appends entries that record reads (changes append theirs with the change).
    async fn append_audit(&self, drafts: Vec<AuditDraft>) -> Result<()>;
    async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Entries with `seq >= from_seq` in order, for verification.
    async fn audit_range(&self, from_seq: i64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// The last entry's sequence number and hash ((0, genesis) when empty).
    async fn audit_head(&self) -> Result<(i64, [u8; 32])>;
    async fn insert_checkpoint(&self, checkpoint: CheckpointRow) -> Result<()>;
    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>>;

    // ---- account lifecycle and webhooks ----
    /// Accounts that have been in `status` since before `before` (Unix micros), oldest ids
    /// first: the due work of the lifecycle job.
    async fn accounts_in_status_since(
        &self,
        status: &str,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AccountRow>>;
    /// Every status change of an account, oldest first.
    async fn list_transitions(&self, account_id: Uuid) -> Result<Vec<TransitionRow>>;
    async fn insert_webhook_endpoint(
        &self,
        endpoint: WebhookEndpointRow,
        audit: AuditDraft,
    ) -> Result<()>;
    /// False when the endpoint does not exist or is already disabled (nothing written).
    async fn disable_webhook_endpoint(&self, id: Uuid, at: i64, audit: AuditDraft) -> Result<bool>;
    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpointRow>>;
    /// Claims up to `limit` deliveries due at `now` for one attempt each, leased until
    /// `lease_until`: while the lease runs no other caller (thread, process or instance on
    /// the same database) claims them.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>>;
    async fn finish_delivery(
        &self,
        event_id: Uuid,
        endpoint_id: Uuid,
        outcome: DeliveryOutcome,
    ) -> Result<()>;
    /// An endpoint's deliveries, newest first.
    async fn list_deliveries(&self, endpoint_id: Uuid, limit: u32) -> Result<Vec<DeliveryRow>>;
}
