//! Markets and their price grids. A price that is not on its market's grid cannot trade, so the
//! simulated market and validation both round through [`Market::price_unit`].

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A venue whose prices the system follows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Market {
    /// Korea Exchange (KOSPI and KOSDAQ), quoted in KRW.
    Krx,
    Nasdaq,
    Nyse,
    Amex,
    /// Upbit's KRW crypto markets.
    Upbit,
}

/// What kind of asset a market lists; the original API's top movers are split by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssetClass {
    Stock,
    Crypto,
}

impl Market {
    pub const ALL: [Market; 5] = [
        Market::Krx,
        Market::Nasdaq,
        Market::Nyse,
        Market::Amex,
        Market::Upbit,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Market::Krx => "KRX",
            Market::Nasdaq => "NASDAQ",
            Market::Nyse => "NYSE",
            Market::Amex => "AMEX",
            Market::Upbit => "UPBIT",
        }
    }

    pub fn asset_class(self) -> AssetClass {
        match self {
            Market::Upbit => AssetClass::Crypto,
            _ => AssetClass::Stock,
        }
    }

    /// ISO currency code prices are quoted in.
    pub fn currency(self) -> &'static str {
        match self {
            Market::Krx | Market::Upbit => "KRW",
            Market::Nasdaq | Market::Nyse | Market::Amex => "USD",
        }
    }

    /// The smallest price step at `price` on this market.
    ///
    /// KRX uses the unified KOSPI/KOSDAQ bands in force since 2023; US listings trade in cents at and
    /// above one dollar (sub-penny below); Upbit's KRW market uses its published price units.
    pub fn price_unit(self, price: Decimal) -> Decimal {
        match self {
            Market::Krx => krx_unit(price),
            Market::Nasdaq | Market::Nyse | Market::Amex => {
                if price >= Decimal::ONE {
                    Decimal::new(1, 2)
                } else {
                    Decimal::new(1, 4)
                }
            }
            Market::Upbit => upbit_krw_unit(price),
        }
    }

    /// Rounds `price` down onto this market's grid.
    pub fn round_to_unit(self, price: Decimal) -> Decimal {
        let unit = self.price_unit(price);
        ((price / unit).floor() * unit).normalize()
    }
}

fn krx_unit(price: Decimal) -> Decimal {
    let bands: [(i64, i64); 6] = [
        (2_000, 1),
        (5_000, 5),
        (20_000, 10),
        (50_000, 50),
        (200_000, 100),
        (500_000, 500),
    ];
    bands
        .iter()
        .find(|(upper, _)| price < Decimal::from(*upper))
        .map(|(_, unit)| Decimal::from(*unit))
        .unwrap_or(Decimal::from(1_000))
}

fn upbit_krw_unit(price: Decimal) -> Decimal {
    // (lower bound, unit as mantissa and scale), highest band first.
    let bands: [(Decimal, Decimal); 13] = [
        (Decimal::from(2_000_000), Decimal::from(1_000)),
        (Decimal::from(1_000_000), Decimal::from(500)),
        (Decimal::from(500_000), Decimal::from(100)),
        (Decimal::from(100_000), Decimal::from(50)),
        (Decimal::from(10_000), Decimal::from(10)),
        (Decimal::from(1_000), Decimal::ONE),
        (Decimal::from(100), Decimal::new(1, 1)),
        (Decimal::from(10), Decimal::new(1, 2)),
        (Decimal::ONE, Decimal::new(1, 3)),
        (Decimal::new(1, 1), Decimal::new(1, 4)),
        (Decimal::new(1, 2), Decimal::new(1, 5)),
        (Decimal::new(1, 3), Decimal::new(1, 6)),
        (Decimal::new(1, 4), Decimal::new(1, 7)),
    ];
    bands
        .iter()
        .find(|(lower, _)| price >= *lower)
        .map(|(_, unit)| *unit)
        .unwrap_or(Decimal::new(1, 8))
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown market `{}` (expected one of KRX, NASDAQ, NYSE, AMEX, UPBIT)", crate::abbreviate(.0))]
pub struct UnknownMarket(pub String);

impl FromStr for Market {
    type Err = UnknownMarket;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Market::ALL
            .into_iter()
            .find(|m| m.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownMarket(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn krx_bands_follow_the_unified_table() {
        assert_eq!(Market::Krx.price_unit(dec!(1999)), dec!(1));
        assert_eq!(Market::Krx.price_unit(dec!(2000)), dec!(5));
        assert_eq!(Market::Krx.price_unit(dec!(71900)), dec!(100));
        assert_eq!(Market::Krx.price_unit(dec!(500000)), dec!(1000));
        assert_eq!(Market::Krx.round_to_unit(dec!(71949)), dec!(71900));
    }

    #[test]
    fn upbit_and_us_units() {
        assert_eq!(Market::Upbit.price_unit(dec!(162876000)), dec!(1000));
        assert_eq!(Market::Upbit.price_unit(dec!(650)), dec!(0.1));
        assert_eq!(Market::Nasdaq.round_to_unit(dec!(169.7850)), dec!(169.78));
    }

    #[test]
    fn market_codes_parse_case_insensitively() {
        assert_eq!("nasdaq".parse::<Market>(), Ok(Market::Nasdaq));
        assert!("LSE".parse::<Market>().is_err());
    }
}
