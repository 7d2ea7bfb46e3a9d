//! When each market trades. A stock price outside its session does not move, so feeds use this to
//! stop spending their request budget on markets that are closed, and quotes can tell a user that
//! a price is the last close rather than a live one. Hours are kept in each exchange's own time
//! zone, so US daylight saving moves the session in UTC as it does in New York.

use crate::market::Market;
use crate::Timestamp;
use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// How far ahead to look for the next session. Longer than any real run of holidays, so running
/// out means the configured holidays leave no trading day at all.
const SEARCH_DAYS: usize = 366;

/// A trading calendar shared by markets: the three US exchanges keep the same hours and holidays,
/// so holidays are configured once for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exchange {
    /// Korea Exchange.
    Krx,
    /// NASDAQ, NYSE and AMEX.
    Us,
}

impl Exchange {
    /// The calendar `market` follows; `None` for a market that never closes.
    pub fn of(market: Market) -> Option<Exchange> {
        match market {
            Market::Krx => Some(Exchange::Krx),
            Market::Nasdaq | Market::Nyse | Market::Amex => Some(Exchange::Us),
            Market::Upbit => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Exchange::Krx => "KRX",
            Exchange::Us => "US",
        }
    }

    fn zone(self) -> Tz {
        match self {
            Exchange::Krx => chrono_tz::Asia::Seoul,
            Exchange::Us => chrono_tz::America::New_York,
        }
    }

    /// Regular session, local time.
    fn regular_hours(self) -> SessionHours {
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("a valid time of day");
        let (open, close) = match self {
            Exchange::Krx => (at(9, 0), at(15, 30)),
            Exchange::Us => (at(9, 30), at(16, 0)),
        };
        SessionHours { open, close }
    }
}

impl Market {
    /// The time zone a market's trading days are counted in: the exchange's own, and UTC for
    /// Upbit, whose days (and daily candles) run from 00:00 UTC (09:00 KST).
    pub fn time_zone(self) -> Tz {
        Exchange::of(self).map_or(chrono_tz::UTC, Exchange::zone)
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown exchange calendar `{0}` (expected KRX or US)")]
pub struct UnknownExchange(pub String);

impl FromStr for Exchange {
    type Err = UnknownExchange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Exchange::Krx, Exchange::Us]
            .into_iter()
            .find(|e| e.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownExchange(s.to_string()))
    }
}

// By hand rather than derived: environment-variable settings arrive lower-cased.
impl<'de> Deserialize<'de> for Exchange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Exchange holidays and special sessions, which change every year and are announced by the
/// exchanges: they are configuration, not code. Weekends need not be listed. A special session
/// replaces a day's regular hours: the US half days (13:00 close after Thanksgiving and before
/// Christmas), KRX's late opening on the first trading day of the year and on the day of the
/// national college entrance exam.
///
/// ```toml
/// [calendar.holidays]
/// KRX = ["2026-09-24", "2026-09-25"]
/// US = ["2026-11-26"]
///
/// [calendar.special_sessions.US]
/// 2026-11-27 = { open = "09:30", close = "13:00" }
/// [calendar.special_sessions.KRX]
/// 2026-11-19 = { open = "10:00", close = "16:30" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    pub holidays: BTreeMap<Exchange, Vec<NaiveDate>>,
    pub special_sessions: BTreeMap<Exchange, BTreeMap<NaiveDate, SessionHours>>,
}

/// A day's session, local time, open inclusive and close exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl<'de> Deserialize<'de> for SessionHours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            open: String,
            close: String,
        }
        let wire = Wire::deserialize(deserializer)?;
        let time = |text: &str| {
            NaiveTime::parse_from_str(text, "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{text}` is not a time of day like 13:00"))
                })
        };
        let hours = SessionHours {
            open: time(&wire.open)?,
            close: time(&wire.close)?,
        };
        if hours.open >= hours.close {
            return Err(serde::de::Error::custom(format!(
                "a session opens before it closes, not at {} and {}",
                wire.open, wire.close
            )));
        }
        Ok(hours)
    }
}

/// Whether a market trades at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Open,
    /// `next_open` is `None` only when the configured holidays leave no trading day within a year.
    Closed {
        next_open: Option<Timestamp>,
    },
}

impl SessionState {
    pub fn is_open(self) -> bool {
        self == SessionState::Open
    }
}

