//! Conversions between domain values and the portable column types.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use signal_domain::{InstrumentId, Price, Timestamp, UserId};
use signal_ports::StoreError;
use std::str::FromStr;

pub(crate) fn backend_error(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(value: i64) -> Result<Timestamp, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(value).ok_or_else(|| corrupt("timestamp", value))
}

pub(crate) fn opt_from_micros(value: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    value.map(from_micros).transpose()
}

pub(crate) fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(text).map_err(|e| corrupt("decimal", format!("{text}: {e}")))
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
