-- Timestamps are epoch microseconds (UTC); prices and percentages are exact decimal text.
CREATE TABLE watchlist (
    user_id     TEXT    NOT NULL,
    instrument  TEXT    NOT NULL,
    added_at    BIGINT  NOT NULL,
    PRIMARY KEY (user_id, instrument)
);

CREATE TABLE alert_rule (
    id                 BIGSERIAL PRIMARY KEY,
    user_id            TEXT    NOT NULL,
    instrument         TEXT    NOT NULL,
    condition          TEXT    NOT NULL,
    value              TEXT    NOT NULL,
    repeat_mode        TEXT    NOT NULL,
    cooldown_ms        BIGINT  NOT NULL DEFAULT 0,
    rearm_band         TEXT    NOT NULL DEFAULT '0',
    expires_at         BIGINT,
    note               TEXT,
    state              TEXT    NOT NULL,
    rearmed            BIGINT  NOT NULL DEFAULT 0,
    cooling_until      BIGINT,
    trigger_count      BIGINT  NOT NULL DEFAULT 0,
    last_triggered_at  BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX alert_rule_by_user ON alert_rule (user_id, instrument);
CREATE INDEX alert_rule_active ON alert_rule (state) WHERE state IN ('armed', 'cooling');

CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT    NOT NULL UNIQUE,
    event_key   TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    sent_at     BIGINT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
