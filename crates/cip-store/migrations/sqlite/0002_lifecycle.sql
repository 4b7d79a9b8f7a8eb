-- Every status change of an account, with its reason and actor, written in the same
-- transaction as the change. version = the account's version after the change.
CREATE TABLE account_transitions (
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    version     INTEGER NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (account_id, version)
) WITHOUT ROWID;

-- Where the provider wants to hear about changes. The signing secret is sealed.
CREATE TABLE webhook_endpoints (
    id          BLOB PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    secret      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);

-- Events to deliver, written in the same transaction as the change they announce.
CREATE TABLE webhook_events (
    id         BLOB PRIMARY KEY,
    event_type TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- One delivery per (event, endpoint): the outbox the delivery job claims from, and its log.
CREATE TABLE webhook_deliveries (
    event_id        BLOB NOT NULL REFERENCES webhook_events (id),
    endpoint_id     BLOB NOT NULL REFERENCES webhook_endpoints (id),
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (event_id, endpoint_id)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, event_id);
