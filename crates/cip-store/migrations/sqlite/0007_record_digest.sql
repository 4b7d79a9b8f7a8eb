-- The record digest: what bulk jobs (policy re-evaluation, re-screening after a list change)
-- need of a customer — determination facts and screening subjects — sealed as one ciphertext
-- when the record is written, so a pass over every customer opens one small value instead of
-- every field of the document (docs/design/0014-record-digest.md). NULL for records written
-- before this migration: readers fall back to the document.
ALTER TABLE customers ADD COLUMN digest BLOB;
