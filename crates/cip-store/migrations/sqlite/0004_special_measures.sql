-- Special measures (EO 13984 §2). A measure is public legal data: the document is clear JSON;
-- the columns beside it are what enforcement filters on. Times are Unix micros (00:00 UTC of
-- the effective and expiry dates).
CREATE TABLE special_measures (
    id                  BLOB PRIMARY KEY,
    version             INTEGER NOT NULL,
    -- jurisdiction | designated_persons
    target_kind         TEXT NOT NULL,
    country             TEXT,
    list_id             TEXT,
    effective_at        INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    revoked_at          INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    -- When the job finished applying the measure to existing accounts, and the lease of the
    -- instance applying it now.
    swept_at            INTEGER,
    sweep_claimed_until INTEGER,
    document            BLOB NOT NULL
);
CREATE INDEX special_measures_window ON special_measures (effective_at, expires_at);

-- Every account a measure (or a confirmed screening hit) touched: what is required, by when,
-- and the evidence that tied the account to the target. Recorded once per (measure, account),
-- or per (review item, account) for the default action of a hit no measure targets.
CREATE TABLE special_measure_actions (
    id          BLOB PRIMARY KEY,
    measure_id  BLOB REFERENCES special_measures (id),
    review_id   BLOB,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    customer_id BLOB NOT NULL,
    -- apply_conditions | restrict | close
    action      TEXT NOT NULL,
    deadline    INTEGER,
    evidence    BLOB NOT NULL,
    -- opening | measure_in_effect | confirmed_hit
    cause       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX special_measure_actions_measure
    ON special_measure_actions (measure_id, account_id) WHERE measure_id IS NOT NULL;
CREATE UNIQUE INDEX special_measure_actions_review
    ON special_measure_actions (review_id, account_id) WHERE measure_id IS NULL;
CREATE INDEX special_measure_actions_account ON special_measure_actions (account_id);
