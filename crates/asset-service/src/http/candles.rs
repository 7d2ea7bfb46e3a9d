//! Minute candles of one instrument over a time range: the original's market-data query. The
//! range is bounded so one request cannot ask the database for years of rows; longer histories
//! are read page by page (`from` = the last minute received, plus one).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use signal_domain::{Failure, FailureKind, Price, Timestamp};
use signal_ports::Candle;
use signal_web::{ApiError, ApiPath, ApiQuery, AuthUser};

use super::AssetState;

const DEFAULT_SPAN_MINUTES: i64 = 60;
const MAX_SPAN_DAYS: i64 = 31;
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 5_000;

pub fn routes() -> Router<AssetState> {
    Router::new().route("/api/v1/instruments/{id}/candles", get(candles))
}

/// `from` and `to` are RFC 3339; the range is `[from, to)` and defaults to the last hour.
#[derive(Deserialize)]
struct CandleQuery {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct CandleView {
    minute: Timestamp,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    #[serde(with = "rust_decimal::serde::str")]
    volume: rust_decimal::Decimal,
    trades: u32,
}

impl From<Candle> for CandleView {
    fn from(candle: Candle) -> Self {
        Self {
            minute: candle.minute,
            open: candle.open,
            high: candle.high,
            low: candle.low,
            close: candle.close,
            volume: candle.volume,
            trades: candle.trades,
        }
    }
}

/// A candle query the store is not asked.
#[derive(Debug, thiserror::Error)]
enum CandleQueryError {
    #[error("`from` ({from}) must be before `to` ({to})")]
    Reversed { from: Timestamp, to: Timestamp },
    #[error("at most {MAX_SPAN_DAYS} days per request; page through longer ranges")]
    TooLong,
    #[error("`limit` must be between 1 and {MAX_LIMIT}, got {0}")]
    Limit(usize),
}

impl Failure for CandleQueryError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

impl CandleQuery {
    fn range(&self) -> Result<(Timestamp, Timestamp), CandleQueryError> {
        let to = self.to.unwrap_or_else(Utc::now);
        let from = self
            .from
            .unwrap_or_else(|| to - Duration::minutes(DEFAULT_SPAN_MINUTES));
        if from >= to {
            return Err(CandleQueryError::Reversed { from, to });
        }
        if to - from > Duration::days(MAX_SPAN_DAYS) {
            return Err(CandleQueryError::TooLong);
        }
        Ok((from, to))
    }

    fn limit(&self) -> Result<usize, CandleQueryError> {
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            limit @ 1..=MAX_LIMIT => Ok(limit),
            other => Err(CandleQueryError::Limit(other)),
        }
    }
}

async fn candles(
    AuthUser(_): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<CandleQuery>,
) -> Result<Json<Vec<CandleView>>, ApiError> {
    let id = state.assets.resolve(&id)?;
    let (from, to) = query.range()?;
    let limit = query.limit()?;
    let candles = state.assets.candles(&id, from, to, limit).await?;
    Ok(Json(candles.into_iter().map(CandleView::from).collect()))
}
