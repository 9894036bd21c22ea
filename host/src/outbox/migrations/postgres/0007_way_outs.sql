-- The labels of a message's ways out (its decision's chain, accounts by name)
-- as a JSON array: with chain_pos it says which account a message waits for,
-- so /metrics and /v1/status count the open messages per account without
-- reading every decision. Messages stored before get theirs from the decision
-- (all or, should one decision not be JSON, none: they count as unknown).
ALTER TABLE outbox_messages ADD COLUMN way_outs TEXT;
DO $$
BEGIN
    UPDATE outbox_messages
        SET way_outs = (SELECT jsonb_agg(c.value -> 'label' ORDER BY c.ord)::text
                        FROM jsonb_array_elements(decision_json::jsonb -> 'chain')
                             WITH ORDINALITY AS c (value, ord))
        WHERE jsonb_typeof(decision_json::jsonb -> 'chain') = 'array';
EXCEPTION WHEN others THEN
    NULL;
END
$$;
