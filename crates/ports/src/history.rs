//! Candle history port: what an exchange can tell about the past, for the candles the store
//! lacks (before this system ran, or while it was not watching an instrument).

use async_trait::async_trait;
use chrono::NaiveDate;
use signal_domain::{InstrumentId, Market, Timestamp};

use crate::error::BoxError;
use crate::store::{Candle, DailyCandle};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0} has no candle history from this source")]
    NotServed(InstrumentId),
    /// The exchange could not be reached, refused the call, or is rate limiting: a later call
    /// may succeed.
    #[error("the exchange's candle history is unavailable")]
    Unavailable(#[source] BoxError),
    /// The exchange answered something this adapter cannot read.
    #[error("the exchange's candle history could not be read")]
    Unreadable(#[source] BoxError),
}

/// The candles an exchange reports for past trading. Implementations page through the
/// exchange's own limits (rows per call) within its rate limit; the caller bounds the range.
#[async_trait]
pub trait CandleHistory: Send + Sync + 'static {
    /// Whether it has history for instruments of `market`.
    fn serves(&self, market: Market) -> bool;

    /// One-minute candles of `instrument` whose minute is in `[from, to)`, oldest first, as the
    /// exchange reports them: minutes without trades are absent, and `trades` is zero where the
    /// exchange does not count them.
    async fn minute_candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, HistoryError>;

    /// Daily candles of `instrument` for the market's trading days `first..=last`, oldest
    /// first; days without trading (weekends, holidays) are absent.
    async fn daily_candles(
        &self,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, HistoryError>;
}
