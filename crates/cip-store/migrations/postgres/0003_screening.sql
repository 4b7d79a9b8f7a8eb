-- Screening lists (sanctions and the provider's own block lists) as versioned snapshots.
-- Entries are public list data, not personal data: they are kept in clear, as JSON.
-- A version row and the switch of the active pointer are written in one transaction, so a
-- half-loaded version is never visible. (0002 is left to the branch that took it first.)
CREATE TABLE screening_list_versions (
    list_id       TEXT NOT NULL,
    version       BIGINT NOT NULL,
    content_hash  TEXT NOT NULL,
    entry_count   BIGINT NOT NULL,
    imported_at   BIGINT NOT NULL,
    source_format TEXT NOT NULL,
    added         BIGINT NOT NULL,
    changed       BIGINT NOT NULL,
    removed       BIGINT NOT NULL,
    -- JSON array of cip_screen::ListEntry, sorted by entry id.
    entries       BYTEA NOT NULL,
    PRIMARY KEY (list_id, version)
);

CREATE TABLE screening_lists (
    list_id        TEXT PRIMARY KEY,
    active_version BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    FOREIGN KEY (list_id, active_version) REFERENCES screening_list_versions (list_id, version)
);

-- Potential matches of customers and beneficial owners, for an analyst to confirm or
-- dismiss. What the match says about the person (the explanation, the reason given) is
-- sealed like other personal data; ids, scores and statuses are clear for filtering.
CREATE TABLE screening_reviews (
    id           UUID PRIMARY KEY,
    customer_id  UUID NOT NULL,
    -- `customer` or `owner/<n>` (the n-th beneficial owner).
    subject      TEXT NOT NULL,
    list_id      TEXT NOT NULL,
    entry_id     TEXT NOT NULL,
    list_version BIGINT NOT NULL,
    entry_hash   TEXT NOT NULL,
    -- Keyed hash of the subject's screened data (names, birth date, countries, ids …).
    subject_hash BYTEA NOT NULL,
    score_bp     BIGINT NOT NULL,
    -- open, confirmed, dismissed, entry_removed
    status       TEXT NOT NULL,
    details      BYTEA NOT NULL,
    key_id       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    decided_at   BIGINT,
    decided_by   TEXT,
    reason       BYTEA
);
CREATE UNIQUE INDEX screening_reviews_open
    ON screening_reviews (customer_id, subject, list_id, entry_id) WHERE status = 'open';
CREATE INDEX screening_reviews_status ON screening_reviews (status, id);
CREATE INDEX screening_reviews_entry ON screening_reviews (list_id, entry_id);

-- A dismissal holds while neither the subject's screened data nor the entry changes.
CREATE TABLE screening_dismissals (
    customer_id  UUID NOT NULL,
    subject      TEXT NOT NULL,
    list_id      TEXT NOT NULL,
    entry_id     TEXT NOT NULL,
    entry_hash   TEXT NOT NULL,
    subject_hash BYTEA NOT NULL,
    PRIMARY KEY (customer_id, subject, list_id, entry_id, entry_hash, subject_hash)
);
