-- Installation metadata and key material wrapped under the master key.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    label       TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- One row per customer; personal data lives only inside the sealed document.
CREATE TABLE customers (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    country    TEXT,
    key_id     BIGINT NOT NULL,
    document   BYTEA NOT NULL
);
CREATE INDEX customers_kind ON customers (kind, id);
CREATE INDEX customers_country ON customers (country, id);
CREATE INDEX customers_key_id ON customers (key_id);

-- Keyed blind-index terms for exact lookups on encrypted values.
CREATE TABLE customer_terms (
    kind        TEXT NOT NULL,
    hash        BYTEA NOT NULL,
    customer_id UUID NOT NULL REFERENCES customers (id),
    PRIMARY KEY (kind, hash, customer_id)
);
CREATE INDEX customer_terms_customer ON customer_terms (customer_id);

CREATE TABLE accounts (
    id               UUID PRIMARY KEY,
    customer_id      UUID NOT NULL REFERENCES customers (id),
    external_id      TEXT UNIQUE,
    product          TEXT NOT NULL,
    account_type     TEXT NOT NULL,
    status           TEXT NOT NULL,
    opened_at        BIGINT,
    closed_at        BIGINT,
    last_accessed_at BIGINT,
    version          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX accounts_customer ON accounts (customer_id, id);
CREATE INDEX accounts_status ON accounts (status, id);

CREATE TABLE idempotency (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status       BIGINT NOT NULL,
    response     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);

-- The hash-chained audit trail. seq has no gaps; each row's hash covers its predecessor's.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id   TEXT,
    fields      TEXT NOT NULL,
    request_id  TEXT,
    purpose     TEXT,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX audit_log_record ON audit_log (record_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    head_hash  BYTEA NOT NULL,
    at         BIGINT NOT NULL,
    signature  BYTEA NOT NULL,
    public_key BYTEA NOT NULL
);
