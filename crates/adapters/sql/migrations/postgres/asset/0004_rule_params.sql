-- Every parameter of a rule's condition, as JSON (see ConditionParams); NULL for rules stored
-- before, whose one number is in `value`.
ALTER TABLE alert_rule ADD COLUMN params TEXT;
