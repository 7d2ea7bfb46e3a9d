-- Engines catch up with the rules by change, not by reading every rule: the rules written since
-- a moment are found by their updated_at, and the rules deleted since then by their tombstones
-- (kept for a day; engines catch up every 30 seconds).
CREATE INDEX alert_rule_by_change ON alert_rule (updated_at);

CREATE TABLE alert_rule_deleted (
    id          BIGINT  PRIMARY KEY,
    deleted_at  BIGINT  NOT NULL
);
CREATE INDEX alert_rule_deleted_by_time ON alert_rule_deleted (deleted_at);
