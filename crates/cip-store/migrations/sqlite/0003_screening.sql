-- Screening lists (sanctions and the provider's own block lists) as versioned snapshots.
-- Entries are public list data, not personal data: they are kept in clear, as JSON.
-- A version row and the switch of the active pointer are written in one transaction, so a
-- half-loaded version is never visible. (0002 is left to the branch that took it first.)
CREATE TABLE screening_list_versions (
    list_id       TEXT NOT NULL,
    version       INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    entry_count   INTEGER NOT NULL,
    imported_at   INTEGER NOT NULL,
    source_format TEXT NOT NULL,
    added         INTEGER NOT NULL,
    changed       INTEGER NOT NULL,
    removed       INTEGER NOT NULL,
    -- JSON array of cip_screen::ListEntry, sorted by entry id.
    entries       BLOB NOT NULL,
    PRIMARY KEY (list_id, version)
);

CREATE TABLE screening_lists (
    list_id        TEXT PRIMARY KEY,
    active_version INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    FOREIGN KEY (list_id, active_version) REFERENCES screening_list_versions (list_id, version)
);

-- Potential matches of customers and beneficial owners, for an analyst to confirm or
-- dismiss. What the match says about the person (the explanation, the reason given) is
-- sealed like other personal data; ids, scores and statuses are clear for filtering.
CREATE TABLE screening_reviews (
    id           BLOB PRIMARY KEY,
    customer_id  BLOB NOT NULL,
    -- `customer` or `owner/<n>` (the n-th beneficial owner).
    subject      TEXT NOT NULL,
    list_id      TEXT NOT NULL,
    entry_id     TEXT NOT NULL,
    list_version INTEGER NOT NULL,
    entry_hash   TEXT NOT NULL,
    -- Keyed hash of the subject's screened data (names, birth date, countries, ids …).
    subject_hash BLOB NOT NULL,
    score_bp     INTEGER NOT NULL,
    -- open, confirmed, dismissed, entry_removed
    status       TEXT NOT NULL,
    details      BLOB NOT NULL,
    key_id       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   TEXT,
    reason       BLOB
);
CREATE UNIQUE INDEX screening_reviews_open
    ON screening_reviews (customer_id, subject, list_id, entry_id) WHERE status = 'open';
CREATE INDEX screening_reviews_status ON screening_reviews (status, id);
CREATE INDEX screening_reviews_entry ON screening_reviews (list_id, entry_id);

-- A dismissal holds while neither the subject's screened data nor the entry changes.
CREATE TABLE screening_dismissals (
    customer_id  BLOB NOT NULL,
    subject      TEXT NOT NULL,
    list_id      TEXT NOT NULL,
    entry_id     TEXT NOT NULL,
    entry_hash   TEXT NOT NULL,
    subject_hash BLOB NOT NULL,
    PRIMARY KEY (customer_id, subject, list_id, entry_id, entry_hash, subject_hash)
);
