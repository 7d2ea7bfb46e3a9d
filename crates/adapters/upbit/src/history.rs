//! Upbit's candle history: `GET /v1/candles/minutes/1` and `/v1/candles/days`, 200 candles a
//! request, newest first, paged backwards with `to` (exclusive). Upbit has candles only for
//! intervals with trades, so gaps are normal. Every request passes the REST client's gate, so
//! history never pushes Upbit past its per-second limit, nor competes unpaced with snapshots.

use async_trait::async_trait;
use chrono::NaiveDate;
use signal_domain::{InstrumentId, Market, Timestamp};
use signal_ports::{Candle, CandleHistory, DailyCandle, HistoryError};

use crate::rest::RestError;
use crate::UpbitFeed;

/// Upbit's largest page.
const PAGE: usize = 200;

fn unavailable(error: RestError) -> HistoryError {
    match error {
        RestError::Parse(e) => HistoryError::Unreadable(Box::new(e)),
        other => HistoryError::Unavailable(Box::new(other)),
    }
}

/// Keeps what parsed; an element Upbit sent in a shape this parser does not know is logged and
/// skipped rather than failing the history around it.
fn readable<T>(results: Vec<Result<T, crate::ParseError>>) -> Vec<T> {
    results
        .into_iter()
        .filter_map(|result| {
            result
                .map_err(|e| tracing::warn!(error = %signal_domain::ErrorChain(&e), "skipped an Upbit candle"))
                .ok()
        })
        .collect()
}

#[async_trait]
impl CandleHistory for UpbitFeed {
    fn serves(&self, market: Market) -> bool {
        market == Market::Upbit
    }

    async fn minute_candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, HistoryError> {
        if !self.serves(instrument.market()) {
            return Err(HistoryError::NotServed(instrument.clone()));
        }
        let mut collected = Vec::new();
        let mut before = to;
        while before > from {
            // No more candles than minutes left to cover: a short range costs a short answer.
            let count = usize::try_from((before - from).num_minutes())
                .unwrap_or(PAGE)
                .clamp(1, PAGE);
            let page = readable(
                self.rest
                    .minute_candles(instrument.symbol(), before, count)
                    .await
                    .map_err(unavailable)?,
            );
            let Some(oldest) = page.iter().map(|c| c.minute).min() else {
                break; // nothing earlier
            };
            // Fewer than asked: Upbit has nothing older.
            let full = page.len() == count;
            collected.extend(page.into_iter().filter(|c| c.minute >= from));
            if !full || oldest >= before {
                break;
            }
            before = oldest;
        }
        collected.sort_by_key(|c| c.minute);
        collected.dedup_by_key(|c| c.minute);
        Ok(collected)
    }

    async fn daily_candles(
        &self,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, HistoryError> {
        if !self.serves(instrument.market()) {
            return Err(HistoryError::NotServed(instrument.clone()));
        }
        let day_start = |day: NaiveDate| day.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
        let mut collected = Vec::new();
        let mut before = last.succ_opt().and_then(day_start);
        while let Some(to) = before.filter(|to| day_start(first).is_some_and(|first| *to > first)) {
            let days_left = day_start(first).map_or(1, |first| (to - first).num_days());
            let count = usize::try_from(days_left).unwrap_or(PAGE).clamp(1, PAGE);
            let page = readable(
                self.rest
                    .day_candles(instrument.symbol(), to, count)
                    .await
                    .map_err(unavailable)?,
            );
            let Some(oldest) = page.iter().map(|c| c.day).min() else {
                break;
            };
            let full = page.len() == count;
            collected.extend(page.into_iter().filter(|c| c.day >= first && c.day <= last));
            if !full {
                break;
            }
            before = day_start(oldest).filter(|start| *start < to);
        }
        collected.sort_by_key(|c| c.day);
        collected.dedup_by_key(|c| c.day);
        Ok(collected)
    }
}
