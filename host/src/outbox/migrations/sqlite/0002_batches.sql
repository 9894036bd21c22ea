-- Batches (`mailhost send-batch`, `POST /v1/batches`): one row per batch; its
-- messages point to it. Status is counted from the messages.
CREATE TABLE outbox_batches (
    id              TEXT PRIMARY KEY NOT NULL,
    label           TEXT,
    tenant          TEXT,
    user_name       TEXT,
    idem_scope      TEXT NOT NULL,
    idempotency_key TEXT,
    total           INTEGER NOT NULL,
    -- Messages per minute for this batch (0: not paced).
    per_minute      INTEGER NOT NULL,
    -- The pacing clock, shared by every process: the next row may be tried at this time.
    next_slot_at    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (idem_scope, idempotency_key)
);
CREATE INDEX outbox_batches_by_created ON outbox_batches (created_at, id);

ALTER TABLE outbox_messages ADD COLUMN batch_id TEXT REFERENCES outbox_batches (id);
CREATE INDEX outbox_by_batch ON outbox_messages (batch_id, state);
