-- Expired leases are found through outbox_by_state (state = 'sending': the
-- messages in flight, few); a lease index of its own cost two more index
-- updates per message, one at the claim and one at the outcome.
DROP INDEX outbox_leases;
