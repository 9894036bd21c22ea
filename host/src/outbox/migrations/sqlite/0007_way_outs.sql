-- The labels of a message's ways out (its decision's chain, accounts by name)
-- as a JSON array: with chain_pos it says which account a message waits for,
-- so /metrics and /v1/status count the open messages per account without
-- reading every decision. Messages stored before get theirs from the decision.
ALTER TABLE outbox_messages ADD COLUMN way_outs TEXT;
UPDATE outbox_messages
    SET way_outs = (SELECT json_group_array(json_extract(c.value, '$.label'))
                    FROM json_each(decision_json, '$.chain') AS c)
    WHERE json_valid(decision_json) AND json_type(decision_json, '$.chain') = 'array';
