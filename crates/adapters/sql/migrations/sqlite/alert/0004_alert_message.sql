-- What the alert says when its rule has a message: the rule's template rendered for its owner
-- (their language and time zone) when the alert was stored. NULL: the standard wording.
ALTER TABLE alert_history ADD COLUMN message TEXT;
