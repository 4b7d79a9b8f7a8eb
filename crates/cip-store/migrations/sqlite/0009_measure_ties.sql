-- An action whose tie to its measure's target has gone (the customer's record changed and no
-- longer names the jurisdiction): the action stays for an analyst to lift, marked with when
-- the record stopped tying it (docs/design/0010-special-measures.md).
ALTER TABLE special_measure_actions ADD COLUMN untied_at INTEGER;

-- Applications a special measure refused (the account was never stored): the measure's
-- report lists them. Written with the refusal's audit entry, in its transaction.
CREATE TABLE special_measure_refusals (
    id           BLOB PRIMARY KEY,
    measure_id   BLOB NOT NULL REFERENCES special_measures (id),
    customer_id  BLOB NOT NULL,
    account_type TEXT NOT NULL,
    product      TEXT NOT NULL,
    -- prohibited | product_limit
    reason       TEXT NOT NULL,
    evidence     BLOB NOT NULL,
    actor        TEXT NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX special_measure_refusals_measure ON special_measure_refusals (measure_id, at);
