//! The bars the trigger engine is fed. Indicators, volume averages and once-per-bar-close rules
//! move on when a bar of their interval closes; this builds, for the instruments that have such
//! rules, the forming bar of every interval from the trades the engine evaluates, and hands a bar
//! over when the first trade after it arrives, or when the clock passes its end on a quiet
//! instrument. The first bar after start-up holds only the trades this instance saw.
//!
//! It also reads the finished bars a new indicator is warmed up with from the stored minute
//! candles.

use rust_decimal::Decimal;
use signal_domain::{Bar, InstrumentId, Interval, Price, Quote, Timestamp};
use signal_ports::{Candle, CandleStore, StoreError};
use std::collections::HashMap;

/// Most minute candles read to warm one indicator up: about 35 days. Longer histories (day bars
/// of long averages) start from what that holds and fill up as bars close.
const MAX_WARM_UP_MINUTES: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Forming {
    bar: Bar,
    ends: Timestamp,
}

/// The forming bars of one instrument, one per interval, and its last cumulative volume.
#[derive(Debug, Default)]
struct Bars {
    forming: [Option<Forming>; Interval::ALL.len()],
    volume: Option<Decimal>,
}

#[derive(Debug, Default)]
pub(crate) struct BarClock {
    instruments: HashMap<InstrumentId, Bars>,
}

impl BarClock {
    /// Builds bars of `instrument` from its next trade on.
    pub(crate) fn follow(&mut self, instrument: &InstrumentId) {
        self.instruments.entry(instrument.clone()).or_default();
    }

    /// Folds the trade `quote` reports at `at` into the instrument's forming bars, first
    /// appending to `closed` the bars it ends; returns the trade's volume. The volume of a trade
    /// is how far the quote's accumulated volume moved (all of it when it restarted, on a new
    /// day); an instrument that is not followed has no bars and its trades no volume.
    pub(crate) fn on_trade(
        &mut self,
        quote: &Quote,
        at: Timestamp,
        closed: &mut Vec<(Interval, Bar)>,
    ) -> Decimal {
        let Some(bars) = self.instruments.get_mut(&quote.instrument) else {
            return Decimal::ZERO;
        };
        let volume = match (bars.volume, quote.volume) {
            (Some(before), Some(now)) if now >= before => now - before,
            (Some(_), Some(now)) => now,
            _ => Decimal::ZERO,
        };
        bars.volume = quote.volume.or(bars.volume);
        self.fold_trade(&quote.instrument, quote.price, volume, at, closed);
        volume
    }

    /// Folds a trade of `volume` at `price` into the forming bars of a followed instrument, first
    /// appending to `closed` the bars it ends.
    pub(crate) fn fold_trade(
        &mut self,
        instrument: &InstrumentId,
        price: Price,
        volume: Decimal,
        at: Timestamp,
        closed: &mut Vec<(Interval, Bar)>,
    ) {
        let Some(bars) = self.instruments.get_mut(instrument) else {
            return;
        };
        let market = instrument.market();
        for interval in Interval::ALL {
            let slot = &mut bars.forming[interval.index()];
            if let Some(forming) = slot.filter(|forming| at >= forming.ends) {
                closed.push((interval, forming.bar));
                *slot = None;
            }
            match slot {
                Some(forming) => fold(&mut forming.bar, price, volume),
                None => {
                    *slot = Some(Forming {
                        bar: Bar {
                            start: interval.bar_start(market, at),
                            open: price,
                            high: price,
                            low: price,
                            close: price,
                            volume,
                        },
                        ends: interval.bar_end(market, at),
                    })
                }
            }
        }
    }

    /// Takes the bars that ended by `now` without a trade after them.
    pub(crate) fn close_due(&mut self, now: Timestamp) -> Vec<(InstrumentId, Interval, Bar)> {
        let mut closed = Vec::new();
        for (instrument, bars) in &mut self.instruments {
            for interval in Interval::ALL {
                let slot = &mut bars.forming[interval.index()];
                if let Some(forming) = slot.filter(|forming| now >= forming.ends) {
                    closed.push((instrument.clone(), interval, forming.bar));
                    *slot = None;
                }
            }
        }
        closed
    }
}

fn fold(bar: &mut Bar, price: Price, volume: Decimal) {
    bar.high = bar.high.max(price);
    bar.low = bar.low.min(price);
    bar.close = price;
    bar.volume += volume;
}

/// The last `wanted` finished bars of `interval` before the one forming at `now`, from the stored
/// minute candles, oldest first (fewer when the store holds fewer).
pub(crate) async fn history(
    candles: &dyn CandleStore,
    instrument: &InstrumentId,
    interval: Interval,
    wanted: usize,
    now: Timestamp,
) -> Result<Vec<Bar>, StoreError> {
    let market = instrument.market();
    let (from, end) = warm_up_minutes(market, interval, wanted, now);
    let minutes = usize::try_from((end - from).num_minutes()).unwrap_or(0);
    let stored = candles.candles(instrument, from, end, minutes).await?;
    let mut bars = minute_bars(&stored, interval, market);
    let surplus = bars.len().saturating_sub(wanted);
    bars.drain(..surplus);
    Ok(bars)
}

