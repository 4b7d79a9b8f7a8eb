-- The birth-year signature of a keyed customer (docs/design/0008-screening-service.md, "The
-- birth-date factor of the bound"): opaque bits from the blinded birth years of the
-- customer's subjects, 0 when unknown. Carried on every key row, so the lookup of a list
-- change's keys returns it with the holders (no second read), and on the key set, so a write
-- knows when it changed. 0 (unknown) is always sound: rows written before this migration
-- are re-keyed by the backfill (the key generation changes with it).
ALTER TABLE customer_screen_keys ADD COLUMN born BIGINT NOT NULL DEFAULT 0;
ALTER TABLE customer_screen_keysets ADD COLUMN born BIGINT NOT NULL DEFAULT 0;
