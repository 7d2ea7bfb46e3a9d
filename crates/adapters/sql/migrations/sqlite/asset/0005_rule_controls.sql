-- What a user controls on a rule besides its condition: a pause (the rule keeps its state and is
-- not evaluated while `paused_at` is set), a snooze (it cannot fire before `snoozed_until`), the
-- message its alerts carry (a template with {{placeholders}}), and a second condition that must
-- be met within a time of the first (JSON: its kind, parameters and `withinSeconds`).
ALTER TABLE alert_rule ADD COLUMN paused_at BIGINT;
ALTER TABLE alert_rule ADD COLUMN snoozed_until BIGINT;
ALTER TABLE alert_rule ADD COLUMN message TEXT;
ALTER TABLE alert_rule ADD COLUMN and_condition TEXT;
