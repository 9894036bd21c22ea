-- Fewer b-trees written per message (each one a WAL page per commit at least).
--
-- Expired leases are found through outbox_by_state (state = 'sending': the
-- messages in flight, few); a lease index of its own cost two more updates per
-- message, one at the claim and one at the outcome.
DROP INDEX outbox_leases;

-- Attempts are looked up by (message, seq) only: WITHOUT ROWID keeps them in
-- that one b-tree, not in a table plus an index on its key.
CREATE TABLE outbox_attempts_keyed (
    message   TEXT NOT NULL REFERENCES outbox_messages (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    chain_pos INTEGER NOT NULL,
    candidate TEXT NOT NULL,
    plugin    TEXT,
    class     TEXT NOT NULL,
    code      TEXT,
    text      TEXT NOT NULL,
    PRIMARY KEY (message, seq)
) WITHOUT ROWID;
INSERT INTO outbox_attempts_keyed (message, seq, at, chain_pos, candidate, plugin, class, code, text)
    SELECT message, seq, at, chain_pos, candidate, plugin, class, code, text FROM outbox_attempts;
DROP TABLE outbox_attempts;
ALTER TABLE outbox_attempts_keyed RENAME TO outbox_attempts;
