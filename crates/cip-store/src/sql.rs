//! The SQL text both adapters run. PostgreSQL (through sqlx) and SQLite (through rusqlite)
//! accept the same `$N` placeholders and the schemas use the same column names, so each
//! statement is written once here. Statements are fixed strings: optional filters are written
//! as `($n IS NULL OR col = $n)` so each is prepared once and cached. A page cursor is never
//! optional in the SQL (`id > $1`, bound to the nil UUID or -1 for the first page): written as
//! `($1 IS NULL OR id > $1)` neither engine can seek the index to the cursor, and SQLite walked
//! the key from the start on every page, making a pass over a large table quadratic.

pub(crate) const LOAD_HEAD: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (seq, at, actor, role, action, \
     record_type, record_id, fields, request_id, purpose, prev_hash, hash) \
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";
pub(crate) const INIT_META: &str =
    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
/// Affects one row when the lease was free, expired or already the holder's; none otherwise.
pub(crate) const CLAIM_JOB: &str = "INSERT INTO job_leases (name, holder, until) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
     until = excluded.until WHERE job_leases.until <= $4 OR job_leases.holder = excluded.holder";
pub(crate) const RELEASE_JOB: &str = "DELETE FROM job_leases WHERE name = $1 AND holder = $2";
pub(crate) const GET_META: &str = "SELECT value FROM meta WHERE name = $1";
pub(crate) const SET_META: &str = "INSERT INTO meta (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";
pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, role, secret_hash, label, \
     created_at, revoked_at) VALUES ($1,$2,$3,$4,$5,$6)";
pub(crate) const REVOKE_API_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
pub(crate) const GET_API_KEY: &str =
    "SELECT id, role, secret_hash, label, created_at, revoked_at FROM api_keys WHERE id = $1";
pub(crate) const LIST_API_KEYS: &str = "SELECT id, role, secret_hash, label, created_at, \
     revoked_at FROM api_keys ORDER BY created_at, id";
pub(crate) const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (principal, key, \
     request_hash, status, response, created_at) VALUES ($1,$2,$3,$4,$5,$6)";
pub(crate) const GET_IDEMPOTENCY: &str = "SELECT principal, key, request_hash, status, response, \
     created_at FROM idempotency WHERE principal = $1 AND key = $2";
pub(crate) const INSERT_CUSTOMER: &str = "INSERT INTO customers (id, kind, version, created_at, \
     updated_at, country, key_id, document) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)";
pub(crate) const UPDATE_CUSTOMER: &str = "UPDATE customers SET kind = $1, version = $2, \
     updated_at = $3, country = $4, key_id = $5, document = $6 WHERE id = $7 AND version = $8";
/// One part of a record's digest (docs/design/0014-record-digest.md), written with the record.
pub(crate) const PUT_DIGEST: &str = "INSERT INTO customer_digests (part, customer_id, version, \
     key_id, sealed) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (part, customer_id) DO UPDATE SET \
     version = excluded.version, key_id = excluded.key_id, sealed = excluded.sealed";
/// A record written without a digest: its old parts must not outlive the version they sealed.
pub(crate) const DELETE_DIGESTS: &str =
    "DELETE FROM customer_digests WHERE part IN (1, 2) AND customer_id = $1";
pub(crate) const CUSTOMER_VERSION: &str = "SELECT version FROM customers WHERE id = $1";
pub(crate) const ACCOUNT_VERSION: &str = "SELECT version FROM accounts WHERE id = $1";
pub(crate) const DELETE_TERMS: &str = "DELETE FROM customer_terms WHERE customer_id = $1";
/// (SQLite numbers `$n` parameters in order of appearance: keep them ascending.)
pub(crate) const RESEAL_CUSTOMER: &str =
    "UPDATE customers SET document = $1, key_id = $2 WHERE id = $3 AND version = $4";
pub(crate) const CUSTOMER_EXISTS: &str = "SELECT 1 AS one FROM customers WHERE id = $1";
pub(crate) const INSERT_ACCOUNT: &str = "INSERT INTO accounts (id, customer_id, external_id, \
     product, account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
     updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";
pub(crate) const UPDATE_ACCOUNT: &str = "UPDATE accounts SET external_id = $1, product = $2, \
     account_type = $3, status = $4, opened_at = $5, closed_at = $6, last_accessed_at = $7, \
     version = $8, updated_at = $9 WHERE id = $10 AND version = $11";
