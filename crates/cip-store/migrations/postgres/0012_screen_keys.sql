-- The keyed index of screening keys (docs/design/0008-screening-service.md, "Keyed
-- re-screen"): for each customer, the blinded keys (a keyed hash of the screening engine's
-- name-token and identifier keys) through which screening can find a candidate for any of
-- its subjects. A list change looks up the changed entries' keys and re-screens only the
-- customers found, instead of every customer. Written with the record in one transaction.
CREATE TABLE customer_screen_keys (
    key         BIGINT NOT NULL,
    customer_id UUID NOT NULL,
    PRIMARY KEY (key, customer_id)
);
-- One row per keyed customer: the generation of its keys (key derivation and blinding key)
-- and the key set itself (8 bytes per key), so an update removes exactly the old keys.
-- Customers without a row of the current generation are not keyed yet: until the backfill
-- has keyed them, a list change re-screens every customer.
CREATE TABLE customer_screen_keysets (
    customer_id UUID PRIMARY KEY REFERENCES customers (id),
    generation  BIGINT NOT NULL,
    keys        BYTEA NOT NULL
);
CREATE INDEX customer_screen_keysets_generation ON customer_screen_keysets (generation);
