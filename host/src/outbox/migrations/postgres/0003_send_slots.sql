-- Sends in flight per account, shared by every process on this database
-- (an account's `max_concurrent`). A slot of a process that died expires at `until`.
CREATE TABLE outbox_send_slots (
    slot    TEXT PRIMARY KEY NOT NULL,
    account TEXT NOT NULL,
    owner   TEXT NOT NULL,
    until   BIGINT NOT NULL
);
CREATE INDEX outbox_send_slots_account ON outbox_send_slots (account, until);
CREATE INDEX outbox_send_slots_owner ON outbox_send_slots (owner);

-- Claims take due messages in (priority, next_attempt_at, created_at, id) order:
-- an index in exactly that order lets a claim read only the rows it takes.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox_messages (priority, next_attempt_at, created_at, id)
    WHERE state IN ('queued', 'deferred');
