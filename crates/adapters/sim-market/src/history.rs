//! Simulated history, so a demo chart has a past: minute and daily candles for any span, made of
//! the same price steps as the live trades. Each market day is a walk of its own, seeded by the
//! instrument and the day, from a day reference that drifts slowly around the instrument's
//! reference price; the same span therefore gives the same candles on every call, and a day
//! candle is the fold of that day's minute candles.

use async_trait::async_trait;
use chrono::{Datelike, Days, NaiveDate, TimeDelta};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use signal_domain::{InstrumentId, Interval, Market, Price, Timestamp};
use signal_ports::{Candle, CandleHistory, DailyCandle, HistoryError};
use std::hash::{Hash, Hasher};

use crate::path::{next_price, trade_volume};
use crate::SimulatedMarket;

/// Trades drawn per minute: enough for a minute candle with a body and wicks.
const TRADES_PER_MINUTE: usize = 3;
/// Most days one call invents: a chart asks for a year at most.
const MAX_DAYS: u64 = 1_000;

/// Why simulated history could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the simulated history was not finished")]
struct Interrupted(#[source] tokio::task::JoinError);

impl SimulatedMarket {
    fn reference(&self, instrument: &InstrumentId) -> Option<Price> {
        self.instruments
            .iter()
            .find(|(id, _)| id == instrument)
            .map(|(_, price)| *price)
    }
}

/// The minute candles of `instrument`'s market day `day`, oldest first.
fn day_minutes(instrument: &InstrumentId, reference: Price, day: NaiveDate) -> Vec<Candle> {
    let market = instrument.market();
    let Some(start) = day_start(market, day) else {
        return Vec::new();
    };
    let end = Interval::D1.bar_end(market, start);
    let day_reference = drifted(market, reference, day);
    let mut rng = SmallRng::seed_from_u64(seed(instrument, day));
    let mut price = day_reference;
    let mut candles = Vec::new();
    let mut minute = start;
    while minute < end {
        let open = price;
        let (mut high, mut low, mut volume) = (open, open, Decimal::ZERO);
        for _ in 0..TRADES_PER_MINUTE {
            price = next_price(&mut rng, market, price, day_reference);
            volume += trade_volume(&mut rng, market, price);
            high = high.max(price);
            low = low.min(price);
        }
        candles.push(Candle {
            instrument: instrument.clone(),
            minute,
            open,
            high,
            low,
            close: price,
            volume,
            trades: u32::try_from(TRADES_PER_MINUTE).unwrap_or(u32::MAX),
        });
        minute += TimeDelta::minutes(1);
    }
    candles
}

/// The day's reference: the instrument's reference moved by a slow swing (weeks) and a faster
/// one (days), so a daily chart has trends rather than noise around one level; today's is the
/// reference itself, around which the live prices move.
fn drifted(market: Market, reference: Price, day: NaiveDate) -> Price {
    let swing = |day: NaiveDate| {
        let days = f64::from(day.num_days_from_ce());
        0.12 * (days / 45.0).sin() + 0.04 * (days / 6.0).cos()
    };
    let today = market_day(market, chrono::Utc::now());
    let factor = 1.0 + swing(day) - swing(today);
    Decimal::from_f64(factor)
        .map(|factor| market.round_to_unit(reference.value() * factor))
        .and_then(|value| Price::new(value).ok())
        .unwrap_or(reference)
}

fn seed(instrument: &InstrumentId, day: NaiveDate) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    instrument.hash(&mut hasher);
    day.hash(&mut hasher);
    hasher.finish()
}

fn day_start(market: Market, day: NaiveDate) -> Option<Timestamp> {
    use chrono::TimeZone;
    market
        .time_zone()
        .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|at| at.with_timezone(&chrono::Utc))
}

fn market_day(market: Market, at: Timestamp) -> NaiveDate {
    at.with_timezone(&market.time_zone()).date_naive()
}

/// Every day of `first..=last`, at most [`MAX_DAYS`] of them (the latest).
fn days(first: NaiveDate, last: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    let first = first.max(last.checked_sub_days(Days::new(MAX_DAYS)).unwrap_or(first));
    first.iter_days().take_while(move |day| *day <= last)
}

