-- Verification records (docs/design/0011-verification.md). What a result says about the
-- person (document fields, mismatch reasons, a vendor's report) and document images are
-- sealed; ids, methods, results and times stay clear for filters and reports.
CREATE TABLE verification_evidence (
    id                  UUID PRIMARY KEY,
    customer_id         UUID NOT NULL REFERENCES customers (id),
    beneficial_owner_id UUID,
    method              TEXT NOT NULL,
    result              TEXT NOT NULL,
    at                  BIGINT NOT NULL,
    actor               TEXT NOT NULL,
    -- Identity of the result at its source (vendor event): stored once.
    source_key          TEXT UNIQUE,
    details             BYTEA NOT NULL
);
CREATE INDEX verification_evidence_customer ON verification_evidence (customer_id, at);

CREATE TABLE verification_files (
    evidence_id  UUID PRIMARY KEY REFERENCES verification_evidence (id),
    sha256       BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content      BYTEA NOT NULL
);

-- One-time codes: only a keyed hash of the code and of the destination.
CREATE TABLE otp_challenges (
    id                  UUID PRIMARY KEY,
    customer_id         UUID NOT NULL REFERENCES customers (id),
    beneficial_owner_id UUID,
    channel             TEXT NOT NULL,
    destination_hash    BYTEA NOT NULL,
    code_hash           BYTEA NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    attempts            BIGINT NOT NULL,
    max_attempts        BIGINT NOT NULL,
    status              TEXT NOT NULL,
    version             BIGINT NOT NULL
);
CREATE INDEX otp_challenges_customer ON otp_challenges (customer_id, channel, created_at);

-- Requests to external vendors; the callback secret is sealed.
CREATE TABLE verification_requests (
    id                  UUID PRIMARY KEY,
    customer_id         UUID NOT NULL REFERENCES customers (id),
    beneficial_owner_id UUID,
    vendor              TEXT NOT NULL,
    status              TEXT NOT NULL,
    secret              BYTEA NOT NULL,
    created_at          BIGINT NOT NULL,
    completed_at        BIGINT,
    actor               TEXT NOT NULL
);

-- Unverified cases: one per transition of an account to failed.
CREATE TABLE verification_cases (
    id                 UUID PRIMARY KEY,
    account_id         UUID NOT NULL REFERENCES accounts (id),
    customer_id        UUID NOT NULL,
    transition_version BIGINT NOT NULL,
    reason             TEXT NOT NULL,
    opened_at          BIGINT NOT NULL,
    status             TEXT NOT NULL,
    resolution         TEXT,
    resolution_reason  BYTEA,
    resolved_by        TEXT,
    resolved_at        BIGINT,
    UNIQUE (account_id, transition_version)
);
CREATE INDEX verification_cases_opened ON verification_cases (status, opened_at);
CREATE INDEX account_transitions_to_status ON account_transitions (to_status, at);
