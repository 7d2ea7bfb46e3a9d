//! Ticks (what a feed observed) and quotes (what the system knows about an instrument now).

use crate::instrument::InstrumentId;
use crate::price::{Percent, Price};
use crate::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Where a price came from. Simulated prices are always labelled as such, all the way to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuoteSource {
    Simulated,
    Upbit,
    Kis,
}

/// One normalized observation of a trade, whatever the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub instrument: InstrumentId,
    pub price: Price,
    /// Size of this trade, when the feed reports it.
    pub trade_volume: Option<Decimal>,
    /// Volume accumulated over the session, when the feed reports it.
    pub cumulative_volume: Option<Decimal>,
    /// Previous session close, when the feed reports it; percent-change rules are measured from it.
    pub prev_close: Option<Price>,
    pub exchange_time: Timestamp,
    pub received_at: Timestamp,
    pub source: QuoteSource,
}

/// The latest known state of an instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub instrument: InstrumentId,
    pub price: Price,
    pub prev_close: Option<Price>,
    /// Price minus previous close.
    #[schema(value_type = Option<String>)]
    #[serde(with = "rust_decimal::serde::str_option")]
    pub change: Option<Decimal>,
    /// Change against the previous close, in percent.
    pub change_percent: Option<Percent>,
    /// Volume accumulated over the session.
    #[schema(value_type = Option<String>)]
    #[serde(with = "rust_decimal::serde::str_option")]
    pub volume: Option<Decimal>,
    #[schema(value_type = String, format = DateTime)]
    pub exchange_time: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    pub source: QuoteSource,
    /// True when the price comes from the simulated market, not an exchange.
    pub simulated: bool,
}

impl Quote {
    /// The quote after `tick`, keeping what the tick does not carry from `previous`.
    pub fn after(tick: &Tick, previous: Option<&Quote>) -> Quote {
        let prev_close = tick.prev_close.or(previous.and_then(|q| q.prev_close));
        let volume = tick.cumulative_volume.or_else(|| {
            match (previous.and_then(|q| q.volume), tick.trade_volume) {
                (Some(total), Some(trade)) => Some(total + trade),
                (total, trade) => total.or(trade),
            }
        });
        let change = prev_close.map(|close| tick.price.value() - close.value());
        let change_percent =
            prev_close.and_then(|close| Percent::change(tick.price.value(), close.value()));
        Quote {
            instrument: tick.instrument.clone(),
            price: tick.price,
            prev_close,
            change,
            change_percent,
            volume,
            exchange_time: tick.exchange_time,
            received_at: tick.received_at,
            source: tick.source,
            simulated: tick.source == QuoteSource::Simulated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn tick(price: Decimal, prev_close: Option<Decimal>, trade: Option<Decimal>) -> Tick {
        let now = chrono::Utc::now();
        Tick {
            instrument: "KRX:005930".parse().unwrap(),
            price: Price::new(price).unwrap(),
            trade_volume: trade,
            cumulative_volume: None,
            prev_close: prev_close.map(|p| Price::new(p).unwrap()),
            exchange_time: now,
            received_at: now,
            source: QuoteSource::Simulated,
        }
    }

    #[test]
    fn quote_carries_change_and_accumulates_volume() {
        let first = Quote::after(&tick(dec!(62700), Some(dec!(62300)), Some(dec!(125))), None);
        assert_eq!(first.change, Some(dec!(400)));
        assert_eq!(first.change_percent.unwrap().value(), dec!(0.6421));
        assert!(first.simulated);
        let second = Quote::after(&tick(dec!(62600), None, Some(dec!(10))), Some(&first));
        assert_eq!(second.prev_close, first.prev_close);
        assert_eq!(second.volume, Some(dec!(135)));
        assert_eq!(second.change, Some(dec!(300)));
    }
}
