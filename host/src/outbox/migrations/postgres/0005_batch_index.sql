-- Single messages (no batch) are most of the traffic. Keeping them out of the
-- batch index saves two index updates per state change (claim, outcome);
-- every query on it names a batch (`batch_id = $1`), which implies the condition.
DROP INDEX outbox_by_batch;
CREATE INDEX outbox_by_batch ON outbox_messages (batch_id, state) WHERE batch_id IS NOT NULL;
