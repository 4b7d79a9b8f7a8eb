//! What the lifecycle's due-work job reads and writes beyond ordinary transitions: the
//! accounts in a status with the time they entered it (paged by id), the record digests of
//! their customers (for the risk tier), and the reminders sent before a deadline — each
//! once per account, kind and due date, with its webhook event and audit entry in one
//! transaction. See docs/design/0009-lifecycle.md and 0013-policy.md.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AccountRow, AuditDraft, CustomerDigestRow, DigestPart, EventDraft, Result};

/// An account and when it entered its current status (its latest transition, or its last
/// update for accounts older than transitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSince {
    pub account: AccountRow,
    pub since: i64,
}

/// A reminder sent to the provider before an account's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderRow {
    pub account_id: Uuid,
    /// `verification` or `reverification`.
    pub kind: String,
    /// The deadline the reminder is about (Unix micros).
    pub due_at: i64,
    pub sent_at: i64,
    /// The webhook event that carried it.
    pub event_id: Uuid,
}

/// A reminder with its event and audit entry, written together or not at all.
#[derive(Debug, Clone)]
pub struct ReminderWrite {
    pub row: ReminderRow,
    pub event: EventDraft,
    pub audit: AuditDraft,
}

/// The lifecycle job's reads and its reminders. [`crate::Store`] requires it.
#[async_trait]
pub trait DueStore: Send + Sync {
    /// Accounts in `status` that entered it before `before` (Unix micros), with that time,
    /// in id order after `after`: the lifecycle job pages through its candidates with it.
    async fn accounts_entered_before(
        &self,
        status: &str,
        after: Option<Uuid>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AccountSince>>;
    /// One part of the digests (or, for records without one, the documents) of these
    /// customers, in id order; unknown ids are left out.
    async fn customer_digests(
        &self,
        part: DigestPart,
        ids: &[Uuid],
    ) -> Result<Vec<CustomerDigestRow>>;
    /// The due dates of reminders of `kind` already sent for these accounts.
    async fn reminders_sent(&self, kind: &str, accounts: &[Uuid]) -> Result<Vec<(Uuid, i64)>>;
    /// Records reminders: each (account, kind, due date) once — a reminder already recorded
    /// (by this or another instance) is skipped with its event and audit entry. Returns how
    /// many were new.
    async fn record_reminders(&self, reminders: Vec<ReminderWrite>) -> Result<u64>;
    /// Every reminder of an account, oldest first.
    async fn list_reminders(&self, account_id: Uuid) -> Result<Vec<ReminderRow>>;
}

/// The SQL both engines run.
pub(crate) mod sql {
    /// Parameters ascend in the text (SQLite numbers them by first appearance). The inner
    /// query walks `accounts (status, id)` from the cursor; the time each account entered
    /// its status is its latest transition.
    pub const ACCOUNTS_ENTERED_BEFORE: &str = "SELECT id, customer_id, external_id, product, \
        account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
        updated_at, since FROM (SELECT a.id, a.customer_id, a.external_id, a.product, \
        a.account_type, a.status, a.opened_at, a.closed_at, a.last_accessed_at, a.version, \
        a.created_at, a.updated_at, COALESCE((SELECT t.at FROM account_transitions t \
        WHERE t.account_id = a.id ORDER BY t.version DESC LIMIT 1), a.updated_at) AS since \
        FROM accounts a WHERE a.status = $1 AND a.id > $2) x \
        WHERE since < $3 ORDER BY id LIMIT $4";
    pub const INSERT_REMINDER: &str = "INSERT INTO lifecycle_reminders \
        (account_id, kind, due_at, sent_at, event_id) VALUES ($1, $2, $3, $4, $5) \
        ON CONFLICT DO NOTHING";
    pub const LIST_REMINDERS: &str = "SELECT account_id, kind, due_at, sent_at, event_id \
        FROM lifecycle_reminders WHERE account_id = $1 ORDER BY sent_at, due_at";

    // Reads of many ids: one cached point statement per id on SQLite (a statement of 2,000
    // `$n` placeholders costs more to parse than to run: SQLite looks each name up among the
    // ones before it), one array parameter on PostgreSQL. Either way the text is a constant.
    /// SQLite: one customer's digest part `$1` alone, in the columns of
    /// `select_customer_digests!` (one seek in the narrow table; most customers have one).
    pub const DIGEST_ONLY_BY_ID: &str = "SELECT customer_id AS id, version, key_id, \
        sealed AS digest, NULL AS document FROM customer_digests \
        WHERE part = $1 AND customer_id = $2";
    /// SQLite: one customer, `$1` the part, `$2` its id (for a customer without a digest: its
    /// document).
    pub const CUSTOMER_DIGEST_BY_ID: &str =
        concat!(crate::sql::select_customer_digests!(), "WHERE c.id = $2");
    /// PostgreSQL: the customers of the array `$2`, in id order.
    pub const CUSTOMER_DIGESTS_ANY: &str = concat!(
        crate::sql::select_customer_digests!(),
        "WHERE c.id = ANY($2) ORDER BY c.id"
    );
    /// SQLite: one account's reminder of kind `$1`.
    pub const REMINDER_SENT: &str = "SELECT account_id, due_at FROM lifecycle_reminders \
        WHERE kind = $1 AND account_id = $2";
    /// PostgreSQL: the reminders of kind `$1` of the accounts of the array `$2`.
    pub const REMINDERS_SENT_ANY: &str = "SELECT account_id, due_at FROM lifecycle_reminders \
        WHERE kind = $1 AND account_id = ANY($2)";
}