pub(crate) const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints (seq, head_hash, at, \
     signature, public_key) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (seq) DO NOTHING";
pub(crate) const GET_CUSTOMER: &str = "SELECT id, kind, version, created_at, updated_at, country, \
     key_id, document, \
     (SELECT sealed FROM customer_digests WHERE part = 1 AND customer_id = customers.id) AS digest_policy, \
     (SELECT sealed FROM customer_digests WHERE part = 2 AND customer_id = customers.id) AS digest_screening \
     FROM customers WHERE id = $1";
pub(crate) const LIST_CUSTOMERS: &str = "SELECT id, kind, version, created_at, updated_at, \
     country, key_id, document, \
     (SELECT sealed FROM customer_digests WHERE part = 1 AND customer_id = customers.id) AS digest_policy, \
     (SELECT sealed FROM customer_digests WHERE part = 2 AND customer_id = customers.id) AS digest_screening \
     FROM customers \
     WHERE id > $1 AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR country = $3) \
     AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
     ORDER BY id LIMIT $6";
pub(crate) const FIND_BY_TERM: &str = "SELECT customer_id FROM customer_terms \
     WHERE kind = $1 AND hash = $2 ORDER BY customer_id LIMIT 1000";
pub(crate) const STALE_KEY_CUSTOMERS: &str = "SELECT id, kind, version, created_at, updated_at, \
     country, key_id, document, \
     (SELECT sealed FROM customer_digests WHERE part = 1 AND customer_id = customers.id) AS digest_policy, \
     (SELECT sealed FROM customer_digests WHERE part = 2 AND customer_id = customers.id) AS digest_screening \
     FROM customers WHERE key_id <> $1 ORDER BY id LIMIT $2";
/// The bulk jobs' pass over every customer: one part of the digest, and the document only where
/// a record has no digest (written before migration 0010 and not re-sealed since).
///
/// Driven by the customers' id index (covering: no customer row is read) joined to one part of
/// the digests (`$1`: 1 policy, 2 screening). The row itself — version, key and document — is
/// read only for a record without that part (SQLite defers the table seek until a `CASE`
/// needs it).
pub(crate) const SCAN_CUSTOMER_DIGESTS: &str = concat!(
    select_customer_digests!(),
    "WHERE c.id > $2 ORDER BY c.id LIMIT $3"
);

/// Customers as the bulk jobs read them (`CustomerDigestRow`), for every statement that reads
/// them (the scan, by id, the screening-key backfill): each customer left-joined to part `$1`
/// of its digest; version, key and document come from the row only when there is no digest.
/// The caller appends `WHERE …` with its other parameters numbered from `$2`.
macro_rules! select_customer_digests {
    () => {
        "SELECT c.id AS id, \
         CASE WHEN d.sealed IS NULL THEN c.version ELSE d.version END AS version, \
         CASE WHEN d.sealed IS NULL THEN c.key_id ELSE d.key_id END AS key_id, \
         d.sealed AS digest, CASE WHEN d.sealed IS NULL THEN c.document END AS document \
         FROM customers c LEFT JOIN customer_digests d ON d.part = $1 AND d.customer_id = c.id "
    };
}
pub(crate) use select_customer_digests;
pub(crate) const COUNT_CUSTOMERS: &str = "SELECT COUNT(*) AS n FROM customers";
pub(crate) const GET_ACCOUNT: &str = "SELECT id, customer_id, external_id, product, account_type, \
     status, opened_at, closed_at, last_accessed_at, version, created_at, updated_at \
     FROM accounts WHERE id = $1";
pub(crate) const GET_ACCOUNT_BY_EXTERNAL_ID: &str = "SELECT id, customer_id, external_id, \
     product, account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
     updated_at FROM accounts WHERE external_id = $1";
/// Moves `last_accessed_at` forward only (batches may arrive out of order).
pub(crate) const TOUCH_LAST_ACCESSED: &str = "UPDATE accounts SET last_accessed_at = $1 \
     WHERE id = $2 AND (last_accessed_at IS NULL OR last_accessed_at < $1)";
/// PostgreSQL only (the shared ops are instantiated for PostgreSQL alone).
pub(crate) const TOUCH_LAST_ACCESSED_MANY: &str = "UPDATE accounts AS a SET last_accessed_at = v.at \
     FROM UNNEST($1::uuid[], $2::bigint[]) AS v(id, at) \
     WHERE a.id = v.id AND (a.last_accessed_at IS NULL OR a.last_accessed_at < v.at)";
