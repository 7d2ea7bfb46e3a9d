-- The notification channels a rule's alerts go to: a JSON array of the Alert Service's channel
-- ids, or NULL for all of the user's channels (every rule stored before).
ALTER TABLE alert_rule ADD COLUMN channels TEXT;
