//! The SQL text both adapters run. PostgreSQL (through sqlx) and SQLite (through rusqlite)
//! accept the same `$N` placeholders and the schemas use the same column names, so each
//! statement is written once here. Statements are fixed strings: optional filters are written
//! as `($n IS NULL OR col = $n)` so each is prepared once and cached.

pub(crate) const LOAD_HEAD: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (seq, at, actor, role, action, \
     record_type, record_id, fields, request_id, purpose, prev_hash, hash) \
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";
pub(crate) const INIT_META: &str =
    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
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
pub(crate) const CUSTOMER_VERSION: &str = "SELECT version FROM customers WHERE id = $1";
pub(crate) const ACCOUNT_VERSION: &str = "SELECT version FROM accounts WHERE id = $1";
pub(crate) const DELETE_TERMS: &str = "DELETE FROM customer_terms WHERE customer_id = $1";
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
     key_id, document FROM customers WHERE id = $1";
pub(crate) const LIST_CUSTOMERS: &str = "SELECT id, kind, version, created_at, updated_at, \
     country, key_id, document FROM customers \
     WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR country = $3) \
     AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
     ORDER BY id LIMIT $6";
pub(crate) const FIND_BY_TERM: &str = "SELECT customer_id FROM customer_terms \
     WHERE kind = $1 AND hash = $2 ORDER BY customer_id LIMIT 1000";
pub(crate) const STALE_KEY_CUSTOMERS: &str = "SELECT id, kind, version, created_at, updated_at, \
     country, key_id, document FROM customers WHERE key_id <> $1 ORDER BY id LIMIT $2";
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
     WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR customer_id = $2) \
     AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR account_type = $4) \
     ORDER BY id LIMIT $5";
pub(crate) const LIST_AUDIT: &str = "SELECT seq, at, actor, role, action, record_type, record_id, \
     fields, request_id, purpose, prev_hash, hash FROM audit_log \
     WHERE ($1 IS NULL OR seq > $1) AND ($2 IS NULL OR record_id = $2) \
     AND ($3 IS NULL OR actor = $3) ORDER BY seq LIMIT $4";
pub(crate) const AUDIT_RANGE: &str = "SELECT seq, at, actor, role, action, record_type, \
     record_id, fields, request_id, purpose, prev_hash, hash FROM audit_log \
     WHERE seq >= $1 ORDER BY seq LIMIT $2";
pub(crate) const LIST_CHECKPOINTS: &str =
    "SELECT seq, head_hash, at, signature, public_key FROM audit_checkpoints ORDER BY seq";

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
