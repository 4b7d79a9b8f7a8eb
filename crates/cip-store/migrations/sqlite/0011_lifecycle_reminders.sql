-- Reminders sent to the provider before an account's deadline (the verification deadline of
-- a pending account, the re-verification date of an active one), under the policy in force
-- (docs/design/0013-policy.md). The key makes each (account, kind, due date) one reminder,
-- however many instances run the lifecycle pass at once: the row, the webhook event that
-- carries it and the audit entry commit together, or not at all.
CREATE TABLE lifecycle_reminders (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    -- verification | reverification
    kind       TEXT NOT NULL,
    due_at     INTEGER NOT NULL,
    sent_at    INTEGER NOT NULL,
    event_id   BLOB NOT NULL,
    PRIMARY KEY (account_id, kind, due_at)
) WITHOUT ROWID;
