-- The record digest moves out of the customer row into a narrow table of its own, in two
-- parts sealed apart: 1 = the policy facts (kind, determination facts, crypto payment; ~100 B),
-- 2 = the screening queries (names, birth date, countries, identifiers). A pass of the policy
-- then reads only the policy parts instead of every customer row and its TOASTed document
-- (docs/design/0014-record-digest.md, "2026-12-02: a table of its own").
CREATE TABLE customer_digests (
    part        SMALLINT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    key_id      BIGINT NOT NULL,
    sealed      BYTEA NOT NULL,
    PRIMARY KEY (part, customer_id)
);
-- The single-ciphertext digests of migration 0007 cannot be split without the keys: they are
-- dropped, and those records read their document until the next key rotation re-derives them.
ALTER TABLE customers DROP COLUMN digest;