pub(crate) const LIST_ACCOUNTS: &str = "SELECT id, customer_id, external_id, product, \
     account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
     updated_at FROM accounts \
     WHERE id > $1 AND ($2 IS NULL OR customer_id = $2) \
     AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR account_type = $4) \
     ORDER BY id LIMIT $5";
/// [`LIST_ACCOUNTS`] of one customer: the same parameters, with the customer a plain condition
/// so the `(customer_id, id)` index is used (behind an `OR` no engine can seek it).
pub(crate) const LIST_ACCOUNTS_OF_CUSTOMER: &str = "SELECT id, customer_id, external_id, \
     product, account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
     updated_at FROM accounts \
     WHERE id > $1 AND customer_id = $2 \
     AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR account_type = $4) \
     ORDER BY id LIMIT $5";
/// [`LIST_ACCOUNTS`] in one status, through the `(status, id)` index.
pub(crate) const LIST_ACCOUNTS_IN_STATUS: &str = "SELECT id, customer_id, external_id, \
     product, account_type, status, opened_at, closed_at, last_accessed_at, version, created_at, \
     updated_at FROM accounts \
     WHERE id > $1 AND ($2 IS NULL OR customer_id = $2) \
     AND status = $3 AND ($4 IS NULL OR account_type = $4) \
     ORDER BY id LIMIT $5";
/// The statement for an account listing: the one whose plain condition has an index.
pub(crate) fn list_accounts(customer: bool, status: bool) -> &'static str {
    match (customer, status) {
        (true, _) => LIST_ACCOUNTS_OF_CUSTOMER,
        (false, true) => LIST_ACCOUNTS_IN_STATUS,
        (false, false) => LIST_ACCOUNTS,
    }
}
pub(crate) const LIST_AUDIT: &str = "SELECT seq, at, actor, role, action, record_type, record_id, \
     fields, request_id, purpose, prev_hash, hash FROM audit_log \
     WHERE seq > $1 AND ($2 IS NULL OR record_id = $2) \
     AND ($3 IS NULL OR actor = $3) ORDER BY seq LIMIT $4";
/// [`LIST_AUDIT`] of one record, through the `(record_id, seq)` index.
pub(crate) const LIST_AUDIT_OF_RECORD: &str = "SELECT seq, at, actor, role, action, record_type, \
     record_id, fields, request_id, purpose, prev_hash, hash FROM audit_log \
     WHERE seq > $1 AND record_id = $2 \
     AND ($3 IS NULL OR actor = $3) ORDER BY seq LIMIT $4";
/// [`LIST_AUDIT`] of one actor, through the `(actor, seq)` index.
pub(crate) const LIST_AUDIT_OF_ACTOR: &str = "SELECT seq, at, actor, role, action, record_type, \
     record_id, fields, request_id, purpose, prev_hash, hash FROM audit_log \
     WHERE seq > $1 AND ($2 IS NULL OR record_id = $2) \
     AND actor = $3 ORDER BY seq LIMIT $4";
/// The statement for an audit listing: the one whose plain condition has an index.
pub(crate) fn list_audit(record: bool, actor: bool) -> &'static str {
    match (record, actor) {
        (true, _) => LIST_AUDIT_OF_RECORD,
        (false, true) => LIST_AUDIT_OF_ACTOR,
        (false, false) => LIST_AUDIT,
    }
}
pub(crate) const AUDIT_RANGE: &str = "SELECT seq, at, actor, role, action, record_type, \
     record_id, fields, request_id, purpose, prev_hash, hash FROM audit_log \
     WHERE seq >= $1 ORDER BY seq LIMIT $2";
pub(crate) const LIST_CHECKPOINTS: &str =
    "SELECT seq, head_hash, at, signature, public_key FROM audit_checkpoints ORDER BY seq";

// ---- screening lists ----
pub(crate) const ACTIVE_LIST_VERSION: &str =
    "SELECT active_version FROM screening_lists WHERE list_id = $1";
pub(crate) const INSERT_LIST_VERSION: &str = "INSERT INTO screening_list_versions (list_id, \
     version, content_hash, entry_count, imported_at, source_format, added, changed, removed, \
     entries) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)";
pub(crate) const SET_ACTIVE_LIST: &str = "INSERT INTO screening_lists (list_id, active_version, \
     updated_at) VALUES ($1,$2,$3) ON CONFLICT (list_id) DO UPDATE SET \
     active_version = excluded.active_version, updated_at = excluded.updated_at";
