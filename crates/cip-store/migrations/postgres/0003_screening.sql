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
