-- Sends in flight per account, shared by every process on this database
-- (an account's `max_concurrent`). A slot of a process that died expires at `until`.
CREATE TABLE outbox_send_slots (
    slot    TEXT PRIMARY KEY NOT NULL,
    account TEXT NOT NULL,
    owner   TEXT NOT NULL,
    until   INTEGER NOT NULL
);
CREATE INDEX outbox_send_slots_account ON outbox_send_slots (account, until);
CREATE INDEX outbox_send_slots_owner ON outbox_send_slots (owner);