/// Regular trading sessions of every market, with the configured holidays and special sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketCalendar {
    holidays: BTreeMap<Exchange, BTreeSet<NaiveDate>>,
    special_sessions: BTreeMap<Exchange, BTreeMap<NaiveDate, SessionHours>>,
}

impl MarketCalendar {
    pub fn new(config: &CalendarConfig) -> Self {
        let holidays = config
            .holidays
            .iter()
            .map(|(exchange, dates)| (*exchange, dates.iter().copied().collect()))
            .collect();
        Self {
            holidays,
            special_sessions: config.special_sessions.clone(),
        }
    }

    /// Whether `market` is in session at `at`, and if not, when it next opens.
    pub fn session(&self, market: Market, at: Timestamp) -> SessionState {
        let Some(exchange) = Exchange::of(market) else {
            return SessionState::Open;
        };
        let zone = exchange.zone();
        let local = at.with_timezone(&zone);
        let today = local.date_naive();
        let time = local.time();
        if let Some(hours) = self.hours_on(exchange, today) {
            if hours.open <= time && time < hours.close {
                return SessionState::Open;
            }
        }
        let next_open = today
            .iter_days()
            .take(SEARCH_DAYS + 1)
            .filter_map(|day| self.hours_on(exchange, day).map(|hours| (day, hours.open)))
            .filter(|(day, open)| *day > today || time < *open)
            // A configured opening inside a daylight-saving gap does not exist (the search goes
            // on); the earliest reading of an ambiguous one is the first moment it is that time.
            .find_map(|(day, open)| zone.from_local_datetime(&day.and_time(open)).earliest())
            .map(|opening| opening.with_timezone(&Utc));
        SessionState::Closed { next_open }
    }