pub(crate) const LIST_LISTS: &str = "SELECT v.list_id, v.version, v.content_hash, \
     v.entry_count, v.imported_at, v.source_format, v.added, v.changed, v.removed \
     FROM screening_lists l JOIN screening_list_versions v \
     ON v.list_id = l.list_id AND v.version = l.active_version ORDER BY l.list_id";
pub(crate) const LIST_VERSIONS: &str = "SELECT list_id, version, content_hash, entry_count, \
     imported_at, source_format, added, changed, removed FROM screening_list_versions \
     WHERE list_id = $1 ORDER BY version";
pub(crate) const GET_LIST_VERSION: &str = "SELECT list_id, version, content_hash, entry_count, \
     imported_at, source_format, added, changed, removed, entries FROM screening_list_versions \
     WHERE list_id = $1 AND version = $2";
pub(crate) const ACTIVE_LIST_VERSIONS: &str = "SELECT v.list_id, v.version, v.content_hash, \
     v.entry_count, v.imported_at, v.source_format, v.added, v.changed, v.removed, v.entries \
     FROM screening_lists l JOIN screening_list_versions v \
     ON v.list_id = l.list_id AND v.version = l.active_version ORDER BY l.list_id";

// ---- screening review items ----
pub(crate) const DISMISSAL_EXISTS: &str = "SELECT 1 AS one FROM screening_dismissals \
     WHERE customer_id = $1 AND subject = $2 AND list_id = $3 AND entry_id = $4 \
     AND entry_hash = $5 AND subject_hash = $6";
pub(crate) const OPEN_REVIEW_EXISTS: &str = "SELECT 1 AS one FROM screening_reviews \
     WHERE customer_id = $1 AND subject = $2 AND list_id = $3 AND entry_id = $4 \
     AND status = 'open'";
pub(crate) const INSERT_REVIEW: &str = "INSERT INTO screening_reviews (id, customer_id, subject, \
     list_id, entry_id, list_version, entry_hash, subject_hash, score_bp, status, details, \
     key_id, created_at, decided_at, decided_by, reason) \
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)";
pub(crate) const GET_REVIEW: &str = "SELECT id, customer_id, subject, list_id, entry_id, \
     list_version, entry_hash, subject_hash, score_bp, status, details, key_id, created_at, \
     decided_at, decided_by, reason FROM screening_reviews WHERE id = $1";
pub(crate) const LIST_REVIEWS: &str = "SELECT id, customer_id, subject, list_id, entry_id, \
     list_version, entry_hash, subject_hash, score_bp, status, details, key_id, created_at, \
     decided_at, decided_by, reason FROM screening_reviews \
     WHERE id > $1 AND ($2 IS NULL OR status = $2) \
     AND ($3 IS NULL OR customer_id = $3) ORDER BY id LIMIT $4";
/// [`LIST_REVIEWS`] in one status, through the `(status, id)` index.
pub(crate) const LIST_REVIEWS_IN_STATUS: &str = "SELECT id, customer_id, subject, list_id, \
     entry_id, list_version, entry_hash, subject_hash, score_bp, status, details, key_id, \
     created_at, decided_at, decided_by, reason FROM screening_reviews \
     WHERE id > $1 AND status = $2 \
     AND ($3 IS NULL OR customer_id = $3) ORDER BY id LIMIT $4";
pub(crate) const DECIDE_REVIEW: &str = "UPDATE screening_reviews SET status = $1, reason = $2, \
     decided_by = $3, decided_at = $4 WHERE id = $5 AND status = 'open'";
pub(crate) const REVIEW_EXISTS: &str = "SELECT 1 AS one FROM screening_reviews WHERE id = $1";
pub(crate) const REMEMBER_DISMISSAL: &str = "INSERT INTO screening_dismissals (customer_id, \
     subject, list_id, entry_id, entry_hash, subject_hash) SELECT customer_id, subject, \
     list_id, entry_id, entry_hash, subject_hash FROM screening_reviews WHERE id = $1 \
     ON CONFLICT DO NOTHING";
pub(crate) const CLOSE_REVIEWS: &str = "UPDATE screening_reviews SET status = 'entry_removed', \
     decided_by = 'system', decided_at = $1 WHERE list_id = $2 AND entry_id = $3 \
     AND status = 'open'";

