-- One row per instrument and minute (minute = epoch microseconds of its start, UTC). Prices and
-- volume are exact decimal text, so the writer compares them in Rust and writes whole rows.
CREATE TABLE candle_1m (
    instrument  TEXT    NOT NULL,
    minute      BIGINT  NOT NULL,
    open        TEXT    NOT NULL,
    high        TEXT    NOT NULL,
    low         TEXT    NOT NULL,
    close       TEXT    NOT NULL,
    volume      TEXT    NOT NULL,
    trades      BIGINT  NOT NULL,
    PRIMARY KEY (instrument, minute)
);
