-- The outbox: every accepted message, committed before the caller is answered.
-- Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE outbox_messages (
    id              TEXT PRIMARY KEY NOT NULL,
    state           TEXT NOT NULL,
    action          TEXT NOT NULL,
    user_name       TEXT,
    tenant          TEXT,
    purpose         TEXT,
    idem_scope      TEXT NOT NULL,
    idempotency_key TEXT,
    message_id      TEXT NOT NULL,
    mime            BYTEA NOT NULL,
    envelope_from   TEXT NOT NULL,
    envelope_to     TEXT NOT NULL,
    options_json    TEXT NOT NULL,
    decision_json   TEXT NOT NULL,
    chain_pos       BIGINT NOT NULL DEFAULT 0,
    position_since  BIGINT,
    priority        BIGINT NOT NULL,
    attempts_count  BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (idem_scope, idempotency_key)
);
CREATE INDEX outbox_due ON outbox_messages (priority, next_attempt_at)
    WHERE state IN ('queued', 'deferred');
CREATE INDEX outbox_leases ON outbox_messages (lease_until) WHERE state = 'sending';
CREATE INDEX outbox_by_state ON outbox_messages (state, created_at);
CREATE INDEX outbox_by_created ON outbox_messages (created_at, id);

CREATE TABLE outbox_attempts (
    message   TEXT NOT NULL REFERENCES outbox_messages (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    chain_pos BIGINT NOT NULL,
    candidate TEXT NOT NULL,
    plugin    TEXT,
    class     TEXT NOT NULL,
    code      TEXT,
    text      TEXT NOT NULL,
    PRIMARY KEY (message, seq)
);

-- Sends per account in the last minute, shared by every process on this database.
CREATE TABLE outbox_rate (
    account TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX outbox_rate_account ON outbox_rate (account, at);

-- What the service last saw of each account's connection.
CREATE TABLE outbox_account_status (
    account    TEXT PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