/// `INSERT INTO customer_terms … VALUES ($1,$2,$3),($4,$5,$6),…` for `rows` rows. Only
/// placeholders are formatted into the statement, never values.
pub(crate) fn insert_terms(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO customer_terms (kind, hash, customer_id) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${},${},${})", i * 3 + 1, i * 3 + 2, i * 3 + 3));
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

// ---- lifecycle: transitions and webhooks ----
/// Accounts in a status since before a time: when the status was entered is the time of the
/// account's latest transition (or its last update, for accounts older than transitions).
pub(crate) const ACCOUNTS_IN_STATUS_SINCE: &str = "SELECT a.id, a.customer_id, a.external_id, \
     a.product, a.account_type, a.status, a.opened_at, a.closed_at, a.last_accessed_at, \
     a.version, a.created_at, a.updated_at FROM accounts a WHERE a.status = $1 AND \
     COALESCE((SELECT t.at FROM account_transitions t WHERE t.account_id = a.id \
     ORDER BY t.version DESC LIMIT 1), a.updated_at) < $2 ORDER BY a.id LIMIT $3";
pub(crate) const INSERT_TRANSITION: &str = "INSERT INTO account_transitions (account_id, \
     version, from_status, to_status, reason, actor, at) VALUES ($1,$2,$3,$4,$5,$6,$7)";
pub(crate) const LIST_TRANSITIONS: &str = "SELECT account_id, version, from_status, to_status, \
     reason, actor, at FROM account_transitions WHERE account_id = $1 ORDER BY version";
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO webhook_events (id, event_type, payload, created_at) VALUES ($1,$2,$3,$4)";
/// One pending delivery per enabled endpoint subscribed to the event's type.
pub(crate) const FAN_OUT_EVENT: &str = "INSERT INTO webhook_deliveries (event_id, endpoint_id, \
     state, attempts, next_attempt_at) SELECT $1, id, 'pending', 0, $2 FROM webhook_endpoints \
     WHERE disabled_at IS NULL AND (events = '*' OR (',' || events || ',') LIKE ('%,' || $3 || ',%'))";
pub(crate) const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints (id, url, events, secret, \
     created_at, disabled_at) VALUES ($1,$2,$3,$4,$5,$6)";
pub(crate) const DISABLE_ENDPOINT: &str =
    "UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL";
pub(crate) const LIST_ENDPOINTS: &str = "SELECT id, url, events, secret, created_at, disabled_at \
     FROM webhook_endpoints ORDER BY id";
/// Claims due deliveries for one attempt: a lease (`claimed_until`) so that no other
/// instance takes them until it ends. `{lock}` is `FOR UPDATE SKIP LOCKED` on PostgreSQL.
pub(crate) fn claim_deliveries(lock: &str) -> String {
    format!(
        "UPDATE webhook_deliveries SET claimed_until = $1, attempts = attempts + 1 \
         WHERE (event_id, endpoint_id) IN (SELECT event_id, endpoint_id FROM webhook_deliveries \
         WHERE state = 'pending' AND next_attempt_at <= $2 \
         AND (claimed_until IS NULL OR claimed_until <= $2) \
         ORDER BY next_attempt_at LIMIT $3 {lock}) RETURNING event_id, endpoint_id, attempts"
    )
}
pub(crate) const CLAIMED_DETAILS: &str = "SELECT e.event_type, e.payload, w.url, w.secret \
     FROM webhook_events e, webhook_endpoints w WHERE e.id = $1 AND w.id = $2";
pub(crate) const FINISH_DELIVERY: &str = "UPDATE webhook_deliveries SET state = $1, \
     last_status = $2, last_error = $3, delivered_at = $4, next_attempt_at = $5, \
     claimed_until = NULL WHERE event_id = $6 AND endpoint_id = $7";
pub(crate) const LIST_DELIVERIES: &str = "SELECT d.event_id, d.endpoint_id, e.event_type, \
     d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.delivered_at, \
     e.created_at FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
     WHERE d.endpoint_id = $1 ORDER BY d.event_id DESC LIMIT $2";

// ---- special measures ----
macro_rules! measure_columns {
    () => {
        "id, version, target_kind, country, list_id, effective_at, expires_at, revoked_at, \
         created_at, updated_at, swept_at, document"
    };
}
pub(crate) const INSERT_MEASURE: &str = "INSERT INTO special_measures (id, version, target_kind, \
     country, list_id, effective_at, expires_at, revoked_at, created_at, updated_at, swept_at, \
     document) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";
