//! Rows as the store keeps them. Times are Unix microseconds (UTC); ids are UUIDv7 so that
//! ordering by id is ordering by creation, which makes cursor pagination cheap.

use uuid::Uuid;

use crate::AuditDraft;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub role: String,
    /// SHA-256 of the token's secret part (tokens are 256-bit random, so a fast hash is right).
    pub secret_hash: [u8; 32],
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A customer as stored: the sealed document plus the few clear columns lists and reports
/// filter on (none of them personal data on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    pub id: Uuid,
    pub kind: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Country of the first address (or place of organisation), for filters and reports.
    pub country: Option<String>,
    /// Sealed JSON document: personal-data leaves are ciphertexts.
    pub document: Vec<u8>,
    /// The data key the document's fields were sealed with.
    pub key_id: u32,
    /// The record digest (sealed; see docs/design/0014-record-digest.md): what bulk jobs need
    /// of the record, stored apart from the row. `None` for records written before it existed.
    pub digest: Option<SealedDigest>,
    /// The record's blinded screening keys (docs/design/0008, "Keyed re-screen"), written
    /// with the record in the same transaction (insert and update; the old version's keys are
    /// removed). `None` leaves the record unkeyed until the backfill derives them. Reads do
    /// not return them (`None`).
    pub screen_keys: Option<crate::ScreenKeys>,
}

/// A record's digest as stored: two parts, each sealed on its own, so a pass that needs one
/// reads (and opens) only that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDigest {
    /// What policy evaluation reads: kind, determination facts, payment risk.
    pub policy: Vec<u8>,
    /// What screening reads: the screened names, birth dates, countries and identifiers.
    pub screening: Vec<u8>,
}

/// Which part of the digest a bulk pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestPart {
    Policy,
    Screening,
}

impl DigestPart {
    /// The `part` column.
    pub fn code(self) -> i16 {
        match self {
            DigestPart::Policy => 1,
            DigestPart::Screening => 2,
        }
    }
}

/// A customer as the bulk jobs read it: one part of the digest, or the document where the record
/// has no digest.
#[derive(Debug, Clone)]
pub struct CustomerDigestRow {
    pub id: Uuid,
    pub version: i64,
    pub key_id: u32,
    pub digest: Option<Vec<u8>>,
    /// Only when `digest` is `None`.
    pub document: Option<Vec<u8>>,
}

/// One exact-lookup term: a keyed hash of a normalised value, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexTerm {
    pub kind: String,
    pub hash: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct CustomerWrite {
    pub row: CustomerRow,
    pub terms: Vec<IndexTerm>,
    pub audit: AuditDraft,
    pub idempotency: Option<IdempotencyRecord>,
    /// Notices shown and the determination, written in the same transaction.
    pub extras: crate::CustomerExtras,
}

#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub kind: Option<String>,
    pub country: Option<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Return rows with ids after this one.
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl PageRequest {
    /// The cursor as the SQL binds it: no cursor is the nil UUID, below every record id.
    pub(crate) fn cursor(&self) -> Uuid {
        cursor(self.after)
    }
}

/// An optional id cursor as the SQL binds it (`id > $1`): `None` is the nil UUID, below every
/// record id (ids are random or time-ordered UUIDs, never nil).
pub(crate) fn cursor(after: Option<Uuid>) -> Uuid {
    after.unwrap_or(Uuid::nil())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// The provider's identifier of the account (unique when present).
    pub external_id: Option<String>,
    pub product: String,
    pub account_type: String,
    pub status: String,
    pub opened_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub last_accessed_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct AccountWrite {
    pub row: AccountRow,
    pub audit: AuditDraft,
    pub idempotency: Option<IdempotencyRecord>,
    /// The status change this write makes, recorded in the same transaction.
    pub transition: Option<TransitionRow>,
    /// Webhook events announcing the change, written in the same transaction.
    pub events: Vec<EventDraft>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub customer_id: Option<Uuid>,
    pub status: Option<String>,
    pub account_type: Option<String>,
}

/// The stored outcome of a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The API key id that made the request: keys are scoped per principal.
    pub principal: String,
    pub key: String,
    /// SHA-256 of method, path and body: the same key with another request is refused.
    pub request_hash: [u8; 32],
    pub status: u16,
    /// The response body that was sent (no personal data: creation responses carry ids only).
    pub response: Vec<u8>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub record_id: Option<String>,
    pub actor: Option<String>,
    /// Entries with a sequence number greater than this (cursor).
    pub after_seq: Option<i64>,
}

/// A signed seal over the audit chain's head at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub seq: i64,
    pub head_hash: [u8; 32],
    pub at: i64,
    pub signature: Vec<u8>,
    /// The ed25519 public key that made the signature.
    pub public_key: [u8; 32],
}

/// One status change of an account, stored with the change (`account_transitions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub account_id: Uuid,
    /// The account's version after the change.
    pub version: i64,
    pub from_status: String,
    pub to_status: String,
    pub reason: String,
    pub actor: String,
    pub at: i64,
}

/// An event for webhook endpoints, written with the change it announces. The store fans it
/// out to one delivery per enabled endpoint subscribed to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub id: Uuid,
    pub event_type: String,
    /// The JSON body to deliver (no personal data: ids, statuses, reasons).
    pub payload: Vec<u8>,
    pub created_at: i64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpointRow {
    pub id: Uuid,
    pub url: String,
    /// Event types, comma-separated, or `*`.
    pub events: String,
    /// The signing secret, sealed by the caller.
    pub secret: Vec<u8>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

impl std::fmt::Debug for WebhookEndpointRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointRow")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// A delivery claimed for one attempt: everything the sender needs.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    /// Attempts including this one.
    pub attempts: i64,
    pub event_type: String,
    pub payload: Vec<u8>,
    pub url: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("event_id", &self.event_id)
            .field("endpoint_id", &self.endpoint_id)
            .field("attempts", &self.attempts)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `failed` (gave up).
    pub state: String,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub at: i64,
    pub next_attempt_at: i64,
}

/// A delivery as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}
