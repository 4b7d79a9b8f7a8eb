-- Verification records (docs/design/0011-verification.md). What a result says about the
-- person (document fields, mismatch reasons, a vendor's report) and document images are
-- sealed; ids, methods, results and times stay clear for filters and reports.
CREATE TABLE verification_evidence (
    id                  BLOB PRIMARY KEY,
    customer_id         BLOB NOT NULL REFERENCES customers (id),
    beneficial_owner_id BLOB,
    method              TEXT NOT NULL,
    result              TEXT NOT NULL,
    at                  INTEGER NOT NULL,
    actor               TEXT NOT NULL,
    -- Identity of the result at its source (vendor event): stored once.
    source_key          TEXT UNIQUE,
    details             BLOB NOT NULL
);
CREATE INDEX verification_evidence_customer ON verification_evidence (customer_id, at);

CREATE TABLE verification_files (
    evidence_id  BLOB PRIMARY KEY REFERENCES verification_evidence (id),
    sha256       BLOB NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content      BLOB NOT NULL
);

-- One-time codes: only a keyed hash of the code and of the destination.
CREATE TABLE otp_challenges (
    id                  BLOB PRIMARY KEY,
    customer_id         BLOB NOT NULL REFERENCES customers (id),
    beneficial_owner_id BLOB,
    channel             TEXT NOT NULL,
    destination_hash    BLOB NOT NULL,
    code_hash           BLOB NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    attempts            INTEGER NOT NULL,
    max_attempts        INTEGER NOT NULL,
    status              TEXT NOT NULL,
    version             INTEGER NOT NULL
);
CREATE INDEX otp_challenges_customer ON otp_challenges (customer_id, channel, created_at);

-- Requests to external vendors; the callback secret is sealed.
CREATE TABLE verification_requests (
    id                  BLOB PRIMARY KEY,
    customer_id         BLOB NOT NULL REFERENCES customers (id),
    beneficial_owner_id BLOB,
    vendor              TEXT NOT NULL,
    status              TEXT NOT NULL,
    secret              BLOB NOT NULL,
    created_at          INTEGER NOT NULL,
    completed_at        INTEGER,
    actor               TEXT NOT NULL
);

-- Unverified cases: one per transition of an account to failed.
CREATE TABLE verification_cases (
    id                 BLOB PRIMARY KEY,
    account_id         BLOB NOT NULL REFERENCES accounts (id),
    customer_id        BLOB NOT NULL,
    transition_version INTEGER NOT NULL,
    reason             TEXT NOT NULL,
    opened_at          INTEGER NOT NULL,
    status             TEXT NOT NULL,
    resolution         TEXT,
    resolution_reason  BLOB,
    resolved_by        TEXT,
    resolved_at        INTEGER,
    UNIQUE (account_id, transition_version)
);
CREATE INDEX verification_cases_opened ON verification_cases (status, opened_at);
CREATE INDEX account_transitions_to_status ON account_transitions (to_status, at);