pub(crate) const UPDATE_MEASURE: &str = "UPDATE special_measures SET version = $1, \
     effective_at = $2, expires_at = $3, revoked_at = $4, updated_at = $5, document = $6 \
     WHERE id = $7 AND version = $8";
pub(crate) const MEASURE_VERSION: &str = "SELECT version FROM special_measures WHERE id = $1";
pub(crate) const GET_MEASURE: &str = concat!(
    "SELECT ",
    measure_columns!(),
    " FROM special_measures WHERE id = $1"
);
pub(crate) const LIST_MEASURES: &str = concat!(
    "SELECT ",
    measure_columns!(),
    " FROM special_measures WHERE id > $1 ORDER BY id LIMIT $2"
);
pub(crate) const MEASURES_IN_FORCE: &str = concat!(
    "SELECT ",
    measure_columns!(),
    " FROM special_measures WHERE effective_at <= $1 AND expires_at > $1 \
     AND revoked_at IS NULL ORDER BY id LIMIT 10000"
);
/// Claims measures in force that were not yet applied to existing accounts, under a lease.
/// `{lock}` is `FOR UPDATE SKIP LOCKED` on PostgreSQL.
pub(crate) fn claim_measure_sweeps(lock: &str) -> String {
    format!(
        "UPDATE special_measures SET sweep_claimed_until = $1 WHERE id IN (SELECT id FROM \
         special_measures WHERE swept_at IS NULL AND revoked_at IS NULL AND effective_at <= $2 \
         AND expires_at > $2 AND (sweep_claimed_until IS NULL OR sweep_claimed_until <= $2) \
         ORDER BY id LIMIT $3 {lock}) RETURNING {}",
        measure_columns!()
    )
}
pub(crate) const FINISH_MEASURE_SWEEP: &str = "UPDATE special_measures SET swept_at = $1, \
     sweep_claimed_until = NULL WHERE id = $2";
/// Recorded once: a second action for the same (measure, account) or (review, account)
/// meets a unique index and is skipped.
pub(crate) const INSERT_MEASURE_ACTION: &str = "INSERT INTO special_measure_actions (id, \
     measure_id, review_id, account_id, customer_id, action, deadline, evidence, cause, actor, \
     at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING";
pub(crate) const LIST_MEASURE_ACTIONS: &str = "SELECT id, measure_id, review_id, account_id, \
     customer_id, action, deadline, evidence, cause, actor, at, untied_at \
     FROM special_measure_actions \
     WHERE ($1 IS NULL OR measure_id = $1) AND ($2 IS NULL OR account_id = $2) \
     ORDER BY at, id LIMIT 10000";

// ---- verification (docs/design/0011-verification.md) ----
pub(crate) const EVIDENCE_SOURCE_EXISTS: &str =
    "SELECT 1 AS one FROM verification_evidence WHERE source_key = $1";
pub(crate) const INSERT_EVIDENCE: &str = "INSERT INTO verification_evidence (id, customer_id, \
     beneficial_owner_id, method, result, at, actor, source_key, details) \
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
pub(crate) const INSERT_EVIDENCE_FILE: &str = "INSERT INTO verification_files (evidence_id, \
     sha256, content_type, size, content) VALUES ($1,$2,$3,$4,$5)";
pub(crate) const COMPLETE_REQUEST: &str = "UPDATE verification_requests SET status = 'completed', \
     completed_at = $1 WHERE id = $2 AND status = 'open'";
pub(crate) const LIST_EVIDENCE: &str = "SELECT id, customer_id, beneficial_owner_id, method, \
     result, at, actor, source_key, details FROM verification_evidence WHERE customer_id = $1 \
     ORDER BY at, id";
/// The evidence of every customer whose id is in [$1, $2], for a page of a bulk pass.
pub(crate) const LIST_EVIDENCE_BETWEEN: &str = "SELECT id, customer_id, beneficial_owner_id, \
     method, result, at, actor, source_key, details FROM verification_evidence \
     WHERE customer_id >= $1 AND customer_id <= $2 ORDER BY customer_id, at, id";
pub(crate) const GET_EVIDENCE_FILE: &str = "SELECT sha256, content_type, size, content \
     FROM verification_files WHERE evidence_id = $1";
