-- Notices shown to customers and the history of each customer's U.S./foreign determination
-- (docs/design/0015-notices-history-consistency.md). Codes and times only, no personal data.

-- Which policy version's notice a customer was shown, and when.
CREATE TABLE notices_shown (
    id             BLOB PRIMARY KEY,
    customer_id    BLOB NOT NULL REFERENCES customers (id),
    policy_version TEXT NOT NULL,
    shown_at       INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    actor          TEXT NOT NULL
);
CREATE INDEX notices_shown_customer ON notices_shown (customer_id, shown_at);

-- One row per change of a customer's determination: statuses and (kind, country) of the
-- evidence as JSON (summary), and its SHA-256 (digest) to tell a change from a repeat.
CREATE TABLE determination_history (
    customer_id     BLOB NOT NULL REFERENCES customers (id),
    seq             INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    cause           TEXT NOT NULL,
    record_version  INTEGER NOT NULL,
    account_id      BLOB,
    previous_status TEXT,
    status          TEXT NOT NULL,
    summary         BLOB NOT NULL,
    digest          BLOB NOT NULL,
    PRIMARY KEY (customer_id, seq)
);

-- The determination pass looks at accounts accessed since its last run.
CREATE INDEX accounts_last_accessed ON accounts (last_accessed_at, id);
