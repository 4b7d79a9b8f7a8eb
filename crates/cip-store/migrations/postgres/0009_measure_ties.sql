-- An action whose tie to its measure's target has gone (the customer's record changed and no
-- longer names the jurisdiction): the action stays for an analyst to lift, marked with when
-- the record stopped tying it (docs/design/0010-special-measures.md).
ALTER TABLE special_measure_actions ADD COLUMN untied_at BIGINT;