pub(crate) const SUPERSEDE_OTPS: &str = "UPDATE otp_challenges SET status = 'superseded', \
     version = version + 1 WHERE customer_id = $1 AND channel = $2 AND status = 'pending' \
     AND (beneficial_owner_id = $3 OR (beneficial_owner_id IS NULL AND $3 IS NULL)) AND id <> $4";
pub(crate) const INSERT_OTP: &str = "INSERT INTO otp_challenges (id, customer_id, \
     beneficial_owner_id, channel, destination_hash, code_hash, created_at, expires_at, \
     attempts, max_attempts, status, version) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";
pub(crate) const GET_OTP: &str = "SELECT id, customer_id, beneficial_owner_id, channel, destination_hash, \
     code_hash, created_at, expires_at, attempts, max_attempts, status, version FROM otp_challenges WHERE id = $1";
pub(crate) const RECENT_OTPS: &str = "SELECT id, customer_id, beneficial_owner_id, channel, destination_hash, \
     code_hash, created_at, expires_at, attempts, max_attempts, status, version FROM otp_challenges WHERE customer_id = $1 AND channel = $2 AND created_at >= $3 \
     AND (beneficial_owner_id = $4 OR (beneficial_owner_id IS NULL AND $4 IS NULL)) \
     ORDER BY created_at DESC, id DESC";
pub(crate) const UPDATE_OTP: &str = "UPDATE otp_challenges SET attempts = $1, status = $2, \
     version = $3 WHERE id = $4 AND version = $5";
pub(crate) const OTP_VERSION: &str = "SELECT version FROM otp_challenges WHERE id = $1";
pub(crate) const INSERT_VERIFICATION_REQUEST: &str = "INSERT INTO verification_requests (id, \
     customer_id, beneficial_owner_id, vendor, status, secret, created_at, completed_at, actor) \
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
pub(crate) const GET_VERIFICATION_REQUEST: &str = "SELECT id, customer_id, beneficial_owner_id, \
     vendor, status, secret, created_at, completed_at, actor FROM verification_requests \
     WHERE id = $1";
pub(crate) const UNVERIFIED_WITHOUT_CASE: &str = "SELECT t.account_id, a.customer_id, t.version, \
     t.reason, t.at FROM account_transitions t JOIN accounts a ON a.id = t.account_id \
     WHERE t.to_status = 'failed' AND NOT EXISTS (SELECT 1 FROM verification_cases c \
     WHERE c.account_id = t.account_id AND c.transition_version = t.version) \
     ORDER BY t.at, t.account_id LIMIT $1";
pub(crate) const INSERT_CASE: &str = "INSERT INTO verification_cases (id, account_id, \
     customer_id, transition_version, reason, opened_at, status, resolution, resolution_reason, \
     resolved_by, resolved_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) \
     ON CONFLICT (account_id, transition_version) DO NOTHING";
pub(crate) const GET_CASE: &str = "SELECT id, account_id, customer_id, transition_version, reason, opened_at, \
     status, resolution, resolution_reason, resolved_by, resolved_at FROM verification_cases WHERE id = $1";
pub(crate) const LIST_CASES: &str = "SELECT id, account_id, customer_id, transition_version, reason, opened_at, \
     status, resolution, resolution_reason, resolved_by, resolved_at FROM verification_cases WHERE id > $1 AND ($2 IS NULL OR status = $2) \
     AND ($3 IS NULL OR opened_at >= $3) AND ($4 IS NULL OR opened_at < $4) ORDER BY id LIMIT $5";
pub(crate) const RESOLVE_CASE: &str = "UPDATE verification_cases SET status = 'resolved', \
     resolution = $1, resolution_reason = $2, resolved_by = $3, resolved_at = $4 \
     WHERE id = $5 AND status = 'open'";
pub(crate) const CASE_EXISTS: &str = "SELECT 1 AS one FROM verification_cases WHERE id = $1";

// ---- ties of special-measure actions (migration 0009) ----
pub(crate) const SET_ACTION_UNTIED: &str =
    "UPDATE special_measure_actions SET untied_at = $1 WHERE id = $2";
pub(crate) const INSERT_REFUSAL: &str = "INSERT INTO special_measure_refusals (id, \
     measure_id, customer_id, account_type, product, reason, evidence, actor, at) \
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
pub(crate) const LIST_REFUSALS: &str = "SELECT id, measure_id, customer_id, account_type, \
     product, reason, evidence, actor, at FROM special_measure_refusals WHERE measure_id = $1 \
     ORDER BY at, id LIMIT 10000";
