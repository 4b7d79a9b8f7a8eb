-- The record digest moves out of the customer row into a narrow table of its own, in two
-- parts sealed apart: 1 = the policy facts (kind, determination facts, crypto payment; ~100 B),
-- 2 = the screening queries (names, birth date, countries, identifiers). Keyed (part, customer)
-- WITHOUT ROWID, so a pass of the policy reads only the policy parts, contiguous and in id order,
-- instead of walking every customer row and its overflowing document
-- (docs/design/0014-record-digest.md, "2026-12-02: a table of its own").
CREATE TABLE customer_digests (
    part        INTEGER NOT NULL,
    customer_id BLOB NOT NULL,
    version     INTEGER NOT NULL,
    key_id      INTEGER NOT NULL,
    sealed      BLOB NOT NULL,
    PRIMARY KEY (part, customer_id)
) WITHOUT ROWID;
-- The single-ciphertext digests of migration 0007 cannot be split without the keys: they are
-- dropped, and those records read their document until the next key rotation re-derives them.
ALTER TABLE customers DROP COLUMN digest;