    /// The day's session (local times), `None` when the exchange does not trade that day. A
    /// special session is the exchange saying it trades, even on a weekend or a listed holiday.
    pub fn hours_on(&self, exchange: Exchange, day: NaiveDate) -> Option<SessionHours> {
        if let Some(special) = self
            .special_sessions
            .get(&exchange)
            .and_then(|days| days.get(&day))
        {
            return Some(*special);
        }
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let holiday = self
            .holidays
            .get(&exchange)
            .is_some_and(|days| days.contains(&day));
        (!weekend && !holiday).then(|| exchange.regular_hours())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn krx_trades_from_nine_to_half_past_three_seoul_time_on_weekdays() {
        let calendar = MarketCalendar::default();
        // Monday 2026-11-23, 10:00 KST.
        assert!(calendar
            .session(Market::Krx, utc("2026-11-23T01:00:00Z"))
            .is_open());
        // 15:31 KST the same day: closed until 09:00 KST Tuesday.
        assert_eq!(
            calendar.session(Market::Krx, utc("2026-11-23T06:31:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-11-24T00:00:00Z"))
            }
        );
        // Saturday 10:00 KST: closed until Monday.
        assert_eq!(
            calendar.session(Market::Krx, utc("2026-11-28T01:00:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-11-30T00:00:00Z"))
            }
        );
    }

    #[test]
    fn us_hours_follow_new_york_daylight_saving() {
        let calendar = MarketCalendar::default();
        // 13:35 UTC is 09:35 EDT in July, but 08:35 EST in January.
        assert!(calendar
            .session(Market::Nyse, utc("2026-07-15T13:35:00Z"))
            .is_open());
        assert_eq!(
            calendar.session(Market::Nyse, utc("2026-01-14T13:35:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-01-14T14:30:00Z"))
            }
        );
        // 14:00 UTC: open in July, closed in December; the close moves too (20:00 vs 21:00 UTC).
        assert!(calendar
            .session(Market::Nasdaq, utc("2026-07-15T14:00:00Z"))
            .is_open());
        assert!(!calendar
            .session(Market::Nasdaq, utc("2026-12-16T14:00:00Z"))
            .is_open());
        assert!(!calendar
            .session(Market::Amex, utc("2026-07-15T20:30:00Z"))
            .is_open());
        assert!(calendar
            .session(Market::Amex, utc("2026-12-16T20:30:00Z"))
            .is_open());
    }

    #[test]
    fn a_configured_holiday_is_closed_and_the_next_business_day_opens() {
        let config: CalendarConfig = serde_json::from_str(
            r#"{"holidays": {"krx": ["2026-09-24", "2026-09-25"], "US": ["2026-11-26"]}}"#,
        )
        .unwrap();
        let calendar = MarketCalendar::new(&config);
        // Thursday 2026-09-24, 10:00 KST: Chuseok. Friday is a holiday too, then the weekend.
        assert_eq!(
            calendar.session(Market::Krx, utc("2026-09-24T01:00:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-09-28T00:00:00Z"))
            }
        );
        // Thanksgiving, midday in New York: the Friday after opens at 09:30 EST.
        assert_eq!(
            calendar.session(Market::Nyse, utc("2026-11-26T17:00:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-11-27T14:30:00Z"))
            }
        );
        // The KRX holidays are not US ones.
        assert!(calendar
            .session(Market::Nasdaq, utc("2026-09-24T15:00:00Z"))
            .is_open());
        assert_eq!(
            config.holidays.get(&Exchange::Krx),
            Some(&vec![date("2026-09-24"), date("2026-09-25")])
        );
    }

    #[test]
    fn a_special_session_replaces_the_days_hours() {
        let config: CalendarConfig = serde_json::from_str(
            r#"{"special_sessions": {
                "US": {"2026-11-27": {"open": "09:30", "close": "13:00"}},
                "KRX": {"2026-11-19": {"open": "10:00:00", "close": "16:30"}}
            }}"#,
        )
        .unwrap();
        let calendar = MarketCalendar::new(&config);
        // The day after Thanksgiving closes at 13:00 EST (18:00 UTC); Monday opens as usual.
        assert!(calendar
            .session(Market::Nyse, utc("2026-11-27T17:59:00Z"))
            .is_open());
        assert_eq!(
            calendar.session(Market::Nyse, utc("2026-11-27T18:00:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-11-30T14:30:00Z"))
            }
        );
        // The exam day: KRX opens an hour late (10:00 KST) and closes at 16:30.
        assert_eq!(
            calendar.session(Market::Krx, utc("2026-11-19T00:30:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-11-19T01:00:00Z"))
            }
        );
        assert!(calendar
            .session(Market::Krx, utc("2026-11-19T07:00:00Z"))
            .is_open());
        // A special session on a Saturday: the exchange trades that day.
        let saturday: CalendarConfig = serde_json::from_str(
            r#"{"special_sessions": {"KRX": {"2026-11-28": {"open": "09:00", "close": "12:00"}}}}"#,
        )
        .unwrap();
        assert!(MarketCalendar::new(&saturday)
            .session(Market::Krx, utc("2026-11-28T01:00:00Z"))
            .is_open());
        // The day before keeps its regular hours.
        assert_eq!(
            calendar.session(Market::Krx, utc("2026-11-18T06:30:00Z")),
            SessionState::Closed {
                next_open: Some(utc("2026-11-19T01:00:00Z"))
            }
        );
    }

    #[test]
    fn a_special_session_that_closes_before_it_opens_is_refused() {
        let error = serde_json::from_str::<CalendarConfig>(
            r#"{"special_sessions": {"US": {"2026-11-27": {"open": "13:00", "close": "09:30"}}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("opens before it closes"), "{error}");
        let error = serde_json::from_str::<CalendarConfig>(
            r#"{"special_sessions": {"US": {"2026-11-27": {"open": "half past nine", "close": "13:00"}}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("not a time of day"), "{error}");
    }

    #[test]
    fn upbit_never_closes() {
        let calendar = MarketCalendar::default();
        for at in [
            "2026-11-28T01:00:00Z",
            "2026-11-23T06:31:00Z",
            "2026-12-25T00:00:00Z",
        ] {
            assert!(calendar.session(Market::Upbit, utc(at)).is_open());
        }
    }

    #[test]
    fn holidays_are_optional_and_unknown_calendars_are_refused() {
        assert_eq!(
            serde_json::from_str::<CalendarConfig>("{}").unwrap(),
            CalendarConfig::default()
        );
        let error = serde_json::from_str::<CalendarConfig>(r#"{"holidays": {"UPBIT": []}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("expected KRX or US"), "{error}");
    }

    #[test]
    fn a_calendar_of_nothing_but_holidays_has_no_next_open() {
        let start = date("2026-01-01");
        let config = CalendarConfig {
            holidays: BTreeMap::from([(
                Exchange::Krx,
                start.iter_days().take(400).collect::<Vec<_>>(),
            )]),
            ..CalendarConfig::default()
        };
        assert_eq!(
            MarketCalendar::new(&config).session(Market::Krx, utc("2026-01-05T01:00:00Z")),
            SessionState::Closed { next_open: None }
        );
    }
}
