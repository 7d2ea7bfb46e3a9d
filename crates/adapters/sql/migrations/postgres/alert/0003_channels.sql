-- Notification channels, one delivery per (alert, channel), and each user's notification
-- settings. Timestamps are epoch microseconds (UTC).
CREATE TABLE channels (
    id                 BIGSERIAL PRIMARY KEY,
    user_id            TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    -- Where it sends, as JSON (kind-specific; holds the webhook signing secret).
    target             TEXT    NOT NULL,
    state              TEXT    NOT NULL,
    -- SHA-256 of the one-time code proving a pending channel's target (Telegram link, email
    -- confirmation); the code itself is never stored.
    pending_code_hash  TEXT    UNIQUE,
    pending_until      BIGINT,
    -- A delivery worker holds the channel (and its due deliveries) until then; renewed while it
    -- works, so only a dead worker's claim lapses. One worker at a time, so the cap holds.
    claimed_until      BIGINT,
    disabled_reason    TEXT,
    disabled_at        BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX channels_by_user ON channels (user_id, id);

CREATE TABLE deliveries (
    id               BIGSERIAL PRIMARY KEY,
    -- NULL for a test message.
    alert_id         BIGINT,
    event_id         TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    channel_id       BIGINT  NOT NULL,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL,
    -- Due from then on (first attempt, retry, end of quiet hours, room under the cap).
    next_attempt_at  BIGINT  NOT NULL,
    message_id       TEXT,
    last_error       TEXT,
    last_status      BIGINT,
    created_at       BIGINT  NOT NULL,
    delivered_at     BIGINT,
    latency_ms       BIGINT,
    UNIQUE (event_id, channel_id)
);
CREATE INDEX deliveries_due ON deliveries (kind, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_user ON deliveries (user_id, id);
CREATE INDEX deliveries_by_channel ON deliveries (channel_id, id);
CREATE INDEX deliveries_pending_by_channel ON deliveries (channel_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_sent ON deliveries (channel_id, delivered_at) WHERE delivered_at IS NOT NULL;

CREATE TABLE delivery_attempts (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  BIGINT  NOT NULL,
    at           BIGINT  NOT NULL,
    ok           BIGINT  NOT NULL,
    status       BIGINT,
    error        TEXT,
    duration_ms  BIGINT  NOT NULL
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

CREATE TABLE user_settings (
    user_id     TEXT    PRIMARY KEY,
    -- The settings as JSON: language, time zone, quiet hours, cap per channel per minute.
    settings    TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
