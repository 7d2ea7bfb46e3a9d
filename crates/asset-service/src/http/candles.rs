//! Candles of one instrument: minute candles over a time range (the original's market-data
//! query), or with `interval` the last bars of 1m, 5m, 15m, 1h or 1d built from them, for charts,
//! with what the store lacks fetched from the exchange meanwhile (`complete: false` until it is
//! in). Ranges are bounded so one request cannot ask the database for years of rows; longer
//! histories are read page by page (`from` = the last minute received, plus one; `to` = the
//! oldest bar). Day bars reach further: past days are the exchange's daily candles.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use signal_domain::{Bar, Failure, FailureKind, Interval, Price, Timestamp};
use signal_ports::Candle;
use signal_web::{ApiError, ApiPath, ApiQuery, AuthUser};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AssetState;

const DEFAULT_SPAN_MINUTES: i64 = 60;
const MAX_SPAN_DAYS: i64 = 31;
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 5_000;
/// Most day bars per request: a few pages of the exchanges' daily candles.
const MAX_DAY_BARS: i64 = 1_000;

pub fn routes() -> OpenApiRouter<AssetState> {
    OpenApiRouter::new().routes(routes!(candles))
}

/// `from` and `to` are RFC 3339; the range is `[from, to)` and defaults to the last hour. With
/// `interval`, the answer is the `limit` bars before `to` (default now), and `from` is not used.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CandleQuery {
    /// Start of the range (RFC 3339), minute candles only; default an hour before `to`.
    from: Option<DateTime<Utc>>,
    /// End of the range, exclusive (RFC 3339); default now.
    to: Option<DateTime<Utc>>,
    /// 1 to 5000 (default 500); with `interval`, at most 31 days of bars.
    limit: Option<usize>,
    /// Bars of this interval instead of minute candles.
    #[param(value_type = Option<Interval>)]
    interval: Option<Interval>,
}

/// Bars of one interval, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = BarSeries)]
struct SeriesView {
    interval: Interval,
    candles: Vec<BarView>,
    /// The prices they were built from are the simulated market's.
    simulated: bool,
    /// `false` while the exchange's history is being fetched: asking again shortly gives more.
    complete: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Bar)]
struct BarView {
    /// The bar's start.
    time: DateTime<Utc>,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    volume: rust_decimal::Decimal,
}

impl From<Bar> for BarView {
    fn from(bar: Bar) -> Self {
        Self {
            time: bar.start,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
        }
    }
}

/// One minute of trades.
#[derive(Serialize, ToSchema)]
#[schema(as = Candle)]
struct CandleView {
    minute: DateTime<Utc>,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String)]
    volume: rust_decimal::Decimal,
    trades: u32,
}

/// What the candle route answers: minute candles, or bars of the `interval` asked for.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum CandleAnswer {
    Minutes(Vec<CandleView>),
    Bars(SeriesView),
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
    #[error("at most {most} bars of {interval} per request; page back with `to`")]
    TooManyBars { interval: Interval, most: i64 },
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

    /// How many bars of `interval` to answer: `limit`, within the span one request may read.
    fn bars(&self, interval: Interval) -> Result<usize, CandleQueryError> {
        let most = match interval {
            Interval::D1 => MAX_DAY_BARS,
            _ => Duration::days(MAX_SPAN_DAYS).num_seconds() / interval.length().num_seconds(),
        };
        let limit = self.limit()?;
        if i64::try_from(limit).map_or(true, |limit| limit > most) {
            return Err(CandleQueryError::TooManyBars { interval, most });
        }
        Ok(limit)
    }

    fn limit(&self) -> Result<usize, CandleQueryError> {
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            limit @ 1..=MAX_LIMIT => Ok(limit),
            other => Err(CandleQueryError::Limit(other)),
        }
    }
}

/// Minute candles of a time range, or with `interval` the last bars of 1m, 5m, 15m, 1h or 1d
/// folded from them (a day is the market's own calendar day).
#[utoipa::path(
    get,
    path = "/api/v1/instruments/{id}/candles",
    tag = "instruments",
    params(("id" = String, Path, description = super::api::INSTRUMENT_PARAM, example = "KRX:005930"), CandleQuery),
    responses(
        (status = 200, description = "`[Candle]` oldest first, or with `interval` a `BarSeries`", body = CandleAnswer),
        (status = 404, description = "No such instrument", body = signal_web::ErrorBody),
        (status = 422, description = "A reversed or too long range, or a `limit` out of range", body = signal_web::ErrorBody),
    )
)]
async fn candles(
    AuthUser(_caller): AuthUser,
    State(state): State<AssetState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<CandleQuery>,
) -> Result<Json<CandleAnswer>, ApiError> {
    let id = state.assets.resolve(&id)?;
    if let Some(interval) = query.interval {
        let count = query.bars(interval)?;
        let to = query.to.unwrap_or_else(Utc::now);
        let chart = state.assets.chart(&id, interval, to, count).await?;
        return Ok(Json(CandleAnswer::Bars(SeriesView {
            interval,
            candles: chart.bars.into_iter().map(BarView::from).collect(),
            simulated: state.sources.simulated(),
            complete: chart.complete,
        })));
    }
    let (from, to) = query.range()?;
    let limit = query.limit()?;
    let candles = state.assets.candles(&id, from, to, limit).await?;
    Ok(Json(CandleAnswer::Minutes(
        candles.into_iter().map(CandleView::from).collect(),
    )))
}