/// The minutes, `[from, end)`, whose candles hold the last `wanted` finished bars of `interval`
/// before the one forming at `now` (at most [`MAX_WARM_UP_MINUTES`] of them).
pub(crate) fn warm_up_minutes(
    market: signal_domain::Market,
    interval: Interval,
    wanted: usize,
    now: Timestamp,
) -> (Timestamp, Timestamp) {
    let end = interval.bar_start(market, now);
    let per_bar = usize::try_from(interval.length().num_minutes()).unwrap_or(1);
    let minutes = wanted.saturating_mul(per_bar).min(MAX_WARM_UP_MINUTES);
    let from = end - chrono::Duration::minutes(i64::try_from(minutes).unwrap_or(0));
    (from, end)
}

/// Minute candles, oldest first, joined into bars of `interval`.
pub(crate) fn minute_bars(
    candles: &[Candle],
    interval: Interval,
    market: signal_domain::Market,
) -> Vec<Bar> {
    let mut bars: Vec<Bar> = Vec::new();
    for candle in candles {
        let start = interval.bar_start(market, candle.minute);
        match bars.last_mut() {
            Some(bar) if bar.start == start => {
                fold(bar, candle.high, candle.volume);
                bar.low = bar.low.min(candle.low);
                bar.close = candle.close;
            }
            _ => bars.push(Bar {
                start,
                open: candle.open,
                high: candle.high,
                low: candle.low,
                close: candle.close,
                volume: candle.volume,
            }),
        }
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_domain::{QuoteSource, Tick};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn quote(price: &str, volume: i64) -> Quote {
        let now = at("2026-03-04T09:00:00Z");
        Quote::after(
            &Tick {
                instrument: "UPBIT:KRW-BTC".parse().unwrap(),
                price: price.parse().unwrap(),
                trade_volume: None,
                cumulative_volume: Some(volume.into()),
                prev_close: None,
                exchange_time: now,
                received_at: now,
                source: QuoteSource::Upbit,
            },
            None,
        )
    }

    #[test]
    fn a_bar_closes_on_the_first_trade_after_it_or_when_its_time_is_up() {
        let mut clock = BarClock::default();
        let mut closed = Vec::new();
        let btc: InstrumentId = "UPBIT:KRW-BTC".parse().unwrap();
        assert_eq!(
            clock.on_trade(&quote("100", 10), at("2026-03-04T09:00:10Z"), &mut closed),
            Decimal::ZERO,
            "not followed: no bars"
        );
        clock.follow(&btc);
        clock.on_trade(&quote("100", 10), at("2026-03-04T09:00:10Z"), &mut closed);
        assert_eq!(
            clock.on_trade(&quote("104", 13), at("2026-03-04T09:00:20Z"), &mut closed),
            Decimal::from(3)
        );
        clock.on_trade(&quote("98", 15), at("2026-03-04T09:00:59Z"), &mut closed);
        assert!(closed.is_empty());
        clock.on_trade(&quote("101", 16), at("2026-03-04T09:01:00Z"), &mut closed);
        let [(interval, bar)] = closed[..] else {
            panic!("one bar closes: {closed:?}");
        };
        assert_eq!(interval, Interval::M1);
        assert_eq!(bar.start, at("2026-03-04T09:00:00Z"));
        assert_eq!(
            [bar.open, bar.high, bar.low, bar.close].map(|p| p.to_string()),
            ["100", "104", "98", "98"]
        );
        assert_eq!(bar.volume, Decimal::from(5));

        assert!(clock.close_due(at("2026-03-04T09:01:59Z")).is_empty());
        let due = clock.close_due(at("2026-03-04T09:05:00Z"));
        let intervals: Vec<Interval> = due.iter().map(|(_, interval, _)| *interval).collect();
        assert_eq!(intervals, [Interval::M1, Interval::M5]);
        assert!(clock.close_due(at("2026-03-04T09:05:00Z")).is_empty());
    }

    #[test]
    fn minute_candles_join_into_bars_of_the_interval() {
        let candle = |minute: &str, ohlc: [&str; 4], volume: i64| Candle {
            instrument: "UPBIT:KRW-BTC".parse().unwrap(),
            minute: at(minute),
            open: ohlc[0].parse().unwrap(),
            high: ohlc[1].parse().unwrap(),
            low: ohlc[2].parse().unwrap(),
            close: ohlc[3].parse().unwrap(),
            volume: volume.into(),
            trades: 1,
        };
        let candles = [
            candle("2026-03-04T09:03:00Z", ["10", "12", "9", "11"], 1),
            candle("2026-03-04T09:04:00Z", ["11", "15", "10", "14"], 2),
            candle("2026-03-04T09:05:00Z", ["14", "14", "8", "9"], 4),
        ];
        let bars = minute_bars(&candles, Interval::M5, signal_domain::Market::Upbit);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].start, at("2026-03-04T09:00:00Z"));
        assert_eq!(
            [bars[0].open, bars[0].high, bars[0].low, bars[0].close].map(|p| p.to_string()),
            ["10", "15", "9", "14"]
        );
        assert_eq!(bars[0].volume, Decimal::from(3));
        assert_eq!(bars[1].close.to_string(), "9");
    }
}