/// Walks are pure computation: thousands of steps per day, kept off the async workers.
async fn computed<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HistoryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HistoryError::Unavailable(Box::new(Interrupted(e))))
}

#[async_trait]
impl CandleHistory for SimulatedMarket {
    fn serves(&self, _market: Market) -> bool {
        true
    }

    async fn minute_candles(
        &self,
        instrument: &InstrumentId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Candle>, HistoryError> {
        let reference = self
            .reference(instrument)
            .ok_or_else(|| HistoryError::NotServed(instrument.clone()))?;
        if from >= to {
            return Ok(Vec::new());
        }
        let market = instrument.market();
        let (first, last) = (market_day(market, from), market_day(market, to));
        let instrument = instrument.clone();
        computed(move || {
            days(first, last)
                .flat_map(|day| day_minutes(&instrument, reference, day))
                .filter(|c| c.minute >= from && c.minute < to)
                .collect()
        })
        .await
    }

    async fn daily_candles(
        &self,
        instrument: &InstrumentId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DailyCandle>, HistoryError> {
        let reference = self
            .reference(instrument)
            .ok_or_else(|| HistoryError::NotServed(instrument.clone()))?;
        let instrument = instrument.clone();
        computed(move || {
            days(first, last)
                .filter_map(|day| {
                    let minutes = day_minutes(&instrument, reference, day);
                    let (open, close) = (minutes.first()?.open, minutes.last()?.close);
                    Some(DailyCandle {
                        instrument: instrument.clone(),
                        day,
                        open,
                        high: minutes.iter().map(|c| c.high).max()?,
                        low: minutes.iter().map(|c| c.low).min()?,
                        close,
                        volume: minutes.iter().map(|c| c.volume).sum(),
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    fn market() -> SimulatedMarket {
        let btc: InstrumentId = "UPBIT:KRW-BTC".parse().unwrap();
        let samsung: InstrumentId = "KRX:005930".parse().unwrap();
        SimulatedMarket::new(
            vec![
                (btc, "150000000".parse().unwrap()),
                (samsung, "70000".parse().unwrap()),
            ],
            SimConfig::default(),
        )
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn the_same_span_is_the_same_candles_every_time() {
        let sim = market();
        let btc = "UPBIT:KRW-BTC".parse().unwrap();
        let (from, to) = (at("2026-03-01T10:00:00Z"), at("2026-03-01T12:00:00Z"));
        let first = sim.minute_candles(&btc, from, to).await.unwrap();
        assert_eq!(first.len(), 120);
        assert_eq!(first, sim.minute_candles(&btc, from, to).await.unwrap());
        // A part of the span is the same part of the candles.
        let part = sim
            .minute_candles(&btc, at("2026-03-01T11:00:00Z"), to)
            .await
            .unwrap();
        assert_eq!(part, first[60..]);
    }

    #[tokio::test]
    async fn a_day_candle_is_the_fold_of_its_minutes() {
        let sim = market();
        let samsung: InstrumentId = "KRX:005930".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let daily = sim.daily_candles(&samsung, day, day).await.unwrap();
        // The Seoul day 2026-03-02 is 2026-03-01T15:00Z to 2026-03-02T15:00Z.
        let minutes = sim
            .minute_candles(
                &samsung,
                at("2026-03-01T15:00:00Z"),
                at("2026-03-02T15:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(minutes.len(), 1440);
        let [daily] = daily.as_slice() else {
            panic!("one day, got {daily:?}")
        };
        assert_eq!(daily.open, minutes[0].open);
        assert_eq!(daily.close, minutes[1439].close);
        assert_eq!(daily.high, minutes.iter().map(|c| c.high).max().unwrap());
        assert!(minutes
            .iter()
            .all(|c| c.low >= daily.low && c.high >= c.low));
    }

    #[tokio::test]
    async fn an_instrument_it_does_not_trade_has_no_history() {
        let aapl = "NASDAQ:AAPL".parse().unwrap();
        let answer = market()
            .minute_candles(
                &aapl,
                at("2026-03-01T10:00:00Z"),
                at("2026-03-01T11:00:00Z"),
            )
            .await;
        assert!(matches!(answer, Err(HistoryError::NotServed(_))));
    }
}
