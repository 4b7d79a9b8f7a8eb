-- Installation metadata and key material wrapped under the master key.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- One row per customer; personal data lives only inside the sealed document.
CREATE TABLE customers (
    id         BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    country    TEXT,
    key_id     INTEGER NOT NULL,
    document   BLOB NOT NULL
);
-- A rowid table: documents are several KiB, and WITHOUT ROWID tables suit small rows only.
CREATE INDEX customers_kind ON customers (kind, id);
CREATE INDEX customers_country ON customers (country, id);
CREATE INDEX customers_key_id ON customers (key_id);

-- Keyed blind-index terms for exact lookups on encrypted values.
CREATE TABLE customer_terms (
    kind        TEXT NOT NULL,
    hash        BLOB NOT NULL,
    customer_id BLOB NOT NULL REFERENCES customers (id),
    PRIMARY KEY (kind, hash, customer_id)
) WITHOUT ROWID;
CREATE INDEX customer_terms_customer ON customer_terms (customer_id);

CREATE TABLE accounts (
    id               BLOB PRIMARY KEY,
    customer_id      BLOB NOT NULL REFERENCES customers (id),
    external_id      TEXT UNIQUE,
    product          TEXT NOT NULL,
    account_type     TEXT NOT NULL,
    status           TEXT NOT NULL,
    opened_at        INTEGER,
    closed_at        INTEGER,
    last_accessed_at INTEGER,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX accounts_customer ON accounts (customer_id, id);
CREATE INDEX accounts_status ON accounts (status, id);

CREATE TABLE idempotency (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    response     BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;

-- The hash-chained audit trail. seq has no gaps; each row's hash covers its predecessor's.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id   TEXT,
    fields      TEXT NOT NULL,
    request_id  TEXT,
    purpose     TEXT,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX audit_log_record ON audit_log (record_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    head_hash  BLOB NOT NULL,
    at         INTEGER NOT NULL,
    signature  BLOB NOT NULL,
    public_key BLOB NOT NULL
);
