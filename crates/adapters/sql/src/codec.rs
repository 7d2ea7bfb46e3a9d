//! Conversions between domain values and the portable column types, and sqlx's errors as the
//! store port's.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use signal_domain::{InstrumentId, Price, Timestamp, UserId};
use signal_ports::{BoxError, StoreError};
use std::str::FromStr;

/// sqlx's error as the port's: a uniqueness violation is a conflict, a connection that cannot be
/// had or was lost is unavailability, anything else a failed statement.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            StoreError::Conflict(Box::new(error))
        }
        sqlx::Error::Database(database) if connection_lost(database.code().as_deref()) => {
            StoreError::Unavailable(Box::new(error))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(error)),
        _ => StoreError::Failed(Box::new(error)),
    }
}

/// PostgreSQL's SQLSTATE for a connection that failed (class 08) or a server shutting down or
/// restarting (57P01 to 57P03).
fn connection_lost(sqlstate: Option<&str>) -> bool {
    sqlstate
        .is_some_and(|code| code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03"))
}

pub(crate) fn corrupt(what: &'static str, source: impl Into<BoxError>) -> StoreError {
    StoreError::Corrupt {
        what,
        source: source.into(),
    }
}

/// A stored value outside the set the code writes.
#[derive(Debug, thiserror::Error)]
#[error("unexpected value `{0}`")]
pub(crate) struct UnexpectedValue(pub String);

/// `$first, $first+1, ...`: `count` placeholders, numbered by hand because `$n` is what both
/// backends understand.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(value: i64) -> Result<Timestamp, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(value)
        .ok_or_else(|| corrupt("timestamp", UnexpectedValue(value.to_string())))
}

pub(crate) fn opt_from_micros(value: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    value.map(from_micros).transpose()
}

pub(crate) fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(text).map_err(|e| corrupt("decimal", e))
}

pub(crate) fn price(text: &str) -> Result<Price, StoreError> {
    Price::new(decimal(text)?).map_err(|e| corrupt("price", e))
}

pub(crate) fn instrument(text: &str) -> Result<InstrumentId, StoreError> {
    text.parse().map_err(|e| corrupt("instrument", e))
}

pub(crate) fn user(text: String) -> Result<UserId, StoreError> {
    UserId::new(text).map_err(|e| corrupt("user", e))
}
