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
    /// Whether the market was in session when the quote was last judged (see
    /// [`Quote::with_session`]): a closed market's price is its last trade, not a live one.
    /// `None` when nobody has judged it; absent in quotes stored before this existed.
    #[serde(default)]
    pub market_open: Option<bool>,
}

impl Quote {
    /// The quote after `tick`, keeping what the tick does not carry from `previous`, including
    /// whether the market is open: a trade does not say.
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
            market_open: previous.and_then(|q| q.market_open),
        }
    }

    /// This quote, marked as seen while its market is open or closed.
    pub fn with_session(self, open: bool) -> Quote {
        Quote {
            market_open: Some(open),
            ..self
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

    #[test]
    fn the_session_is_unknown_until_set_and_then_carried_forward() {
        let first = Quote::after(&tick(dec!(62700), Some(dec!(62300)), None), None);
        assert_eq!(first.market_open, None);
        let closed = first.with_session(false);
        assert_eq!(closed.market_open, Some(false));
        let second = Quote::after(&tick(dec!(62600), None, None), Some(&closed));
        assert_eq!(second.market_open, Some(false));
        assert_eq!(second.with_session(true).market_open, Some(true));

        let json = serde_json::to_value(&closed).unwrap();
        assert_eq!(json["marketOpen"], serde_json::json!(false));
        let mut stored = json;
        stored.as_object_mut().unwrap().remove("marketOpen");
        let read: Quote = serde_json::from_value(stored).unwrap();
        assert_eq!(read.market_open, None);
    }
}
