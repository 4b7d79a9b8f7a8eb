-- Leases of background jobs that must run once across every instance on one database
-- (e.g. the re-screen of stored customers after a list version): whoever holds an unexpired
-- lease on a name runs it; a lease left by an instance that died expires and is taken over.
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
