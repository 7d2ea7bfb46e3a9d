-- Built-in accounts and their sign-in sessions. Timestamps are epoch microseconds (UTC).
CREATE TABLE accounts (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    email                TEXT    NOT NULL UNIQUE,
    password_hash        TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    password_changed_at  BIGINT  NOT NULL
);
CREATE TABLE account_sessions (
    id          TEXT    PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    ended_at    BIGINT,
    user_agent  TEXT
);
CREATE INDEX account_sessions_by_account ON account_sessions (account_id, created_at);
CREATE INDEX account_sessions_ended ON account_sessions (expires_at) WHERE ended_at IS NOT NULL;
