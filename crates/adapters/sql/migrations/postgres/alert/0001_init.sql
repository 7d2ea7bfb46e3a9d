-- Timestamps are epoch microseconds (UTC); prices and percentages are exact decimal text.
CREATE TABLE alert_history (
    id               BIGSERIAL PRIMARY KEY,
    event_id         TEXT    NOT NULL UNIQUE,
    user_id          TEXT    NOT NULL,
    rule_id          BIGINT  NOT NULL,
    instrument       TEXT    NOT NULL,
    condition        TEXT    NOT NULL,
    level            TEXT    NOT NULL,
    percent          TEXT,
    price            TEXT    NOT NULL,
    exchange_time    BIGINT  NOT NULL,
    triggered_at     BIGINT  NOT NULL,
    stored_at        BIGINT  NOT NULL,
    note             TEXT,
    simulated        BIGINT  NOT NULL,
    read_at          BIGINT,
    acknowledged_at  BIGINT
);
CREATE INDEX alert_history_by_user ON alert_history (user_id, id);
CREATE INDEX alert_history_unacknowledged ON alert_history (user_id, id) WHERE acknowledged_at IS NULL;
