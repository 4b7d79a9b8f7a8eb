-- Every status change of an account, with its reason and actor, written in the same
-- transaction as the change. version = the account's version after the change.
CREATE TABLE account_transitions (
    account_id  UUID NOT NULL REFERENCES accounts (id),
    version     BIGINT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (account_id, version)
);

-- Where the provider wants to hear about changes. The signing secret is sealed.
CREATE TABLE webhook_endpoints (
    id          UUID PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);

-- Events to deliver, written in the same transaction as the change they announce.
CREATE TABLE webhook_events (
    id         UUID PRIMARY KEY,
    event_type TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- One delivery per (event, endpoint): the outbox the delivery job claims from, and its log.
CREATE TABLE webhook_deliveries (
    event_id        UUID NOT NULL REFERENCES webhook_events (id),
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id),
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, event_id);
