//! Instrument identity. The original system keyed everything by a bare symbol, which is ambiguous
//! across venues; here every instrument is `MARKET:SYMBOL` (KRX:005930, NASDAQ:AAPL, UPBIT:KRW-BTC).

use crate::market::{AssetClass, Market};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;
use std::fmt;
use std::str::FromStr;

/// The unambiguous identity of a tradable instrument. Cheap to clone and hash: it sits on the path
/// of every tick.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstrumentId {
    market: Market,
    symbol: SmolStr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentIdError {
    #[error("instrument id `{}` must look like MARKET:SYMBOL, e.g. KRX:005930, NASDAQ:AAPL or UPBIT:KRW-BTC", crate::abbreviate(.0))]
    Shape(String),
    #[error(transparent)]
    Market(#[from] crate::market::UnknownMarket),
    #[error("`{}` is not a valid {market} symbol: {reason}", crate::abbreviate(.symbol))]
    Symbol {
        market: Market,
        symbol: String,
        reason: &'static str,
    },
}

impl InstrumentId {
    /// Builds an id, normalising the symbol to upper case and checking its shape for the market.
    pub fn new(market: Market, symbol: &str) -> Result<Self, InstrumentIdError> {
        let symbol = symbol.trim().to_ascii_uppercase();
        let bad = |reason| InstrumentIdError::Symbol {
            market,
            symbol: symbol.clone(),
            reason,
        };
        match market {
            Market::Krx => {
                if symbol.len() != 6 || !symbol.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(bad("KRX codes are six letters or digits, e.g. 005930"));
                }
            }
            Market::Nasdaq | Market::Nyse | Market::Amex => {
                let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
                if symbol.is_empty() || symbol.len() > 10 || !symbol.chars().all(ok_char) {
                    return Err(bad("US tickers are 1 to 10 letters, digits, '.' or '-'"));
                }
            }
            Market::Upbit => {
                let Some((quote, base)) = symbol.split_once('-') else {
                    return Err(bad("Upbit markets look like KRW-BTC"));
                };
                let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
                if !ok(quote) || !ok(base) || symbol.len() > 20 {
                    return Err(bad("Upbit markets look like KRW-BTC"));
                }
            }
        }
        Ok(Self {
            market,
            symbol: SmolStr::new(symbol),
        })
    }

    pub fn market(&self) -> Market {
        self.market
    }

    /// The venue's own symbol: `005930`, `AAPL`, `KRW-BTC` (what the original API called a symbol).
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    pub fn asset_class(&self) -> AssetClass {
        self.market.asset_class()
    }
}

impl fmt::Display for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.market, self.symbol)
    }
}

impl FromStr for InstrumentId {
    type Err = InstrumentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (market, symbol) = s
            .split_once(':')
            .ok_or_else(|| InstrumentIdError::Shape(s.to_string()))?;
        InstrumentId::new(market.parse()?, symbol)
    }
}

impl Serialize for InstrumentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstrumentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for InstrumentId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("MARKET:SYMBOL"))
            .examples(["KRX:005930", "NASDAQ:AAPL", "UPBIT:KRW-BTC"])
            .into()
    }
}

impl utoipa::ToSchema for InstrumentId {}

/// An entry of the instrument master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instrument {
    pub id: InstrumentId,
    pub korean_name: String,
    pub english_name: String,
    /// Set when the venue flags the instrument (Upbit's market warning, a KRX trading halt).
    #[serde(default)]
    pub warning: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_market_qualified_ids() {
        let id: InstrumentId = "krx:005930".parse().unwrap();
        assert_eq!(id.to_string(), "KRX:005930");
        assert_eq!(id.symbol(), "005930");
        let btc: InstrumentId = "UPBIT:krw-btc".parse().unwrap();
        assert_eq!(btc.to_string(), "UPBIT:KRW-BTC");
    }

    #[test]
    fn rejects_symbols_of_the_wrong_shape() {
        assert!("KRX:AAPL".parse::<InstrumentId>().is_err());
        assert!("UPBIT:BTC".parse::<InstrumentId>().is_err());
        assert!("AAPL".parse::<InstrumentId>().is_err());
        assert!("NASDAQ:".parse::<InstrumentId>().is_err());
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let id: InstrumentId = "NASDAQ:AAPL".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"NASDAQ:AAPL\"");
        assert_eq!(serde_json::from_str::<InstrumentId>(&json).unwrap(), id);
    }
}
