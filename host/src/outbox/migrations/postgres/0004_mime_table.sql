-- A message's MIME in a table of its own: a claim or an outcome rewrites the
-- message's small row, not its bytes (a 2 KB message filled a page of its own,
-- and every state change wrote that page again).
CREATE TABLE outbox_mime (
    message TEXT PRIMARY KEY NOT NULL REFERENCES outbox_messages (id) ON DELETE CASCADE,
    mime    BYTEA NOT NULL
);
INSERT INTO outbox_mime (message, mime) SELECT id, mime FROM outbox_messages;
ALTER TABLE outbox_messages DROP COLUMN mime;
