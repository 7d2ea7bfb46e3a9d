//! Bars (candles) of the intervals that charts and indicator conditions use, and where each bar of
//! an interval begins and ends.
//!
//! Intraday intervals are aligned to the clock in UTC, which is also aligned in Seoul and New York
//! (whole-hour offsets). A day bar is the market's own calendar day: midnight to midnight in Seoul
//! for KRX, in New York for the US exchanges, and in UTC for Upbit, whose day candles and
//! accumulated volumes restart at 00:00 UTC.

use crate::market::Market;
use crate::price::Price;
use crate::Timestamp;
use chrono::{DateTime, Days, NaiveTime, TimeDelta, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The length of one bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    M1,
    M5,
    M15,
    H1,
    D1,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported interval `{0}` (expected 1m, 5m, 15m, 1h or 1d)")]
pub struct UnknownInterval(pub String);

impl Interval {
    pub const ALL: [Interval; 5] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::D1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    /// A dense index, for tables with one entry per interval.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The nominal length of a bar; a day bar is 24 hours even across a daylight-saving change.
    pub fn length(self) -> TimeDelta {
        match self {
            Interval::M1 => TimeDelta::minutes(1),
            Interval::M5 => TimeDelta::minutes(5),
            Interval::M15 => TimeDelta::minutes(15),
            Interval::H1 => TimeDelta::hours(1),
            Interval::D1 => TimeDelta::days(1),
        }
    }

    /// The start of the bar of `market` that `at` falls in.
    pub fn bar_start(self, market: Market, at: Timestamp) -> Timestamp {
        match self {
            Interval::D1 => day_start(market, at),
            _ => {
                let step = self.length().num_seconds();
                let seconds = at.timestamp().div_euclid(step) * step;
                DateTime::from_timestamp(seconds, 0).unwrap_or(at)
            }
        }
    }

    /// The instant the bar of `market` that `at` falls in ends (the next bar's start).
    pub fn bar_end(self, market: Market, at: Timestamp) -> Timestamp {
        match self {
            Interval::D1 => {
                let start = day_start(market, at);
                // Local midnight of the next calendar day, which is 23 or 25 hours later across a
                // daylight-saving change.
                let zone = market_zone(market);
                let next_day = start
                    .with_timezone(&zone)
                    .date_naive()
                    .checked_add_days(Days::new(1));
                next_day
                    .and_then(|day| local_midnight(zone, day))
                    .unwrap_or_else(|| start + TimeDelta::days(1))
            }
            _ => self.bar_start(market, at) + self.length(),
        }
    }
}

/// The zone whose calendar days are a market's day bars.
fn market_zone(market: Market) -> chrono_tz::Tz {
    match market {
        Market::Krx => chrono_tz::Asia::Seoul,
        Market::Nasdaq | Market::Nyse | Market::Amex => chrono_tz::America::New_York,
        Market::Upbit => chrono_tz::UTC,
    }
}

fn local_midnight(zone: chrono_tz::Tz, day: chrono::NaiveDate) -> Option<Timestamp> {
    // Midnight exists in every zone the markets use; `earliest` covers a shift at midnight.
    zone.from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
        .map(|local| local.with_timezone(&Utc))
}

fn day_start(market: Market, at: Timestamp) -> Timestamp {
    let zone = market_zone(market);
    local_midnight(zone, at.with_timezone(&zone).date_naive()).unwrap_or(at)
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = UnknownInterval;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Interval::ALL
            .into_iter()
            .find(|interval| interval.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownInterval(s.to_string()))
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Interval {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Interval::ALL.map(Interval::as_str)))
            .description(Some("Bar interval"))
            .into()
    }
}

impl utoipa::ToSchema for Interval {}

/// One finished (or, where said, forming) bar of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub start: Timestamp,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    /// Traded volume within the bar.
    pub volume: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn intraday_bars_align_to_the_clock() {
        let t = at("2026-03-04T09:07:31.5Z");
        assert_eq!(
            Interval::M1.bar_start(Market::Krx, t),
            at("2026-03-04T09:07:00Z")
        );
        assert_eq!(
            Interval::M5.bar_start(Market::Upbit, t),
            at("2026-03-04T09:05:00Z")
        );
        assert_eq!(
            Interval::M15.bar_end(Market::Nasdaq, t),
            at("2026-03-04T09:15:00Z")
        );
        assert_eq!(
            Interval::H1.bar_end(Market::Nasdaq, at("2026-03-04T09:00:00Z")),
            at("2026-03-04T10:00:00Z")
        );
    }

    #[test]
    fn day_bars_follow_each_market_s_calendar_day() {
        // 01:00 UTC is 10:00 in Seoul, 20:00 the evening before in New York.
        let t = at("2026-03-04T01:00:00Z");
        assert_eq!(
            Interval::D1.bar_start(Market::Krx, t),
            at("2026-03-03T15:00:00Z")
        );
        assert_eq!(
            Interval::D1.bar_start(Market::Upbit, t),
            at("2026-03-04T00:00:00Z")
        );
        assert_eq!(
            Interval::D1.bar_start(Market::Nyse, t),
            at("2026-03-03T05:00:00Z")
        );
        // The US switches to daylight saving on 2026-03-08: that day has 23 hours.
        let sunday = at("2026-03-08T12:00:00Z");
        assert_eq!(
            Interval::D1.bar_start(Market::Nasdaq, sunday),
            at("2026-03-08T05:00:00Z")
        );
        assert_eq!(
            Interval::D1.bar_end(Market::Nasdaq, sunday),
            at("2026-03-09T04:00:00Z")
        );
    }

    #[test]
    fn intervals_parse_and_print_as_chart_labels() {
        for interval in Interval::ALL {
            assert_eq!(interval.as_str().parse::<Interval>(), Ok(interval));
        }
        assert_eq!("1H".parse::<Interval>(), Ok(Interval::H1));
        assert!("2m".parse::<Interval>().is_err());
        assert_eq!(serde_json::to_string(&Interval::M15).unwrap(), "\"15m\"");
    }
}
